// Package brokertest starts real brokers on free loopback ports for end-to-end tests and
// speaks raw MQTT to them with the project's codec. The end-to-end suites (tests, tests/chaos,
// tests/hostile) share it.
package brokertest

import (
	"bufio"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/actormq/actormq/actors"
	"github.com/actormq/actormq/codec"
	"github.com/actormq/actormq/config"
	"github.com/actormq/actormq/supervisor"
)

// Broker is a broker started for one test on free loopback ports.
type Broker struct {
	*supervisor.Broker
	Cfg config.Config
	// host:port of each listener
	TCP311, TCP5, WS string
}

// Config is the configuration Start begins with: the defaults (the on-disk store included),
// every listener on 127.0.0.1 port 0, the store in a directory of the test's own, the console
// off.
func Config(t testing.TB) config.Config {
	cfg := config.Default()
	for i := range cfg.Listeners {
		cfg.Listeners[i].Address = "127.0.0.1:0"
	}
	cfg.Console.Listen = ""
	cfg.Store.DataDir = t.TempDir()
	return cfg
}

// Start starts a broker with Config, changed by mutate. At the end of the test it checks that
// the broker's actors and goroutines are back to where they were once it had started (clients
// gone), then stops it.
func Start(t testing.TB, mutate ...func(*config.Config)) *Broker {
	t.Helper()
	return start(t, nil, mutate)
}

// StartObserved is Start with every log line of the broker at INFO and above also kept in
// memory, for tests that assert what the broker logs (the test's output still shows WARN and
// above only).
func StartObserved(t testing.TB, mutate ...func(*config.Config)) (*Broker, *observer.ObservedLogs) {
	t.Helper()
	core, logs := observer.New(zap.InfoLevel)
	return start(t, core, mutate), logs
}

func start(t testing.TB, extra zapcore.Core, mutate []func(*config.Config)) *Broker {
	t.Helper()
	cfg := Config(t)
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
	if extra != nil {
		log = log.WithOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core { return zapcore.NewTee(c, extra) }))
	}
	goroutinesBefore := goroutines()
	b, err := supervisor.Start(cfg, log)
	if err != nil {
		t.Fatalf("start broker: %v", err)
	}
	tb := &Broker{Broker: b, Cfg: cfg}
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
	goroutinesBaseline := goroutines()
	// Registered first, so it runs after the test's own cleanups have closed its clients.
	t.Cleanup(func() {
		if !t.Failed() {
			tb.CheckNoLeaks(t, actorsBaseline, goroutinesBaseline)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := b.Stop(ctx); err != nil {
			t.Errorf("stop broker: %v", err)
		}
		WaitFor(t, 5*time.Second, "goroutines to return after Stop", func() bool {
			return goroutines() <= goroutinesBefore+2
		})
	})
	return tb
}

// goroutines is the process's goroutines but the broker's parked workers, which a burst of
// load leaves for a second or two (actors.Workers).
func goroutines() int { return actors.UnparkedGoroutines() }

// CheckNoLeaks waits until the broker's actor count is back at its baseline (sessions that
// outlive their connections by design are the test's business: it must end them) and the
// process's goroutines, its parked workers left out, are within a small tolerance of theirs.
func (b *Broker) CheckNoLeaks(t testing.TB, actors, baseline int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if b.ActorCount() <= actors+int(b.Stats().Sessions.Load()) && goroutines() <= baseline+2 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Errorf("leak: actors %d (baseline %d + %d sessions), goroutines %d (baseline %d)",
		b.ActorCount(), actors, b.Stats().Sessions.Load(), goroutines(), baseline)
}

// WaitFor polls cond until it holds or d passes.
func WaitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Conn speaks MQTT with the project's codec over a plain socket, for the cases a client
// library will not produce (protocol violations, exact byte sequences).
type Conn struct {
	T       testing.TB
	Conn    net.Conn
	R       *codec.Reader
	Version codec.Version
}

// Dial connects a socket to addr, failing the test if it cannot.
func Dial(t testing.TB, addr string, v codec.Version) *Conn {
	t.Helper()
	c, err := TryDial(t, addr, v)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	return c
}

// TryDial is Dial for a listener that may not be accepting yet (polled with WaitFor).
func TryDial(t testing.TB, addr string, v codec.Version) (*Conn, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { _ = conn.Close() })
	r := codec.NewReader(bufio.NewReader(conn), 0)
	r.SetVersion(v)
	return &Conn{T: t, Conn: conn, R: r, Version: v}, nil
}

// ConnectsNow reports whether a 3.1.1 client can connect to addr right now.
func ConnectsNow(t testing.TB, addr, clientID string) (*Conn, bool) {
	c, err := TryDial(t, addr, codec.V311)
	if err != nil {
		return nil, false
	}
	// A socket the old listener accepted just before it went away is reset: a "no", not a
	// failure of the test (Send would fail it).
	b, _ := codec.Append(nil, &codec.Connect{ProtocolName: "MQTT", Version: codec.V311, CleanStart: true, KeepAlive: 30, ClientID: clientID}, codec.V311)
	if _, err := c.Conn.Write(b); err != nil {
		_ = c.Conn.Close()
		return nil, false
	}
	p, err := c.ReadErr(500 * time.Millisecond)
	if ack, ok := p.(*codec.Connack); err == nil && ok && ack.ReasonCode == codec.Success {
		return c, true
	}
	_ = c.Conn.Close()
	return nil, false
}

// Send encodes and writes a packet.
func (c *Conn) Send(p codec.Packet) {
	c.T.Helper()
	b, err := codec.Append(nil, p, c.Version)
	if err != nil {
		c.T.Fatalf("encode %T: %v", p, err)
	}
	c.SendBytes(b)
}

// SendBytes writes raw bytes as they are.
func (c *Conn) SendBytes(b []byte) {
	c.T.Helper()
	if _, err := c.Conn.Write(b); err != nil {
		c.T.Fatalf("write: %v", err)
	}
}

// Read returns the next packet, failing the test after 5 s.
func (c *Conn) Read() codec.Packet {
	c.T.Helper()
	p, err := c.ReadErr(5 * time.Second)
	if err != nil {
		c.T.Fatalf("read: %v", err)
	}
	return p
}

// ReadErr returns the next packet or the error, waiting at most d.
func (c *Conn) ReadErr(d time.Duration) (codec.Packet, error) {
	_ = c.Conn.SetReadDeadline(time.Now().Add(d))
	return c.R.ReadPacket()
}

// Connect sends a CONNECT for clientID (clean start) and returns the CONNACK.
func (c *Conn) Connect(clientID string, mutate ...func(*codec.Connect)) *codec.Connack {
	c.T.Helper()
	p := &codec.Connect{ProtocolName: "MQTT", Version: c.Version, CleanStart: true, KeepAlive: 30, ClientID: clientID}
	if c.Version == codec.V31 {
		p.ProtocolName = "MQIsdp"
	}
	for _, m := range mutate {
		m(p)
	}
	c.Send(p)
	ack, ok := c.Read().(*codec.Connack)
	if !ok {
		c.T.Fatalf("expected CONNACK")
	}
	return ack
}

// ExpectClosed asserts that the broker closes the connection within d, returning whatever
// packet (e.g. a DISCONNECT) it sent first, or nil.
func (c *Conn) ExpectClosed(d time.Duration) codec.Packet {
	c.T.Helper()
	var last codec.Packet
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		p, err := c.ReadErr(time.Until(deadline))
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				break
			}
			return last // closed
		}
		last = p
	}
	c.T.Fatalf("connection not closed within %v (last packet %T)", d, last)
	return nil
}

// NeedProgram skips the test when a program from a Debian package is missing, and fails it
// instead under CI, where .ci/run installs the package.
func NeedProgram(t testing.TB, program, debianPackage string) string {
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

// Output collects what a process started by a test writes (exec's copying goroutine writes it
// while the test reads it).
type Output struct {
	mu sync.Mutex
	b  strings.Builder
}

func (o *Output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.Write(p)
}

func (o *Output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.String()
}
