package actors

import (
	"slices"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.uber.org/zap"

	"github.com/actormq/actormq/codec"
)

// Session is the actor of one client id. It outlives its connections: subscriptions, the
// outbound inflight window and queue, inbound QoS 2 state, the will and the expiry.
//
// A session that outlives its connection (Session Expiry Interval above 0, or a 3.1.1 client
// with clean session off) is *stored*: every change to that state is written to the store
// (session_store.go), in one batch per message the actor handles, and what the publisher of a
// message is told waits for it. The store is what a session is rebuilt from: when the broker
// starts, when the actor restarts after a failure, when the registry starts it again after it
// was stopped. A session that ends with its connection has nothing stored and nothing to
// rebuild: a failure ends it, and its client starts afresh on its next connect.
type Session struct {
	env   *Env
	guard *mailboxGuard
	st    *sessionState
}

// sessionState is the session's working state. It lives outside the actor struct, captured
// by the props producer, so that a restarted actor can give back what the failed one held
// (credits of parked messages, its connection) before it reloads from the store.
type sessionState struct {
	clientID string
	ref      *sessionRef
	restore  *storedSession // what to start from, for a session started from stored records
	began    bool           // the actor has started once: the next Started is a restart
	reload   bool           // start from the store (a stored session started again)

	// The attached connection, nil while disconnected. gen numbers attaches: messages of an
	// older connection are ignored.
	link       *Link
	conn       *actor.PID
	gen        uint64
	receiveMax uint16
	version    codec.Version // of the last connection
	user       string        // who attached last (auth.go): subscriptions are checked as them

	expiry         uint32 // seconds after disconnect; 0: ends with the connection; 0xFFFFFFFF: never
	fresh          bool   // no state carried over yet: the next attach reports Session Present 0
	will           *codec.Will
	disconnectedAt time.Time // zero while connected

	// The maps are made when first written: an idle session holds none it does not use.
	subs     map[string]*subscription // by the filter as the client wrote it
	inflight map[uint16]*outMsg
	order    []*outMsg // inflight in send order, for redelivery in order [MQTT-4.6.0-1]
	spare    []*outMsg // completed and off order, for the next messages (at most keptQueueCap)
	queue    deliveryQueue
	parked   []Deliver // QoS 1/2 arrived while the queue was full: they hold their publishers' credits
	progress time.Time // when the client last completed a message, or messages began to wait for it (watchStall)
	stalled  bool      // it completed none for too long: nothing is parked for it
	// stallCheck: a stallCheck message is on its way
	stallCheck bool
	nextID     uint16
	backlog    []Deliver           // retained messages of new subscriptions, sent as the window allows
	answers    []*answer           // SUBACKs and UNSUBACKs waiting for the shards, in order (session_flow.go)
	reqs       uint64              // the last answer's request number
	reserved   map[uint16]struct{} // packet ids queued copies will be sent under (reserveID)
	// inbound2: QoS 2 ids received and not yet released [MQTT-4.3.3-10], with the batch
	// (once.go) of one from a stored session: a retransmission is answered as it ends.
	inbound2 map[uint16]*onceWrite

	// The store (session_store.go).
	stored bool           // this session's state is in the store
	dirty  bool           // the session record changed
	w      *sessionWrites // made at the first write, or the first copy of a QoS 2 publish written in one batch

	// scratch is for fitsDelivery's size check, made the first time a client has a Maximum
	// Packet Size: most never do, and an idle session should not carry it.
	scratch *codec.Publish

	expiryTimer  *time.Timer
	willTimer    *time.Timer
	timersDue    bool // restored: the will and expiry timers start on timersDue
	retryPending bool

	dir *ClientEntry // console directory entry (directory.go)
}

type subscription struct {
	shardFilter                    // the filter without the share prefix, and the share name
	opts        codec.Subscription // QoS is the granted QoS
	subID       uint32
}

// outMsg is a QoS 1 or 2 message sent and not yet completed.
type outMsg struct {
	d      Deliver
	id     uint16
	pubrel bool // QoS 2: PUBREC received, PUBREL sent, waiting for PUBCOMP
	done   bool
}

// outMsgFor returns an outMsg for d sent under id: a spare one if the session has one, so
// that a client that gets a message at a time costs no allocation for each.
func (st *sessionState) outMsgFor(d Deliver, id uint16) *outMsg {
	n := len(st.spare)
	if n == 0 {
		return &outMsg{d: d, id: id}
	}
	o := st.spare[n-1]
	st.spare[n-1] = nil
	st.spare = st.spare[:n-1]
	*o = outMsg{d: d, id: id}
	return o
}

// retire keeps o, completed and taken off order and inflight, as a spare.
func (st *sessionState) retire(o *outMsg) {
	if len(st.spare) < keptQueueCap {
		*o = outMsg{} // keeps no message alive
		st.spare = append(st.spare, o)
	}
}

// sessionProps returns the props of the session actor of clientID: a new session, one that
// starts from stored records (from), or one that reads them from the store when it starts.
func (e *Env) sessionProps(clientID string, ref *sessionRef, from *storedSession, reload bool) *actor.Props {
	st := &sessionState{
		clientID: clientID,
		ref:      ref,
		restore:  from,
		reload:   reload,
		fresh:    true,
		queue:    deliveryQueue{max: e.Cfg.Sessions.MaxQueuedMessages},
	}
	g := newMailboxGuard(e)
	return e.Props(KindSession, func() actor.Actor { return &Session{env: e, guard: g, st: st} }, g)
}

// Receive implements actor.Actor.
func (s *Session) Receive(ctx actor.Context) {
	s.handle(ctx, ctx.Message())
	s.flush()  // this message's writes (session_store.go)
	s.report() // console: inflight and queue sizes
}

func (s *Session) handle(ctx actor.Context, msg any) {
	st := s.st
	switch m := msg.(type) {
	case *Deliver:
		d := *m
		m.recycle() // only the shard that sent it and this session ever held it
		s.take(ctx, d)
		s.pump(ctx)
	case *subscribed:
		s.subscribed(ctx, m)
	case *inboundQoS2:
		s.inboundQoS2(ctx, m)
	case *onceDone:
		s.onceDone(ctx, m)
	case *inboundFailed:
		// Unless the id is another publish's by now: a retransmission routed as new.
		if cur := st.inbound2[m.id]; cur == nil || cur == m.route.once {
			s.forgetInbound(m.id)
		}
		if w := st.w; w != nil {
			w.opened = slices.DeleteFunc(w.opened, func(r *route) bool { return r == m.route })
		}
	case *clientAck:
		if m.gen == st.gen && st.link != nil {
			s.clientAck(ctx, m)
		}
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
	case *stallCheck:
		s.checkStall(ctx)
	case *willTimer:
		if m.gen == st.gen && st.link == nil {
			s.publishWill(ctx)
		}
	case *expiryTimer:
		if m.gen == st.gen && st.link == nil {
			s.end(ctx)
		}
	case *timersDue:
		if st.timersDue && st.link == nil {
			s.startTimers(ctx, time.Since(st.disconnectedAt))
		}
		st.timersDue = false
	case *actor.Started:
		s.started(ctx)
	case *actor.Stopping:
		s.guard.stopping(s.comesBack())
		s.stopping(ctx)
	case *actor.Stopped:
		stopTimer(&st.expiryTimer)
		stopTimer(&st.willTimer)
		s.leaveDirectory(ctx)
		s.guard.stop(s.comesBack())
	}
}

// comesBack reports whether a session that stops is started again under its name: a stored
// one is, by the registry, unless the broker is stopping.
func (s *Session) comesBack() bool { return s.st.stored && !s.env.Stopping.Load() }

// started: a new session, a stored one to rebuild, or a restart after a failure. A session
// started again under the name of one that stopped handles what that one left (leftover.go)
// before anything sent to it.
func (s *Session) started(ctx actor.Context) {
	st := s.st
	if left := s.guard.started(ctx.Self()); len(left) > 0 {
		defer func() {
			for _, m := range left {
				s.handle(ctx, m)
				s.flush()
			}
		}()
	}
	switch {
	case st.restore != nil:
		from := st.restore
		st.restore, st.began = nil, true
		defer from.restoring.Done() // also if rebuilding fails: the broker must not wait forever
		s.rebuild(ctx, from, true)
	case st.reload:
		st.reload, st.began = false, true
		from, err := s.load()
		if err != nil {
			s.env.Log.Error("stored session cannot be read from the store; it ends",
				zap.String("client", st.clientID), zap.Error(err))
			s.end(ctx)
			return
		}
		s.rebuild(ctx, from, false)
	case !st.began:
		st.began = true
	default:
		s.recover(ctx)
	}
}

// recover follows a failure: protoactor lost the message the actor failed on, and the working
// state may be half changed by it. That message's writes were never committed: they are
// dropped, and the publishers waiting for them told so. A stored session then reads its state
// back from the store, as of the last message it handled in full; its connection stays (the
// inflight messages the store holds are those the client has). A session with nothing stored
// has no other copy and keeps its working state.
func (s *Session) recover(ctx actor.Context) {
	st := s.st
	s.dropUncommitted()
	if !st.stored {
		s.env.Log.Warn("session failed; restarted with its state in memory", zap.String("client", st.clientID))
		return
	}
	s.env.carries.Store(st.clientID, s.unwritten()) // before the parked go: rebuild takes them
	s.releaseParked()                               // the store has them as queued
	from, err := s.load()
	if err != nil {
		s.env.Log.Error("session failed and cannot be read back from the store; keeping its state in memory",
			zap.String("client", st.clientID), zap.Error(err))
		return
	}
	s.env.Log.Warn("session failed; restarted from the store", zap.String("client", st.clientID))
	s.rebuild(ctx, from, false)
}

// stopping: a session stopped from outside (the console, its registry restarting, a failure
// past its restart budget) disconnects its client, which must not stay attached to nothing.
// A stored session leaves its records and its subscriptions in the shards as they are: the
// registry starts it again from the store, under the same PID. One with nothing stored
// unregisters and is gone. (A session the registry ends has reset itself first.)
func (s *Session) stopping(ctx actor.Context) {
	st := s.st
	s.dropUncommitted()
	if st.stored {
		s.env.carries.Store(st.clientID, s.unwritten()) // for the successor
	}
	s.releaseParked()
	if st.link != nil {
		ctx.Send(st.conn, &Kick{Code: codec.AdministrativeAction, Reason: "session stopped by the server"})
		st.link, st.conn = nil, nil
	}
	if !st.stored {
		st.will = nil // an administrative end, not a client failure
		s.reset(ctx)
		return
	}
	// Counted again by the session started from the store.
	s.env.Stats.Subscriptions.Add(-int64(len(st.subs)))
	clear(st.subs)
}

// releaseParked gives back the credits parked messages hold; they are in the store already
// (a stored session writes every QoS 1/2 message it takes), or dropped with the session.
func (s *Session) releaseParked() {
	st := s.st
	for _, d := range st.parked {
		d.flow.release()
	}
	st.parked = nil
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
	st.will, st.timersDue = nil, false

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
	st.version = m.link.Version
	st.disconnectedAt = time.Time{}
	st.stalled = false // a stall is its connection's: the new one is judged afresh
	s.storeIfKept()

	m.connack.SessionPresent = present // [MQTT-3.2.2-1..3]
	if err := st.link.Send(m.connack); err != nil {
		// The connection closed before the CONNACK went out (the client left, or its wait
		// ran out): it never learns of this session, so no detach will come from it. The
		// client was never told it connected, so its will is not published.
		s.detach(ctx, &detach{gen: m.gen})
		return
	}
	ctx.Send(m.conn, &attached{session: st.ref, gen: m.gen})

	// Resume the inflight messages in their original order with DUP set [MQTT-4.4.0-1].
	// Those that expired meanwhile are completed after the loop: completing takes done
	// messages off st.order and sends queued ones, which must neither change the order under
	// the loop nor go out before the messages resent.
	var gone []*outMsg
	for _, o := range st.order {
		if o.done {
			continue
		}
		if o.pubrel {
			_ = st.link.sendAck(codec.TypePubrel, o.id, codec.Success)
		} else if s.send(o.d, o.id, true) == discarded {
			gone = append(gone, o)
		}
	}
	for _, o := range gone {
		s.complete(ctx, o)
	}
	s.pump(ctx)
}

func (s *Session) detach(ctx actor.Context, m *detach) {
	st := s.st
	if m.gen != st.gen || st.link == nil {
		return
	}
	st.link, st.conn = nil, nil
	st.disconnectedAt = time.Now()
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
	s.storeIfKept()
	if st.expiry == 0 {
		s.end(ctx)
		return
	}
	s.startTimers(ctx, 0)
}

// startTimers starts the will delay and the session expiry of a disconnected session, gone
// already for elapsed (a session restored from the store).
func (s *Session) startTimers(ctx actor.Context, elapsed time.Duration) {
	st := s.st
	expiry := time.Duration(st.expiry) * time.Second
	if st.expiry != 0xFFFFFFFF && elapsed >= expiry {
		s.end(ctx)
		return
	}
	if st.will != nil {
		delay, _ := st.will.Properties.WillDelayInterval()
		d := min(time.Duration(delay)*time.Second, expiry) - elapsed
		if d <= 0 {
			s.publishWill(ctx)
		} else {
			st.willTimer = s.after(ctx, d, &willTimer{gen: st.gen})
		}
	}
	if st.expiry != 0xFFFFFFFF {
		st.expiryTimer = s.after(ctx, expiry-elapsed, &expiryTimer{gen: st.gen})
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

// reset discards the session's state [MQTT-3.1.2-4], in memory and in the store.
func (s *Session) reset(ctx actor.Context) {
	st := s.st
	s.env.Stats.Subscriptions.Add(-int64(len(st.subs)))
	drop := newUnsubscribeBatch(s.env, st.clientID)
	for f, sub := range st.subs {
		drop.add(sub.shardFilter)
		delete(st.subs, f)
	}
	drop.send(ctx, 0, nil)
	clear(st.inflight)
	clear(st.reserved)
	st.order = nil
	for _, d := range st.parked {
		d.flow.release()
	}
	st.parked = nil
	st.queue.clear()
	st.backlog = nil
	clear(st.inbound2)
	st.fresh = true
	s.unstore()
	s.reportSubs()
}

func (s *Session) publishWill(ctx actor.Context) {
	st := s.st
	w := st.will
	st.will = nil
	st.dirty = true
	stopTimer(&st.willTimer)
	if w == nil {
		return
	}
	pub := &codec.Publish{Topic: w.Topic, Payload: w.Payload, QoS: w.QoS, Retain: w.Retain}
	copyWillProperties(&pub.Properties, &w.Properties)
	s.env.Log.Debug("publishing will", zap.String("client", st.clientID), zap.String("topic", w.Topic))
	ctx.Send(s.env.Shards[s.env.shardOf(w.Topic)], newRoute(s.env, pub, st.clientID, nil, time.Now()))
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
