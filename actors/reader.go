package actors

import (
	"bufio"
	"io"
	"net"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/actormq/actormq/auth"
	"github.com/actormq/actormq/codec"
	"github.com/actormq/actormq/topics"
)

// reader is a connection's reader goroutine. It decodes packets and routes PUBLISH packets
// to their router shard itself (the hot path skips the connection actor); every other packet
// goes to the connection actor. It never writes to the socket except through the Link.
type reader struct {
	env  *Env
	self *actor.PID
	link *Link
	src  *deadlineConn
	dec  *codec.Reader

	// start is how the actor lets the reader go on after CONNECT: closed without a value when
	// the connection was refused.
	start chan readerStart
	quit  chan struct{} // closed when the actor stops

	// Set from readerStart.
	version  codec.Version
	clientID string
	session  *actor.PID
	gen      uint64
	aliases  []string // inbound topic aliases, index = alias-1; made at the first one set
	aliasMax int      // our Topic Alias Maximum

	// auth.go: guard is the one check the publish path pays when auth is off.
	more  chan struct{} // the actor wants one more packet before start: an AUTH [MQTT-4.12.0-2]
	guard bool
	user  string
	limit *auth.PublishLimit
}

// readerStart is what the reader needs once the session has accepted the connection.
type readerStart struct {
	clientID  string
	session   *actor.PID
	gen       uint64
	keepAlive time.Duration // 0: none
	aliasMax  int
	user      string
}

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
	var st readerStart
wait:
	for {
		select {
		case s, ok := <-r.start:
			if !ok {
				return
			}
			st = s
			break wait
		case <-r.more:
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
		case <-r.quit:
			return
		}
	}
	r.version = r.dec.Version()
	r.clientID, r.session, r.gen = st.clientID, st.session, st.gen
	r.aliasMax = st.aliasMax
	if a := r.env.Auth; a != nil {
		r.user, r.limit = st.user, a.NewPublishLimit()
		r.guard = a.HasACL() || r.limit != nil
	}
	// The client must send something within 1.5 times its keep alive [MQTT-3.1.2-24].
	r.src.timeout = st.keepAlive * 3 / 2

	for {
		// While the client's answers back up, read nothing more from it: TCP holds it back.
		if !r.link.waitBacklog(r.quit) {
			return
		}
		pkt, err := r.read()
		if err != nil {
			r.send(&readerEnded{err: err})
			return
		}
		switch p := pkt.(type) {
		case *codec.Publish:
			if v := r.publish(p); v == stopReading {
				return
			} else if v != nil {
				r.send(v)
				return
			}
		case *codec.Pingreq:
			_ = r.link.Send(pingresp) // [MQTT-3.12.4-1]
		case *codec.Connect:
			r.send(&violation{code: codec.ProtocolError, msg: "a second CONNECT"}) // [MQTT-3.1.0-2]
			return
		case *codec.Subscribe, *codec.Unsubscribe:
			r.link.owe() // its SUBACK or UNSUBACK: the reader waits when too many are owed
			r.send(pkt)
		case *codec.Disconnect:
			r.send(p)
			return // nothing may follow a DISCONNECT [MQTT-3.14.4-1]
		case *codec.Connack, *codec.Suback, *codec.Unsuback, *codec.Pingresp:
			// Only a server sends these: from a client they are "an unexpected packet", a
			// Protocol Error (5.0 §2.4, 0x82) that closes the connection (3.1.1 [MQTT-4.8.0-1]).
			r.send(&violation{code: codec.ProtocolError, msg: pkt.Type().String() + " is sent by servers, not clients"})
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
	rt := newRoute(r.env, p, r.clientID, r.link, received)
	// Take a credit: when the router is behind, this blocks, the socket is not read, and TCP
	// pushes back on the client.
	select {
	case r.link.Credits <- struct{}{}:
	case <-r.quit:
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

// deadlineConn sets the read deadline when the socket is read, so the keep-alive and connect
// timeouts cost nothing per packet: bufio calls Read only when its buffer is empty. The
// deadline runs from the first read after a complete packet: bytes that do not complete one do
// not renew it, so a client trickling a packet byte by byte is closed all the same. The CONNECT
// must be complete within the connect timeout, and every later packet within one and a half
// times the keep alive of the one before (3.1.1 [MQTT-3.1.2-24], 5.0 [MQTT-3.1.2-22]).
type deadlineConn struct {
	net.Conn
	timeout  time.Duration
	deadline bool   // a deadline is set on the socket
	packets  uint64 // complete packets read (the reader counts them)
	renewed  uint64 // packets when the deadline was set
	stats    *Stats
	link     *Link // per-client byte count, for the console
}

func (d *deadlineConn) Read(b []byte) (int, error) {
	if d.timeout > 0 {
		if !d.deadline || d.packets != d.renewed {
			_ = d.Conn.SetReadDeadline(time.Now().Add(d.timeout))
			d.deadline, d.renewed = true, d.packets
		}
	} else if d.deadline {
		_ = d.Conn.SetReadDeadline(time.Time{})
		d.deadline = false
	}
	n, err := d.Conn.Read(b)
	d.stats.BytesIn.Add(uint64(n))
	d.link.BytesIn.Add(uint64(n))
	return n, err
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
	src := &deadlineConn{Conn: conn, stats: env.Stats, link: link}
	return &reader{
		env:   env,
		self:  self,
		link:  link,
		src:   src,
		dec:   codec.NewReader(bufio.NewReaderSize(&burstReader{src: src}, idleBufSize), env.Cfg.Limits.MaxPacketSize),
		start: make(chan readerStart, 1),
		more:  make(chan struct{}, 1),
		quit:  make(chan struct{}),
	}
}
