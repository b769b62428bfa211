package main

import (
	"bufio"
	"cmp"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/actormq/actormq/codec"
)

// onPublish is called on the client's reader goroutine for every PUBLISH it
// receives. The payload is only valid during the call. rx is when the bytes reached the
// socket (realtime ns, from the kernel), 0 when the socket does not say.
type onPublish func(payload []byte, rx int64)

// client is the load generator's MQTT client: one socket, one reader
// goroutine, writes encoded with the project's codec into one reused buffer
// and flushed in batches. The publish path does not allocate.
type client struct {
	conn net.Conn
	ver  codec.Version

	// wmu guards everything written: the buffer, the reused packets and
	// the packet id counter.
	wmu    sync.Mutex
	wbuf   []byte
	pub    codec.Publish
	ack    codec.Puback
	rec    codec.Pubrec
	rel    codec.Pubrel
	comp   codec.Pubcomp
	nextID uint16
	werr   error

	br *bufio.Reader
	r  *codec.Reader
	rx *rxStamper // nil: deliveries are timed when read

	// tokens holds one slot per QoS 1/2 publish that may be in flight;
	// PUBACK / PUBCOMP give it back.
	tokens chan struct{}

	handler  onPublish
	suback   chan *codec.Suback
	done     chan struct{}
	rdone    chan struct{} // closed when the reader goroutine has returned
	closing  atomic.Bool
	failOnce sync.Once
	err      error
	rejected atomic.Int64 // PUBACK/PUBREC with a failure reason code
}

// flushAt is the buffer size past which a publisher flushes without waiting
// to block.
const flushAt = 32 << 10

type dialOpts struct {
	addr      target
	ver       codec.Version
	clientID  string
	keepAlive uint16
	inflight  int
	clean     bool
	timeout   time.Duration
	readBuf   int // the read buffer's size; 0: 32 KB, for clients that receive deliveries
	// held: the connection only connects and is held until closed (connect-rate, idle). It
	// gets no reader goroutine, no publish window and no write buffer beyond its CONNECT:
	// thousands are opened per second, and what they would allocate is the generator's
	// cost, not the broker's.
	held bool
	// timeAtSocket: deliveries are timed by when they reached the socket (rxstamp_linux.go).
	timeAtSocket bool
}

// dial opens the socket, sends CONNECT and waits for CONNACK. The reader
// goroutine starts only after, so the handler may be set before then.
func dial(o dialOpts, h onPublish) (*client, error) {
	conn, err := o.addr.dial(o.timeout)
	if err != nil {
		return nil, err
	}
	c := &client{
		conn:    conn,
		ver:     o.ver,
		handler: h,
		done:    make(chan struct{}),
	}
	var src io.Reader = conn
	if h != nil && o.timeAtSocket {
		if c.rx = newRxStamper(conn); c.rx != nil {
			src = c.rx
		}
	}
	c.br = bufio.NewReaderSize(src, cmp.Or(o.readBuf, 32<<10))
	if !o.held {
		c.wbuf = make([]byte, 0, 4096)
		c.suback = make(chan *codec.Suback, 1)
		c.rdone = make(chan struct{})
	}
	c.r = codec.NewReader(c.br, 0)
	c.r.SetVersion(o.ver)
	cp := &codec.Connect{Version: o.ver, CleanStart: o.clean, KeepAlive: o.keepAlive, ClientID: o.clientID}
	if !o.clean && o.ver == codec.V5 {
		cp.Properties.SetSessionExpiryInterval(300) // a 5.0 session outlives its connection only with one
	}
	if c.wbuf, err = codec.Append(c.wbuf[:0], cp, o.ver); err != nil {
		conn.Close()
		return nil, err
	}
	_ = conn.SetDeadline(time.Now().Add(o.timeout))
	if _, err := conn.Write(c.wbuf); err != nil {
		conn.Close()
		return nil, err
	}
	c.wbuf = c.wbuf[:0]
	p, err := c.r.ReadPacket()
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("read CONNACK: %w", err)
	}
	ack, ok := p.(*codec.Connack)
	if !ok {
		conn.Close()
		return nil, fmt.Errorf("expected CONNACK, got %v", p.Type())
	}
	if ack.ReasonCode != 0 {
		conn.Close()
		return nil, fmt.Errorf("CONNACK refused: 0x%02x", byte(ack.ReasonCode))
	}
	_ = conn.SetDeadline(time.Time{})
	if o.held {
		return c, nil
	}
	n := o.inflight
	if rm, ok := ack.Properties.ReceiveMaximum(); ok && int(rm) < n {
		n = int(rm)
	}
	if n < 1 {
		n = 1
	}
	c.tokens = make(chan struct{}, n)
	for range n {
		c.tokens <- struct{}{}
	}
	go c.readLoop()
	return c, nil
}

func (c *client) fail(err error) {
	c.failOnce.Do(func() {
		c.err = err
		close(c.done)
		_ = c.conn.Close()
	})
}

// flushLocked writes the buffer out; wmu is held.
func (c *client) flushLocked() error {
	if c.werr != nil {
		return c.werr
	}
	if len(c.wbuf) == 0 {
		return nil
	}
	_, err := c.conn.Write(c.wbuf)
	c.wbuf = c.wbuf[:0]
	if err != nil {
		c.werr = err
		c.fail(err)
	}
	return err
}

// Flush writes whatever is buffered.
func (c *client) Flush() error {
	c.wmu.Lock()
	err := c.flushLocked()
	c.wmu.Unlock()
	return err
}

func (c *client) nextPacketID() uint16 {
	c.nextID++
	if c.nextID == 0 {
		c.nextID = 1
	}
	return c.nextID
}

// Publish buffers a PUBLISH. For QoS 1/2 it first takes an inflight slot,
// flushing and blocking when there is none. It flushes by itself only past
// flushAt bytes; callers flush before they wait.
func (c *client) Publish(topic string, payload []byte, qos byte, retain bool) error {
	if qos > 0 {
		select {
		case <-c.tokens:
		default:
			if err := c.Flush(); err != nil {
				return err
			}
			select {
			case <-c.tokens:
			case <-c.done:
				return c.errOr()
			}
		}
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.werr != nil {
		return c.werr
	}
	c.pub.Topic = topic
	c.pub.Payload = payload
	c.pub.QoS = qos
	c.pub.Retain = retain
	c.pub.PacketID = 0
	if qos > 0 {
		c.pub.PacketID = c.nextPacketID()
	}
	var err error
	c.wbuf, err = codec.Append(c.wbuf, &c.pub, c.ver)
	if err != nil {
		return err
	}
	if len(c.wbuf) >= flushAt {
		return c.flushLocked()
	}
	return nil
}

func (c *client) errOr() error {
	if c.err != nil {
		return c.err
	}
	return errors.New("connection closed")
}

// Subscribe sends one SUBSCRIBE and waits for its SUBACK.
func (c *client) Subscribe(filter string, qos byte, timeout time.Duration) error {
	c.wmu.Lock()
	s := &codec.Subscribe{PacketID: c.nextPacketID(), Subscriptions: []codec.Subscription{{Filter: filter, QoS: qos}}}
	var err error
	c.wbuf, err = codec.Append(c.wbuf, s, c.ver)
	if err == nil {
		err = c.flushLocked()
	}
	c.wmu.Unlock()
	if err != nil {
		return err
	}
	select {
	case sa := <-c.suback:
		if len(sa.ReasonCodes) != 1 || sa.ReasonCodes[0] >= 0x80 {
			return fmt.Errorf("subscribe %q refused: %v", filter, sa.ReasonCodes)
		}
		return nil
	case <-c.done:
		return c.errOr()
	case <-time.After(timeout):
		return fmt.Errorf("subscribe %q: no SUBACK within %v", filter, timeout)
	}
}

// InflightIdle reports whether every QoS 1/2 publish has been acknowledged.
func (c *client) InflightIdle() bool { return len(c.tokens) == cap(c.tokens) }

// Ping sends PINGREQ.
func (c *client) Ping() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.wbuf, _ = codec.Append(c.wbuf, &codec.Pingreq{}, c.ver)
	return c.flushLocked()
}

// Close sends DISCONNECT and closes the socket.
func (c *client) Close() {
	c.closing.Store(true)
	c.wmu.Lock()
	c.wbuf, _ = codec.Append(c.wbuf, &codec.Disconnect{}, c.ver)
	_ = c.conn.SetWriteDeadline(time.Now().Add(time.Second))
	_ = c.flushLocked()
	c.wmu.Unlock()
	c.fail(errors.New("closed"))
}

// writeAck buffers an acknowledgement; the reader loop flushes before it
// blocks, so acks leave in batches.
func (c *client) writeAck(t codec.PacketType, id uint16) {
	c.wmu.Lock()
	var p codec.Packet
	switch t {
	case codec.TypePuback:
		c.ack.PacketID = id
		p = &c.ack
	case codec.TypePubrec:
		c.rec.PacketID = id
		p = &c.rec
	case codec.TypePubrel:
		c.rel.PacketID = id
		p = &c.rel
	default:
		c.comp.PacketID = id
		p = &c.comp
	}
	c.wbuf, _ = codec.Append(c.wbuf, p, c.ver)
	if len(c.wbuf) >= flushAt {
		_ = c.flushLocked()
	}
	c.wmu.Unlock()
}

func (c *client) giveToken() {
	select {
	case c.tokens <- struct{}{}:
	default: // an ack for a publish we did not count; ignore
	}
}

func (c *client) readLoop() {
	defer close(c.rdone)
	for {
		if c.br.Buffered() == 0 {
			// About to block in read(2): send the acks gathered so far.
			c.wmu.Lock()
			_ = c.flushLocked()
			c.wmu.Unlock()
		}
		p, err := c.r.ReadPacket()
		if err != nil {
			if !c.closing.Load() {
				c.fail(fmt.Errorf("read: %w", err))
			} else {
				c.fail(err)
			}
			return
		}
		switch p := p.(type) {
		case *codec.Publish:
			switch p.QoS {
			case 1:
				c.writeAck(codec.TypePuback, p.PacketID)
			case 2:
				c.writeAck(codec.TypePubrec, p.PacketID)
			}
			if c.handler != nil {
				var rx int64
				if c.rx != nil {
					rx = c.rx.last
				}
				c.handler(p.Payload, rx)
			}
		case *codec.Puback:
			if p.ReasonCode >= 0x80 {
				c.rejected.Add(1)
			}
			c.giveToken()
		case *codec.Pubrec:
			if p.ReasonCode >= 0x80 {
				c.rejected.Add(1)
				c.giveToken()
				continue
			}
			c.writeAck(codec.TypePubrel, p.PacketID)
		case *codec.Pubrel:
			c.writeAck(codec.TypePubcomp, p.PacketID)
		case *codec.Pubcomp:
			c.giveToken()
		case *codec.Suback:
			select {
			case c.suback <- p:
			default:
			}
		case *codec.Pingresp:
		case *codec.Disconnect:
			c.fail(fmt.Errorf("broker sent DISCONNECT 0x%02x", byte(p.ReasonCode)))
			return
		}
	}
}
