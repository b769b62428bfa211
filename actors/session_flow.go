package actors

import (
	"slices"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.uber.org/zap"

	"github.com/actormq/actormq/codec"
	"github.com/actormq/actormq/topics"
)

// The session's message flow: deliveries from the shards out to the client, the client's
// acknowledgements, inbound QoS 2, SUBSCRIBE and UNSUBSCRIBE.

// take accepts one delivery from a shard. A stored session writes a QoS 1/2 message before
// anything else happens to it, and the publisher's answer waits for that write.
func (s *Session) take(ctx actor.Context, d Deliver) {
	st := s.st
	if d.QoS == 2 && d.flow.failedOnce() {
		// Its publish was never written: the publisher sends it again. (A QoS 1 copy is
		// kept, as a message of this session's own: a repeat is allowed, a gap is not.)
		d.flow.release()
		return
	}
	var sl *onceSlot
	if d.QoS == 2 || st.stored && d.QoS > 0 {
		sl = s.slotFor(d.flow) // a copy of a publish written in one batch joins it (once.go)
	}
	switch {
	case st.stored && d.QoS > 0:
		if d.ack && sl != nil {
			// First: should the actor fail from here on, dropUncommitted gives it up (a
			// share lost would keep the batch, and every copy of it, waiting for good).
			sl.share = true
		}
		if d.QoS == 2 && sl != nil {
			d.id = s.reserveID()
		}
		s.storeMessage(&d)
		if d.ack && sl == nil {
			w := st.writes()
			w.acks = append(w.acks, d.flow)
		}
	case d.ack:
		d.flow.ackDone() // no longer stored (the client changed its expiry): nothing to wait for
	}
	d.ack = false
	s.enqueue(ctx, d)
}

// enqueue takes one delivery: it goes out now when the window allows and nothing waits
// before it (same topic, same order), else into the queue. A QoS 1/2 message that finds the
// queue full while the client is connected is parked with its publisher's credit, which
// slows the publisher down instead of losing the message; everything else releases the
// credit at once.
func (s *Session) enqueue(ctx actor.Context, d Deliver) {
	st := s.st
	switch {
	case st.link == nil && d.QoS == 0:
		// not kept for a disconnected client
	case st.link != nil && d.QoS > 0 && !st.stalled && (st.queue.full() || len(st.parked) > 0):
		if len(st.parked) == 0 {
			// The stall is measured from now: a client that completed nothing for a while
			// because nothing was sent to it is idle, not stalled.
			st.progress = time.Now()
			s.watchStall(ctx)
		}
		st.parked = append(st.parked, d)
		return
	case st.link != nil && d.QoS == 0 && st.queue.len() == 0 && len(st.backlog) == 0:
		if s.send(d, 0, false) == writerFull {
			s.queue(d)
			s.retryLater(ctx)
		}
	default:
		s.queue(d)
	}
	d.flow.release()
}

func (s *Session) queue(d Deliver) {
	if dropped, ok := s.st.queue.push(d, s.env.Cfg.Sessions.QueueDropPolicy == "drop_newest"); ok {
		s.env.Stats.DroppedQueue.Add(1)
		s.countDrops(1)
		s.unreserve(&dropped)
		s.forgetMessage(&dropped)
	}
}

// unpark moves parked messages into the queue while it has room, or all of them (under the
// queue's drop policy) when force is set.
func (s *Session) unpark(force bool) {
	st := s.st
	n := 0
	for ; n < len(st.parked) && (force || !st.queue.full()); n++ {
		d := st.parked[n]
		s.queue(d)
		d.flow.release()
		st.parked[n] = Deliver{}
	}
	st.parked = st.parked[n:]
	if len(st.parked) == 0 {
		st.parked = nil
	}
}

// watchStall bounds how long parked messages may hold their publishers' credits: a
// subscriber that completes no message for connections.write_timeout while messages wait for
// it is stalled, like one that does not read. Its parked messages then go to its queue under
// its limit and drop policy, and nothing more is parked for it until it completes a message
// again, so that one subscriber that reads but never acknowledges cannot hold its publishers
// (and every other subscriber of theirs) for as long as it stays connected.
func (s *Session) watchStall(ctx actor.Context) {
	st := s.st
	if st.stallCheck {
		return
	}
	st.stallCheck = true
	s.after(ctx, max(s.env.Cfg.Connections.WriteTimeout.Std()-time.Since(st.progress), time.Millisecond), &stallCheck{})
}

func (s *Session) checkStall(ctx actor.Context) {
	st := s.st
	st.stallCheck = false
	if len(st.parked) == 0 || st.link == nil {
		return
	}
	if time.Since(st.progress) < s.env.Cfg.Connections.WriteTimeout.Std() {
		s.watchStall(ctx) // it completed a message meanwhile: wait on
		return
	}
	s.env.Log.Warn("subscriber completes no message; what waits for it no longer holds its publishers (the queue's limit and drop policy apply)",
		zap.String("client", st.clientID), zap.Int("waiting", len(st.parked)), zap.Int("inflight", len(st.inflight)))
	st.stalled = true
	s.unpark(true)
}

func (s *Session) window() int {
	w := s.env.Cfg.MQTT.MaxInflight
	if rm := int(s.st.receiveMax); rm > 0 && rm < w {
		w = rm // the client's Receive Maximum [MQTT-3.3.4-7]
	}
	return w
}

// pump sends queued messages while the client's window has room.
func (s *Session) pump(ctx actor.Context) {
	st := s.st
	for st.link != nil && len(st.inflight) < s.window() {
		var d Deliver
		switch {
		case len(st.backlog) > 0:
			d = st.backlog[0]
			st.backlog[0] = Deliver{}
			st.backlog = st.backlog[1:]
		case st.queue.len() > 0:
			d = st.queue.pop()
			if len(st.parked) > 0 {
				s.unpark(false)
			}
		default:
			return
		}
		if d.QoS == 0 {
			if s.send(d, 0, false) == writerFull {
				st.queue.pushFront(d)
				s.retryLater(ctx)
				return
			}
			continue
		}
		if s.copyWaits(&d) {
			// Its publish's batch (once.go) is not durable: on the wire now, a crash before
			// it would have the publisher send it again, and this client take it twice.
			// onceDone pumps again; the queue keeps the order.
			st.queue.pushFront(d)
			return
		}
		id := d.id
		if id == 0 {
			id = s.nextPacketID()
		}
		if id == 0 {
			st.queue.pushFront(d) // every id is in flight or reserved: on when one completes
			return
		}
		switch s.send(d, id, d.maybeSent) {
		case writerFull:
			st.queue.pushFront(d) // kept for a retry
			s.retryLater(ctx)
			return
		case discarded:
			s.unreserve(&d)
			s.forgetMessage(&d)
			continue // expired or too large: as if its delivery had completed [MQTT-3.1.2-25]
		}
		o := st.outMsgFor(d, id)
		s.addInflight(o)
		if d.id != 0 {
			// Its record holds the id it went out under: a restarted session sends it under
			// that id again, so "in flight" need not be written.
			s.unreserve(&d)
			continue
		}
		s.storeInflight(o)
	}
}

type sendResult uint8

const (
	sent       sendResult = iota
	writerFull            // the writer is full or the connection closing: keep it, try again later
	discarded             // never to be sent: expired, or too large for the client
)

// send writes one delivery to the attached connection.
func (s *Session) send(d Deliver, id uint16, dup bool) sendResult {
	st := s.st
	it := outItem{kind: itemPublish, pub: d.Pub, qos: d.QoS, dup: dup, retain: d.Retain, id: id, subIDs: d.SubIDs}
	if e, ok := d.Pub.Properties.MessageExpiryInterval(); ok {
		elapsed := uint32(time.Since(d.Received) / time.Second)
		if elapsed >= e {
			s.env.Stats.DroppedExpired.Add(1) // [MQTT-3.3.2-5]
			s.countDrops(1)
			return discarded
		}
		it.hasExpiry, it.expiry = true, e-elapsed // [MQTT-3.3.2-6]
	}
	if st.link.maxPacket != 0 && st.scratch == nil {
		st.scratch = new(codec.Publish)
	}
	if !st.link.fitsDelivery(&it, st.scratch) {
		s.env.Stats.DroppedTooLarge.Add(1) // [MQTT-3.1.2-25]
		s.countDrops(1)
		return discarded
	}
	if d.QoS == 2 && !dup && d.id == 0 || d.id != 0 && s.heldAhead() {
		// Under its packet id only once the record of that id is durable: else a crash in
		// between leaves it queued in the store, to be sent again under a new id. A copy
		// whose record holds its id already waits only not to overtake one that waits.
		if s.sendAfterCommit(it) != nil {
			return writerFull
		}
		return sent
	}
	if st.link.push(it) != nil {
		return writerFull
	}
	return sent
}

// heldAhead reports whether packets held for a commit are waiting to go out.
func (s *Session) heldAhead() bool {
	w := s.st.w
	return w != nil && (len(w.held) > 0 || w.heldOut.Load() > 0)
}

func (s *Session) retryLater(ctx actor.Context) {
	if s.st.retryPending {
		return
	}
	s.st.retryPending = true
	s.after(ctx, 20*time.Millisecond, &retryTick{})
}

// addInflight puts a message sent into the window, in send order.
func (s *Session) addInflight(o *outMsg) {
	st := s.st
	if st.inflight == nil {
		st.inflight = make(map[uint16]*outMsg)
	}
	st.inflight[o.id] = o
	st.order = append(st.order, o)
}

// nextPacketID returns a packet id neither in flight nor reserved, 0 if there is none.
func (s *Session) nextPacketID() uint16 {
	st := s.st
	for range 0xFFFF {
		st.nextID++
		if st.nextID == 0 {
			st.nextID = 1
		}
		if _, used := st.inflight[st.nextID]; !used {
			if _, held := st.reserved[st.nextID]; !held {
				return st.nextID
			}
		}
	}
	return 0
}

// complete removes a finished outbound message and lets the next one go.
func (s *Session) complete(ctx actor.Context, o *outMsg) {
	st := s.st
	if len(st.parked) > 0 {
		st.progress = time.Now() // read only while messages wait (checkStall); parking sets it anew
	}
	st.stalled = false
	o.done = true
	delete(st.inflight, o.id)
	s.forgetMessage(&o.d)
	n := 0
	for n < len(st.order) && st.order[n].done {
		st.retire(st.order[n])
		st.order[n] = nil
		n++
	}
	switch {
	case n < len(st.order):
		st.order = st.order[n:]
	case cap(st.order) > keptQueueCap:
		st.order = nil // all done after a burst: an idle session holds little
	default:
		st.order = st.order[:0] // all done: the array serves the next messages
	}
	s.pump(ctx)
}

// ---- packets from the client ----

// clientAck handles an acknowledgement from the client.
func (s *Session) clientAck(ctx actor.Context, a *clientAck) {
	st, id := s.st, a.id
	switch a.typ {
	case codec.TypePuback:
		if o := st.inflight[id]; o != nil && o.d.QoS == 1 {
			s.complete(ctx, o)
		}
	case codec.TypePubrec:
		o := st.inflight[id]
		switch {
		case o == nil || o.d.QoS != 2:
			if st.link.Version == codec.V5 {
				_ = st.link.sendAck(codec.TypePubrel, id, codec.PacketIdentifierNotFound)
			}
		case a.code >= 0x80:
			s.complete(ctx, o) // the receiver refused it: the exchange ends [MQTT-4.3.3-4]
		default:
			o.pubrel = true
			s.storeInflight(o)
			_ = s.sendAfterCommit(outItem{kind: itemAck, ackType: codec.TypePubrel, id: id, ackCode: codec.Success})
		}
	case codec.TypePubcomp:
		if o := st.inflight[id]; o != nil && o.pubrel {
			s.complete(ctx, o)
		}
	case codec.TypePubrel:
		if _, ok := st.inbound2[id]; ok {
			s.forgetInbound(id)
			_ = s.sendAfterCommit(outItem{kind: itemAck, ackType: codec.TypePubcomp, id: id, ackCode: codec.Success})
		} else {
			code := codec.Success
			if st.link.Version == codec.V5 {
				code = codec.PacketIdentifierNotFound
			}
			_ = st.link.sendAck(codec.TypePubcomp, id, code)
		}
		decUnacked(st.link)
	}
}

func (s *Session) clientPacket(ctx actor.Context, pkt codec.Packet) {
	switch p := pkt.(type) {
	case *codec.Subscribe:
		s.subscribe(ctx, p)
	case *codec.Unsubscribe:
		s.unsubscribe(ctx, p)
	}
}

func (s *Session) inboundQoS2(ctx actor.Context, m *inboundQoS2) {
	st := s.st
	r := m.route
	r.session = ctx.Self()
	if first, seen := st.inbound2[r.pub.PacketID]; seen {
		// A retransmission of a message already routed: acknowledged, not routed again;
		// with the original's answer if that is still waiting for its write. One whose
		// original was never written is routed as new (its inboundFailed may still be on
		// its way, and must then leave this one's id alone).
		state := onceDurable
		if first != nil {
			state = first.follow(r)
		}
		switch state {
		case onceOpen:
			return
		case onceDurable:
			_ = r.link.sendAck(codec.TypePubrec, r.pub.PacketID, codec.Success)
			decUnacked(r.link)
			r.settle()
			return
		}
	}
	if st.inbound2 == nil {
		st.inbound2 = make(map[uint16]*onceWrite)
	}
	st.inbound2[r.pub.PacketID] = nil
	if st.stored {
		// The id and every stored copy in one batch: PUBREC once it is durable, so that a
		// retransmission after a crash is known exactly when the copies are there (once.go).
		r.once = new(onceWrite) // the publisher needs no onceDone: follow and failures tell it
		r.once.batch.PutInbound(st.clientID, r.pub.PacketID)
		st.inbound2[r.pub.PacketID] = r.once
		w := st.writes()
		w.open(r)
	}
	ctx.Send(s.env.Shards[s.env.shardOf(r.pub.Topic)], r)
}

// onceDone: a publish written in one batch that this session wrote into is durable (its copy
// may go out) or failed (its copy is dropped: the publisher sends it again).
func (s *Session) onceDone(ctx actor.Context, m *onceDone) {
	st := s.st
	if w := st.w; w != nil {
		if i := slices.Index(w.opened, m.route); i >= 0 {
			w.opened = slices.Delete(w.opened, i, i+1)
		}
	}
	if m.failed {
		// Queued (a QoS 2 copy waits there) or sent at QoS 1 (a repeat is allowed): the
		// queued go, with any record written of them after the batch.
		drop := func(d *Deliver) bool {
			if d.flow != m.route {
				return false
			}
			if d.QoS != 2 {
				s.rewriteQueued(d) // kept (see take): its record was in the batch
				return false
			}
			if st.stored && d.seq != 0 {
				st.writes().batch.DeleteMessage(st.clientID, d.seq)
			}
			s.unreserve(d)
			return true
		}
		st.queue.remove(drop)
		for _, o := range st.order {
			if !o.done && o.d.flow == m.route {
				s.storeInflight(o) // a QoS 1 copy sent: its record was in the batch
			}
		}
		st.parked = slices.DeleteFunc(st.parked, func(d Deliver) bool {
			if drop(&d) {
				d.flow.release()
				return true
			}
			return false
		})
	}
	s.pump(ctx)
}

func decUnacked(l *Link) {
	for {
		n := l.InboundUnacked.Load()
		if n <= 0 || l.InboundUnacked.CompareAndSwap(n, n-1) {
			return
		}
	}
}

func (s *Session) subscribe(ctx actor.Context, p *codec.Subscribe) {
	st := s.st
	v5 := st.link.Version == codec.V5
	var subID uint32
	if ids := p.Properties.SubscriptionIdentifiers(); len(ids) > 0 {
		subID = ids[0]
	}
	codes := make([]codec.ReasonCode, len(p.Subscriptions))
	full := 0 // refused for the limit
	a := s.newAnswer()
	add := newSubscribeBatch(s.env, st.ref)
	for i, sub := range p.Subscriptions {
		var atLimit bool
		codes[i], atLimit = s.addSubscription(sub, subID, v5, add)
		if atLimit {
			full++
		}
	}
	a.waiting += add.send(ctx, a.req)
	if full > 0 {
		s.env.Log.Warn("subscriptions refused: limits.max_subscriptions_per_client reached",
			zap.String("client", st.clientID), zap.Int("refused", full), zap.Int("max", s.env.Cfg.Limits.MaxSubscriptionsPerClient))
	}
	st.dirty = true
	s.answerAfterCommit(a)
	s.reportSubs()
	a.pkt = &codec.Suback{PacketID: p.PacketID, ReasonCodes: codes}
	s.answerReady(ctx)
}

// answer is a SUBACK or UNSUBACK that waits until every shard the packet's changes went to has
// taken them in. Its client then cannot run ahead of the shards: SUBSCRIBE floods are paced
// by the reader, which stops reading while too many answers are owed, and each SUBACK comes
// before the retained messages of its subscriptions.
type answer struct {
	req     uint64
	gen     uint64 // the connection it is for
	waiting int    // shards yet to answer
	pkt     codec.Packet
	backlog []Deliver // retained messages the shards sent for it
}

// newAnswer starts the answer of one SUBSCRIBE or UNSUBSCRIBE.
func (s *Session) newAnswer() *answer {
	st := s.st
	st.reqs++
	a := &answer{req: st.reqs, gen: st.gen}
	st.answers = append(st.answers, a)
	return a
}

// subscribed: a shard took in a change; the answers whose shards have all done so go out, in
// order, each followed by its retained messages.
func (s *Session) subscribed(ctx actor.Context, m *subscribed) {
	st := s.st
	for _, a := range st.answers {
		if a.req == m.req {
			a.waiting--
			a.backlog = append(a.backlog, m.msgs...)
			break
		}
	}
	s.answerReady(ctx)
}

func (s *Session) answerReady(ctx actor.Context) {
	st := s.st
	for len(st.answers) > 0 && st.answers[0].waiting == 0 && st.answers[0].pkt != nil {
		a := st.answers[0]
		st.answers[0] = nil
		st.answers = st.answers[1:]
		if a.gen != st.gen {
			continue // for a connection that is gone (and a session it may have reset)
		}
		if st.link != nil {
			_ = st.link.Send(a.pkt)
		}
		s.takeRetained(a.backlog)
	}
	if len(st.answers) == 0 {
		st.answers = nil
	}
	s.pump(ctx)
}

// takeRetained adds the retained messages of new subscriptions to the backlog, which holds at
// most retained.max_messages: more than every retained message there can be is a client
// subscribing over and over, and the surplus is dropped (and counted).
func (s *Session) takeRetained(msgs []Deliver) {
	st := s.st
	room := s.env.Cfg.Retained.MaxMessages - len(st.backlog)
	if len(msgs) > room {
		dropped := len(msgs) - max(room, 0)
		s.env.Stats.DroppedQueue.Add(uint64(dropped))
		s.countDrops(uint64(dropped))
		msgs = msgs[:max(room, 0)]
	}
	st.backlog = append(st.backlog, msgs...)
}

// addSubscription adds one subscription, or says why not; atLimit reports a refusal for
// limits.max_subscriptions_per_client.
func (s *Session) addSubscription(sub codec.Subscription, subID uint32, v5 bool, add *subscribeBatch) (code codec.ReasonCode, atLimit bool) {
	st := s.st
	cfg := &s.env.Cfg
	fail := func(code codec.ReasonCode) codec.ReasonCode {
		if !v5 {
			return 0x80 // 3.1.1 has one failure code [MQTT-3.9.3-2]
		}
		return code
	}
	if err := topics.ValidateFilter(sub.Filter, cfg.Limits.MaxTopicLength, cfg.Limits.MaxTopicLevels); err != nil {
		return fail(codec.TopicFilterInvalid), false
	}
	group, inner, shared, _ := topics.ParseShared(sub.Filter) // inner is the filter itself when not shared
	if shared && !cfg.MQTT.SharedSubscriptions {
		return fail(codec.SharedSubscriptionsNotSupported), false
	}
	if hasWildcard(inner) && !cfg.MQTT.WildcardSubscriptions {
		return fail(codec.WildcardSubscriptionsNotSupported), false
	}
	if a := s.env.Auth; a != nil && a.HasACL() && !a.CanSubscribe(st.user, st.clientID, inner) {
		return fail(codec.NotAuthorized), false // 3.1.1: 0x80
	}
	existing := st.subs[sub.Filter]
	if existing == nil && len(st.subs) >= cfg.Limits.MaxSubscriptionsPerClient {
		return fail(codec.QuotaExceeded), true
	}
	granted := min(sub.QoS, byte(cfg.MQTT.MaxQoS))
	opts := sub
	opts.QoS = granted
	// Retained messages: Retain Handling 0 always, 1 only for a new subscription, 2 never
	// [MQTT-3.3.1-9, -10, -11]; never for a shared subscription.
	sendRetained := !shared && (sub.RetainHandling == 0 || (sub.RetainHandling == 1 && existing == nil))
	s.addSub(&subscription{shardFilter: shardFilter{inner, group}, opts: opts, subID: subID}, sendRetained, add)
	return codec.ReasonCode(granted), false // Granted QoS 0/1/2 [MQTT-3.9.3-1]
}

// addSub records a subscription, and adds its registration with the shards that need it to
// add, for the caller to send.
func (s *Session) addSub(sub *subscription, sendRetained bool, add *subscribeBatch) {
	st := s.st
	if st.subs == nil {
		st.subs = make(map[string]*subscription)
	}
	if st.subs[sub.opts.Filter] == nil {
		s.env.Stats.Subscriptions.Add(1)
	}
	st.subs[sub.opts.Filter] = sub
	add.add(shardSub{shardFilter: sub.shardFilter, opts: sub.opts, subID: sub.subID, sendRetained: sendRetained})
}

func (s *Session) unsubscribe(ctx actor.Context, p *codec.Unsubscribe) {
	st := s.st
	codes := make([]codec.ReasonCode, len(p.Filters))
	a := s.newAnswer()
	drop := newUnsubscribeBatch(s.env, st.clientID)
	for i, f := range p.Filters {
		sub := st.subs[f]
		if sub == nil {
			codes[i] = codec.NoSubscriptionExisted
			continue
		}
		delete(st.subs, f)
		s.env.Stats.Subscriptions.Add(-1)
		drop.add(sub.shardFilter)
	}
	a.waiting += drop.send(ctx, a.req, ctx.Self())
	st.dirty = true
	s.answerAfterCommit(a)
	s.reportSubs()
	a.pkt = &codec.Unsuback{PacketID: p.PacketID, ReasonCodes: codes}
	s.answerReady(ctx)
}

func hasWildcard(filter string) bool {
	for i := 0; i < len(filter); i++ {
		if filter[i] == '+' || filter[i] == '#' {
			return true
		}
	}
	return false
}
