package hostile

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/actormq/actormq/codec"
	"github.com/actormq/actormq/config"
	"github.com/actormq/actormq/internal/brokertest"
)

// observedEntry is one log line the broker wrote.
type observedEntry = observer.LoggedEntry

// wait bounds every "must happen within" of the suite. It is generous: two shared cores,
// other engineers' builds and -race; none of these tests measures speed.
const wait = 10 * time.Second

// harness is a broker started for one hostile test: the console is on (for /metrics and the
// actor restart counts) and every log line at INFO and above is kept.
type harness struct {
	*brokertest.Broker
	t       *testing.T
	logs    *observer.ObservedLogs
	console string
}

// start starts the broker and registers the checks every case ends with (checkHealthy).
func start(t *testing.T, mutate ...func(*config.Config)) *harness {
	t.Helper()
	b, logs := brokertest.StartObserved(t, append([]func(*config.Config){func(c *config.Config) {
		c.Console.Listen = "127.0.0.1:0"
		c.Console.SysInterval = 0 // no $SYS traffic in the way of exact expectations
	}}, mutate...)...)
	h := &harness{Broker: b, t: t, logs: logs, console: "http://" + b.ConsoleAddr().String()}
	// Registered after brokertest's leak check, so it runs before it, and after the test's own
	// cleanups have closed its clients.
	t.Cleanup(h.checkHealthy)
	return h
}

// checkHealthy: nothing panicked and no actor failed (protoactor recovers a panic in an actor
// and logs it below WARN, so the restart counters of /metrics are checked as well as the
// log), the broker logged no ERROR (it keeps ERROR for its own faults, not for bad input), and
// a new client is served.
func (h *harness) checkHealthy() {
	t := h.t
	for _, e := range h.logs.All() {
		if e.Level >= zapcore.ErrorLevel || mentionsPanic(e) {
			t.Errorf("broker logged %s %q %v", e.Level, e.Message, e.ContextMap())
		}
	}
	if n, err := h.metric("actormq_actor_restarts_total", nil); err != nil {
		t.Errorf("/metrics: %v", err)
	} else if n != 0 {
		t.Errorf("actormq_actor_restarts_total = %v: an actor failed", n)
	}
	if err := roundTrip(h.TCP5, "health-check"); err != nil {
		t.Errorf("after the test the broker does not serve a new client: %v", err)
	}
}

func mentionsPanic(e observer.LoggedEntry) bool {
	if strings.Contains(strings.ToLower(e.Message), "panic") {
		return true
	}
	return strings.Contains(strings.ToLower(fmt.Sprint(e.ContextMap())), "panic")
}

// ---- logs ----

// endLog waits for a line at INFO or above about the connection whose client side is local
// (the broker's "remote" field), other than the one every connect logs, and for which match
// (if not nil) holds.
func (h *harness) endLog(local net.Addr, match func(observer.LoggedEntry) bool) (observer.LoggedEntry, error) {
	remote := local.String()
	deadline := time.Now().Add(wait)
	for {
		for _, e := range h.logs.All() {
			if e.Level < zapcore.InfoLevel || e.Message == "client connected" {
				continue
			}
			if r, _ := e.ContextMap()["remote"].(string); r == remote && (match == nil || match(e)) {
				return e, nil
			}
		}
		if time.Now().After(deadline) {
			return observer.LoggedEntry{}, fmt.Errorf("no INFO/WARN line about the connection from %s within %v", remote, wait)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// expectEndLog is endLog for the test goroutine.
func (h *harness) expectEndLog(t testing.TB, c *brokertest.Conn, match func(observer.LoggedEntry) bool) observer.LoggedEntry {
	t.Helper()
	e, err := h.endLog(c.Conn.LocalAddr(), match)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// clientLog waits for a line at INFO or above about clientID (its "client" field), other than
// the one every connect logs, for which match (if not nil) holds.
func (h *harness) clientLog(t testing.TB, clientID string, match func(observedEntry) bool) observedEntry {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		for _, e := range h.logs.All() {
			if e.Level >= zapcore.InfoLevel && e.Message != "client connected" &&
				e.ContextMap()["client"] == clientID && (match == nil || match(e)) {
				return e
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no INFO/WARN line about client %q within %v", clientID, wait)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// reasonIs matches a line whose "reason" field names code.
func reasonIs(code codec.ReasonCode) func(observer.LoggedEntry) bool {
	return func(e observer.LoggedEntry) bool { return e.ContextMap()["reason"] == code.String() }
}

// logged waits for a line at INFO or above whose message contains msg (for lines about no
// single connection, such as the connection limit's).
func (h *harness) logged(t testing.TB, msg string) observer.LoggedEntry {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		for _, e := range h.logs.All() {
			if e.Level >= zapcore.InfoLevel && strings.Contains(e.Message, msg) {
				return e
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no INFO/WARN line containing %q within %v", msg, wait)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ---- /metrics ----

// httpClient keeps no idle connections: the leak check counts the console's goroutines.
var httpClient = &http.Client{Timeout: wait, Transport: &http.Transport{DisableKeepAlives: true}}

// metric is the sum of the series of the named family whose labels include labels.
func (h *harness) metric(name string, labels map[string]string) (float64, error) {
	resp, err := httpClient.Get(h.console + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var parser expfmt.TextParser
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return 0, fmt.Errorf("not Prometheus text: %w", err)
	}
	var sum float64
	for _, m := range brokertest.Series(families, name, labels) {
		sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
	}
	return sum, nil
}

// sampleEvery runs sample every d on a goroutine of its own until the returned stop is
// called; stop returns once the last sample is done, so what sample wrote may be read.
func sampleEvery(d time.Duration, sample func()) (stop func()) {
	done, sampled := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			select {
			case <-done:
				return
			case <-time.After(d):
			}
			sample()
		}
	}()
	return func() {
		close(done)
		<-sampled
	}
}

// deepestMailbox samples the deepest session and router shard mailbox (/metrics) every 20 ms
// until the returned stop is called, which returns the deepest seen.
func (h *harness) deepestMailbox() (stop func() float64) {
	var deepest float64
	stopSampling := sampleEvery(20*time.Millisecond, func() {
		for _, kind := range []string{"session", "router shard"} {
			if d, err := h.metric("actormq_mailbox_depth_max", map[string]string{"kind": kind}); err == nil {
				deepest = max(deepest, d)
			}
		}
	})
	return func() float64 {
		stopSampling()
		return deepest
	}
}

// mustMetric is metric for the test goroutine.
func (h *harness) mustMetric(t testing.TB, name string, labels map[string]string) float64 {
	t.Helper()
	v, err := h.metric(name, labels)
	if err != nil {
		t.Fatalf("/metrics: %v", err)
	}
	return v
}

// ---- raw clients that report errors instead of failing the test, for goroutines ----

// addrOf is the listener a client of version v dials: 5.0 on "mqtt5", 3.x on "mqtt".
func (h *harness) addrOf(v codec.Version) string {
	if v == codec.V5 {
		return h.TCP5
	}
	return h.TCP311
}

func connectPacket(id string, v codec.Version, keepAlive uint16) *codec.Connect {
	p := &codec.Connect{ProtocolName: "MQTT", Version: v, CleanStart: true, KeepAlive: keepAlive, ClientID: id}
	if v == codec.V31 {
		p.ProtocolName = "MQIsdp"
	}
	return p
}

// connect dials the listener of version v and connects id with a clean session.
func (h *harness) connect(id string, v codec.Version, keepAlive uint16) (*brokertest.Conn, error) {
	c, err := brokertest.TryDial(h.t, h.addrOf(v), v)
	if err != nil {
		return nil, err
	}
	if err := send(c, connectPacket(id, v, keepAlive)); err != nil {
		return nil, err
	}
	p, err := c.ReadErr(wait)
	if err != nil {
		return nil, fmt.Errorf("CONNECT %s: %w", id, err)
	}
	if ack, ok := p.(*codec.Connack); !ok || ack.ReasonCode != codec.Success {
		return nil, fmt.Errorf("CONNECT %s: got %s, want CONNACK Success", id, describe(p))
	}
	return c, nil
}

// mustConnect is connect for the test goroutine.
func (h *harness) mustConnect(t testing.TB, id string, v codec.Version, keepAlive uint16) *brokertest.Conn {
	t.Helper()
	c, err := h.connect(id, v, keepAlive)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// subscribe subscribes c to filter and waits for its SUBACK.
func subscribe(t testing.TB, c *brokertest.Conn, filter string, qos byte) {
	t.Helper()
	c.Send(&codec.Subscribe{PacketID: 1, Subscriptions: []codec.Subscription{{Filter: filter, QoS: qos}}})
	if _, ok := c.Read().(*codec.Suback); !ok {
		t.Fatal("no SUBACK")
	}
}

// readAll reads and drops whatever c is sent, answering nothing, until its connection ends
// (or nothing comes for twice the test's wait). Run it as a goroutine.
func readAll(c *brokertest.Conn) {
	for {
		if _, err := c.ReadErr(2 * wait); err != nil {
			return
		}
	}
}

// dial opens a socket to the listener of version v and sends nothing.
func (h *harness) dial(t testing.TB, v codec.Version) *brokertest.Conn {
	t.Helper()
	return brokertest.Dial(t, h.addrOf(v), v)
}

func encode(v codec.Version, pkts ...codec.Packet) ([]byte, error) {
	var b []byte
	for _, p := range pkts {
		var err error
		if b, err = codec.Append(b, p, v); err != nil {
			return nil, fmt.Errorf("encode %T: %w", p, err)
		}
	}
	return b, nil
}

func send(c *brokertest.Conn, pkts ...codec.Packet) error {
	b, err := encode(c.Version, pkts...)
	if err != nil {
		return err
	}
	return sendRaw(c, b)
}

func sendRaw(c *brokertest.Conn, b []byte) error {
	_ = c.Conn.SetWriteDeadline(time.Now().Add(wait))
	_, err := c.Conn.Write(b)
	return err
}

// outcome is what the broker did after a client sent something.
type outcome struct {
	pkts   []codec.Packet // what it sent, in order
	closed bool           // it closed the connection
	err    error          // neither: a timeout, or bytes that are no valid packet
}

func (o outcome) String() string {
	s := describe(o.pkts...)
	switch {
	case o.closed:
		s += ", then closed"
	case o.err != nil:
		s += fmt.Sprintf(", then %v", o.err)
	}
	return s
}

// await reads until until(p) holds for a packet, the connection closes, or d passes.
// Publishes that subscriptions bring in are acknowledged and left out, with the PUBRELs that
// follow at QoS 2: they are traffic, not the answer awaited.
func await(c *brokertest.Conn, d time.Duration, until func(codec.Packet) bool) outcome {
	var o outcome
	deadline := time.Now().Add(d)
	for {
		p, err := c.ReadErr(time.Until(deadline))
		if err != nil {
			var ce *codec.Error
			var ne net.Error
			switch {
			case errors.As(err, &ce):
				o.err = fmt.Errorf("the broker sent bytes that do not decode: %w", err)
			case errors.As(err, &ne) && ne.Timeout():
				o.err = fmt.Errorf("neither answered nor closed within %v", d)
			default:
				o.closed = true
			}
			return o
		}
		if pub, ok := p.(*codec.Publish); ok {
			if pub.QoS == 1 {
				_ = send(c, &codec.Puback{PacketID: pub.PacketID})
			} else if pub.QoS == 2 {
				_ = send(c, &codec.Pubrec{PacketID: pub.PacketID})
			}
			continue
		}
		if rel, ok := p.(*codec.Pubrel); ok && rel.ReasonCode == codec.Success {
			// The rest of a QoS 2 delivery acknowledged above (an answer to a client's PUBREC
			// for an id the broker does not know carries 0x92).
			_ = send(c, &codec.Pubcomp{PacketID: rel.PacketID})
			continue
		}
		o.pkts = append(o.pkts, p)
		if until != nil && until(p) {
			return o
		}
	}
}

func isPingresp(p codec.Packet) bool { _, ok := p.(*codec.Pingresp); return ok }

// closedOnly waits for the close; nothing is awaited.
func closedOnly(c *brokertest.Conn) outcome { return await(c, wait, nil) }

// checkClosedWith: the broker closed the connection after sending nothing (3.x, or before a
// CONNECT) or, when code is not 0, exactly one DISCONNECT with that reason code (5.0).
func checkClosedWith(o outcome, code codec.ReasonCode) error {
	if !o.closed {
		return fmt.Errorf("got %s, want the connection closed", o)
	}
	if code == 0 {
		if len(o.pkts) != 0 {
			return fmt.Errorf("got %s, want a close with nothing before it", o)
		}
		return nil
	}
	if len(o.pkts) != 1 {
		return fmt.Errorf("got %s, want DISCONNECT %s and a close", o, code)
	}
	if d, ok := o.pkts[0].(*codec.Disconnect); !ok || d.ReasonCode != code {
		return fmt.Errorf("got %s, want DISCONNECT %s and a close", o, code)
	}
	return nil
}

// expectClosedWith is checkClosedWith for the test goroutine: 5.0 clients expect the
// DISCONNECT with code, 3.x clients a silent close.
func expectClosedWith(t testing.TB, c *brokertest.Conn, code codec.ReasonCode) {
	t.Helper()
	if c.Version != codec.V5 {
		code = 0
	}
	if err := checkClosedWith(closedOnly(c), code); err != nil {
		t.Fatal(err)
	}
}

// alive checks that the connection still works: PINGREQ gets PINGRESP [MQTT-3.12.4-1].
func alive(c *brokertest.Conn) error {
	if err := send(c, &codec.Pingreq{}); err != nil {
		return err
	}
	o := await(c, wait, isPingresp)
	if o.closed || o.err != nil || len(o.pkts) != 1 {
		return fmt.Errorf("PINGREQ: got %s, want PINGRESP only", o)
	}
	return nil
}

func describe(pkts ...codec.Packet) string {
	if len(pkts) == 0 {
		return "nothing"
	}
	var parts []string
	for _, p := range pkts {
		s := fmt.Sprintf("%T", p)
		s = strings.ToUpper(strings.TrimPrefix(s, "*codec."))
		switch p := p.(type) {
		case *codec.Connack:
			s += fmt.Sprintf(" 0x%02X", byte(p.ReasonCode))
		case *codec.Disconnect:
			s += " " + p.ReasonCode.String()
		case *codec.Puback:
			s += fmt.Sprintf(" %d %s", p.PacketID, p.ReasonCode)
		case *codec.Pubrec:
			s += fmt.Sprintf(" %d %s", p.PacketID, p.ReasonCode)
		case *codec.Pubrel:
			s += fmt.Sprintf(" %d %s", p.PacketID, p.ReasonCode)
		case *codec.Pubcomp:
			s += fmt.Sprintf(" %d %s", p.PacketID, p.ReasonCode)
		case *codec.Suback:
			s += fmt.Sprintf(" %d %v", p.PacketID, p.ReasonCodes)
		case *codec.Unsuback:
			s += fmt.Sprintf(" %d %v", p.PacketID, p.ReasonCodes)
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ", ")
}

// roundTrip connects a fresh 5.0 client, publishes at QoS 1 to a topic it subscribed to and
// receives it: the broker serves new clients.
func roundTrip(addr, id string) error {
	conn, err := net.DialTimeout("tcp", addr, wait)
	if err != nil {
		return err
	}
	defer conn.Close()
	c := &brokertest.Conn{Conn: conn, R: codec.NewReader(bufio.NewReader(conn), 0), Version: codec.V5}
	c.R.SetVersion(codec.V5)
	if err := send(c, connectPacket(id, codec.V5, 30)); err != nil {
		return err
	}
	if o := await(c, wait, func(p codec.Packet) bool { return true }); len(o.pkts) != 1 || !isSuccessConnack(o.pkts[0]) {
		return fmt.Errorf("CONNECT: got %s", o)
	}
	topic := id + "/t"
	if err := send(c, &codec.Subscribe{PacketID: 1, Subscriptions: []codec.Subscription{{Filter: topic, QoS: 1}}}); err != nil {
		return err
	}
	if o := await(c, wait, func(p codec.Packet) bool { return true }); len(o.pkts) != 1 || o.pkts[0].Type() != codec.TypeSuback {
		return fmt.Errorf("SUBSCRIBE: got %s", o)
	}
	if err := send(c, &codec.Publish{QoS: 1, PacketID: 2, Topic: topic, Payload: []byte("ok")}); err != nil {
		return err
	}
	var acked, got bool
	deadline := time.Now().Add(wait)
	for !acked || !got {
		p, err := c.ReadErr(time.Until(deadline))
		if err != nil {
			return fmt.Errorf("publish round trip: %w", err)
		}
		switch p := p.(type) {
		case *codec.Puback:
			acked = p.PacketID == 2
		case *codec.Publish:
			got = string(p.Payload) == "ok"
			_ = send(c, &codec.Puback{PacketID: p.PacketID})
		}
	}
	return send(c, &codec.Disconnect{})
}

func isSuccessConnack(p codec.Packet) bool {
	ack, ok := p.(*codec.Connack)
	return ok && ack.ReasonCode == codec.Success
}

// ---- the bystander ----

// bystander is a 5.0 client that publishes QoS 1 messages to a topic it subscribed to, one
// after the other, from the start of a test to its end, and checks that each comes back once,
// in order, and is acknowledged. A hostile client must never disturb it.
type bystander struct {
	c      *brokertest.Conn
	topic  string
	rounds atomic.Int64
	stop   chan struct{}
	done   chan struct{}

	mu  sync.Mutex
	err error
}

// roundTimeout bounds one publish and its delivery back.
const roundTimeout = wait

// bystander connects the bystander and starts it; it stops and reports at the end of the test.
func (h *harness) bystander(t testing.TB) *bystander {
	t.Helper()
	c := h.mustConnect(t, "bystander", codec.V5, 60)
	y := &bystander{c: c, topic: "bystander/" + t.Name(), stop: make(chan struct{}), done: make(chan struct{})}
	if err := send(c, &codec.Subscribe{PacketID: 1, Subscriptions: []codec.Subscription{{Filter: y.topic, QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	if ack, ok := c.Read().(*codec.Suback); !ok || len(ack.ReasonCodes) != 1 || ack.ReasonCodes[0] != codec.GrantedQoS1 {
		t.Fatalf("bystander SUBACK %+v", ack)
	}
	go y.run()
	// Registered after the socket's close, so it runs first: stop the loop, then let the
	// socket go.
	t.Cleanup(func() {
		y.halt()
		if err := y.failure(); err != nil {
			t.Errorf("bystander: %v", err)
		} else if y.rounds.Load() == 0 {
			t.Errorf("bystander: not one message went round")
		}
	})
	return y
}

func (y *bystander) run() {
	defer close(y.done)
	for i := 1; ; i++ {
		select {
		case <-y.stop:
			return
		default:
		}
		if err := y.round(i); err != nil {
			select {
			case <-y.stop: // the read was interrupted to stop
			default:
				y.fail(err)
			}
			return
		}
		y.rounds.Add(1)
		select {
		case <-y.stop:
			return
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// round publishes message i and waits for its PUBACK and its delivery.
func (y *bystander) round(i int) error {
	id := uint16(i%65535 + 1)
	payload := fmt.Appendf(nil, "message %d", i)
	if err := send(y.c, &codec.Publish{QoS: 1, PacketID: id, Topic: y.topic, Payload: payload}); err != nil {
		return fmt.Errorf("publish %d: %w", i, err)
	}
	var acked, delivered bool
	deadline := time.Now().Add(roundTimeout)
	for !acked || !delivered {
		p, err := y.c.ReadErr(time.Until(deadline))
		if err != nil {
			return fmt.Errorf("message %d: PUBACK %v, delivered %v: %w", i, acked, delivered, err)
		}
		switch p := p.(type) {
		case *codec.Puback:
			if p.PacketID != id || p.ReasonCode != codec.Success || acked {
				return fmt.Errorf("message %d: got %s, want PUBACK %d Success", i, describe(p), id)
			}
			acked = true
		case *codec.Publish:
			if p.Topic != y.topic || !bytes.Equal(p.Payload, payload) || delivered {
				return fmt.Errorf("message %d: received %q on %q: lost, duplicated or out of order", i, p.Payload, p.Topic)
			}
			delivered = true
			if err := send(y.c, &codec.Puback{PacketID: p.PacketID}); err != nil {
				return err
			}
		default:
			return fmt.Errorf("message %d: unexpected %s", i, describe(p))
		}
	}
	return nil
}

func (y *bystander) fail(err error) {
	y.mu.Lock()
	defer y.mu.Unlock()
	if y.err == nil {
		y.err = err
	}
}

func (y *bystander) failure() error {
	y.mu.Lock()
	defer y.mu.Unlock()
	return y.err
}

func (y *bystander) halt() {
	select {
	case <-y.stop:
		return
	default:
	}
	close(y.stop)
	_ = y.c.Conn.SetReadDeadline(time.Now()) // interrupt a read in progress
	<-y.done
	_ = send(y.c, &codec.Disconnect{})
}

// check asserts that the bystander has had no failure and goes on: two more messages go round
// after the call.
func (y *bystander) check(t testing.TB) {
	t.Helper()
	n := y.rounds.Load()
	deadline := time.Now().Add(2 * roundTimeout)
	for y.rounds.Load() < n+2 {
		if err := y.failure(); err != nil {
			t.Fatalf("bystander: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("bystander: no progress within %v", 2*roundTimeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
