package actors

import (
	"slices"
	"strings"
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
// record they depend on (st.w.held, sendAfterCommit).

// sessionWrites is what a session writing to the store keeps between messages.
type sessionWrites struct {
	seq   uint64      // the last message record number given out
	batch store.Batch // this message's writes, committed when the actor has handled it
	acks  []*route    // acknowledgement shares given up once batch is durable
	held  []outItem   // packets to the client that wait for batch (sendAfterCommit)
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
	st.writes().batch.DeleteSession(st.clientID)
}

// storeMessage writes a QoS 1/2 message the session has taken, as queued.
func (s *Session) storeMessage(d *Deliver) {
	st := s.st
	if d.seq == 0 {
		w := st.writes()
		w.seq++
		d.seq = w.seq
	}
	st.writes().batch.PutMessage(st.clientID, d.seq, messageRecord(d, 0, store.Queued))
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
	st.writes().batch.PutMessage(st.clientID, o.d.seq, messageRecord(&o.d, o.id, state))
}

func messageRecord(d *Deliver, id uint16, state store.MessageState) *store.MessageRecord {
	return &store.MessageRecord{Pub: d.Pub, QoS: d.QoS, Retain: d.Retain, SubIDs: d.SubIDs,
		Received: d.Received, PacketID: id, State: state}
}

// forgetMessage deletes the record of a message that completed or was dropped.
func (s *Session) forgetMessage(seq uint64) {
	if st := s.st; st.stored && seq != 0 {
		st.writes().batch.DeleteMessage(st.clientID, seq)
	}
}

// storeInbound writes an inbound QoS 2 packet id; it reports whether there was a write.
func (s *Session) storeInbound(id uint16) bool {
	st := s.st
	if !st.stored {
		return false
	}
	st.writes().batch.PutInbound(st.clientID, id)
	return true
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
	if w == nil || w.batch.Len() == 0 {
		return
	}
	acks, held, link := w.acks, w.held, st.link
	w.acks, w.held = nil, nil
	var done func(error)
	if len(acks) > 0 || len(held) > 0 {
		done = func(err error) {
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
		}
	}
	s.env.Store.Commit(&w.batch, done)
	w.batch.Reset()
}

// dropUncommitted forgets the writes of a message the actor failed on: they were never made,
// and the publishers waiting for them are told so.
func (s *Session) dropUncommitted() {
	st := s.st
	st.dirty = false
	w := st.w
	if w == nil {
		return
	}
	w.batch.Reset()
	w.held = nil // unsent: the restarted session answers again from the store
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
	rec := from.rec
	kept := make(map[string]bool, len(rec.Subscriptions))
	for _, r := range rec.Subscriptions {
		kept[r.Filter] = true
	}
	for f, sub := range st.subs {
		if !kept[f] {
			s.unregister(ctx, sub)
		}
	}
	s.env.Stats.Subscriptions.Add(-int64(len(st.subs)))
	st.subs = make(map[string]*subscription, len(rec.Subscriptions))
	clear(st.inflight)
	st.order = nil
	st.queue.clear()
	st.backlog = nil
	clear(st.inbound2)

	st.setStored(true)
	st.fresh = false
	st.user, st.version, st.expiry, st.will = rec.User, codec.Version(rec.Version), rec.Expiry, rec.Will
	st.disconnectedAt = rec.DisconnectedAt
	for _, r := range rec.Subscriptions {
		group, inner, _, _ := topics.ParseShared(r.Filter) // inner is the filter itself when not shared
		opts := codec.Subscription{Filter: r.Filter, QoS: r.QoS, NoLocal: r.NoLocal,
			RetainAsPublished: r.RetainAsPublished, RetainHandling: r.RetainHandling}
		s.addSub(ctx, &subscription{opts: opts, filter: inner, group: group, subID: r.SubscriptionID}, false, nil)
	}
	for _, m := range from.msgs {
		r := m.rec
		d := Deliver{Pub: r.Pub, QoS: r.QoS, Retain: r.Retain, SubIDs: r.SubIDs, Received: r.Received, seq: m.seq}
		w := st.writes()
		w.seq = max(w.seq, m.seq)
		if r.State == store.Queued {
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
	for _, id := range from.inbound {
		if st.inbound2 == nil {
			st.inbound2 = make(map[uint16]struct{})
		}
		st.inbound2[id] = struct{}{}
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
