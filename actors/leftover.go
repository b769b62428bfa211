package actors

import (
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/eventstream"

	"github.com/actormq/actormq/codec"
)

// Leftovers are messages that reach an actor after it stopped: those still in its mailbox
// when it stops (protoactor drops them unseen) and those sent to its PID once it is gone
// (dead letters). Some hold what must not be lost with them: a publisher's credit or
// acknowledgement share, a subscription change, a client waiting for its session. leftover
// gives each back, so that a stopped session or shard never stalls a publisher, loses a
// subscription or leaves a client hanging.

// mailboxGuard is a mailbox middleware of sessions and shards: once its actor has stopped,
// everything the mailbox still hands out is a leftover. One guard per spawned actor (a
// restart keeps the actor's mailbox, and so its guard).
type mailboxGuard struct {
	env     *Env
	pid     atomic.Pointer[actor.PID] // set when the actor starts
	stopped atomic.Bool
}

func newMailboxGuard(env *Env) *mailboxGuard { return &mailboxGuard{env: env} }

func (g *mailboxGuard) MailboxStarted()   {}
func (g *mailboxGuard) MessagePosted(any) {}
func (g *mailboxGuard) MailboxEmpty()     {}
func (g *mailboxGuard) MessageReceived(m any) {
	if g.stopped.Load() {
		g.env.leftover(g.pid.Load(), m)
	}
}

// WatchDeadLetters hands the leftovers sent to gone actors to leftover, until the returned
// subscription is unsubscribed from the actor system's EventStream.
func (e *Env) WatchDeadLetters() *eventstream.Subscription {
	return e.System.EventStream.Subscribe(func(evt any) {
		if d, ok := evt.(*actor.DeadLetterEvent); ok {
			e.leftover(d.PID, d.Message)
		}
	})
}

// leftoverRetry paces the resending of a subscription change to a shard being started again.
const leftoverRetry = 5 * time.Millisecond

func (e *Env) leftover(to *actor.PID, m any) {
	switch m := m.(type) {
	case *Deliver:
		if m.ack {
			m.flow.fail() // never stored: the publisher must not believe it was
			m.flow.ackDone()
		}
		m.flow.release()
	case *route:
		m.abandon() // to a shard that is gone, or a QoS 2 publish to a session that is
	case *inboundQoS2:
		m.route.abandon()
	case *shardSubscribe, *shardUnsubscribe:
		// A router shard is always started again (with its trie): the change waits for it.
		if to != nil && !e.Stopping.Load() {
			time.AfterFunc(leftoverRetry, func() {
				if !e.Stopping.Load() {
					e.System.Root.Send(to, m)
				}
			})
		}
	case *attachRequest:
		e.System.Root.Send(m.conn, &connectRefused{code: codec.ServerUnavailable,
			msg: "the session was stopped while connecting; connect again"})
	}
}
