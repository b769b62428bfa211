package actors

import (
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/actormq/actormq/codec"
	"github.com/actormq/actormq/store"
	"github.com/actormq/actormq/topics"
)

// A stored session's records: its session record (expiry, will, user, subscriptions), one
// record per QoS 1/2 message it holds (queued, in flight, or released waiting for PUBCOMP),
// and the QoS 2 packet ids its client sent and has not released. The actor collects the
// writes of one message in st.w.batch and commits them when it has handled the message (flush),
// so the store always holds the state as of a message handled in full: a failure half-way
// through one writes nothing of it. What waits for the commit: the publishers' answers of the
// messages taken (st.w.acks), and the packets to the client that must not go out before the
// record they depend on (st.w.held, sendAfterCommit). The copy of a QoS 2 publish from a
// stored session goes into that publish's one batch instead (once.go), as long as the batch
// has not gone to the store: st.w.once holds it until the flush.

// sessionWrites is what a session writing to the store keeps between messages.
type sessionWrites struct {
	seq   uint64      // the last message record number given out
	batch store.Batch // this message's writes, committed when the actor has handled it
	acks  []*route    // acknowledgement shares given up once batch is durable
	held  []outItem   // packets to the client that wait for batch (sendAfterCommit)
	// heldOut counts held packets of batches committed and not yet pushed: a copy that need
	// not wait for a commit waits all the same while one is ahead of it (Session.send).
	heldOut atomic.Int32
	// answers: SUBACKs and UNSUBACKs (request numbers) that wait for batch, which holds the
	// session record with their subscriptions (answerAfterCommit)
	answers []uint64
	once    []onceSlot // this message's writes about copies of publishes written in one batch
	// opened: publishes written in one batch that this session has a copy of and that have not
	// ended (onceDone). If the session fails and reloads from the store, those still open fail.
	opened []*route
}

// open notes a publish written in one batch that the session has a copy of (or published),
// until onceDone. The publisher is not told (its durable ones go here, its failed ones with
// inboundFailed).
func (w *sessionWrites) open(r *route) {
	w.opened = slices.DeleteFunc(w.opened, func(o *route) bool { return !o.pending() })
	if !slices.Contains(w.opened, r) {
		w.opened = append(w.opened, r)
	}
}

// onceSlot is what handling one message wrote about the copy of a publish written in one
// batch, with the acknowledgement share of the copy if it was taken then.
type onceSlot struct {
	r     *route
	batch store.Batch
	share bool
}

// batchFor returns the batch a write about d goes to: the one batch of its publish until that
// is durable, else the session's. All writes about d while one message is handled go to the same.
func (s *Session) batchFor(d *Deliver) *store.Batch {
	if sl := s.slotFor(d.flow); sl != nil {
		return &sl.batch
	}
	return &s.st.writes().batch
}

// slotFor returns the slot of r's one batch in this message's writes, made if r's batch is
// not durable yet; nil if r has none or it is.
func (s *Session) slotFor(r *route) *onceSlot {
	w := s.st.writes()
	for i := range w.once {
		if w.once[i].r == r {
			return &w.once[i]
		}
	}
	if !r.pending() || r.failedOnce() {
		return nil // written, or never to be: the session's own batch
	}
	w.once = append(w.once, onceSlot{r: r})
	return &w.once[len(w.once)-1]
}

// setStored says whether the session's state is in the store, to the actor and, through its
// ref, to the shards (which then wait for its copy before acknowledging a publisher).
func (st *sessionState) setStored(on bool) {
	st.stored = on
	st.ref.stored.Store(on)
}

// writes returns the session's write state, made on first use.
func (st *sessionState) writes() *sessionWrites {
	if st.w == nil {
		st.w = new(sessionWrites)
	}
	return st.w
}

// storedSession is what the store holds of one session, in the order Load visits it.
type storedSession struct {
	rec     *store.SessionRecord
	msgs    []storedMessage
	inbound []uint16
	// restoring counts the sessions of one restore (the registry's) that have not registered
	// their subscriptions yet; nil for a session reloading on its own.
	restoring *sync.WaitGroup
}

type storedMessage struct {
	seq uint64
	rec *store.MessageRecord
}

// storeIfKept starts writing the session when it outlives its connection (all of it, the
// first time), and forgets its records when it no longer does.
func (s *Session) storeIfKept() {
	st := s.st
	keep := st.expiry > 0
	switch {
	case keep && !st.stored:
		s.storeAll()
	case !keep && st.stored:
		s.unstore()
	default:
		st.dirty = true
	}
}

func (s *Session) storeAll() {
	st := s.st
	st.setStored(true)
	st.dirty = true
	for _, o := range st.order {
		if !o.done {
			s.storeInflight(o)
		}
	}
	for i := st.queue.head; i < len(st.queue.buf); i++ {
		if d := &st.queue.buf[i]; d.QoS > 0 {
			s.storeMessage(d)
		}
	}
	for i := range st.parked {
		s.storeMessage(&st.parked[i])
	}
	for id := range st.inbound2 {
		st.writes().batch.PutInbound(st.clientID, id)
	}
}

// unstore deletes the session's records: it ended, or it no longer outlives its connection.
func (s *Session) unstore() {
	st := s.st
	if !st.stored {
		return
	}
	st.setStored(false)
	st.dirty = false
	w := st.writes()
	w.batch.DeleteSession(st.clientID)
	s.env.carries.Delete(st.clientID)
	for _, r := range w.opened {
		r.failOpen() // what it wrote into them would outlive the delete
	}
}

// storeMessage writes a QoS 1/2 message the session has taken, as queued.
func (s *Session) storeMessage(d *Deliver) {
	st := s.st
	if d.seq == 0 {
		w := st.writes()
		w.seq++
		d.seq = w.seq
	}
	s.batchFor(d).PutMessage(st.clientID, d.seq, messageRecord(d, d.id, store.Queued))
}

// storeInflight writes where an inflight message stands: sent, or released (QoS 2).
func (s *Session) storeInflight(o *outMsg) {
	st := s.st
	if !st.stored || o.d.QoS == 0 {
		return
	}
	if o.d.seq == 0 { // a retained message for a new subscription: written once it is sent
		w := st.writes()
		w.seq++
		o.d.seq = w.seq
	}
	state := store.Inflight
	if o.pubrel {
		state = store.Released
	}
	s.batchFor(&o.d).PutMessage(st.clientID, o.d.seq, messageRecord(&o.d, o.id, state))
}

func messageRecord(d *Deliver, id uint16, state store.MessageState) *store.MessageRecord {
	return &store.MessageRecord{Pub: d.Pub, QoS: d.QoS, Retain: d.Retain, SubIDs: d.SubIDs,
		Received: d.Received, PacketID: id, State: state}
}

// forgetMessage deletes the record of a message that completed or was dropped.
func (s *Session) forgetMessage(d *Deliver) {
	if st := s.st; st.stored && d.seq != 0 {
		s.batchFor(d).DeleteMessage(st.clientID, d.seq)
	}
}

func (s *Session) forgetInbound(id uint16) {
	st := s.st
	delete(st.inbound2, id)
	if st.stored {
		st.writes().batch.DeleteInbound(st.clientID, id)
	}
}

// sendAfterCommit sends a packet to the client once what this message wrote is durable, when
// the session is stored, and at once otherwise. It is for the packets that tell the client a
// record exists: the first send of a QoS 2 message (under the packet id its record holds), its
// PUBREL (after "released": else a restarted session would send the PUBLISH again to a client
// that has released the id), and the PUBCOMP of an inbound release (a client with its PUBCOMP
// may use the id for a new message, which must not be taken for a retransmission). Sent before
// the commit, a crash in between makes the client take a message twice [MQTT-4.3.3-1].
func (s *Session) sendAfterCommit(it outItem) error {
	st := s.st
	if !st.stored {
		return st.link.push(it)
	}
	w := st.writes()
	w.held = append(w.held, it)
	return nil
}

// answerAfterCommit makes a stored session's SUBACK or UNSUBACK wait for the session record
// this message writes, as it waits for the shards: sent before it, a crash in between would
// lose a subscription the client was told it has (or bring back one it removed).
func (s *Session) answerAfterCommit(a *answer) {
	st := s.st
	if !st.stored {
		return
	}
	a.waiting++
	w := st.writes()
	w.answers = append(w.answers, a.req)
}

// answersCommitted tells session self that the records its answers wait for are written.
func answersCommitted(env *Env, self *actor.PID, reqs []uint64) {
	for _, req := range reqs {
		env.System.Root.Send(self, &subscribed{req: req})
	}
}

// flush commits what handling one message wrote. With the memory store the callback runs
// before Commit returns; with the disk store it runs on the store's goroutine, after the
// group's fsync.
func (s *Session) flush() {
	st := s.st
	if st.dirty && st.stored {
		st.writes().batch.PutSession(s.record())
	}
	st.dirty = false
	w := st.w
	if w == nil {
		return
	}
	shares := s.flushOnce()
	defer func() {
		for _, r := range shares {
			r.ackDone() // the last share commits the publish's batch
		}
	}()
	answers, env, self := w.answers, s.env, st.ref.pid
	w.answers = nil
	if w.batch.Len() == 0 && len(w.held) == 0 {
		answersCommitted(env, self, answers)
		return
	}
	// (Held packets with nothing written still go through a commit: it comes after the
	// commits whose packets are ahead of them.)
	acks, held, link := w.acks, w.held, st.link
	w.acks, w.held = nil, nil
	w.heldOut.Add(int32(len(held)))
	var done func(error)
	if len(acks) > 0 || len(held) > 0 || len(answers) > 0 {
		done = func(err error) {
			answersCommitted(env, self, answers) // also on an error: the client is not left waiting
			for _, r := range acks {
				if err != nil {
					r.fail() // not durable: the publisher must send it again
				}
				r.ackDone()
			}
			// Sent even if the commit failed: the client should not wait on a failing store
			// (a message stays in flight for a resend on its next connection).
			for _, it := range held {
				if link != nil {
					_ = link.pushSent(it)
				}
			}
			w.heldOut.Add(-int32(len(held)))
		}
	}
	s.env.Store.Commit(&w.batch, done)
	w.batch.Reset()
}

// flushOnce joins this message's copies to their publishes' batches (once.go): their writes
// go into a batch still open, or into the session's own batch after one that has gone to the
// store. It returns the routes whose acknowledgement shares the session gives up once it has.
func (s *Session) flushOnce() (shares []*route) {
	st, w := s.st, s.st.w
	for i := range w.once {
		sl := &w.once[i]
		switch sl.r.once.join(&sl.batch, st.ref.pid) {
		case joinedBatch:
			w.open(sl.r)
		case joinedLate:
			w.open(sl.r)
			w.batch.Append(&sl.batch)
			s.unreserveLate(sl.r)
		case joinedDurable:
			w.batch.Append(&sl.batch)
		case joinedFailed:
			// Never written: the copy goes too (the publisher sends it again); it waits
			// for that in the queue.
			w.open(sl.r)
			s.env.System.Root.Send(st.ref.pid, &onceDone{route: sl.r, failed: true})
		}
		if sl.share {
			shares = append(shares, sl.r)
		}
	}
	clear(w.once)
	w.once = w.once[:0]
	return shares
}

// reserveID gives a stored QoS 2 copy of a publish written in one batch the packet id it
// will be sent under, in its record in the batch: it goes out as soon as the batch is durable,
// without a second commit of "sent under id N" first (a restarted session sends it under the
// same id, which its client takes for the message it has, if it has it [MQTT-4.3.3-10]). None
// (0) when the ids are short: the window keeps what it needs.
func (s *Session) reserveID() uint16 {
	st := s.st
	if len(st.inflight)+len(st.reserved)+s.window() >= 0xFFFF {
		return 0
	}
	id := s.nextPacketID()
	if id != 0 {
		s.reserve(id)
	}
	return id
}

func (s *Session) reserve(id uint16) {
	if s.st.reserved == nil {
		s.st.reserved = make(map[uint16]struct{})
	}
	s.st.reserved[id] = struct{}{}
}

// unreserve gives back the packet id of a copy that goes or has gone in flight under it.
func (s *Session) unreserve(d *Deliver) {
	if d.id != 0 {
		delete(s.st.reserved, d.id)
	}
}

// unreserveLate takes the reserved ids back from the queued copies of r, whose records joined
// its batch late: they are in the session's own batch, not durable with r's, so these copies
// go out the usual way (under an id whose record is committed first).
func (s *Session) unreserveLate(r *route) {
	q := &s.st.queue
	for i := q.head; i < len(q.buf); i++ {
		if d := &q.buf[i]; d.flow == r && d.id != 0 {
			s.unreserve(d)
			d.id = 0
			s.rewriteQueued(d)
		}
	}
}

// rewriteQueued writes a queued message's record again, after the id it held was taken back:
// a record left with it would give the id to this message after a restart, while another may
// have gone out under it.
func (s *Session) rewriteQueued(d *Deliver) {
	if st := s.st; st.stored && d.seq != 0 {
		st.writes().batch.PutMessage(st.clientID, d.seq, messageRecord(d, d.id, store.Queued))
	}
}

// copyWaits reports whether d is this session's QoS 2 copy of a publish whose one batch is
// not durable yet: it stays queued until onceDone says it is, and goes if it says it failed.
func (s *Session) copyWaits(d *Deliver) bool {
	r, w := d.flow, s.st.w
	if d.QoS != 2 || w == nil || !r.pending() {
		return false
	}
	if r.failedOnce() {
		return true // dropped when its onceDone comes, which every session with a copy gets
	}
	return slices.Contains(w.opened, r) || slices.ContainsFunc(w.once, func(sl onceSlot) bool { return sl.r == r })
}

// carried is what a stored session keeps across a reload (after a failure, or from the one
// that stopped before it) of publishes written in one batch (once.go) that is not durable
// yet: its copies, and the packet ids of its own such publishes. The store may not have them
// when it reads it, and the batch brings them there later: the session must have them too, or
// they would be in the store and not in memory (a retransmission of its own publish would be
// routed twice). Failing those publishes instead would have their publishers resend them
// after later ones.
type carried struct {
	copies  []Deliver
	routes  []*route
	inbound map[uint16]*onceWrite
}

// unwritten returns what the session holds of batches not durable: its queued copies, the
// batches it has joined, and its own publishes' packet ids.
func (s *Session) unwritten() *carried {
	st := s.st
	c := &carried{inbound: make(map[uint16]*onceWrite)}
	for id, o := range st.inbound2 {
		if o != nil && o.state.Load() == onceOpen {
			c.inbound[id] = o
		}
	}
	add := func(d Deliver) {
		if d.seq != 0 && d.flow.pending() && !d.flow.failedOnce() {
			c.copies = append(c.copies, d)
		}
	}
	for i := st.queue.head; i < len(st.queue.buf); i++ {
		add(st.queue.buf[i])
	}
	for _, d := range st.parked {
		add(d)
	}
	if st.w != nil {
		c.routes = slices.Clone(st.w.opened)
	}
	return c
}

// dropUncommitted forgets the writes of a message the actor failed on: they were never made,
// and the publishers waiting for them are told so. A stored session reloads from the store:
// the publishes written in one batch it wrote into fail unless they have gone to the store.
func (s *Session) dropUncommitted() {
	st := s.st
	st.dirty = false
	w := st.w
	if w == nil {
		return
	}
	if !st.stored {
		// It keeps its state in memory: the copies it took are still its own.
		for _, r := range s.flushOnce() {
			r.ackDone()
		}
	}
	for _, sl := range w.once {
		if sl.share {
			sl.r.ackFailed()
		}
	}
	clear(w.once)
	w.once = w.once[:0]

	w.batch.Reset()
	w.held = nil // unsent: the restarted session answers again from the store
	answersCommitted(s.env, st.ref.pid, w.answers)
	w.answers = nil
	for _, r := range w.acks {
		r.ackFailed()
	}
	w.acks = nil
}

// record is the session record as it stands.
func (s *Session) record() *store.SessionRecord {
	st := s.st
	r := &store.SessionRecord{ClientID: st.clientID, User: st.user, Version: byte(st.version),
		Expiry: st.expiry, DisconnectedAt: st.disconnectedAt, Will: st.will}
	if st.will != nil {
		r.WillDelay, _ = st.will.Properties.WillDelayInterval()
	}
	r.Subscriptions = make([]store.SubscriptionRecord, 0, len(st.subs))
	for f, sub := range st.subs {
		r.Subscriptions = append(r.Subscriptions, store.SubscriptionRecord{Filter: f, QoS: sub.opts.QoS,
			NoLocal: sub.opts.NoLocal, RetainAsPublished: sub.opts.RetainAsPublished,
			RetainHandling: sub.opts.RetainHandling, SubscriptionID: sub.subID})
	}
	slices.SortFunc(r.Subscriptions, func(a, b store.SubscriptionRecord) int { return strings.Compare(a.Filter, b.Filter) })
	return r
}

// load reads the session's records from the store; a session with none starts empty.
func (s *Session) load() (*storedSession, error) {
	id := s.st.clientID
	found, _, err := loadSessions(func(v store.Visitor) error { return s.env.Store.LoadClient(id, v) })
	if err != nil {
		return nil, err
	}
	if len(found) == 0 {
		return &storedSession{rec: &store.SessionRecord{ClientID: id}}, nil
	}
	return found[0], nil
}

// rebuild replaces the session's working state with what the store holds. Subscriptions the
// store does not have are unregistered; those it has are registered again (a shard replaces
// an existing registration). A session that is not attached restarts its will delay and
// expiry from the time it was disconnected; one of many restoring (the broker or the registry
// starting) waits for the others first.
func (s *Session) rebuild(ctx actor.Context, from *storedSession, restoring bool) {
	st := s.st
	// What the batches not written yet hold of this session (carried): left by recover, or
	// by stopping for this successor.
	carry := new(carried)
	if c, ok := s.env.carries.LoadAndDelete(st.clientID); ok {
		carry = c.(*carried)
	}
	rec := from.rec
	kept := make(map[string]bool, len(rec.Subscriptions))
	for _, r := range rec.Subscriptions {
		kept[r.Filter] = true
	}
	drop := newUnsubscribeBatch(s.env, st.clientID)
	for f, sub := range st.subs {
		if !kept[f] {
			drop.add(sub.shardFilter)
		}
	}
	drop.send(ctx, 0, nil)
	s.env.Stats.Subscriptions.Add(-int64(len(st.subs)))
	st.subs = make(map[string]*subscription, len(rec.Subscriptions))
	clear(st.inflight)
	clear(st.reserved)
	st.order = nil
	st.queue.clear()
	st.backlog = nil
	clear(st.inbound2)

	st.setStored(true)
	st.fresh = false
	st.user, st.version, st.expiry, st.will = rec.User, codec.Version(rec.Version), rec.Expiry, rec.Will
	st.disconnectedAt = rec.DisconnectedAt
	add := newSubscribeBatch(s.env, st.ref)
	for _, r := range rec.Subscriptions {
		group, inner, _, _ := topics.ParseShared(r.Filter) // inner is the filter itself when not shared
		opts := codec.Subscription{Filter: r.Filter, QoS: r.QoS, NoLocal: r.NoLocal,
			RetainAsPublished: r.RetainAsPublished, RetainHandling: r.RetainHandling}
		s.addSub(&subscription{shardFilter: shardFilter{inner, group}, opts: opts, subID: r.SubscriptionID}, false, add)
	}
	add.send(ctx, 0)
	for _, m := range from.msgs {
		r := m.rec
		d := Deliver{Pub: r.Pub, QoS: r.QoS, Retain: r.Retain, SubIDs: r.SubIDs, Received: r.Received, seq: m.seq}
		w := st.writes()
		w.seq = max(w.seq, m.seq)
		if r.State == store.Queued {
			d.id = r.PacketID                      // reserved (below): it may have gone out under it before the restart
			st.queue.buf = append(st.queue.buf, d) // as it was, even past a lowered limit
			continue
		}
		if st.inflight[r.PacketID] != nil {
			continue // cannot happen in a store this broker wrote; keep the first
		}
		o := &outMsg{d: d, id: r.PacketID, pubrel: r.State == store.Released}
		s.addInflight(o)
		st.nextID = max(st.nextID, o.id)
	}
	if len(carry.copies) > 0 {
		have := make(map[uint64]bool, len(from.msgs))
		for _, m := range from.msgs {
			have[m.seq] = true
		}
		w := st.writes()
		for _, d := range carry.copies {
			// Not in what was read: its batch was not queued then, and brings it later
			// (or fails, and onceDone drops it). At the end: a batch not queued when the
			// store was read is the last of its publisher's on its topic to be written.
			if !have[d.seq] {
				have[d.seq] = true
				st.queue.buf = append(st.queue.buf, d)
				w.seq = max(w.seq, d.seq)
			}
		}
	}
	for _, r := range carry.routes {
		if r.pending() {
			st.writes().open(r)
		}
	}
	for i := range st.queue.buf {
		// An id in flight or reserved already was taken back from this copy (unreserveLate).
		d := &st.queue.buf[i]
		if d.id == 0 {
			continue
		}
		_, inflight := st.inflight[d.id]
		_, reserved := st.reserved[d.id]
		if inflight || reserved {
			d.id = 0
			s.rewriteQueued(d)
			continue
		}
		d.maybeSent = true
		s.reserve(d.id)
	}
	for _, id := range from.inbound {
		if st.inbound2 == nil {
			st.inbound2 = make(map[uint16]*onceWrite)
		}
		st.inbound2[id] = nil
	}
	for id, o := range carry.inbound {
		if st.inbound2 == nil {
			st.inbound2 = make(map[uint16]*onceWrite)
		}
		st.inbound2[id] = o // its batch may not have been queued when the store was read
	}
	s.dirEntry(ctx)
	s.reportSubs()
	if st.link != nil {
		s.pump(ctx) // attached (a restart after a failure): the connection goes on
		return
	}
	if st.disconnectedAt.IsZero() {
		// Connected when the broker stopped without a word (a crash): disconnected now.
		st.disconnectedAt = time.Now()
		st.dirty = true
	}
	if restoring {
		// Its will may be due: it waits until every stored session has registered its
		// subscriptions (the registry sends timersDue), or a stored subscriber would miss it.
		st.timersDue = true
		return
	}
	s.startTimers(ctx, time.Since(st.disconnectedAt))
}
