package actors

import (
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.uber.org/zap"

	"github.com/actormq/actormq/codec"
	"github.com/actormq/actormq/topics"
)

// Session is the actor of one client id. It outlives its connections: subscriptions, the
// outbound inflight window and queue, inbound QoS 2 state, the will and the expiry all live in
// sessionState, which the props producer captures so that a restarted actor finds it again.
type Session struct {
	env *Env
	st  *sessionState
}

type sessionState struct {
	clientID string
	ref      *sessionRef

	// The attached connection, nil while disconnected. gen numbers attaches: messages of an
	// older connection are ignored.
	link       *Link
	conn       *actor.PID
	gen        uint64
	receiveMax uint16
	user       string // who attached last (auth.go): subscriptions are checked as them

	expiry uint32 // seconds after disconnect; 0: ends with the connection; 0xFFFFFFFF: never
	will   *codec.Will
	fresh  bool // no state carried over yet: the next attach reports Session Present 0

	subs     map[string]*subscription // by the filter as the client wrote it
	inflight map[uint16]*outMsg
	order    []*outMsg // inflight in send order, for redelivery in order [MQTT-4.6.0-1]
	queue    deliveryQueue
	parked   []Deliver // QoS 1/2 arrived while the queue was full: they hold their publishers' credits
	backlog  []Deliver // retained messages of new subscriptions, sent as the window allows
	nextID   uint16
	inbound2 map[uint16]struct{} // QoS 2 ids received and not yet released [MQTT-4.3.3-10]

	scratch codec.Publish // for fitsDelivery's size check, without a heap copy per delivery

	expiryTimer  *time.Timer
	willTimer    *time.Timer
	retryPending bool

	dir *ClientEntry // console directory entry (directory.go)
}

type subscription struct {
	opts   codec.Subscription // QoS is the granted QoS
	filter string             // without the share prefix
	group  string
	subID  uint32
}

// outMsg is a QoS 1 or 2 message sent and not yet completed.
type outMsg struct {
	d      Deliver
	id     uint16
	pubrel bool // QoS 2: PUBREC received, PUBREL sent, waiting for PUBCOMP
	done   bool
}

// NewSession returns the producer of the session actor for clientID.
func NewSession(env *Env, clientID string, ref *sessionRef) actor.Producer {
	st := &sessionState{
		clientID: clientID,
		ref:      ref,
		fresh:    true,
		subs:     make(map[string]*subscription),
		inflight: make(map[uint16]*outMsg),
		inbound2: make(map[uint16]struct{}),
		queue:    deliveryQueue{max: env.Cfg.Sessions.MaxQueuedMessages},
	}
	return func() actor.Actor { return &Session{env: env, st: st} }
}

// Receive implements actor.Actor.
func (s *Session) Receive(ctx actor.Context) {
	st := s.st
	defer s.report() // console: inflight and queue sizes
	switch m := ctx.Message().(type) {
	case *Deliver:
		st.ref.pending.Add(-1)
		s.enqueue(ctx, *m)
		s.pump(ctx)
	case *deliverBatch:
		st.ref.pending.Add(-1)
		st.backlog = append(st.backlog, m.msgs...)
		s.pump(ctx)
	case *inboundQoS2:
		s.inboundQoS2(ctx, m)
	case *clientPacket:
		if m.gen == st.gen && st.link != nil {
			s.clientPacket(ctx, m.pkt)
		}
	case *attachRequest:
		s.attach(ctx, m)
	case *detach:
		s.detach(ctx, m)
	case *retryTick:
		st.retryPending = false
		s.pump(ctx)
	case *willTimer:
		if m.gen == st.gen && st.link == nil {
			s.publishWill(ctx)
		}
	case *expiryTimer:
		if m.gen == st.gen && st.link == nil {
			s.end(ctx)
		}
	case *actor.Stopping:
		s.stopping(ctx)
	case *actor.Stopped:
		stopTimer(&st.expiryTimer)
		stopTimer(&st.willTimer)
		s.leaveDirectory(ctx)
	}
}

// stopping: a session stopped from outside (the console, not its own end through the
// registry, which resets it first) must not leave a client attached to nothing or
// subscriptions that point at a dead actor: it unregisters them and disconnects its client,
// which reconnects to a fresh session.
func (s *Session) stopping(ctx actor.Context) {
	st := s.st
	if st.link != nil {
		ctx.Send(st.conn, &Kick{Code: codec.AdministrativeAction, Reason: "session stopped by the server"})
		st.link, st.conn = nil, nil
	}
	st.will = nil // an administrative end, not a client failure
	s.reset(ctx)
}

func (s *Session) attach(ctx actor.Context, m *attachRequest) {
	st := s.st
	if st.link != nil {
		// Takeover [MQTT-3.1.4-3]: the old connection is closed; its will goes out now if it
		// had no delay or the session does not continue [MQTT-3.1.3-9].
		ctx.Send(st.conn, &takenOver{})
		if st.will != nil {
			delay, _ := st.will.Properties.WillDelayInterval()
			if delay == 0 || m.cleanStart || st.expiry == 0 {
				s.publishWill(ctx)
			}
		}
		st.link = nil
	}
	stopTimer(&st.willTimer)
	stopTimer(&st.expiryTimer)
	st.will = nil

	if m.cleanStart || (!st.fresh && m.user != st.user) {
		// A session is not handed to another user: its subscriptions passed the ACL as
		// the user who made them.
		s.reset(ctx)
	}
	st.user = m.user
	present := !st.fresh
	st.fresh = false
	s.dirEntry(ctx)
	st.link, st.conn, st.gen = m.link, m.conn, m.gen
	st.expiry, st.will, st.receiveMax = m.expiry, m.will, m.receiveMax

	m.connack.SessionPresent = present // [MQTT-3.2.2-1..3]
	if err := st.link.Send(m.connack); err != nil {
		return // the connection is already gone; its detach follows
	}
	ctx.Send(m.conn, &attached{session: st.ref, gen: m.gen})

	// Resume the inflight messages in their original order with DUP set [MQTT-4.4.0-1].
	for _, o := range st.order {
		if o.done {
			continue
		}
		if o.pubrel {
			_ = st.link.sendAck(codec.TypePubrel, o.id, codec.Success)
		} else if s.send(o.d, o.id, true) == discarded {
			s.complete(ctx, o)
		}
	}
	s.pump(ctx)
}

func (s *Session) detach(ctx actor.Context, m *detach) {
	st := s.st
	if m.gen != st.gen || st.link == nil {
		return
	}
	st.link, st.conn = nil, nil
	if m.newExpiry != nil {
		st.expiry = *m.newExpiry
	}
	// QoS 0 messages are not kept for a disconnected client; parked messages go through the
	// queue's limit now that no connection will drain it.
	st.queue.dropQoS0()
	s.unpark(true)
	if !m.sendWill {
		st.will = nil // a normal DISCONNECT discards the will [MQTT-3.1.2-10]
	}
	if st.will != nil {
		delay, _ := st.will.Properties.WillDelayInterval()
		if delay == 0 || st.expiry == 0 {
			s.publishWill(ctx)
		} else {
			d := min(time.Duration(delay), time.Duration(st.expiry)) * time.Second
			st.willTimer = s.after(ctx, d, &willTimer{gen: st.gen})
		}
	}
	switch st.expiry {
	case 0:
		s.end(ctx)
	case 0xFFFFFFFF:
	default:
		st.expiryTimer = s.after(ctx, time.Duration(st.expiry)*time.Second, &expiryTimer{gen: st.gen})
	}
}

// end asks the registry to stop this session; the will, if still pending, goes out first
// [MQTT-3.1.3-9: the will is sent at the latest when the session ends].
func (s *Session) end(ctx actor.Context) {
	st := s.st
	if st.will != nil {
		s.publishWill(ctx)
	}
	s.reset(ctx)
	ctx.Send(ctx.Parent(), &sessionIdle{clientID: st.clientID, pid: ctx.Self(), gen: st.gen})
}

// reset discards the session's state [MQTT-3.1.2-4].
func (s *Session) reset(ctx actor.Context) {
	st := s.st
	s.env.Stats.Subscriptions.Add(-int64(len(st.subs)))
	for f, sub := range st.subs {
		s.unregister(ctx, sub)
		delete(st.subs, f)
	}
	clear(st.inflight)
	st.order = nil
	for _, d := range st.parked {
		d.flow.release()
	}
	st.parked = nil
	st.queue.clear()
	st.backlog = nil
	clear(st.inbound2)
	st.fresh = true
	s.reportSubs()
}

func (s *Session) publishWill(ctx actor.Context) {
	st := s.st
	w := st.will
	st.will = nil
	stopTimer(&st.willTimer)
	if w == nil {
		return
	}
	pub := &codec.Publish{Topic: w.Topic, Payload: w.Payload, QoS: w.QoS, Retain: w.Retain}
	copyWillProperties(&pub.Properties, &w.Properties)
	s.env.Log.Debug("publishing will", zap.String("client", st.clientID), zap.String("topic", w.Topic))
	ctx.Send(s.env.Shards[s.env.shardOf(w.Topic)], newRoute(pub, st.clientID, nil, time.Now()))
}

// copyWillProperties keeps the will properties that a PUBLISH carries [MQTT-3.1.3-10]; the
// Will Delay Interval is the broker's business, not the subscribers'.
func copyWillProperties(dst, src *codec.Properties) {
	if v, ok := src.PayloadFormatIndicator(); ok {
		dst.SetPayloadFormatIndicator(v)
	}
	if v, ok := src.MessageExpiryInterval(); ok {
		dst.SetMessageExpiryInterval(v)
	}
	if v, ok := src.ContentType(); ok {
		dst.SetContentType(v)
	}
	if v, ok := src.ResponseTopic(); ok {
		dst.SetResponseTopic(v)
	}
	if v, ok := src.CorrelationData(); ok {
		dst.SetCorrelationData(v)
	}
	for _, u := range src.UserProperties() {
		dst.AddUserProperty(u.Key, u.Value)
	}
}

func (s *Session) after(ctx actor.Context, d time.Duration, msg any) *time.Timer {
	self, root := ctx.Self(), s.env.System.Root
	return time.AfterFunc(d, func() { root.Send(self, msg) })
}

func stopTimer(t **time.Timer) {
	if *t != nil {
		(*t).Stop()
		*t = nil
	}
}

// ---- outbound ----

// enqueue takes one delivery from a shard: it goes out now when the window allows and nothing
// waits before it (same topic, same order), else into the queue. A QoS 1/2 message that finds
// the queue full while the client is connected is parked with its publisher's credit, which
// slows the publisher down instead of losing the message; everything else releases the
// credit at once.
func (s *Session) enqueue(ctx actor.Context, d Deliver) {
	st := s.st
	switch {
	case st.link == nil && d.QoS == 0:
		// not kept for a disconnected client
	case st.link != nil && d.QoS > 0 && (st.queue.len() >= st.queue.max || len(st.parked) > 0):
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
	if dropped := s.st.queue.push(d, s.env.Cfg.Sessions.QueueDropPolicy == "drop_newest"); dropped {
		s.env.Stats.DroppedQueue.Add(1)
		s.countDrop()
	}
}

// unpark moves parked messages into the queue while it has room, or all of them (under the
// queue's drop policy) when force is set.
func (s *Session) unpark(force bool) {
	st := s.st
	n := 0
	for ; n < len(st.parked) && (force || st.queue.len() < st.queue.max); n++ {
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
	if st.link == nil {
		return
	}
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
		o := &outMsg{d: d, id: s.nextPacketID()}
		switch s.send(d, o.id, false) {
		case writerFull:
			st.queue.pushFront(d) // kept for a retry
			s.retryLater(ctx)
			return
		case discarded:
			continue // expired or too large: as if its delivery had completed [MQTT-3.1.2-25]
		}
		st.inflight[o.id] = o
		st.order = append(st.order, o)
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
			s.countDrop()
			return discarded
		}
		it.hasExpiry, it.expiry = true, e-elapsed // [MQTT-3.3.2-6]
	}
	if !st.link.fitsDelivery(&it, &st.scratch) {
		s.env.Stats.DroppedTooLarge.Add(1) // [MQTT-3.1.2-25]
		s.countDrop()
		return discarded
	}
	if st.link.push(it) != nil {
		return writerFull
	}
	return sent
}

func (s *Session) retryLater(ctx actor.Context) {
	if s.st.retryPending {
		return
	}
	s.st.retryPending = true
	s.after(ctx, 20*time.Millisecond, &retryTick{})
}

func (s *Session) nextPacketID() uint16 {
	st := s.st
	for {
		st.nextID++
		if st.nextID == 0 {
			st.nextID = 1
		}
		if _, used := st.inflight[st.nextID]; !used {
			return st.nextID
		}
	}
}

// complete removes a finished outbound message and lets the next one go.
func (s *Session) complete(ctx actor.Context, o *outMsg) {
	st := s.st
	o.done = true
	delete(st.inflight, o.id)
	for len(st.order) > 0 && st.order[0].done {
		st.order[0] = nil
		st.order = st.order[1:]
	}
	s.pump(ctx)
}

// ---- packets from the client ----

func (s *Session) clientPacket(ctx actor.Context, pkt codec.Packet) {
	st := s.st
	v5 := st.link.Version == codec.V5
	switch p := pkt.(type) {
	case *codec.Puback:
		if o := st.inflight[p.PacketID]; o != nil && o.d.QoS == 1 {
			s.complete(ctx, o)
		}
	case *codec.Pubrec:
		o := st.inflight[p.PacketID]
		switch {
		case o == nil || o.d.QoS != 2:
			if v5 {
				_ = st.link.sendAck(codec.TypePubrel, p.PacketID, codec.PacketIdentifierNotFound)
			}
		case p.ReasonCode >= 0x80:
			s.complete(ctx, o) // the receiver refused it: the exchange ends [MQTT-4.3.3-4]
		default:
			o.pubrel = true
			_ = st.link.sendAck(codec.TypePubrel, p.PacketID, codec.Success)
		}
	case *codec.Pubcomp:
		if o := st.inflight[p.PacketID]; o != nil && o.pubrel {
			s.complete(ctx, o)
		}
	case *codec.Pubrel:
		code := codec.Success
		if _, ok := st.inbound2[p.PacketID]; ok {
			delete(st.inbound2, p.PacketID)
		} else if v5 {
			code = codec.PacketIdentifierNotFound
		}
		_ = st.link.sendAck(codec.TypePubcomp, p.PacketID, code)
		decUnacked(st.link)
	case *codec.Subscribe:
		s.subscribe(ctx, p)
	case *codec.Unsubscribe:
		s.unsubscribe(ctx, p)
	}
}

func (s *Session) inboundQoS2(ctx actor.Context, m *inboundQoS2) {
	st := s.st
	r := m.route
	if _, seen := st.inbound2[r.pub.PacketID]; seen {
		// A retransmission of a message already routed: acknowledge, do not route again.
		_ = r.link.sendAck(codec.TypePubrec, r.pub.PacketID, codec.Success)
		decUnacked(r.link)
		r.release()
		return
	}
	st.inbound2[r.pub.PacketID] = struct{}{}
	ctx.Send(s.env.Shards[s.env.shardOf(r.pub.Topic)], r)
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
	for i, sub := range p.Subscriptions {
		codes[i] = s.addSubscription(ctx, sub, subID, v5)
	}
	s.reportSubs()
	_ = st.link.Send(&codec.Suback{PacketID: p.PacketID, ReasonCodes: codes})
}

func (s *Session) addSubscription(ctx actor.Context, sub codec.Subscription, subID uint32, v5 bool) codec.ReasonCode {
	st := s.st
	cfg := &s.env.Cfg
	fail := func(code codec.ReasonCode) codec.ReasonCode {
		if !v5 {
			return 0x80 // 3.1.1 has one failure code [MQTT-3.9.3-2]
		}
		return code
	}
	if err := topics.ValidateFilter(sub.Filter, cfg.Limits.MaxTopicLength, cfg.Limits.MaxTopicLevels); err != nil {
		return fail(codec.TopicFilterInvalid)
	}
	group, inner, shared, _ := topics.ParseShared(sub.Filter)
	if !shared {
		inner = sub.Filter
	}
	if shared && !cfg.MQTT.SharedSubscriptions {
		return fail(codec.SharedSubscriptionsNotSupported)
	}
	if hasWildcard(inner) && !cfg.MQTT.WildcardSubscriptions {
		return fail(codec.WildcardSubscriptionsNotSupported)
	}
	if a := s.env.Auth; a != nil && a.HasACL() && !a.CanSubscribe(st.user, st.clientID, inner) {
		return fail(codec.NotAuthorized) // 3.1.1: 0x80
	}
	existing := st.subs[sub.Filter]
	if existing == nil && len(st.subs) >= cfg.Limits.MaxSubscriptionsPerClient {
		return fail(codec.QuotaExceeded)
	}
	granted := min(sub.QoS, byte(cfg.MQTT.MaxQoS))
	opts := sub
	opts.QoS = granted
	ns := &subscription{opts: opts, filter: inner, group: group, subID: subID}
	st.subs[sub.Filter] = ns
	if existing == nil {
		s.env.Stats.Subscriptions.Add(1)
	}
	// Retained messages: Retain Handling 0 always, 1 only for a new subscription, 2 never
	// [MQTT-3.3.1-9, -10, -11]; never for a shared subscription.
	sendRetained := !shared && (sub.RetainHandling == 0 || (sub.RetainHandling == 1 && existing == nil))
	msg := &shardSubscribe{ref: st.ref, filter: inner, group: group, opts: opts, subID: subID, sendRetained: sendRetained}
	s.toShards(ctx, inner, msg)
	return codec.ReasonCode(granted) // Granted QoS 0/1/2 [MQTT-3.9.3-1]
}

func (s *Session) unsubscribe(ctx actor.Context, p *codec.Unsubscribe) {
	st := s.st
	codes := make([]codec.ReasonCode, len(p.Filters))
	for i, f := range p.Filters {
		sub := st.subs[f]
		if sub == nil {
			codes[i] = codec.NoSubscriptionExisted
			continue
		}
		delete(st.subs, f)
		s.env.Stats.Subscriptions.Add(-1)
		s.unregister(ctx, sub)
	}
	s.reportSubs()
	_ = st.link.Send(&codec.Unsuback{PacketID: p.PacketID, ReasonCodes: codes})
}

func (s *Session) unregister(ctx actor.Context, sub *subscription) {
	s.toShards(ctx, sub.filter, &shardUnsubscribe{clientID: s.st.clientID, filter: sub.filter, group: sub.group})
}

// toShards sends a subscription change to the shard of an exact filter, or to every shard for
// a filter with wildcards, since any topic may match it.
func (s *Session) toShards(ctx actor.Context, filter string, msg any) {
	if !hasWildcard(filter) {
		ctx.Send(s.env.Shards[s.env.shardOf(filter)], msg)
		return
	}
	for _, pid := range s.env.Shards {
		ctx.Send(pid, msg)
	}
}

func hasWildcard(filter string) bool {
	for i := 0; i < len(filter); i++ {
		if filter[i] == '+' || filter[i] == '#' {
			return true
		}
	}
	return false
}
