package actors_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"net"
	"runtime"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

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

// settle waits until the process's goroutines are at most limit, and returns the count.
func settle(limit int) int {
	deadline := time.Now().Add(5 * time.Second)
	n := runtime.NumGoroutine()
	for n > limit && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		n = runtime.NumGoroutine()
	}
	return n
}

// An idle connected client costs the broker one goroutine (its reader): the Link's writer
// runs only while there is something to write. A burst after idling still arrives complete
// and in order, and the outbound topic alias the client was given survives the writer's exit.
func TestIdleConnectionHasOneGoroutine(t *testing.T) {
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
	addr := b.Addr("mqtt5").String()

	time.Sleep(100 * time.Millisecond) // let the broker's start-up goroutines finish
	base := runtime.NumGoroutine()
	const n, slack = 50, 5
	clients := make([]*idleClient, n)
	for i := range clients {
		clients[i] = dialIdle(t, addr, codec.V5, "idle-"+string(rune('A'+i/26))+string(rune('a'+i%26)), func(p *codec.Connect) {
			p.Properties.SetTopicAliasMaximum(10)
		})
	}
	if got := settle(base+n+slack) - base; got < n || got > n+slack {
		t.Fatalf("%d idle connections: %d goroutines more than before, want %d (+%d)", n, got, n, slack)
	}

	sub, pub := clients[0], clients[1]
	sub.send(&codec.Subscribe{PacketID: 1, Subscriptions: []codec.Subscription{{Filter: "idle/burst"}}})
	if _, ok := sub.read().(*codec.Suback); !ok {
		t.Fatal("expected SUBACK")
	}
	const burst = 300
	seq := 0
	for round := 0; round < 3; round++ {
		// Idle: every writer has exited.
		if got := settle(base+n+slack) - base; got > n+slack {
			t.Fatalf("round %d: %d goroutines more than before the clients, want at most %d", round, got, n+slack)
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
}
