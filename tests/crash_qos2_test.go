package tests

import (
	"cmp"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/actormq/actormq/codec"
)

// TestCrashKill9QoS2ExactlyOnce is TestCrashKill9LosesNothingAcknowledged for QoS 2: the broker
// runs as a real process under steady QoS 2 load and is killed with SIGKILL several times at
// random moments, then started again on the same data_dir. Publishers and the subscriber keep
// their session state across reconnects as real clients do and resend what is unfinished, with
// DUP set and the same packet identifier [MQTT-4.4.0-1]. Every message a publisher got a PUBCOMP
// for must reach the subscriber, and none may reach it twice: QoS 2 is exactly once
// [MQTT-4.3.3-1], also across a crash, since with store.sync = "batch" the broker acknowledges
// only what is on disk.
func TestCrashKill9QoS2ExactlyOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the broker and kills it several times")
	}
	kills := crashKills()
	cr := newCrashBroker(t)
	cr.start()

	// epoch is the number of kills so far, recorded with each event to tell when it happened.
	epoch := new(atomic.Int32)
	sub := newCrashQoS2Subscriber(t, cr.addr, epoch)
	const publishers = 3
	pubs := make([]*crashQoS2Publisher, publishers)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for i := range pubs {
		pubs[i] = &crashQoS2Publisher{
			t: t, id: fmt.Sprintf("crash2-pub-%d", i), addr: cr.addr, epoch: epoch,
			acked: map[uint32]*qos2Flight{}, inflight: map[uint16]*qos2Flight{},
		}
		wg.Add(1)
		go func(p *crashQoS2Publisher) { defer wg.Done(); p.run(stop) }(pubs[i])
	}
	cr.killAtRandom(kills, func(k int) {
		epoch.Add(1)
		t.Logf("kill %d: %d acknowledged so far, %d received, %d duplicates", k, countAckedQoS2(pubs), sub.count(), sub.duplicates())
	})
	close(stop)
	wg.Wait()

	// Every acknowledged message arrives; the subscriber reconnects by itself.
	deadline := time.Now().Add(20 * time.Second)
	missing := missingQoS2(pubs, sub)
	for len(missing) > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		missing = missingQoS2(pubs, sub)
	}
	// A duplicate may come after the last original (a resend once the session resumes): give
	// it a moment before counting.
	time.Sleep(time.Second)
	sub.close()
	total := countAckedQoS2(pubs)
	if len(missing) > 0 {
		t.Errorf("%d acknowledged messages never reached the persistent subscriber (%d acknowledged, %d received):\n%s",
			len(missing), total, sub.count(), strings.Join(missing[:min(len(missing), 40)], "\n"))
	}
	if total < 50 {
		t.Errorf("only %d messages acknowledged across %d kills: the load did not run", total, kills)
	}
	if d := sub.duplicates(); d != 0 {
		reports := sub.dupReports()
		t.Errorf("%d messages delivered more than once at QoS 2:\n%s", d, strings.Join(reports[:min(len(reports), 40)], "\n"))
	}
	t.Logf("%d kills, %d messages acknowledged, %d missing (%d deliveries, %d duplicates)",
		kills, total, len(missing), sub.deliveries(), sub.duplicates())
	cr.stopGracefully()
	if t.Failed() {
		// What the broker warned about, to tell a drop (a queue limit, a failed write) from a loss.
		var lines []string
		for _, l := range strings.Split(cr.log.String(), "\n") {
			if strings.Contains(l, "WARN") || strings.Contains(l, "ERROR") {
				lines = append(lines, l)
			}
		}
		t.Logf("broker warnings and errors (%d):\n%s", len(lines), strings.Join(lines[:min(len(lines), 30)], "\n"))
	}
	cr.expectNoPanic()
}

func countAckedQoS2(pubs []*crashQoS2Publisher) int {
	n := 0
	for _, p := range pubs {
		p.mu.Lock()
		n += len(p.acked)
		p.mu.Unlock()
	}
	return n
}

// missingQoS2 lists the acknowledged messages the subscriber has not got, with their history.
func missingQoS2(pubs []*crashQoS2Publisher, sub *crashQoS2Subscriber) []string {
	var missing []string
	for _, p := range pubs {
		p.mu.Lock()
		for seq, f := range p.acked {
			if !sub.has(p.id, seq) {
				missing = append(missing, fmt.Sprintf("  %s/%d: %s", p.id, seq, f))
			}
		}
		p.mu.Unlock()
	}
	slices.Sort(missing)
	return missing
}

// qos2Flight is an outgoing QoS 2 message not yet completed: PUBLISH sent, and once released
// (PUBREC received) PUBREL sent. The connection numbers (the publisher's, one more per kill)
// and the epoch are for the report.
type qos2Flight struct {
	seq      uint32
	id       uint16
	released bool

	sentOn, recOn, compOn int   // connection of the first PUBLISH, of PUBREC, of PUBCOMP
	resent                int   // PUBLISHes sent again with DUP
	compEpoch             int32 // kills before PUBCOMP
}

func (f *qos2Flight) String() string {
	return fmt.Sprintf("packet id %d, PUBLISH on connection %d, resent %d times with DUP, PUBREC on connection %d, PUBCOMP on connection %d after kill %d",
		f.id, f.sentOn, f.resent, f.recOn, f.compOn, f.compEpoch)
}

// crashQoS2Publisher publishes numbered QoS 2 messages with a window of unfinished ones. Its
// session state (inflight, lastID, next) is in memory across reconnects, as a real client's:
// after a reconnect it sends again every PUBLISH not yet PUBREC'd, with DUP set and the same
// packet identifier, and every PUBREL not yet PUBCOMP'd [MQTT-4.4.0-1]. A message is
// acknowledged once its PUBCOMP arrives.
type crashQoS2Publisher struct {
	t     *testing.T
	id    string
	addr  string
	epoch *atomic.Int32

	mu    sync.Mutex
	acked map[uint32]*qos2Flight // by message number

	// Touched only by run's goroutine.
	inflight map[uint16]*qos2Flight
	next     uint32
	lastID   uint16
	conns    int
}

func (p *crashQoS2Publisher) run(stop <-chan struct{}) {
	crashSessions(p.addr, p.id, stop, func(conn net.Conn, r *codec.Reader) {
		p.conns++
		p.session(conn, r, stop)
	})
}

func (p *crashQoS2Publisher) session(conn net.Conn, r *codec.Reader, stop <-chan struct{}) {
	const window = 32
	// A reader goroutine hands packets over, so that all session state stays on this one.
	pkts := make(chan codec.Packet, 64)
	go func() {
		defer close(pkts)
		for {
			pkt, err := r.ReadPacket()
			if err != nil {
				return
			}
			pkts <- pkt
		}
	}()
	defer func() {
		// Ends the reader; what the broker acknowledged before counts. Releases owed now are
		// sent on the next connection.
		_ = conn.Close()
		for pkt := range pkts {
			p.handle(nil, pkt)
		}
	}()

	// Resume the session in the original order.
	flights := make([]*qos2Flight, 0, len(p.inflight))
	for _, f := range p.inflight {
		flights = append(flights, f)
	}
	slices.SortFunc(flights, func(a, b *qos2Flight) int { return cmp.Compare(a.seq, b.seq) })
	for _, f := range flights {
		var pkt codec.Packet = &codec.Pubrel{PacketID: f.id}
		if !f.released {
			pkt = p.publish(f, true)
			f.resent++
		}
		if !crashWrite(conn, pkt) {
			return
		}
	}

	for {
		select {
		case <-stop:
			return
		default:
		}
		if len(p.inflight) < window {
			select {
			case pkt, ok := <-pkts:
				if !ok || !p.handle(conn, pkt) {
					return
				}
				continue
			default:
			}
			p.next++
			f := &qos2Flight{seq: p.next, id: p.freeID(), sentOn: p.conns}
			p.inflight[f.id] = f
			if !crashWrite(conn, p.publish(f, false)) {
				return
			}
			continue
		}
		select {
		case <-stop:
			return
		case pkt, ok := <-pkts:
			if !ok || !p.handle(conn, pkt) {
				return
			}
		}
	}
}

func (p *crashQoS2Publisher) publish(f *qos2Flight, dup bool) *codec.Publish {
	payload := fmt.Sprintf("%s/%d", p.id, f.seq)
	return &codec.Publish{Dup: dup, QoS: 2, PacketID: f.id, Topic: "crash2/" + p.id, Payload: []byte(payload)}
}

// freeID is the next packet identifier not in use by an unfinished message.
func (p *crashQoS2Publisher) freeID() uint16 {
	for {
		p.lastID = p.lastID%60000 + 1
		if p.inflight[p.lastID] == nil {
			return p.lastID
		}
	}
}

// handle processes a packet from the broker; conn is nil once the connection is closed.
// It reports whether the connection is still usable.
func (p *crashQoS2Publisher) handle(conn net.Conn, pkt codec.Packet) bool {
	switch m := pkt.(type) {
	case *codec.Pubrec:
		f := p.inflight[m.PacketID]
		if f == nil {
			return true // a late answer to a message completed already
		}
		if !f.released {
			f.released, f.recOn = true, p.conns
		}
		if conn != nil {
			return crashWrite(conn, &codec.Pubrel{PacketID: m.PacketID})
		}
	case *codec.Pubcomp:
		f := p.inflight[m.PacketID]
		if f == nil {
			return true
		}
		if !f.released {
			p.t.Errorf("%s: PUBCOMP %d for message %d, whose PUBREL was never sent", p.id, m.PacketID, f.seq)
			return true
		}
		delete(p.inflight, m.PacketID)
		f.compOn, f.compEpoch = p.conns, p.epoch.Load()
		p.mu.Lock()
		p.acked[f.seq] = f
		p.mu.Unlock()
	}
	return true
}

func crashWrite(conn net.Conn, pkt codec.Packet) bool {
	b, err := codec.Append(nil, pkt, codec.V311)
	if err != nil {
		panic(err)
	}
	_, err = conn.Write(b)
	return err == nil
}

// qos2Delivery is one message handed to the subscriber application, for the report.
type qos2Delivery struct {
	packetID uint16
	dup      bool
	conn     int   // the subscriber's connection number
	epoch    int32 // kills so far
	relOn    int   // the connection that last got a PUBREL for this packet id, 0 if none
}

func (d qos2Delivery) String() string {
	return fmt.Sprintf("packet id %d DUP=%v on connection %d after kill %d (id last released on connection %d)",
		d.packetID, d.dup, d.conn, d.epoch, d.relOn)
}

// crashQoS2Subscriber is a persistent 3.1.1 subscriber to crash2/# at QoS 2 that reconnects
// whenever its connection is lost. Its receiver state is in memory across reconnects, as a
// real client's: a PUBLISH whose packet identifier it holds (received, not yet released) is
// answered with PUBREC and not delivered again [MQTT-4.3.3-1].
type crashQoS2Subscriber struct {
	t     *testing.T
	addr  string
	epoch *atomic.Int32
	stop  chan struct{}
	done  chan struct{}

	// Touched only by the reading goroutine: packet id -> message held, until its PUBREL.
	unreleased map[uint16]string
	releasedOn map[uint16]int // packet id -> connection of its last PUBREL, for the report
	conns      int

	mu   sync.Mutex // guards what follows, and writes to conn
	conn net.Conn
	got  map[string][]qos2Delivery // "publisher/seq" -> its deliveries
	n    int                       // deliveries
	dups int
}

func newCrashQoS2Subscriber(t *testing.T, addr string, epoch *atomic.Int32) *crashQoS2Subscriber {
	s := &crashQoS2Subscriber{
		t: t, addr: addr, epoch: epoch, stop: make(chan struct{}), done: make(chan struct{}),
		unreleased: map[uint16]string{}, releasedOn: map[uint16]int{}, got: map[string][]qos2Delivery{},
	}
	conn, r, _ := crashDial(addr, "crash2-sub", s.stop)
	// Subscribed once: on later connections the session, and the subscription, are present.
	if !crashWrite(conn, &codec.Subscribe{PacketID: 1, Subscriptions: []codec.Subscription{{Filter: "crash2/#", QoS: 2}}}) {
		t.Fatal("could not send SUBSCRIBE")
	}
	if p, err := r.ReadPacket(); err != nil {
		t.Fatal(err)
	} else if ack, ok := p.(*codec.Suback); !ok {
		t.Fatalf("expected SUBACK, got %T", p)
	} else if len(ack.ReasonCodes) != 1 || ack.ReasonCodes[0] != 2 {
		t.Fatalf("SUBACK %v: QoS 2 not granted", ack.ReasonCodes)
	}
	s.conn = conn
	s.conns = 1
	go func() {
		defer close(s.done)
		for {
			s.read(conn, r)
			_ = conn.Close()
			var ok bool
			if conn, r, ok = crashDial(addr, "crash2-sub", s.stop); !ok {
				return
			}
			s.mu.Lock()
			select {
			case <-s.stop: // close ran before this connection was known to it
				s.mu.Unlock()
				_ = conn.Close()
				return
			default:
			}
			s.conn = conn
			s.conns++
			s.mu.Unlock()
		}
	}()
	return s
}

// read handles the packets of one connection until it ends. No read deadline: after a
// timeout inside a packet the stream could not be read on.
func (s *crashQoS2Subscriber) read(conn net.Conn, r *codec.Reader) {
	for {
		pkt, err := r.ReadPacket()
		if err != nil {
			return
		}
		var answer codec.Packet
		switch m := pkt.(type) {
		case *codec.Publish:
			if m.QoS != 2 {
				s.t.Errorf("PUBLISH %q at QoS %d: subscribed at QoS 2, published at QoS 2", m.Payload, m.QoS)
				if m.QoS == 1 {
					answer = &codec.Puback{PacketID: m.PacketID}
				}
				break
			}
			key := string(m.Payload)
			if held, ok := s.unreleased[m.PacketID]; ok {
				if held != key {
					s.t.Errorf("PUBLISH %q with packet id %d, which still holds %q (no PUBREL yet): not delivered",
						key, m.PacketID, held)
				}
			} else {
				s.unreleased[m.PacketID] = key
				s.deliver(m)
			}
			answer = &codec.Pubrec{PacketID: m.PacketID}
		case *codec.Pubrel:
			delete(s.unreleased, m.PacketID)
			s.releasedOn[m.PacketID] = s.conns
			answer = &codec.Pubcomp{PacketID: m.PacketID}
		}
		if answer != nil {
			s.mu.Lock()
			ok := crashWrite(conn, answer)
			s.mu.Unlock()
			if !ok {
				return
			}
		}
	}
}

func (s *crashQoS2Subscriber) deliver(m *codec.Publish) {
	key := string(m.Payload)
	i := strings.LastIndexByte(key, '/')
	if _, err := strconv.ParseUint(key[i+1:], 10, 32); i < 0 || err != nil || m.Topic != "crash2/"+key[:i] {
		s.t.Errorf("unexpected message %q on %q", key, m.Topic)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n++
	if len(s.got[key]) > 0 {
		s.dups++
	}
	s.got[key] = append(s.got[key], qos2Delivery{packetID: m.PacketID, dup: m.Dup, conn: s.conns, epoch: s.epoch.Load(), relOn: s.releasedOn[m.PacketID]})
}

func (s *crashQoS2Subscriber) has(pub string, seq uint32) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.got[fmt.Sprintf("%s/%d", pub, seq)]) > 0
}

func (s *crashQoS2Subscriber) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.got)
}

func (s *crashQoS2Subscriber) deliveries() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

func (s *crashQoS2Subscriber) duplicates() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dups
}

// dupReports describes each message delivered more than once, with every delivery of it.
func (s *crashQoS2Subscriber) dupReports() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for key, ds := range s.got {
		if len(ds) > 1 {
			parts := make([]string, len(ds))
			for i, d := range ds {
				parts[i] = d.String()
			}
			out = append(out, fmt.Sprintf("  %s: %s", key, strings.Join(parts, "; ")))
		}
	}
	slices.Sort(out)
	return out
}

// close says goodbye, so that the broker handles every acknowledgement sent before, and waits
// for the reading goroutine.
func (s *crashQoS2Subscriber) close() {
	close(s.stop)
	s.mu.Lock()
	if s.conn != nil {
		crashWrite(s.conn, &codec.Disconnect{})
		_ = s.conn.Close()
	}
	s.mu.Unlock()
	<-s.done
}
