package tests

import (
	"bufio"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"runtime"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/actormq/actormq/codec"
	"github.com/actormq/actormq/config"
	"github.com/actormq/actormq/supervisor"
)

// testBroker is a broker started for one test on free loopback ports.
type testBroker struct {
	*supervisor.Broker
	Cfg config.Config
	// host:port of each listener
	TCP311, TCP5, WS string
}

// startBroker starts a broker with the default configuration, every listener on 127.0.0.1
// port 0, changed by mutate. At the end of the test it checks that the broker's actors and
// goroutines are back to where they were once it had started (clients gone), then stops it.
func startBroker(t testing.TB, mutate ...func(*config.Config)) *testBroker {
	t.Helper()
	cfg := config.Default()
	for i := range cfg.Listeners {
		cfg.Listeners[i].Address = "127.0.0.1:0"
	}
	cfg.Console.Listen = ""
	for _, m := range mutate {
		m(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("test config: %v", err)
	}
	log := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	if os.Getenv("ACTORMQ_TEST_LOG") != "" {
		log = zaptest.NewLogger(t, zaptest.Level(zap.DebugLevel))
	}
	goroutinesBefore := runtime.NumGoroutine()
	b, err := supervisor.Start(cfg, log)
	if err != nil {
		t.Fatalf("start broker: %v", err)
	}
	tb := &testBroker{Broker: b, Cfg: cfg}
	for _, l := range cfg.Listeners {
		addr := b.Addr(l.Name).String()
		switch l.Name {
		case "mqtt":
			tb.TCP311 = addr
		case "mqtt5":
			tb.TCP5 = addr
		case "ws":
			tb.WS = addr
		}
	}
	actorsBaseline := b.ActorCount()
	goroutinesBaseline := runtime.NumGoroutine()
	// Registered first, so it runs after the test's own cleanups have closed its clients.
	t.Cleanup(func() {
		if !t.Failed() {
			tb.checkNoLeaks(t, actorsBaseline, goroutinesBaseline)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := b.Stop(ctx); err != nil {
			t.Errorf("stop broker: %v", err)
		}
		waitFor(t, 5*time.Second, "goroutines to return after Stop", func() bool {
			return runtime.NumGoroutine() <= goroutinesBefore+2
		})
	})
	return tb
}

// checkNoLeaks waits until the broker's actor count is back at its baseline (sessions that
// outlive their connections by design are the test's business: it must end them) and the
// process's goroutines are within a small tolerance of theirs.
func (b *testBroker) checkNoLeaks(t testing.TB, actors, goroutines int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if b.ActorCount() <= actors+int(b.Stats().Sessions.Load()) && runtime.NumGoroutine() <= goroutines+2 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Errorf("leak: actors %d (baseline %d + %d sessions), goroutines %d (baseline %d)",
		b.ActorCount(), actors, b.Stats().Sessions.Load(), runtime.NumGoroutine(), goroutines)
}

// waitFor polls cond until it holds or d passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// rawClient speaks MQTT with the project's codec over a plain socket, for the cases a client
// library will not produce (protocol violations, exact byte sequences).
type rawClient struct {
	t       testing.TB
	conn    net.Conn
	r       *codec.Reader
	version codec.Version
}

func dialRaw(t testing.TB, addr string, v codec.Version) *rawClient {
	t.Helper()
	c, err := tryDialRaw(t, addr, v)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	return c
}

// tryDialRaw is dialRaw for a listener that may not be accepting yet (polled with waitFor).
func tryDialRaw(t testing.TB, addr string, v codec.Version) (*rawClient, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { _ = conn.Close() })
	r := codec.NewReader(bufio.NewReader(conn), 0)
	r.SetVersion(v)
	return &rawClient{t: t, conn: conn, r: r, version: v}, nil
}

// connectsNow reports whether a 3.1.1 client can connect to addr right now.
func connectsNow(t testing.TB, addr, clientID string) (*rawClient, bool) {
	c, err := tryDialRaw(t, addr, codec.V311)
	if err != nil {
		return nil, false
	}
	c.send(&codec.Connect{ProtocolName: "MQTT", Version: codec.V311, CleanStart: true, KeepAlive: 30, ClientID: clientID})
	p, err := c.readErr(500 * time.Millisecond)
	if ack, ok := p.(*codec.Connack); err == nil && ok && ack.ReasonCode == codec.Success {
		return c, true
	}
	_ = c.conn.Close()
	return nil, false
}

// send encodes and writes a packet.
func (c *rawClient) send(p codec.Packet) {
	c.t.Helper()
	b, err := codec.Append(nil, p, c.version)
	if err != nil {
		c.t.Fatalf("encode %T: %v", p, err)
	}
	c.sendBytes(b)
}

// sendBytes writes raw bytes as they are.
func (c *rawClient) sendBytes(b []byte) {
	c.t.Helper()
	if _, err := c.conn.Write(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// read returns the next packet, failing the test after 5 s.
func (c *rawClient) read() codec.Packet {
	c.t.Helper()
	p, err := c.readErr(5 * time.Second)
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return p
}

func (c *rawClient) readErr(d time.Duration) (codec.Packet, error) {
	_ = c.conn.SetReadDeadline(time.Now().Add(d))
	return c.r.ReadPacket()
}

// connect sends a CONNECT for clientID (clean start) and returns the CONNACK.
func (c *rawClient) connect(clientID string, mutate ...func(*codec.Connect)) *codec.Connack {
	c.t.Helper()
	p := &codec.Connect{ProtocolName: "MQTT", Version: c.version, CleanStart: true, KeepAlive: 30, ClientID: clientID}
	if c.version == codec.V31 {
		p.ProtocolName = "MQIsdp"
	}
	for _, m := range mutate {
		m(p)
	}
	c.send(p)
	ack, ok := c.read().(*codec.Connack)
	if !ok {
		c.t.Fatalf("expected CONNACK")
	}
	return ack
}

// expectClosed asserts that the broker closes the connection within d, returning whatever
// packet (e.g. a DISCONNECT) it sent first, or nil.
func (c *rawClient) expectClosed(d time.Duration) codec.Packet {
	c.t.Helper()
	var last codec.Packet
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		p, err := c.readErr(time.Until(deadline))
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				break
			}
			return last // closed
		}
		last = p
	}
	c.t.Fatalf("connection not closed within %v (last packet %T)", d, last)
	return nil
}

// needProgram skips the test when a program from a Debian package is missing, and fails it
// instead under CI, where .ci/run installs the package.
func needProgram(t testing.TB, program, debianPackage string) string {
	t.Helper()
	path, err := exec.LookPath(program)
	if err == nil {
		return path
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s not found: install the Debian package %s (.ci/run does)", program, debianPackage)
	}
	t.Skipf("%s not found: install the Debian package %s to run this test", program, debianPackage)
	return ""
}
