package hostile

// Slowloris: connections that hold a socket without doing their part. Each must be closed in
// bounded time, and cost no more than the queue limits while it lasts.

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/actormq/actormq/codec"
	"github.com/actormq/actormq/config"
	"github.com/actormq/actormq/internal/brokertest"
)

// TestNeverConnect: sockets that never send a byte are closed at limits.connect_timeout
// (§3.1.4: "If the Server does not receive a CONNECT packet within a reasonable amount of time
// after the Network Connection is established, the Server SHOULD close the Network
// Connection"), unanswered, each with a line in the log.
func TestNeverConnect(t *testing.T) {
	h := start(t, func(c *config.Config) { c.Limits.ConnectTimeout = config.Duration(500 * time.Millisecond) })
	y := h.bystander(t)
	const n = 50
	conns := make([]*brokertest.Conn, n)
	for i := range conns {
		conns[i] = h.dial(t, codec.V311)
	}
	errs := make([]error, n)
	parallel(n, n, func(i int) {
		errs[i] = checkClosedWith(closedOnly(conns[i]), 0)
		if errs[i] == nil {
			_, errs[i] = h.endLog(conns[i].Conn.LocalAddr(), nil)
		}
	})
	for i, err := range errs {
		if err != nil {
			t.Errorf("socket %d: %v", i, err)
		}
	}
	y.check(t)
}

// trickle writes b one byte every interval, watching the connection in between, until b is
// written or the broker closes the connection. It returns how many bytes went out and what
// the broker sent.
func trickle(c *brokertest.Conn, b []byte, interval time.Duration) (int, outcome) {
	var o outcome
	for i := range b {
		_ = c.Conn.SetWriteDeadline(time.Now().Add(wait))
		if _, err := c.Conn.Write(b[i : i+1]); err != nil {
			o.closed = true
			return i, o
		}
		more := await(c, interval, nil)
		o.pkts = append(o.pkts, more.pkts...)
		if more.closed {
			o.closed = true
			return i + 1, o
		}
	}
	return len(b), o
}

// trickleRaw is trickle for a socket that speaks no MQTT yet.
func trickleRaw(c net.Conn, b []byte, interval time.Duration) int {
	buf := make([]byte, 512)
	for i := range b {
		_ = c.SetWriteDeadline(time.Now().Add(wait))
		if _, err := c.Write(b[i : i+1]); err != nil {
			return i
		}
		_ = c.SetReadDeadline(time.Now().Add(interval))
		if _, err := c.Read(buf); err != nil {
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				return i + 1
			}
		}
	}
	return len(b)
}

// TestOneByteASecond: a client that sends a packet one byte a second cannot hold its
// connection by staying just inside a timeout:
//   - its CONNECT must be complete within limits.connect_timeout of the connection (§3.1.4);
//   - once connected, a packet must be complete within one and a half times the keep alive of
//     the previous one (3.1.1 [MQTT-3.1.2-24]; 5.0 [MQTT-3.1.2-22], DISCONNECT 0x8D): bytes of
//     a packet are not a Control Packet.
//
// The trickles run side by side; each must be closed long before its last byte.
func TestOneByteASecond(t *testing.T) {
	// The connect timeout is longer than the interval between bytes: renewed at every byte, it
	// would never expire.
	const connectTimeout, keepAlive = 1500 * time.Millisecond, 1
	h := start(t, func(c *config.Config) { c.Limits.ConnectTimeout = config.Duration(connectTimeout) })
	y := h.bystander(t)
	type trickler struct {
		name    string
		c       *brokertest.Conn
		raw     []byte
		code    codec.ReasonCode
		maxSent int // bytes the broker may take before it must have closed
	}
	var cases []trickler
	for _, v := range []codec.Version{codec.V311, codec.V5} {
		c := h.dial(t, v)
		connect, _ := encode(v, connectPacket("trickle-connect-"+v.String(), v, 30))
		cases = append(cases, trickler{"CONNECT " + v.String(), c, connect, 0, 5})
		c = h.mustConnect(t, "trickle-publish-"+v.String(), v, keepAlive)
		pub, _ := encode(v, &codec.Publish{QoS: 1, PacketID: 1, Topic: "trickle/t", Payload: []byte("one byte a second, forever")})
		code := codec.Success
		if v == codec.V5 {
			code = codec.KeepAliveTimeout
		}
		cases = append(cases, trickler{"PUBLISH " + v.String(), c, pub, code, 5})
	}
	var wg sync.WaitGroup
	for _, tc := range cases {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sent, o := trickle(tc.c, tc.raw, time.Second)
			if sent >= len(tc.raw) || sent > tc.maxSent {
				t.Errorf("%s: the broker took %d bytes at one a second (of %d) before it closed; want at most %d",
					tc.name, sent, len(tc.raw), tc.maxSent)
				return
			}
			if err := checkClosedWith(o, tc.code); err != nil {
				t.Errorf("%s: %v", tc.name, err)
				return
			}
			if _, err := h.endLog(tc.c.Conn.LocalAddr(), nil); err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
		}()
	}
	// The WebSocket handshake too: its request must be complete within the connect timeout
	// (the HTTP server's header timeout), or the socket is closed.
	wg.Add(1)
	go func() {
		defer wg.Done()
		c, err := net.DialTimeout("tcp", h.WS, wait)
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close()
		req := "GET /mqtt HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
			"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n"
		if sent := trickleRaw(c, []byte(req), time.Second); sent > 5 {
			t.Errorf("WebSocket handshake: the broker took %d bytes at one a second before it closed; want at most 5", sent)
		}
	}()
	wg.Wait()
	y.check(t)
}

// TestSlowConsumer: subscribers that stop reading their socket. The publisher and a healthy
// subscriber are not held up: the healthy one receives every message, in order. What waits
// for the stalled ones is bounded by the queue limits (connections.writer_queue,
// sessions.max_queued_messages, mqtt.max_inflight), past which their QoS 0 messages are
// dropped and counted in /metrics; the write timeout then closes them.
func TestSlowConsumer(t *testing.T) {
	const (
		writerQueue = 64
		queued      = 50
		inflight    = 16
		credits     = 64
		payloadSize = 16 << 10
		messages    = 3000 // 47 MiB: what each stalled subscriber would hold without the limits
		slowOnes    = 3
	)
	h := start(t, func(c *config.Config) {
		c.Connections.WriterQueue = writerQueue
		c.Sessions.MaxQueuedMessages = queued
		c.MQTT.MaxInflight = inflight
		c.Router.CreditWindow = credits
		c.Connections.WriteTimeout = config.Duration(time.Second)
	})
	y := h.bystander(t)

	var slow []*brokertest.Conn
	for i := range slowOnes {
		c := h.dial(t, codec.V311)
		_ = c.Conn.(*net.TCPConn).SetReadBuffer(4096) // stop reading: let the buffers fill soon
		if ack := c.Connect(fmt.Sprintf("slow-%d", i)); ack.ReasonCode != codec.Success {
			t.Fatalf("slow consumer refused: %v", ack.ReasonCode)
		}
		subscribe(t, c, "flood/#", 0)
		slow = append(slow, c) // and never read again
	}
	healthy := h.mustConnect(t, "healthy", codec.V311, 30)
	subscribe(t, healthy, "flood/#", 1)
	pub := h.mustConnect(t, "publisher", codec.V311, 30)

	// Heap while the flood goes on, sampled.
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	var peak uint64
	stopSampling := sampleEvery(50*time.Millisecond, func() {
		runtime.GC()
		runtime.ReadMemStats(&ms)
		peak = max(peak, ms.HeapInuse)
	})

	received := make(chan error, 1)
	go func() {
		for i := 0; i < messages; {
			p, err := healthy.ReadErr(wait)
			if err != nil {
				received <- fmt.Errorf("healthy subscriber, after %d messages: %w", i, err)
				return
			}
			m, ok := p.(*codec.Publish)
			if !ok {
				continue
			}
			if got := int(m.Payload[0])<<8 | int(m.Payload[1]); got != i {
				received <- fmt.Errorf("healthy subscriber: message %d arrived as number %d", got, i)
				return
			}
			i++
			if err := send(healthy, &codec.Puback{PacketID: m.PacketID}); err != nil {
				received <- err
				return
			}
		}
		received <- nil
	}()
	acked := make(chan error, 1)
	go func() {
		for i := range messages {
			p, err := pub.ReadErr(wait)
			if a, ok := p.(*codec.Puback); err != nil || !ok || a.PacketID != uint16(i+1) {
				acked <- fmt.Errorf("publisher: PUBACK %d: got %s, %v", i+1, describe(p), err)
				return
			}
		}
		acked <- nil
	}()
	payload := make([]byte, payloadSize)
	for i := range messages {
		payload[0], payload[1] = byte(i>>8), byte(i)
		if err := send(pub, &codec.Publish{QoS: 1, PacketID: uint16(i + 1), Topic: "flood/all", Payload: payload}); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	if err := <-acked; err != nil {
		t.Fatal(err)
	}
	if err := <-received; err != nil {
		t.Fatal(err)
	}
	stopSampling()
	peak = max(peak, heapInuse()) // and once more with the flood done, the stalled queues full

	// Each subscriber holds at most its writer queue, its session queue and its window of
	// messages, and the publisher's messages on their way hold its credits. They share the
	// publishes, but count them once each. Beyond that, 16 MiB of slack for the clients of this
	// test, the writers' buffers (up to 256 KiB each) and the heap's fragmentation.
	bound := uint64(((slowOnes+1)*(writerQueue+queued+inflight)+credits)*payloadSize + 16<<20)
	grew := peak - min(peak, base)
	t.Logf("heap grew by %.1f MiB at most while the subscribers stalled (bound %d MiB)", float64(grew)/(1<<20), bound>>20)
	if grew > bound {
		t.Errorf("heap grew by %d MiB while %d subscribers stalled; bound %d MiB (the queue limits), %d MiB published",
			grew>>20, slowOnes, bound>>20, messages*payloadSize>>20)
	}
	if d := h.mustMetric(t, "actormq_messages_dropped_total", map[string]string{"reason": "queue_full"}); d == 0 {
		t.Error(`actormq_messages_dropped_total{reason="queue_full"} = 0: the stalled subscribers' overflow was not counted`)
	}
	// The write timeout closes the stalled subscribers, each with a WARN line that says why.
	// (The client side cannot tell: the kernel may still hold, or reset, what it had not
	// delivered.)
	for _, c := range slow {
		h.expectEndLog(t, c, func(e observedEntry) bool { return strings.Contains(e.Message, "slow consumer") })
	}
	brokertest.WaitFor(t, wait, "the stalled subscribers' connections to end", func() bool {
		return h.Stats().Connections.Load() == 3 // bystander, healthy subscriber, publisher
	})
	y.check(t)
}

// httpStatus reads the status line of an HTTP response.
func httpStatus(c net.Conn) (int, error) {
	_ = c.SetReadDeadline(time.Now().Add(wait))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, err
	}
	_ = resp.Body.Close()
	return resp.StatusCode, nil
}

// TestAcknowledgementsNotRead: a client that publishes to itself (QoS 1, its subscription QoS
// 0) and never reads: neither the deliveries nor the PUBACKs. Its QoS 0 deliveries past the
// queue limits are dropped;
// acknowledgements are not (ARCHITECTURE.md), so once the queue is full the broker stops
// reading the client: it cannot make the broker hold its answers without bound, and TCP holds
// it back. Once its socket has taken nothing for connections.write_timeout it is closed,
// counted in actormq_slow_consumers_closed_total and logged at WARN.
func TestAcknowledgementsNotRead(t *testing.T) {
	h := start(t, func(c *config.Config) {
		c.Connections.WriterQueue = 16
		c.MQTT.MaxInflight = 8 // below the writer queue, as config requires
		c.Connections.WriteTimeout = config.Duration(time.Second)
	})
	y := h.bystander(t)
	c := h.mustConnect(t, "deaf", codec.V5, 30)
	subscribe(t, c, "deaf/t", 0)
	const offered = 96 << 20
	pub, _ := encode(codec.V5, &codec.Publish{QoS: 1, PacketID: 1, Topic: "deaf/t", Payload: make([]byte, 16<<10)})
	before := h.Stats().BytesIn.Load()
	sent := 0
	for sent < offered {
		_ = c.Conn.SetWriteDeadline(time.Now().Add(2 * wait))
		if _, err := c.Conn.Write(pub); err != nil {
			break // closed, or held back until the deadline
		}
		sent += len(pub)
	}
	h.expectEndLog(t, c, func(e observedEntry) bool { return strings.Contains(e.Message, "slow consumer") })
	if n := h.mustMetric(t, "actormq_slow_consumers_closed_total", nil); n != 1 {
		t.Errorf("actormq_slow_consumers_closed_total = %v, want 1", n)
	}
	read := h.Stats().BytesIn.Load() - before
	t.Logf("the client offered %d MiB, wrote %d MiB, the broker read %d MiB", offered>>20, sent>>20, read>>20)
	// Without the hold it reads all it is offered; with it, what the socket buffers took
	// and the publishes on their way when it stopped.
	if read > 32<<20 {
		t.Errorf("the broker read %d MiB from a client that read nothing back: it was not held back", read>>20)
	}
	y.check(t)
}

// TestPipelinerPausesReading: a client that pipelines QoS 1 publishes and reads their PUBACKs
// only after a pause (busy writing, a GC pause) is not a slow consumer: the broker stops
// reading it while its answers wait (TCP then holds the client back) and every publish is
// acknowledged once the client reads again. Only a client that takes nothing for
// connections.write_timeout is closed.
func TestPipelinerPausesReading(t *testing.T) {
	h := start(t)
	y := h.bystander(t)
	c := h.dial(t, codec.V311)
	_ = c.Conn.(*net.TCPConn).SetReadBuffer(4096) // the answers back up at once
	if ack := c.Connect("pipeliner"); ack.ReasonCode != codec.Success {
		t.Fatalf("CONNECT refused: %v", ack.ReasonCode)
	}
	const n = 5000
	var all []byte
	for i := range n {
		b, _ := encode(codec.V311, &codec.Publish{QoS: 1, PacketID: uint16(i + 1), Topic: "pipeline/t", Payload: []byte("x")})
		all = append(all, b...)
	}
	written := make(chan error, 1)
	go func() { written <- sendRaw(c, all) }()
	time.Sleep(300 * time.Millisecond) // not reading
	for i := range n {
		p, err := c.ReadErr(wait)
		if a, ok := p.(*codec.Puback); err != nil || !ok || a.PacketID != uint16(i+1) {
			t.Fatalf("PUBACK %d: got %s, %v", i+1, describe(p), err)
		}
	}
	if err := <-written; err != nil {
		t.Fatal(err)
	}
	if n := h.mustMetric(t, "actormq_slow_consumers_closed_total", nil); n != 0 {
		t.Errorf("actormq_slow_consumers_closed_total = %v, want 0", n)
	}
	y.check(t)
}

// stallLimits are the small limits of the stall tests: a window of 8, a queue of 10, 16
// credits, and connections.write_timeout (the bound on a stall) of a second.
func stallLimits(c *config.Config) {
	c.MQTT.MaxInflight = 8
	c.Sessions.MaxQueuedMessages = 10
	c.Router.CreditWindow = 16
	c.Connections.WriteTimeout = config.Duration(time.Second)
}

// TestSubscriberNeverAcks: a QoS 1 subscriber that reads everything it is sent but never
// acknowledges it. Its window (mqtt.max_inflight) fills, then its queue; what comes next for
// it is parked, holding the publisher's credits, but for connections.write_timeout at most:
// then its queue's limit and drop policy apply, and the publisher and the healthy subscriber
// go on.
func TestSubscriberNeverAcks(t *testing.T) {
	h := start(t, stallLimits)
	y := h.bystander(t)
	deaf := h.mustConnect(t, "never-acks", codec.V311, 30)
	subscribe(t, deaf, "acks/#", 1)
	go readAll(deaf) // read everything, acknowledge nothing
	healthy := h.mustConnect(t, "acks-healthy", codec.V311, 30)
	subscribe(t, healthy, "acks/#", 1)
	pub := h.mustConnect(t, "acks-publisher", codec.V311, 30)
	const n = 200
	go func() {
		for i := range n {
			if send(pub, &codec.Publish{QoS: 1, PacketID: uint16(i + 1), Topic: "acks/t", Payload: []byte{byte(i)}}) != nil {
				return
			}
		}
	}()
	for i := range n {
		p, err := healthy.ReadErr(wait)
		m, ok := p.(*codec.Publish)
		if err != nil || !ok {
			t.Fatalf("the healthy subscriber got %d of %d messages, then %s, %v", i, n, describe(p), err)
		}
		_ = send(healthy, &codec.Puback{PacketID: m.PacketID})
	}
	for i := range n {
		if p, err := pub.ReadErr(wait); err != nil || p.Type() != codec.TypePuback {
			t.Fatalf("the publisher got %d of %d PUBACKs, then %s, %v", i, n, describe(p), err)
		}
	}
	y.check(t)
}

// TestIdleSubscriberIsNotStalled: a subscriber that completed its last message long ago (more
// than connections.write_timeout) and then gets a burst larger than its window and queue is
// idle, not stalled. Its messages wait with their publisher's credit, so none is dropped; the
// stall clock starts when messages begin to wait for it. It used to run from its last
// completed message, which declared such a subscriber stalled a millisecond after the burst
// began and dropped what its queue could not hold (the rare failure of TestSubscriberNeverAcks
// under -race, whose healthy subscriber idled while the deaf one held the publisher).
func TestIdleSubscriberIsNotStalled(t *testing.T) {
	h := start(t, stallLimits)
	sub := h.mustConnect(t, "idle-sub", codec.V311, 30)
	subscribe(t, sub, "idle/#", 1)
	pub := h.mustConnect(t, "idle-pub", codec.V311, 30)
	// One message completed, then idle for longer than the write timeout.
	pub.Send(&codec.Publish{QoS: 1, PacketID: 1, Topic: "idle/t", Payload: []byte{0}})
	m, ok := sub.Read().(*codec.Publish)
	if !ok {
		t.Fatal("the first message did not arrive")
	}
	sub.Send(&codec.Puback{PacketID: m.PacketID})
	time.Sleep(1500 * time.Millisecond)

	const n = 100
	go func() {
		for i := 1; i <= n; i++ {
			if send(pub, &codec.Publish{QoS: 1, PacketID: uint16(i + 1), Topic: "idle/t", Payload: []byte{byte(i)}}) != nil {
				return
			}
		}
	}()
	time.Sleep(300 * time.Millisecond) // the window, the queue and the credits fill; less than the write timeout
	for i := 1; i <= n; i++ {
		p, err := sub.ReadErr(wait)
		m, ok := p.(*codec.Publish)
		if err != nil || !ok || m.Payload[0] != byte(i) {
			t.Fatalf("message %d: got %s, %v; want every message, in order", i, describe(p), err)
		}
		_ = send(sub, &codec.Puback{PacketID: m.PacketID})
	}
	if d := h.mustMetric(t, "actormq_messages_dropped_total", map[string]string{"reason": "queue_full"}); d != 0 {
		t.Errorf("%v messages dropped for a subscriber that was only idle", d)
	}
}

// TestStallEndsWithItsConnection: a subscriber found stalled (it read but acknowledged nothing
// for connections.write_timeout) that connects again is judged afresh. Its new connection's
// messages wait with their publisher's credit, as any connected subscriber's do, so none is
// dropped while it catches up. The session used to keep the stall across the takeover, so
// until the new connection completed a message, what its queue could not hold was dropped.
func TestStallEndsWithItsConnection(t *testing.T) {
	h := start(t, stallLimits)
	kept := func(p *codec.Connect) { p.CleanStart = false } // the session outlives the connection
	deaf := h.dial(t, codec.V311)
	deaf.Connect("restall-sub", kept)
	subscribe(t, deaf, "restall/#", 1)
	go readAll(deaf) // read everything, acknowledge nothing
	pub := h.mustConnect(t, "restall-pub", codec.V311, 30)
	go readAll(pub) // PUBACKs are not what this test checks: take them out of the way
	publish := func(phase byte, n int) {
		for i := range n {
			if send(pub, &codec.Publish{QoS: 1, PacketID: uint16(int(phase)*n + i + 1), Topic: "restall/t", Payload: []byte{phase, byte(i)}}) != nil {
				return
			}
		}
	}
	const n = 100
	go publish(0, n)
	dropped := func() float64 {
		return h.mustMetric(t, "actormq_messages_dropped_total", map[string]string{"reason": "queue_full"})
	}
	brokertest.WaitFor(t, wait, "the subscriber that never acknowledges to be found stalled (messages dropped)", func() bool {
		return dropped() > 0
	})
	brokertest.WaitFor(t, wait, "the stalled subscriber's overflow to settle", func() bool {
		d := dropped()
		time.Sleep(100 * time.Millisecond)
		return dropped() == d
	})
	before := dropped()

	// The same client again, taking its session over [MQTT-3.1.4-3]. Once connected, it
	// reads nothing at first, while a burst larger than its window and queue comes for it.
	sub := h.dial(t, codec.V311)
	if ack := sub.Connect("restall-sub", kept); !ack.SessionPresent {
		t.Fatalf("got %s, want CONNACK with Session Present", describe(ack))
	}
	go publish(1, n)
	time.Sleep(300 * time.Millisecond) // the window, the queue and the credits fill; less than the write timeout
	next := 0
	for next < n {
		p, err := sub.ReadErr(wait)
		m, ok := p.(*codec.Publish)
		if err != nil || !ok {
			t.Fatalf("after %d of the burst's %d messages: got %s, %v", next, n, describe(p), err)
		}
		_ = send(sub, &codec.Puback{PacketID: m.PacketID})
		if m.Payload[0] == 0 {
			continue // the first burst's, kept through the stall and sent again [MQTT-4.4.0-1]
		}
		if int(m.Payload[1]) != next {
			t.Fatalf("message %d of the burst: got %d; want every message, in order", next, m.Payload[1])
		}
		next++
	}
	if d := dropped() - before; d != 0 {
		t.Errorf("%v messages dropped for a subscriber that had connected again", d)
	}
}
