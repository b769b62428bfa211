package actors

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/eventstream"

	"github.com/actormq/actormq/codec"
)

// Leftovers are messages that reach an actor after it stopped: those still in its mailbox
// when it stops (protoactor drops them unseen, and never even takes them out of a mailbox it
// suspended for a failure) and those sent to its PID once it is gone (dead letters). Many
// hold what must not vanish with them: a delivery to a stored session, a publish on its way
// through a shard, a publisher's credit, a subscription change, a client waiting for its
// session.
//
// Sessions and shards are the actors whose messages matter, and both come back: a stored
// session and a shard are started again under the same name. So their leftovers are kept, in
// order, by a mailbox guard, and handed to the successor, which handles them before anything
// sent to it directly: nothing is lost and, per sender, nothing is reordered. An actor that
// does not come back (a session that ended, or had nothing stored) retires its guard, and its
// leftovers are given back: credits returned, acknowledgements failed, clients refused.

// mailboxGuard is a mailbox middleware of sessions and shards; one per spawned actor (a
// restart keeps the actor's mailbox, and so its guard).
type mailboxGuard struct {
	env *Env
	mb  *earlyMailbox // set when the mailbox is made
	pid *actor.PID    // set when the actor starts

	stopped atomic.Bool // read for every message the actor receives: no lock on that path
	// posting counts the posts that found the actor not stopped and are still putting their
	// message in the mailbox: drained waits for them (earlyMailbox.PostUserMessage).
	posting atomic.Int32

	mu      sync.Mutex
	retired bool          // no successor will come: leftovers are given back
	heir    *actor.PID    // the successor has taken the leftovers: later ones go to it
	left    []any         // leftovers, in order, waiting for the successor
	drained chan struct{} // made when the actor stops, closed when its mailbox has handed out everything
	// unclaimed retires the guard if no successor comes; stopped once one does, or it retires
	// (a pending timer would keep the whole broker reachable).
	unclaimed *time.Timer
}

func newMailboxGuard(env *Env) *mailboxGuard {
	return &mailboxGuard{env: env}
}

// mailboxProducer returns the mailbox producer of an actor with middlewares mw: unbounded (the bounds
// are kept by credits, PROTOACTOR.md; mailbox.go), safe to post to before the actor has
// started, and telling a guard among mw its mailbox.
func mailboxProducer(mw ...actor.MailboxMiddleware) actor.MailboxProducer {
	return func() actor.Mailbox {
		mb := &earlyMailbox{Mailbox: newMailbox(mw)}
		for _, m := range mw {
			if g, ok := m.(*mailboxGuard); ok {
				g.mb, mb.guard = mb, g
			}
		}
		return mb
	}
}

// earlyMailbox holds what is posted to an actor before protoactor has finished spawning it.
// protoactor registers a new actor's name before it gives the mailbox its dispatcher, so a
// message sent to the name in between (a shard or session started again under a name that
// readers and shards keep sending to) made the sender's goroutine panic on a nil dispatcher
// (found by tests/chaos). Messages posted before Start are kept, in order, and posted once the
// Started message is queued, so the actor sees Started first.
type earlyMailbox struct {
	actor.Mailbox
	guard   *mailboxGuard // of a session, shard or registry; nil for other actors
	started atomic.Bool
	mu      sync.Mutex
	early   []earlyPost
}

type earlyPost struct {
	msg    any
	system bool
}

func (m *earlyMailbox) PostUserMessage(msg any) {
	g := m.guard
	if g == nil {
		m.post(msg)
		return
	}
	// A post that finds the actor not stopped may still be putting its message in the mailbox
	// when the actor stops and its mailbox runs empty: were drained closed then, the sender's
	// next message, a dead letter, could be kept before this one. So drained waits for the
	// posts under way; one that comes after the stop sees it (posting, then stopped, against
	// stopped, then posting: one of the two sees the other).
	g.posting.Add(1)
	if g.stopped.Load() {
		g.posting.Add(-1)
		g.postLate(msg)
		return
	}
	m.post(msg)
	if g.posting.Add(-1) == 0 && g.stopped.Load() {
		g.closeIfDrained() // the mailbox may have run empty while this post was under way
	}
}

func (m *earlyMailbox) post(msg any) {
	if m.started.Load() || !m.hold(msg, false) {
		m.Mailbox.PostUserMessage(msg)
	}
}

func (m *earlyMailbox) PostSystemMessage(msg any) {
	if m.started.Load() || !m.hold(msg, true) {
		m.Mailbox.PostSystemMessage(msg)
	}
}

// hold keeps msg if the mailbox has not started; it reports whether it did.
func (m *earlyMailbox) hold(msg any, system bool) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.started.Load() {
		return false
	}
	m.early = append(m.early, earlyPost{msg, system})
	return true
}

// Start: protoactor has registered the handlers and posted Started (held here until now).
func (m *earlyMailbox) Start() {
	m.Mailbox.Start()
	m.mu.Lock()
	defer m.mu.Unlock()
	// System messages (Started among them) first: a user message posted first could be run
	// before Started reached the mailbox.
	for _, system := range []bool{true, false} {
		for _, p := range m.early {
			if p.system != system {
				continue
			}
			if system {
				m.Mailbox.PostSystemMessage(p.msg)
			} else {
				m.Mailbox.PostUserMessage(p.msg)
			}
		}
	}
	m.early = nil
	m.started.Store(true)
}

func (g *mailboxGuard) MailboxStarted()   {}
func (g *mailboxGuard) MessagePosted(any) {}

func (g *mailboxGuard) MessageReceived(m any) {
	switch m.(type) {
	case actor.SystemMessage, actor.AutoReceiveMessage, *actor.ResumeMailbox, *actor.SuspendMailbox:
		return
	}
	if g.stopped.Load() {
		g.keep(m)
	}
}

func (g *mailboxGuard) MailboxEmpty() {
	if g.stopped.Load() {
		g.closeIfDrained()
	}
}

// closeIfDrained closes drained once the stopped actor's mailbox has handed out everything
// and no post is still on its way in. A post that raced with it (postLate) lands under mu: the
// mailbox runs again for it, and the next empty closes drained; one still under way calls
// again when it is done.
func (g *mailboxGuard) closeIfDrained() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.drained != nil && g.posting.Load() == 0 && g.mb.UserMessageCount() == 0 && !isClosed(g.drained) {
		close(g.drained)
	}
}

// postLate: a message posted to the mailbox of the stopped actor, by a sender that found it
// just before it was gone. Until the mailbox has handed out everything, it joins the queue
// (and is kept from there, in order); after that it is kept at once, on the sender's
// goroutine, as the sender's next messages (dead letters) will be. Put in the mailbox then,
// it would be kept later, on the mailbox's goroutine, after them.
func (g *mailboxGuard) postLate(msg any) {
	g.mu.Lock()
	if g.drained == nil || !isClosed(g.drained) {
		g.mb.Mailbox.PostUserMessage(msg) // under mu: MailboxEmpty sees it queued
		g.mu.Unlock()
		return
	}
	g.mu.Unlock()
	g.keep(msg)
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// stopping registers the guard under its actor's name, as the actor begins to stop, if a
// successor may come (comesBack): from here on, dead letters to the name and the name's next
// actor find it. A live actor's guard is not registered, so that a broker of idle sessions
// keeps no entry for each; nor is one whose actor will not come back: what reaches its name
// after it is gone is given back, as any dead letter to an unknown name is.
func (g *mailboxGuard) stopping(comesBack bool) {
	if !comesBack || g.pid == nil {
		return
	}
	g.mu.Lock()
	if g.drained == nil {
		g.drained = make(chan struct{})
	}
	g.mu.Unlock()
	g.env.guards.Store(g.pid.Id, g)
}

// started returns the leftovers of the actor's predecessor of its name, if it left any, in
// order. It waits for the predecessor's mailbox to have handed out everything it held. The
// predecessor's guard stays registered, passing on to its heir what still reaches it, until
// the heir stops (and registers its own) or retires.
func (g *mailboxGuard) started(self *actor.PID) []any {
	g.pid = self
	prev, ok := g.env.guards.Load(self.Id)
	if !ok || prev == g {
		return nil
	}
	old := prev.(*mailboxGuard)
	<-old.drained
	old.mu.Lock()
	defer old.mu.Unlock()
	left := old.left
	old.left, old.heir = nil, self
	if old.unclaimed != nil {
		old.unclaimed.Stop()
	}
	return left
}

// stop: the actor stopped. Its mailbox is resumed (a failure past the restart budget stops
// an actor whose mailbox is suspended), so that it hands out what it still holds: to the
// successor, or, when none will come (comesBack false), given back at once.
func (g *mailboxGuard) stop(comesBack bool) {
	g.stopped.Store(true)
	if !comesBack {
		g.retire()
	}
	if g.mb != nil {
		g.mb.PostSystemMessage(&actor.ResumeMailbox{})
	}
	if !comesBack {
		return
	}
	// A successor comes within milliseconds when one comes at all (its supervisor starts it on
	// the stop); should none come, what was left is not held forever.
	t := time.AfterFunc(unclaimedAfter, func() {
		g.mu.Lock()
		unclaimed := g.heir == nil && !g.retired
		g.mu.Unlock()
		if unclaimed {
			g.retire()
		}
	})
	g.mu.Lock()
	g.unclaimed = t
	g.mu.Unlock()
}

// unclaimedAfter is how long a stopped actor's leftovers wait for a successor.
const unclaimedAfter = 30 * time.Second

// retire: the actor will not come back under its name. What it left is given back.
func (g *mailboxGuard) retire() {
	g.mu.Lock()
	g.retired = true
	left := g.left
	g.left = nil
	if g.unclaimed != nil {
		g.unclaimed.Stop()
	}
	g.mu.Unlock()
	if g.pid != nil {
		g.env.guards.CompareAndDelete(g.pid.Id, g)
		// A predecessor still registered under the name, passing on to this actor, has no
		// one left to pass on to: its entry goes too (the guards are keyed by client id).
		if v, ok := g.env.guards.Load(g.pid.Id); ok {
			if h := v.(*mailboxGuard).heirPID(); h != nil && h.Equal(g.pid) {
				g.env.guards.CompareAndDelete(g.pid.Id, v)
			}
		}
	}
	for _, m := range left {
		g.env.giveBack(m)
	}
}

// keep takes one leftover: for the successor, or given back.
func (g *mailboxGuard) keep(m any) {
	g.mu.Lock()
	switch {
	case g.heir != nil:
		heir := g.heir
		g.mu.Unlock()
		g.env.System.Root.Send(heir, m)
	case g.retired:
		g.mu.Unlock()
		g.env.giveBack(m)
	default:
		g.left = append(g.left, m)
		g.mu.Unlock()
	}
}

// RetireGuard gives back what the stopped actor named id left, when it will not come back.
func (e *Env) RetireGuard(id string) {
	if g, ok := e.guards.Load(id); ok {
		g.(*mailboxGuard).retire()
	}
}

// WatchDeadLetters handles the messages sent to gone actors, until the returned subscription
// is unsubscribed from the actor system's EventStream.
func (e *Env) WatchDeadLetters() *eventstream.Subscription {
	return e.System.EventStream.Subscribe(func(evt any) {
		if d, ok := evt.(*actor.DeadLetterEvent); ok && d.PID != nil {
			e.deadLetter(d.PID, d.Message)
		}
	})
}

// deadLetter: a message sent to a name with no actor behind it. If a guard holds the name,
// its actor stopped: the message is kept for the successor, after what the mailbox held (or
// passed on to it, if it has come); otherwise it is given back.
func (e *Env) deadLetter(to *actor.PID, m any) {
	switch m.(type) {
	case actor.SystemMessage, *actor.ResumeMailbox, *actor.SuspendMailbox:
		// Nothing to keep, and it may come from the stopped actor's own mailbox (a failure
		// while it hands out its leftovers is escalated to its gone self): waiting for that
		// mailbox to drain would wait for itself.
		return
	}
	for {
		v, ok := e.guards.Load(to.Id)
		if !ok {
			e.giveBack(m)
			return
		}
		g := v.(*mailboxGuard) // registered: its actor is stopping or gone
		<-g.drained            // what the mailbox held first: per sender, order is kept
		// The heir is read before the name: a successor registers its name before it takes
		// over, so one that does in between is found alive, not taken for gone (read the other
		// way round, the message was given back: lost).
		heir := g.heirPID()
		if _, alive := e.System.ProcessRegistry.GetLocal(to.Id); alive || heir == nil {
			// Kept for the successor, or passed on to it if it came after the message
			// missed the name.
			g.keep(m)
			return
		}
		if cur, _ := e.guards.Load(to.Id); cur == v {
			// The successor is gone too and left no guard: it does not come back (the
			// broker is stopping, or the session ended). Passed on, the message would come
			// straight back here.
			e.giveBack(m)
			return
		}
		// The successor stopped and registered a guard of its own: that one keeps it.
	}
}

// heirPID returns the successor that took the leftovers, nil before one has.
func (g *mailboxGuard) heirPID() *actor.PID {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.heir
}

// giveBack gives back what a leftover holds when no actor will handle it.
func (e *Env) giveBack(m any) {
	switch m := m.(type) {
	case *Deliver:
		if m.ack {
			m.flow.ackFailed() // never stored: the publisher must not believe it was
		}
		m.flow.release()
	case *route:
		m.abandon()
	case *inboundQoS2:
		m.route.abandon()
	case *attachRequest:
		e.System.Root.Send(m.conn, &connectRefused{code: codec.ServerUnavailable,
			msg: "the session was stopped while connecting; connect again"})
	}
}
