package actors

import (
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/actormq/actormq/codec"
)

// Messages between the broker's actors. Publishes travel by pointer and are never mutated once
// the reader has handed them on.

// ---- to the connections supervisor, from listeners ----

// Accepted hands a new socket to the connections supervisor, which spawns its connection actor.
type Accepted struct {
	Conn     net.Conn
	Listener string // listener name, for logs and the console
	Protocol byte   // the listener's default protocol level (3, 4 or 5)
}

// ---- to a connection actor ----

// readerEnded: the reader goroutine stopped; Err says why (io.EOF, a codec error, a timeout).
type readerEnded struct{ err error }

// violation: the reader found a protocol error that is not a decoding error (a topic alias
// out of range, Receive Maximum exceeded…). The connection answers with Code and closes.
type violation struct {
	code codec.ReasonCode
	msg  string
}

// attached: the session accepted the connection and has queued the CONNACK.
type attached struct {
	session *sessionRef
	gen     uint64
}

// connectRefused: the registry could not attach (too many sessions…).
type connectRefused struct {
	code codec.ReasonCode
	msg  string
}

// takenOver: another connection with the same client id took the session [MQTT-3.1.4-3].
type takenOver struct{}

// Kick disconnects a client from the server side (console, shutdown): 5.0 clients get a
// DISCONNECT with Code first.
type Kick struct {
	Code   codec.ReasonCode
	Reason string
}

// ---- to the session registry ----

// attachRequest asks for the session of ClientID, created if needed.
type attachRequest struct {
	clientID   string
	cleanStart bool
	expiry     uint32 // seconds; 0xFFFFFFFF never
	will       *codec.Will
	link       *Link
	conn       *actor.PID
	connack    *codec.Connack // prepared by the connection; the session fills SessionPresent
	receiveMax uint16         // the client's Receive Maximum: our outbound window toward it
	user       string         // the authenticated user name, "" for anonymous (auth.go)
	gen        uint64         // set by the registry
}

// sessionIdle: the session wants to end (expired, or clean and disconnected). The registry ends
// it only if no attach was routed to it since gen.
type sessionIdle struct {
	clientID string
	pid      *actor.PID
	gen      uint64
}

// ---- to a session ----

// detach: the session's connection ended.
type detach struct {
	gen       uint64
	sendWill  bool
	newExpiry *uint32 // 5.0 DISCONNECT may change the session expiry [MQTT-3.14.2-2]
}

// Deliver is one message for one session from a router shard: the publish and what the
// matching subscriptions of that session make of it.
type Deliver struct {
	flow     *route // released once the session has taken the message in; nil if not credited
	Pub      *codec.Publish
	QoS      byte // min(publish QoS, granted QoS) [MQTT-3.8.4-8]
	Retain   bool
	SubIDs   []uint32
	Received time.Time // when the broker got it, for message expiry

	// ack: flow holds an acknowledgement share for this delivery, which the session gives
	// up once the message is in its store (the publisher's PUBACK waits for it).
	ack bool
	// id: the packet id a stored QoS 2 copy of a publish written in one batch will be sent
	// under, written in its record (Session.reserveID); 0 if it has none yet.
	id uint16
	// maybeSent: restored with its reserved id: it may have gone out under it before.
	maybeSent bool
	seq       uint64 // the session's record of the message; 0 while it has none
}

// delivers recycles the Delivers router shards send: a session copies one out as it takes
// it (Session.handle) and puts it back, so a delivery allocates none (about 100 of the bytes
// a QoS 1 message costs). One that never reaches a session is left to the collector.
var delivers = sync.Pool{New: func() any { return new(Deliver) }}

// newDeliver returns an empty Deliver from the pool.
func newDeliver() *Deliver { return delivers.Get().(*Deliver) }

// recycle puts d, which nothing holds any more, back into the pool. Its fields are cleared
// here: the taker's copy keeps SubIDs, so the next user must start a slice of its own.
func (d *Deliver) recycle() {
	*d = Deliver{}
	delivers.Put(d)
}

// subscribed: a shard has taken in a subscription change the session asked it to answer
// (req), with the retained messages a new subscription gets from it.
type subscribed struct {
	req  uint64
	msgs []Deliver
}

// clientPacket: a SUBSCRIBE or UNSUBSCRIBE from the client, for its session, tagged with the
// attach generation it belongs to.
type clientPacket struct {
	gen uint64
	pkt codec.Packet
}

// clientAck: a PUBACK, PUBREC, PUBREL or PUBCOMP from the client, as much of it as the session
// uses (the reader's decoder reuses the packet), tagged like clientPacket.
type clientAck struct {
	gen  uint64
	typ  codec.PacketType
	id   uint16
	code codec.ReasonCode
}

func newClientAck(gen uint64, p codec.Packet) *clientAck {
	a := codec.AckOf(p)
	return &clientAck{gen: gen, typ: p.Type(), id: a.PacketID, code: a.ReasonCode}
}

// inboundQoS2 is a QoS 2 publish on its way through the session, which keeps the packet ids of
// QoS 2 messages received but not yet released so that a retransmission is not routed twice
// [MQTT-4.3.3-10].
type inboundQoS2 struct {
	gen   uint64
	route *route
}

type expiryTimer struct{ gen uint64 }

// timersDue: every stored session the registry started has registered its subscriptions; a
// restored session may now publish a will that is due.
type timersDue struct{}

// attachOverdue: a connection's CONNECT has waited limits.connect_timeout for its session.
type attachOverdue struct{}

// restored: the stored sessions the registry started have all registered their subscriptions.
type restored struct {
	pids []*actor.PID
	of   *sync.WaitGroup // the restore they were started by
}
type willTimer struct{ gen uint64 }
type retryTick struct{}
type stallCheck struct{}

// sessionRef is how shards address a session: its PID (a session started again after a
// failure gets the same one), its client id, and whether it keeps its messages in the store,
// so that the shard knows a publisher's acknowledgement must wait for it.
type sessionRef struct {
	pid      *actor.PID
	clientID string
	stored   atomic.Bool
}

// inboundFailed: a QoS 2 publish of this session's client could not be routed. The session
// forgets its packet id, so that the client's retransmission is routed, not taken for a
// duplicate [MQTT-4.3.3-10].
type inboundFailed struct {
	id    uint16
	route *route
}

// ---- to a router shard ----

// route is one inbound publish to route.
//
// It holds one of its publisher's credits until every session it was delivered to has taken
// it into its window or queue, and the publisher has been answered: refs counts the shard's
// share, the answer's, and one per delivery. This is the backpressure from subscribers (and
// the store) to publishers: a session whose queue is full keeps the delivery (and the credit)
// until it has room, and a publish waiting to be durable keeps it until it is, so its
// publishers' readers stop reading.
//
// QoS 1 and 2 are acknowledged (PUBACK, PUBREC) once the route is routed and everything it
// must be is durable: acks counts the shard's share plus one per write the acknowledgement
// waits for (each stored session's record of it, the retained message, the publisher's QoS 2
// packet id). The last share to go answers the publisher. A route that failed anywhere on the
// way is answered with a failure (5.0) or by closing the publisher's connection (3.1.1, which
// has no failure code), so the publisher sends it again: nothing acknowledged is lost.
type route struct {
	env      *Env
	pub      *codec.Publish
	from     string     // publisher's client id: no-local [MQTT-3.8.3-3]
	link     *Link      // nil for a will or a $SYS message: nobody to answer
	session  *actor.PID // the publisher's session, for a failed QoS 2 publish
	once     *onceWrite // a QoS 2 publish from a stored session: its one batch (once.go)
	received time.Time
	refs     atomic.Int32
	acks     atomic.Int32
	failed   atomic.Bool
	matched  bool // a subscription matched; written by the shard before it gives up its ack share
}

func newRoute(env *Env, pub *codec.Publish, from string, link *Link, received time.Time) *route {
	r := &route{env: env, pub: pub, from: from, link: link, received: received}
	r.refs.Store(2) // the shard's share, and the answer's
	r.acks.Store(1)
	return r
}

// release gives up one share of the route; the last one returns the publisher's credit.
func (r *route) release() {
	if r == nil || r.refs.Add(-1) != 0 || r.link == nil {
		return
	}
	select {
	case <-r.link.Credits:
	default:
	}
}

// holdAck takes an acknowledgement share: the publisher's answer waits for ackDone.
func (r *route) holdAck() { r.acks.Add(1) }

// fail marks the route failed: its answer says so.
func (r *route) fail() { r.failed.Store(true) }

// ackFailed gives up an acknowledgement share of a copy that was not stored: the publisher is
// told the message failed, and sends it again.
func (r *route) ackFailed() {
	r.fail()
	r.ackDone()
}

// ackDone gives up an acknowledgement share; the last one answers the publisher and gives up
// the answer's share of the credit, or, for a publish written in one batch, commits it first.
func (r *route) ackDone() {
	if r.acks.Add(-1) != 0 {
		return
	}
	if r.once != nil {
		r.commit()
		return
	}
	r.finish()
}

// finish answers the publisher and gives up the answer's share of the credit.
func (r *route) finish() {
	if r.link != nil && r.pub.QoS > 0 {
		r.answer()
	}
	r.release()
}

// settle ends a route that was answered without being routed (a QoS 2 retransmission): both
// shares go.
func (r *route) settle() {
	r.release()
	r.release()
}

func (r *route) answer() {
	l, pub := r.link, r.pub
	typ := codec.TypePuback
	if pub.QoS == 2 {
		typ = codec.TypePubrec
	}
	if r.failed.Load() {
		if pub.QoS == 2 && r.session != nil {
			r.env.System.Root.Send(r.session, &inboundFailed{id: pub.PacketID, route: r})
		}
		if l.Version != codec.V5 {
			l.Abort() // no failure code in 3.1.1: the client sends it again on its next connection
			return
		}
		_ = l.sendAck(typ, pub.PacketID, codec.UnspecifiedError) // ends the exchange [MQTT-4.3.3-4]
		decUnacked(l)
		return
	}
	code := codec.Success
	if !r.matched && l.Version == codec.V5 {
		code = codec.NoMatchingSubscribers
	}
	_ = l.sendAck(typ, pub.PacketID, code)
	if pub.QoS == 1 {
		decUnacked(l)
	}
}

// abandon gives up every share a route message holds when it will never be processed (its
// actor is gone, or failed on it): the credit goes back and the publisher is told it failed.
func (r *route) abandon() {
	r.ackFailed()
	r.release()
}

// shardSubscribe registers (or replaces) subscriptions of a session in a shard: those of a
// SUBSCRIBE, or all of a session rebuilt from the store (subscribeBatch). With req set the
// shard answers the session with subscribed, and the retained messages of them all.
type shardSubscribe struct {
	ref  *sessionRef
	subs []shardSub
	req  uint64
}

// shardSub is a subscription as a shard registers it.
type shardSub struct {
	shardFilter
	opts         codec.Subscription
	subID        uint32
	sendRetained bool
}

// shardUnsubscribe removes subscriptions of one client from a shard: those of an UNSUBSCRIBE,
// or all of a session that ends (unsubscribeBatch). With req set the shard answers reply with
// subscribed.
type shardUnsubscribe struct {
	clientID string
	subs     []shardFilter
	req      uint64
	reply    *actor.PID
}

// shardFilter is a subscription as a shard knows it: also the key of a share group.
type shardFilter struct {
	filter string // without the $share/group/ prefix
	group  string // share name, "" if not shared
}

// key is the filter and share name of a subscription change (shardBatch), shardSub's too.
func (f shardFilter) key() shardFilter { return f }
