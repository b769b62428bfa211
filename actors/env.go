// Package actors holds the MQTT behaviours of the broker: the connection, session, session
// registry and router shard actors, and the messages between them (messages.go).
//
// The publish path is reader → router shard → session → writer: a connection's reader goroutine
// routes PUBLISH packets to the shard of their topic itself (after taking a credit), the shard
// hands each matching session one Deliver, and the session writes into the subscriber's Link,
// whose writer goroutine alone owns the socket. Everything that is not a PUBLISH goes through the
// connection actor, which runs the rest of the protocol. See docs/ARCHITECTURE.md.
package actors

import (
	"hash/maphash"
	"sync"
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"
	"go.uber.org/zap"

	"github.com/actormq/actormq/auth"
	"github.com/actormq/actormq/config"
	"github.com/actormq/actormq/store"
)

// Env is what every actor of one broker shares: configuration, logger, the fixed actors it
// addresses and the broker-wide counters. Built once by the supervisor; read-only after start
// except for the atomic counters.
type Env struct {
	System   *actor.ActorSystem
	Cfg      config.Config
	Log      *zap.Logger
	Registry *actor.PID   // the session registry
	Shards   []*actor.PID // router shards, indexed by shardOf
	Stats    *Stats
	Auth     *auth.Service // passwords, ACL, rate limits; nil: everyone may do everything
	Dir      *Directory    // clients, for the console; nil when nobody reads it
	Store    store.Store   // stored sessions and retained messages (on disk, or in memory)

	// Props builds the props of every actor the broker spawns; the supervisor replaces it to
	// instrument them for the console. mw are the actor's own mailbox middlewares.
	Props func(kind string, p actor.Producer, mw ...actor.MailboxMiddleware) *actor.Props

	// Stopping is set when the broker shuts down: nothing is retried or started again.
	Stopping atomic.Bool

	connLog *zap.Logger // Log, reporting the caller of Connection.logAt

	guards sync.Map // actor id → *mailboxGuard of the session or shard of that name (leftover.go)

	// carries: client id → *carried, what a stored session hands the one that reloads it
	// (session_store.go): itself after a failure, or its successor, whoever starts it.
	carries sync.Map

	seed maphash.Seed
}

// The kinds of actors, as the console shows them.
const (
	KindSupervisor = "supervisor"
	KindListener   = "listener"
	KindRegistry   = "session registry"
	KindConnection = "connection"
	KindSession    = "session"
	KindShard      = "router shard"
)

// NewEnv prepares an Env; the supervisor fills Registry and Shards once they are spawned.
func NewEnv(sys *actor.ActorSystem, cfg config.Config, log *zap.Logger, st store.Store) *Env {
	return &Env{System: sys, Cfg: cfg, Log: log, Stats: &Stats{}, Store: st, Props: plainProps, seed: maphash.MakeSeed(),
		connLog: log.WithOptions(zap.AddCallerSkip(1))}
}

// plainProps is Env.Props without instrumentation.
func plainProps(_ string, p actor.Producer, mw ...actor.MailboxMiddleware) *actor.Props {
	return NewProps(p, mw)
}

// NewProps is the props of every actor the broker spawns: the mailbox here, with the
// middlewares mw, run by Workers. Two actors are spawned per connection: the options that do
// not depend on the actor are made once.
func NewProps(p actor.Producer, mw []actor.MailboxMiddleware, opts ...actor.PropsOption) *actor.Props {
	mailbox := plainMailbox
	if len(mw) > 0 {
		mailbox = actor.WithMailbox(mailboxProducer(mw...))
	}
	return actor.PropsFromProducer(p, opts...).Configure(mailbox, onWorkers)
}

var (
	plainMailbox = actor.WithMailbox(mailboxProducer())
	onWorkers    = actor.WithDispatcher(Workers)
)

// shardOf picks the router shard of a topic name or of an exact (wildcard-free) filter: the same
// function for both, so an exact subscription lives where its topic's messages are routed.
func (e *Env) shardOf(topic string) int {
	if len(e.Shards) == 1 {
		return 0
	}
	return int(maphash.String(e.seed, topic) % uint64(len(e.Shards)))
}

// shardsOf is the shards that hold filter, e.Shards[from:to]: the shard of an exact filter, or
// every shard for a filter with wildcards, since a topic of any shard may match it.
func (e *Env) shardsOf(filter string) (from, to int) {
	if !hasWildcard(filter) {
		i := e.shardOf(filter)
		return i, i + 1
	}
	return 0, len(e.Shards)
}

// shardBatch gathers changes to subscriptions by the shards that hold their filters, so that
// they go as one message per shard, not one per subscription and shard: a session that ended
// with 1,000 wildcard subscriptions posted 4,000 messages to the shards' mailboxes at once, and
// a mass disconnect that many times over.
type shardBatch[T interface{ key() shardFilter }] struct {
	env     *Env
	byShard [][]T // made at the first add
}

// add puts v in the batch of every shard that holds its filter.
func (b *shardBatch[T]) add(v T) {
	if b.byShard == nil {
		b.byShard = make([][]T, len(b.env.Shards))
	}
	from, to := b.env.shardsOf(v.key().filter)
	for i := from; i < to; i++ {
		b.byShard[i] = append(b.byShard[i], v)
	}
}

// send posts msg of each shard's changes to that shard, empties the batch, and reports to how
// many shards.
func (b *shardBatch[T]) send(ctx actor.SenderContext, msg func([]T) any) int {
	n := 0
	for i, vs := range b.byShard {
		if len(vs) > 0 {
			ctx.Send(b.env.Shards[i], msg(vs))
			n++
		}
	}
	b.byShard = nil
	return n
}

// subscribeBatch registers subscriptions of one session (shardSubscribe).
type subscribeBatch struct {
	shardBatch[shardSub]
	ref *sessionRef
}

func newSubscribeBatch(env *Env, ref *sessionRef) *subscribeBatch {
	return &subscribeBatch{shardBatch: shardBatch[shardSub]{env: env}, ref: ref}
}

// send reports to how many shards it went: each answers once, with req, when req is set.
func (b *subscribeBatch) send(ctx actor.SenderContext, req uint64) int {
	return b.shardBatch.send(ctx, func(subs []shardSub) any { return &shardSubscribe{ref: b.ref, subs: subs, req: req} })
}

// unsubscribeBatch takes subscriptions of one client out of the shards (shardUnsubscribe).
type unsubscribeBatch struct {
	shardBatch[shardFilter]
	clientID string
}

func newUnsubscribeBatch(env *Env, clientID string) *unsubscribeBatch {
	return &unsubscribeBatch{shardBatch: shardBatch[shardFilter]{env: env}, clientID: clientID}
}

// send reports to how many shards it went: each answers reply once, with req, when req is set.
func (b *unsubscribeBatch) send(ctx actor.SenderContext, req uint64, reply *actor.PID) int {
	return b.shardBatch.send(ctx, func(subs []shardFilter) any {
		return &shardUnsubscribe{clientID: b.clientID, subs: subs, req: req, reply: reply}
	})
}

// Stats are the broker-wide counters the console and /metrics read.
type Stats struct {
	Connections     atomic.Int64 // connection actors alive
	Connected       atomic.Int64 // clients past CONNACK
	MaxConnected    atomic.Int64 // the most clients connected at once since start
	Sessions        atomic.Int64
	Subscriptions   atomic.Int64
	Retained        atomic.Int64
	BytesIn         atomic.Uint64
	BytesOut        atomic.Uint64
	DroppedQueue    atomic.Uint64 // session queue full
	DroppedTooLarge atomic.Uint64 // larger than the client's Maximum Packet Size
	DroppedExpired  atomic.Uint64 // message expiry passed before delivery

	SlowConsumersClosed atomic.Uint64 // connections closed for not reading their acknowledgements
	// PUBLISH packets by QoS (index 0-2); MessagesIn and MessagesOut are their sums.
	MessagesInQoS  [4]atomic.Uint64
	MessagesOutQoS [4]atomic.Uint64
}

// MessagesIn is the number of PUBLISH packets received from clients.
func (s *Stats) MessagesIn() uint64 { return sum(&s.MessagesInQoS) }

// MessagesOut is the number of PUBLISH packets sent to clients.
func (s *Stats) MessagesOut() uint64 { return sum(&s.MessagesOutQoS) }

func sum(c *[4]atomic.Uint64) uint64 {
	var n uint64
	for i := range c {
		n += c[i].Load()
	}
	return n
}
