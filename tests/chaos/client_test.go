package chaos

import (
	"bufio"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/actormq/actormq/codec"
)

// client is an MQTT client with a persistent session that keeps its session state across
// connections, as a real device does, and reconnects whenever its connection is lost (a
// killed connection actor, a stopped session, a listener that is down for a moment).
//
// As a publisher it keeps a window of unacknowledged QoS 1/2 publishes and sends them again,
// with DUP, after a reconnect [MQTT-4.4.0-1]; a publish is owed to the subscribers once the
// broker acknowledged it (PUBACK, or PUBREC for QoS 2, with a success code). As a subscriber it
// records every message it receives, delivering a QoS 2 message once per packet id until its
// PUBREL (the receiver's side of exactly once, [MQTT-4.3.3-9..-12]).
type client struct {
	id      string
	version codec.Version
	addr    string
	subs    []codec.Subscription

	mu        sync.Mutex
	conn      net.Conn
	connected chan struct{} // closed while connected; replaced when the connection is lost
	connects  int
	lostState int // reconnects that did not find the session present

	// publisher
	nextID  uint16
	out     map[uint16]*outPub
	order   []uint16 // ids of out in send order
	window  chan struct{}
	acked   map[string]bool // payloads the broker acknowledged with success
	failed  int             // publishes answered with a failure code
	sent    [3]int          // publishes sent, by QoS
	pending int             // QoS 1/2 publishes not yet answered

	// subscriber
	rel   map[uint16]bool     // QoS 2 received and PUBREC sent, waiting for PUBREL
	got   map[string]int      // deliveries per payload
	seqs  map[string][]uint64 // per "publisher topic": the sequence numbers, in arrival order
	total int

	stop chan struct{}
	done chan struct{}
}

type outPub struct {
	p         *codec.Publish
	released  bool // QoS 2: PUBREC received, PUBREL sent
	answered  bool
	payloadID string
}

func newClient(id string, v codec.Version, addr string, window int, subs ...codec.Subscription) *client {
	return &client{
		id: id, version: v, addr: addr, subs: subs,
		connected: make(chan struct{}),
		out:       map[uint16]*outPub{},
		window:    make(chan struct{}, window),
		acked:     map[string]bool{},
		rel:       map[uint16]bool{},
		got:       map[string]int{},
		seqs:      map[string][]uint64{},
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
	}
}

// start connects with a session that outlives the connection (subscribing), then keeps the
// connection up. A 3.1.1 session outlives its connection only with clean session off.
func (c *client) start() error {
	conn, r, err := c.dial(c.version == codec.V5)
	if err != nil {
		return err
	}
	if len(c.subs) > 0 {
		if err := c.subscribe(conn, r); err != nil {
			return err
		}
	}
	go c.run(conn, r)
	return nil
}

func (c *client) subscribe(conn net.Conn, r *codec.Reader) error {
	sub := &codec.Subscribe{PacketID: 1, Subscriptions: c.subs}
	if err := c.write(conn, sub); err != nil {
		return err
	}
	p, err := r.ReadPacket()
	if err != nil {
		return err
	}
	ack, ok := p.(*codec.Suback)
	if !ok || len(ack.ReasonCodes) != len(c.subs) {
		return fmt.Errorf("%s: SUBACK expected, got %T", c.id, p)
	}
	for i, code := range ack.ReasonCodes {
		if code >= 0x80 {
			return fmt.Errorf("%s: subscription %q refused: %s", c.id, c.subs[i].Filter, code)
		}
	}
	return nil
}

// dial connects; clean asks for a fresh session. After the first connection the session must
// be present: the broker keeps it across whatever it went through.
func (c *client) dial(clean bool) (net.Conn, *codec.Reader, error) {
	conn, err := net.DialTimeout("tcp", c.addr, 2*time.Second)
	if err != nil {
		return nil, nil, err
	}
	r := codec.NewReader(bufio.NewReader(conn), 0)
	r.SetVersion(c.version)
	cp := &codec.Connect{ProtocolName: "MQTT", Version: c.version, CleanStart: clean, KeepAlive: 30, ClientID: c.id}
	if c.version == codec.V5 {
		cp.Properties.SetSessionExpiryInterval(600)
	}
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if err := c.write(conn, cp); err != nil {
		conn.Close()
		return nil, nil, err
	}
	p, err := r.ReadPacket()
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	ack, ok := p.(*codec.Connack)
	if !ok || ack.ReasonCode != codec.Success {
		conn.Close()
		return nil, nil, fmt.Errorf("%s: CONNACK %+v", c.id, p)
	}
	_ = conn.SetDeadline(time.Time{})
	c.mu.Lock()
	c.connects++
	if c.connects > 1 && !ack.SessionPresent {
		c.lostState++
	}
	c.mu.Unlock()
	return conn, r, nil
}

func (c *client) write(conn net.Conn, p codec.Packet) error {
	b, err := codec.Append(nil, p, c.version)
	if err != nil {
		return err
	}
	_ = conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err = conn.Write(b)
	return err
}

// run reads until the connection is lost, then reconnects (session kept) and resends what the
// session owes: unacknowledged publishes with DUP, PUBRELs of released ones.
func (c *client) run(conn net.Conn, r *codec.Reader) {
	defer close(c.done)
	for {
		c.mu.Lock()
		c.conn = conn
		close(c.connected)
		c.resendLocked()
		c.mu.Unlock()
		c.read(conn, r)
		conn.Close()
		c.mu.Lock()
		c.conn = nil
		c.connected = make(chan struct{})
		c.mu.Unlock()
		for {
			select {
			case <-c.stop:
				return
			default:
			}
			var err error
			if conn, r, err = c.dial(false); err == nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

func (c *client) resendLocked() {
	for _, id := range c.order {
		o := c.out[id]
		if o == nil {
			continue
		}
		if o.released {
			_ = c.write(c.conn, &codec.Pubrel{PacketID: id})
			continue
		}
		dup := *o.p
		dup.Dup = true
		_ = c.write(c.conn, &dup)
	}
}

func (c *client) read(conn net.Conn, r *codec.Reader) {
	for {
		p, err := r.ReadPacket()
		if err != nil {
			return
		}
		c.mu.Lock()
		switch p := p.(type) {
		case *codec.Publish:
			c.receiveLocked(conn, p)
		case *codec.Pubrel:
			delete(c.rel, p.PacketID)
			_ = c.write(conn, &codec.Pubcomp{PacketID: p.PacketID})
		case *codec.Puback:
			c.answeredLocked(p.PacketID, p.ReasonCode, true)
		case *codec.Pubrec:
			if o := c.out[p.PacketID]; o != nil && !o.released {
				if p.ReasonCode >= 0x80 {
					c.answeredLocked(p.PacketID, p.ReasonCode, true)
				} else {
					c.answeredLocked(p.PacketID, p.ReasonCode, false)
					o.released = true
					_ = c.write(conn, &codec.Pubrel{PacketID: p.PacketID})
				}
			}
		case *codec.Pubcomp:
			if o := c.out[p.PacketID]; o != nil && o.released {
				c.forgetLocked(p.PacketID)
			}
		case *codec.Disconnect:
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
	}
}

// answeredLocked records the broker's answer to a publish; done frees its packet id.
func (c *client) answeredLocked(id uint16, code codec.ReasonCode, done bool) {
	o := c.out[id]
	if o == nil {
		return
	}
	if !o.answered {
		o.answered = true
		c.pending--
		if code >= 0x80 {
			c.failed++
		} else {
			c.acked[o.payloadID] = true
		}
	}
	if done {
		c.forgetLocked(id)
	}
}

func (c *client) forgetLocked(id uint16) {
	delete(c.out, id)
	for i, x := range c.order {
		if x == id {
			c.order = append(c.order[:i], c.order[i+1:]...)
			break
		}
	}
	<-c.window
}

func (c *client) receiveLocked(conn net.Conn, p *codec.Publish) {
	switch p.QoS {
	case 1:
		_ = c.write(conn, &codec.Puback{PacketID: p.PacketID})
	case 2:
		seen := c.rel[p.PacketID]
		_ = c.write(conn, &codec.Pubrec{PacketID: p.PacketID})
		if seen {
			return // the same message again, before its PUBREL: delivered already
		}
		c.rel[p.PacketID] = true
	}
	payload := string(p.Payload)
	c.got[payload]++
	c.total++
	if pub, seq, ok := parsePayload(payload); ok {
		key := pub + " " + p.Topic
		c.seqs[key] = append(c.seqs[key], seq)
	}
}

// publish sends one numbered message, waiting for room in the window and for a connection.
func (c *client) publish(topic string, qos byte, seq uint64, retain bool) bool {
	payload := fmt.Sprintf("%s|%d", c.id, seq)
	if qos > 0 {
		select {
		case c.window <- struct{}{}:
		case <-c.stop:
			return false
		}
	}
	for {
		c.mu.Lock()
		if c.conn != nil {
			break
		}
		wait := c.connected
		c.mu.Unlock()
		select {
		case <-wait:
		case <-c.stop:
			if qos > 0 {
				<-c.window
			}
			return false
		}
	}
	defer c.mu.Unlock()
	p := &codec.Publish{Topic: topic, QoS: qos, Retain: retain, Payload: []byte(payload)}
	c.sent[qos]++
	if qos > 0 {
		for {
			c.nextID++
			if c.nextID == 0 {
				c.nextID = 1
			}
			if c.out[c.nextID] == nil {
				break
			}
		}
		p.PacketID = c.nextID
		c.out[p.PacketID] = &outPub{p: p, payloadID: payload}
		c.order = append(c.order, p.PacketID)
		c.pending++
	}
	_ = c.write(c.conn, p) // a failed write shows as a lost connection: resent after it
	return true
}

// settle waits until every publish has been answered, or d has passed; it returns how many
// were not.
func (c *client) settle(d time.Duration) int {
	deadline := time.Now().Add(d)
	for {
		c.mu.Lock()
		n := c.pending
		c.mu.Unlock()
		if n == 0 || time.Now().After(deadline) {
			return n
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// close ends the client: its session ends with it (5.0: Session Expiry 0 on DISCONNECT;
// 3.1.1: a clean connection).
func (c *client) close() {
	close(c.stop)
	c.mu.Lock()
	conn := c.conn
	c.mu.Unlock()
	if conn != nil {
		conn.Close()
	}
	<-c.done
	if conn, _, err := c.dial(c.version != codec.V5); err == nil {
		d := &codec.Disconnect{}
		if c.version == codec.V5 {
			d.Properties.SetSessionExpiryInterval(0)
		}
		_ = c.write(conn, d)
		conn.Close()
	}
}

// forget drops what the client recorded of its messages, once it is closed.
func (c *client) forget() {
	c.mu.Lock()
	c.out, c.order, c.acked, c.rel, c.got, c.seqs = nil, nil, nil, nil, nil, nil
	c.mu.Unlock()
}

func (c *client) has(payload string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.got[payload] > 0
}

// ackedPayloads lists the publishes the broker acknowledged, sorted.
func (c *client) ackedPayloads() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, 0, len(c.acked))
	for p := range c.acked {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// orderViolations: per publisher and topic, a message seen for the first time must come after
// every message seen before it (repeats of QoS 1 messages are allowed, anywhere). A member of
// a shared group passes peers: a message one of them got is a repeat for it too (a publisher's
// QoS 1 retransmission is routed again, to whichever member's turn it is).
func (c *client) orderViolations(peers ...*client) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var bad []string
	for key, seqs := range c.seqs {
		seen := map[uint64]bool{}
		pub, _, _ := strings.Cut(key, " ")
		for _, p := range peers {
			p.mu.Lock()
			for payload := range p.got {
				if from, s, ok := parsePayload(payload); ok && from == pub {
					seen[s] = true
				}
			}
			p.mu.Unlock()
		}
		var last uint64
		for _, s := range seqs {
			if seen[s] {
				continue
			}
			seen[s] = true
			if s < last {
				bad = append(bad, fmt.Sprintf("%s: %d after %d", key, s, last))
			}
			last = s
		}
	}
	return bad
}

func parsePayload(p string) (pub string, seq uint64, ok bool) {
	pub, n, found := strings.Cut(p, "|")
	if !found {
		return "", 0, false
	}
	seq, err := strconv.ParseUint(n, 10, 64)
	return pub, seq, err == nil
}
