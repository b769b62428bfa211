package actors_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"net"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/actormq/actormq/actors"
	"github.com/actormq/actormq/codec"
	"github.com/actormq/actormq/config"
	"github.com/actormq/actormq/supervisor"
)

// idleClient is a minimal MQTT client on a plain socket: it has no goroutine of its own, so
// that the test's goroutine count is the broker's.
type idleClient struct {
	t    *testing.T
	conn net.Conn
	r    *codec.Reader
	v    codec.Version
}

func dialIdle(t *testing.T, addr string, v codec.Version, id string, mutate func(*codec.Connect)) *idleClient {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	c := &idleClient{t: t, conn: conn, r: codec.NewReader(bufio.NewReader(conn), 0), v: v}
	c.r.SetVersion(v)
	p := &codec.Connect{ProtocolName: "MQTT", Version: v, CleanStart: true, KeepAlive: 60, ClientID: id}
	if mutate != nil {
		mutate(p)
	}
	c.send(p)
	if ack, ok := c.read().(*codec.Connack); !ok || ack.ReasonCode != 0 {
		t.Fatalf("%s: no successful CONNACK", id)
	}
	return c
}

func (c *idleClient) send(p codec.Packet) {
	c.t.Helper()
	b, err := codec.Append(nil, p, c.v)
	if err != nil {
		c.t.Fatalf("encode %T: %v", p, err)
	}
	if _, err := c.conn.Write(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

func (c *idleClient) read() codec.Packet {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	p, err := c.r.ReadPacket()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return p
}

// settle waits until the goroutines, parked workers left out, are at most limit, and returns
// their count.
func settle(limit int) int {
	deadline := time.Now().Add(5 * time.Second)
	n := actors.UnparkedGoroutines()
	for n > limit && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		n = actors.UnparkedGoroutines()
	}
	return n
}

func startIdleBroker(t *testing.T) *supervisor.Broker {
	t.Helper()
	cfg := config.Default()
	for i := range cfg.Listeners {
		cfg.Listeners[i].Address = "127.0.0.1:0"
	}
	cfg.Console.Listen = ""
	cfg.Store.DataDir = t.TempDir() // not the default data/ beside the test
	b, err := supervisor.Start(cfg, zaptest.NewLogger(t, zaptest.Level(zap.ErrorLevel)))
	if err != nil {
		t.Fatalf("start broker: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = b.Stop(ctx)
	})
	return b
}

// An idle client on plain TCP costs the broker no goroutine: its reader parks the socket in
// the poller between packets, and the Link's writer runs only while there is something to
// write. A burst after idling still arrives complete and in order, and the outbound topic
// alias the client was given survives the writer's exit.
func TestIdleConnectionHasNoGoroutine(t *testing.T) {
	b := startIdleBroker(t)
	addr := b.Addr("mqtt5").String()

	// One connection first, so that the poller's own goroutine is counted in the base.
	dialIdle(t, addr, codec.V5, "idle-first", nil)
	time.Sleep(200 * time.Millisecond) // let the broker's start-up goroutines finish
	base := actors.UnparkedGoroutines()
	const n, slack = 50, 5
	clients := make([]*idleClient, n)
	for i := range clients {
		clients[i] = dialIdle(t, addr, codec.V5, "idle-"+string(rune('A'+i/26))+string(rune('a'+i%26)), func(p *codec.Connect) {
			p.Properties.SetTopicAliasMaximum(10)
		})
	}
	if got := settle(base+slack) - base; got > slack {
		t.Fatalf("%d idle connections: %d goroutines more than before, want at most %d", n, got, slack)
	}

	sub, pub := clients[0], clients[1]
	sub.send(&codec.Subscribe{PacketID: 1, Subscriptions: []codec.Subscription{{Filter: "idle/burst"}}})
	if _, ok := sub.read().(*codec.Suback); !ok {
		t.Fatal("expected SUBACK")
	}
	const burst = 300
	seq := 0
	for round := 0; round < 3; round++ {
		// Idle: every reader is parked and every writer has exited.
		if got := settle(base+slack) - base; got > slack {
			t.Fatalf("round %d: %d goroutines more than before the clients, want at most %d", round, got, slack)
		}
		first := seq
		for i := 0; i < burst; i++ {
			payload := binary.BigEndian.AppendUint32(nil, uint32(seq))
			pub.send(&codec.Publish{Topic: "idle/burst", Payload: payload})
			seq++
		}
		for want := first; want < seq; want++ {
			p, ok := sub.read().(*codec.Publish)
			if !ok {
				t.Fatalf("round %d: expected PUBLISH %d", round, want)
			}
			if got := int(binary.BigEndian.Uint32(p.Payload)); got != want {
				t.Fatalf("round %d: got message %d, want %d (out of order or lost)", round, got, want)
			}
			a, hasAlias := p.Properties.TopicAlias()
			switch {
			case want == 0 && (p.Topic != "idle/burst" || !hasAlias):
				t.Fatalf("first delivery: topic %q, alias %v; want the topic and a new alias", p.Topic, hasAlias)
			case want > 0 && (p.Topic != "" || !hasAlias || a != 1):
				// The alias map is the connection's, not the writer goroutine's.
				t.Fatalf("round %d, message %d: topic %q alias %d (%v); want alias 1 without the topic", round, want, p.Topic, a, hasAlias)
			}
		}
	}

	// A packet split across two writes wakes the reader once and is read whole.
	pub.send(&codec.Pingreq{})
	if _, ok := pub.read().(*codec.Pingresp); !ok {
		t.Fatal("expected PINGRESP")
	}
	raw, _ := codec.Append(nil, &codec.Publish{Topic: "idle/burst", Payload: []byte{0, 0, 0, 0}}, codec.V5)
	binary.BigEndian.PutUint32(raw[len(raw)-4:], uint32(seq))
	_, _ = pub.conn.Write(raw[:3])
	time.Sleep(50 * time.Millisecond)
	_, _ = pub.conn.Write(raw[3:])
	if p, ok := sub.read().(*codec.Publish); !ok || int(binary.BigEndian.Uint32(p.Payload)) != seq {
		t.Fatal("the split PUBLISH did not arrive whole")
	}

	// A client that closes its socket while parked is noticed: the connection ends.
	before := b.Stats().Connected.Load()
	_ = clients[5].conn.Close()
	deadline := time.Now().Add(5 * time.Second)
	for b.Stats().Connected.Load() != before-1 {
		if time.Now().After(deadline) {
			t.Fatalf("connected clients %d after a parked client closed, want %d", b.Stats().Connected.Load(), before-1)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The keep alive is enforced while the reader is parked (by a timer instead of a read
// deadline): a client that sends nothing for 1.5 times its keep alive is disconnected with
// 0x8D, one that pings in time is not.
func TestParkedReaderKeepAlive(t *testing.T) {
	b := startIdleBroker(t)
	addr := b.Addr("mqtt5").String()
	quiet := dialIdle(t, addr, codec.V5, "ka-quiet", func(p *codec.Connect) { p.KeepAlive = 1 })
	pinger := dialIdle(t, addr, codec.V5, "ka-pinger", func(p *codec.Connect) { p.KeepAlive = 1 })
	for i := 0; i < 5; i++ {
		time.Sleep(500 * time.Millisecond)
		pinger.send(&codec.Pingreq{})
		if _, ok := pinger.read().(*codec.Pingresp); !ok {
			t.Fatalf("ping %d: expected PINGRESP", i)
		}
		if i == 1 { // 1 s: within 1.5 times the keep alive, the quiet client is still on
			_ = quiet.conn.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
			if _, err := quiet.r.ReadPacket(); err == nil {
				t.Fatal("the quiet client got a packet before 1.5 times its keep alive")
			}
		}
	}
	d, ok := quiet.read().(*codec.Disconnect)
	if !ok || d.ReasonCode != codec.KeepAliveTimeout {
		t.Fatalf("quiet client: got %#v, want DISCONNECT 0x8D", d)
	}
}
