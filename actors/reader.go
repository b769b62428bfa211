package actors

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/actormq/actormq/auth"
	"github.com/actormq/actormq/codec"
	"github.com/actormq/actormq/topics"
)

// reader is a connection's reader goroutine. It decodes packets and routes PUBLISH packets
// to their router shard itself (the hot path skips the connection actor); every other packet
// goes to the connection actor. It never writes to the socket except through the Link.
//
// On a plain TCP socket (raw set) the goroutine runs only while there is something to read:
// once connected, a reader that has waited parkGrace between two packets without data parks
// the socket in the poller (poller_linux.go) and ends; the poller starts a new goroutine when
// data arrives. A
// parked reader keeps no read buffer either (its bufio.Reader goes back to a pool), and a
// timer stands in for the keep-alive read deadline. TLS and WebSocket connections keep their
// goroutine: their bytes pass through a library's buffers that cannot be asked whether a
// whole record is waiting.
type reader struct {
	env   *Env
	self  *actor.PID
	link  *Link
	src   deadlineConn
	burst burstReader
	br    *bufio.Reader // nil while parked
	dec   codec.Reader

	// Readiness-based reading; raw is nil when the reader keeps its goroutine.
	raw       syscall.RawConn
	poll      *poller
	pollID    uint64 // registration in the poller, 0 before the first park
	serveFn   func() // serve, bound once: the method value would allocate at every wake
	state     atomic.Int32
	pollFirst bool         // the next arm adds the socket to the epoll set
	deadline  atomic.Int64 // keep-alive deadline while parked (unix ns)
	idle      *time.Timer  // fires at deadline while parked; made at the first park

	// ctl is the actor's side of the reader. During the handshake it carries the answer to the
	// CONNECT: a readerStart lets the reader go on, nil asks it for one more packet first (an
	// AUTH [MQTT-4.12.0-2]). The actor closes it when it stops, a refusal included: that ends
	// the handshake and every later wait of the reader (for a credit, for the backlog, for the
	// publish rate). One channel for all of it, as an idle connection keeps it.
	ctl chan *readerStart

	// Set from readerStart.
	session  *actor.PID
	gen      uint64
	aliases  []string // inbound topic aliases, index = alias-1; made at the first one set
	aliasMax int      // our Topic Alias Maximum
	version  codec.Version

	// auth.go: guard is the one check the publish path pays when auth is off.
	guard bool
	user  string
	limit *auth.PublishLimit
}

// readerStart is what the reader needs once the session has accepted the connection.
type readerStart struct {
	session   *actor.PID
	gen       uint64
	keepAlive time.Duration // 0: none
	aliasMax  int
	user      string
}

// Reader states (reader.state), for a reader that parks (raw set).
const (
	readerRunning int32 = iota // a goroutine reads
	readerParked               // no goroutine: waiting in the poller
	readerDone                 // the connection ended; nothing wakes the reader again
)

var pingresp = &codec.Pingresp{}

func (r *reader) send(msg any) { r.env.System.Root.Send(r.self, msg) }

func (r *reader) run() {
	cfg := &r.env.Cfg
	r.src.timeout = cfg.Limits.ConnectTimeout.Std() // CONNECT must come in time
	pkt, err := r.read()
	if err != nil {
		r.send(&readerEnded{err: err})
		return
	}
	if _, ok := pkt.(*codec.Connect); !ok {
		r.send(&violation{code: codec.ProtocolError, msg: "the first packet must be CONNECT"}) // [MQTT-3.1.0-1]
		return
	}
	r.send(pkt)
	var st *readerStart
	for st == nil {
		s, ok := <-r.ctl
		if !ok {
			return // refused, or the actor stopped
		}
		if st = s; st != nil {
			break
		}
		// Enhanced authentication: the client's AUTH, then the actor decides again.
		pkt, err := r.read()
		if err != nil {
			r.send(&readerEnded{err: err})
			return
		}
		if _, ok := pkt.(*codec.Auth); !ok {
			r.send(&violation{code: codec.ProtocolError, msg: "only AUTH may follow CONNECT before CONNACK"})
			return
		}
		r.send(pkt)
	}
	r.version = r.dec.Version()
	r.session, r.gen = st.session, st.gen
	r.aliasMax = st.aliasMax
	if a := r.env.Auth; a != nil {
		r.user, r.limit = st.user, a.NewPublishLimit()
		r.guard = a.HasACL() || r.limit != nil
	}
	// The client must send something within 1.5 times its keep alive [MQTT-3.1.2-24].
	r.src.timeout = st.keepAlive * 3 / 2
	r.serve()
}

// serve reads and handles packets until the connection ends or, with raw, until the socket is
// empty between two packets and the reader parks.
func (r *reader) serve() {
	if r.br == nil { // resumed from the poller
		r.br = getIdleBuf(&r.burst)
		r.dec = *codec.NewReader(r.br, r.env.Cfg.Limits.MaxPacketSize)
		r.dec.SetVersion(r.version)
		r.dec.ReuseAcks()
	}
	for {
		// While the client's answers back up, read nothing more from it: TCP holds it back.
		if !r.link.waitBacklog(r.ctl) {
			r.end(nil)
			return
		}
		if r.raw != nil && r.br.Buffered() == 0 && r.burst.r == r.burst.w {
			// Between packets with nothing read ahead: wait parkGrace for more, then park.
			r.src.grace = true
			_, err := r.br.Peek(1)
			if err != nil && r.src.graceOver {
				if r.park() {
					return
				}
				continue
			}
			if err != nil {
				r.end(&readerEnded{err: err})
				return
			}
		}
		pkt, err := r.read()
		if err != nil {
			r.end(&readerEnded{err: err})
			return
		}
		switch p := pkt.(type) {
		case *codec.Publish:
			if v := r.publish(p); v == stopReading {
				r.end(nil)
				return
			} else if v != nil {
				r.end(v)
				return
			}
		case *codec.Pingreq:
			_ = r.link.Send(pingresp) // [MQTT-3.12.4-1]
		case *codec.Puback, *codec.Pubrec, *codec.Pubrel, *codec.Pubcomp:
			// Straight to the session, as publishes go straight to their shard: the
			// connection actor would only forward them (one mailbox hop less per
			// acknowledgement, and PUBREL stays behind its QoS 2 publish, which takes the
			// same way). The decoder reuses its ack packet: what the session needs of it
			// is copied.
			r.env.System.Root.Send(r.session, newClientAck(r.gen, pkt))
		case *codec.Connect:
			r.end(&violation{code: codec.ProtocolError, msg: "a second CONNECT"}) // [MQTT-3.1.0-2]
			return
		case *codec.Subscribe, *codec.Unsubscribe:
			r.link.owe() // its SUBACK or UNSUBACK: the reader waits when too many are owed
			r.send(pkt)
		case *codec.Disconnect:
			r.end(p)
			return // nothing may follow a DISCONNECT [MQTT-3.14.4-1]
		case *codec.Connack, *codec.Suback, *codec.Unsuback, *codec.Pingresp:
			// Only a server sends these: from a client they are "an unexpected packet", a
			// Protocol Error (5.0 §2.4, 0x82) that closes the connection (3.1.1 [MQTT-4.8.0-1]).
			r.end(&violation{code: codec.ProtocolError, msg: pkt.Type().String() + " is sent by servers, not clients"})
			return
		default:
			r.send(pkt)
		}
	}
}

// read decodes the next packet and counts it, which lets the next socket read renew the
// read deadline (deadlineConn).
func (r *reader) read() (codec.Packet, error) {
	pkt, err := r.dec.ReadPacket()
	if err == nil {
		r.src.packets++
	}
	return pkt, err
}

// end tells the actor why reading ended (msg nil: the actor is stopping and needs no word),
// once.
func (r *reader) end(msg any) {
	if r.raw != nil {
		if r.state.Swap(readerDone) == readerDone {
			return
		}
		r.unpark()
	}
	if msg != nil {
		r.send(msg)
	}
}

// park hands the socket to the poller and reports whether the goroutine must end (the poller,
// the keep-alive timer or the socket's close now own the reader). It returns false when the
// socket could not be armed: the goroutine then goes on with ordinary blocking reads.
func (r *reader) park() bool {
	if r.pollID == 0 {
		if r.poll = getPoller(); r.poll == nil || r.poll.register(r) != nil {
			r.stopParking()
			return false
		}
		r.serveFn = r.serve
	}
	idle := r.idle // nil: no keep alive
	if t := r.src.timeout; t > 0 {
		last := r.src.last
		if last == 0 {
			last = time.Now().UnixNano()
			r.src.last = last
		}
		r.deadline.Store(last + int64(t))
		if idle == nil {
			// Made idle and kept: the field is assigned before any firing can read it.
			r.idle = time.AfterFunc(time.Hour, r.expire)
			r.idle.Stop()
			idle = r.idle
		}
	}
	putIdleBuf(r.br)
	r.br, r.dec = nil, codec.Reader{}
	// Parked before armed: a readiness that comes at once must find the reader parked. From
	// here on, whoever moves the state away from parked owns the reader: only the locals and
	// the timer (safe for concurrent use) are touched below.
	r.state.Store(readerParked)
	if err := r.poll.arm(r); err != nil && r.state.CompareAndSwap(readerParked, readerRunning) {
		r.br = getIdleBuf(&r.burst)
		r.dec = *codec.NewReader(r.br, r.env.Cfg.Limits.MaxPacketSize)
		r.dec.SetVersion(r.version)
		r.dec.ReuseAcks()
		r.stopParking()
		return false
	}
	if idle != nil && r.state.Load() == readerParked {
		// Set after the state, so that a deadline already past (or a firing at once) finds
		// the reader parked; expire checks the deadline, so a stale Reset does no harm.
		idle.Reset(time.Duration(r.deadline.Load() - time.Now().UnixNano()))
	}
	return true
}

// stopParking makes the reader read the ordinary way (blocking, on its goroutine) from now on.
func (r *reader) stopParking() {
	if r.poll != nil {
		r.poll.forget(r)
	}
	if r.idle != nil {
		r.idle.Stop()
	}
	r.raw = nil
}

// wake is the poller's: the socket is readable (or closed by the peer).
func (r *reader) wake() {
	if r.state.CompareAndSwap(readerParked, readerRunning) {
		Workers.Go(r.serveFn)
	}
}

// expire is the keep-alive timer's: a parked reader whose client sent nothing within 1.5
// times its keep alive ends as a blocked read with a deadline would.
func (r *reader) expire() {
	if r.state.Load() != readerParked {
		return
	}
	if wait := time.Duration(r.deadline.Load() - time.Now().UnixNano()); wait > 0 {
		r.idle.Reset(wait) // a late firing of an earlier park
		return
	}
	if r.state.CompareAndSwap(readerParked, readerDone) {
		r.unpark()
		r.send(&readerEnded{err: os.ErrDeadlineExceeded})
	}
}

// socketClosed is the Link's, after it closed the socket: a parked reader would never learn
// of it, as no read fails.
func (r *reader) socketClosed() {
	if r.state.CompareAndSwap(readerParked, readerDone) {
		r.unpark()
		r.send(&readerEnded{err: net.ErrClosed})
	}
}

// stop is the actor's, when it stops: a parked reader is forgotten at once.
func (r *reader) stop() {
	if r.state.CompareAndSwap(readerParked, readerDone) {
		r.unpark()
	}
}

// unpark releases what a parked reader holds once it is done.
func (r *reader) unpark() {
	if r.idle != nil {
		r.idle.Stop()
	}
	if r.poll != nil {
		r.poll.forget(r)
	}
}

// publish checks an inbound PUBLISH and routes it. A non-nil result ends the connection.
func (r *reader) publish(p *codec.Publish) *violation {
	cfg := &r.env.Cfg
	v5 := r.version == codec.V5
	if int(p.QoS) > cfg.MQTT.MaxQoS {
		return &violation{code: codec.QoSNotSupported, msg: "QoS above mqtt.max_qos"} // [MQTT-3.2.2-11]
	}
	if p.Retain && !cfg.MQTT.RetainAvailable {
		return &violation{code: codec.RetainNotSupported, msg: "retain is not available"} // [MQTT-3.2.2-14]
	}
	if v5 {
		if len(p.Properties.SubscriptionIdentifiers()) > 0 {
			return &violation{code: codec.ProtocolError, msg: "a PUBLISH from a client must not carry a subscription identifier"} // [MQTT-3.3.4-6]
		}
		if v := r.resolveAlias(p); v != nil {
			return v
		}
	}
	if p.QoS > 0 && r.link.InboundUnacked.Add(1) > int32(cfg.MQTT.ReceiveMaximum) && v5 {
		return &violation{code: codec.ReceiveMaximumExceeded, msg: "more unacknowledged QoS 1/2 publishes than our Receive Maximum"} // [MQTT-3.3.4-9]
	}
	if err := topics.ValidateName(p.Topic, cfg.Limits.MaxTopicLength, cfg.Limits.MaxTopicLevels); err != nil {
		return r.refuse(p, codec.TopicNameInvalid, "topic name: "+err.Error())
	}
	if isSys(p.Topic) {
		return r.refuse(p, codec.NotAuthorized, "clients may not publish to $SYS topics")
	}
	if r.guard { // ACL and publish rate (auth.go)
		if drop, v := r.publishGuard(p); drop || v != nil {
			return v
		}
	}
	r.link.countIn(p.QoS) // console: per client and per QoS

	var received time.Time
	if p.Properties.Has(codec.PropMessageExpiryInterval) {
		received = time.Now()
	}
	rt := newRoute(r.env, p, r.link.ClientID, r.link, received)
	// Take a credit: when the router is behind, this blocks, the socket is not read, and TCP
	// pushes back on the client.
	select {
	case r.link.credits() <- struct{}{}:
	case <-r.ctl:
		// The connection is gone: nothing after this publish may be routed either, or a
		// later one would overtake it when the client sends it again.
		return stopReading
	}
	if p.QoS == 2 {
		r.env.System.Root.Send(r.session, &inboundQoS2{gen: r.gen, route: rt})
		return nil
	}
	r.env.System.Root.Send(r.env.Shards[r.env.shardOf(p.Topic)], rt)
	return nil
}

// stopReading is publish's answer when the reader must end without a word.
var stopReading = &violation{}

// refuse answers a publish the broker will not route. MQTT 5.0 can say why on the
// acknowledgement; 3.1.1 cannot, so the connection is closed.
func (r *reader) refuse(p *codec.Publish, code codec.ReasonCode, msg string) *violation {
	if r.version != codec.V5 {
		return &violation{code: code, msg: msg}
	}
	switch p.QoS {
	case 1:
		_ = r.link.sendAck(codec.TypePuback, p.PacketID, code)
		decUnacked(r.link)
	case 2:
		// A refused QoS 2 exchange ends at PUBREC [MQTT-4.3.3-4].
		_ = r.link.sendAck(codec.TypePubrec, p.PacketID, code)
		decUnacked(r.link)
	}
	return nil
}

// resolveAlias applies an inbound Topic Alias [MQTT-3.3.2-7..9]: a topic with an alias sets
// it, an empty topic uses it. The alias is connection state and does not travel further.
func (r *reader) resolveAlias(p *codec.Publish) *violation {
	a, ok := p.Properties.TopicAlias()
	if !ok {
		if p.Topic == "" {
			return &violation{code: codec.ProtocolError, msg: "empty topic without a topic alias"}
		}
		return nil
	}
	if a == 0 || int(a) > r.aliasMax {
		return &violation{code: codec.TopicAliasInvalid, msg: "topic alias 0 or above our Topic Alias Maximum"} // [MQTT-3.3.2-8, -9]
	}
	if p.Topic == "" {
		if int(a) > len(r.aliases) || r.aliases[a-1] == "" {
			return &violation{code: codec.ProtocolError, msg: "topic alias not yet set"}
		}
		p.Topic = r.aliases[a-1]
	} else {
		if r.aliases == nil {
			r.aliases = make([]string, r.aliasMax)
		}
		r.aliases[a-1] = p.Topic
	}
	p.Properties.Remove(codec.PropTopicAlias)
	return nil
}

// parkGrace is how long a reader that can park waits in Go's netpoller, as any reader does,
// before it parks: a connection that is busy in bursts (closed-loop clients, 25 messages a
// second or more) keeps its goroutine and pays nothing for parking; an idle one gives it up
// 50 ms after its last packet. During a connection storm it bounds the goroutines that have
// not parked yet to the connect rate times parkGrace.
const parkGrace = 50 * time.Millisecond

// deadlineConn sets the read deadline when the socket is read, so the keep-alive and connect
// timeouts cost nothing per packet: bufio calls Read only when its buffer is empty. The
// deadline runs from the first read after a complete packet: bytes that do not complete one do
// not renew it, so a client trickling a packet byte by byte is closed all the same. The CONNECT
// must be complete within the connect timeout, and every later packet within one and a half
// times the keep alive of the one before (3.1.1 [MQTT-3.1.2-24], 5.0 [MQTT-3.1.2-22]).
type deadlineConn struct {
	net.Conn
	timeout   time.Duration
	deadline  bool   // a deadline is set on the socket
	grace     bool   // the next read waits at most parkGrace (a reader that can park)
	graceOver bool   // the last read ended because parkGrace passed, not the keep alive
	packets   uint64 // complete packets read (the reader counts them)
	renewed   uint64 // packets when last was set
	last      int64  // unix ns the timeout runs from: the first read after a complete packet
	link      *Link  // byte counts: the broker's (link.stats) and the client's, for the console
}

func (d *deadlineConn) Read(b []byte) (int, error) {
	var now time.Time // only when a deadline is set
	if d.grace || d.timeout > 0 {
		now = time.Now()
	}
	if d.timeout > 0 && (d.last == 0 || d.packets != d.renewed) {
		d.last, d.renewed = now.UnixNano(), d.packets // a new packet is awaited from now
	}
	grace := d.grace
	d.grace, d.graceOver = false, false
	switch {
	case grace:
		dl := now.Add(parkGrace)
		if d.timeout > 0 {
			if ka := time.Unix(0, d.last).Add(d.timeout); ka.Before(dl) {
				dl, grace = ka, false // the keep alive ends first: its timeout is the real one
			}
		}
		_ = d.Conn.SetReadDeadline(dl)
		d.deadline = true
	case d.timeout > 0:
		_ = d.Conn.SetReadDeadline(time.Unix(0, d.last).Add(d.timeout))
		d.deadline = true
	case d.deadline:
		_ = d.Conn.SetReadDeadline(time.Time{})
		d.deadline = false
	}
	n, err := d.Conn.Read(b)
	if grace && errors.Is(err, os.ErrDeadlineExceeded) {
		d.graceOver = true
	}
	d.count(n)
	return n, err
}

func (d *deadlineConn) count(n int) {
	d.link.stats.BytesIn.Add(uint64(n))
	d.link.BytesIn.Add(uint64(n))
}

// burstReader sits between the socket and the decoder's small bufio.Reader, so that an idle
// connection holds no large read buffer. While the socket has little to give, it reads
// straight into the caller's buffer (bufio's few hundred bytes, or a packet body); once a read
// fills its buffer, more is probably waiting, and it borrows a pooled burstSize buffer to take
// many packets per read(2). It gives the buffer back as soon as a read leaves it partly empty
// (the socket was drained) and its bytes are consumed. Reader goroutine only.
type burstReader struct {
	src  io.Reader
	bp   *[]byte // borrowed while data keeps arriving
	r, w int     // unread bytes of *bp
	err  error   // returned once the bytes before it are consumed
	keep bool    // the last fill of *bp was full: keep it for the next
}

const (
	idleBufSize = 256  // the decoder's bufio.Reader: what an idle connection keeps
	burstSize   = 4096 // the borrowed buffer of a busy connection
)

var readBufs = sync.Pool{New: func() any { b := make([]byte, burstSize); return &b }}

// idleBufs holds the small bufio.Readers of parked readers.
var idleBufs sync.Pool

func getIdleBuf(src io.Reader) *bufio.Reader {
	if br, _ := idleBufs.Get().(*bufio.Reader); br != nil {
		br.Reset(src)
		return br
	}
	return bufio.NewReaderSize(src, idleBufSize)
}

func putIdleBuf(br *bufio.Reader) {
	br.Reset(nil)
	idleBufs.Put(br)
}

func (b *burstReader) Read(p []byte) (int, error) {
	if b.r == b.w && b.bp != nil && !b.keep {
		b.release()
	}
	if b.bp == nil {
		if b.err != nil {
			err := b.err
			b.err = nil
			return 0, err
		}
		n, err := b.src.Read(p)
		if n == len(p) && err == nil {
			b.bp = readBufs.Get().(*[]byte)
			b.keep = true
		}
		return n, err
	}
	if b.r == b.w {
		if b.err != nil {
			err := b.err
			b.err = nil
			return 0, err
		}
		buf := *b.bp
		n, err := b.src.Read(buf)
		if n == 0 {
			b.release()
			return 0, err
		}
		b.r, b.w, b.err = 0, n, err
		b.keep = n == len(buf) && err == nil
	}
	n := copy(p, (*b.bp)[b.r:b.w])
	b.r += n
	if b.r == b.w && !b.keep {
		b.release()
	}
	return n, nil
}

// release gives the borrowed buffer back; called only when it holds no unread bytes.
func (b *burstReader) release() {
	readBufs.Put(b.bp)
	b.bp, b.r, b.w = nil, 0, 0
}

func newReader(env *Env, self *actor.PID, conn net.Conn, link *Link) *reader {
	r := &reader{
		env:  env,
		self: self,
		link: link,
		src:  deadlineConn{Conn: link.conn, link: link}, // the Link's socket: raw system calls on plain TCP
		ctl:  make(chan *readerStart, 1),
	}
	r.burst.src = &r.src
	r.br = getIdleBuf(&r.burst)
	r.dec = *codec.NewReader(r.br, env.Cfg.Limits.MaxPacketSize)
	r.dec.ReuseAcks()
	// Plain TCP parks between packets; TLS and WebSocket connections are no syscall.Conn.
	if sc, ok := conn.(syscall.Conn); ok && getPoller() != nil {
		if raw, err := sc.SyscallConn(); err == nil {
			r.raw = raw
			link.onClose = r.socketClosed
		}
	}
	return r
}
