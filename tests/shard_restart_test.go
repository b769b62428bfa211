package tests

import (
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/actormq/actormq/codec"
	"github.com/actormq/actormq/config"
)

// TestRouterShardRestartKeepsSubscriptionsAndRetained: a router shard that fails (a chaos
// panic through the console) is restarted by its supervisor with its trie and retained
// messages intact, so subscribers keep receiving and retained messages are still delivered.
func TestRouterShardRestartKeepsSubscriptionsAndRetained(t *testing.T) {
	b, base := consoleBroker(t, chaosOn(""))
	sub := dialRaw(t, b.TCP311, codec.V311)
	sub.Connect("survivor")
	v3Subscribe(sub, 1, "r/#", 1)
	pub := dialRaw(t, b.TCP311, codec.V311)
	pub.Connect("publisher")
	const topics = 8 // spread over the shards
	for i := range topics {
		pub.Send(&codec.Publish{QoS: 1, PacketID: uint16(i + 1), Retain: true, Topic: fmt.Sprintf("r/%d", i), Payload: []byte("kept")})
		pub.Read()
		v3ReadPublish(sub)
	}

	for i := range b.Cfg.Router.Shards {
		id := fmt.Sprintf("router/shard-%d", i)
		if code := apiDo(t, "POST", base+"/api/v1/actors/"+url.PathEscape(id)+"/kill?mode=panic", "", nil); code != 202 {
			t.Fatalf("kill %s: %d", id, code)
		}
		waitFor(t, 5*time.Second, id+" to show its restart", func() bool {
			a, code := actorByID(t, base, id)
			return code == 200 && a.Restarts >= 1
		})
	}

	// Live routing still reaches the subscription registered before the restarts.
	for i := range topics {
		pub.Send(&codec.Publish{QoS: 1, PacketID: uint16(100 + i), Topic: fmt.Sprintf("r/%d", i), Payload: []byte("live")})
		if ack, ok := pub.Read().(*codec.Puback); !ok || ack.PacketID != uint16(100+i) {
			t.Fatalf("publish %d after the restarts: %+v", i, ack)
		}
		if m := v3ReadPublish(sub); string(m.Payload) != "live" {
			t.Fatalf("subscriber got %q", m.Payload)
		}
	}
	// The retained messages survived: a new subscriber gets all of them.
	late := dialRaw(t, b.TCP311, codec.V311)
	late.Connect("late")
	v3Subscribe(late, 1, "r/#", 0)
	got := map[string]bool{}
	for range topics {
		m := v3ReadPublish(late)
		if !m.Retain || string(m.Payload) != "kept" {
			t.Errorf("retained %s: retain=%v payload %q", m.Topic, m.Retain, m.Payload)
		}
		got[m.Topic] = true
	}
	if len(got) != topics {
		t.Errorf("retained after restarts: %d topics, want %d", len(got), topics)
	}
	if n := b.Stats().Retained.Load(); n != topics {
		t.Errorf("retained count %d, want %d", n, topics)
	}
}

// TestStoppedShardAndListenerAreHealed: protoactor stops a child past its restart budget
// without telling anyone above; a stopped router shard or listener (here stopped through the
// console) is started again by its supervisor, the shard with its subscriptions and retained
// messages, the listener on the same port.
func TestStoppedShardAndListenerAreHealed(t *testing.T) {
	b, base := consoleBroker(t, chaosOn(""))
	sub := dialRaw(t, b.TCP311, codec.V311)
	sub.Connect("healed")
	v3Subscribe(sub, 1, "h/#", 1)
	pub := dialRaw(t, b.TCP311, codec.V311)
	pub.Connect("publisher")
	pub.Send(&codec.Publish{QoS: 1, PacketID: 1, Retain: true, Topic: "h/kept", Payload: []byte("r")})
	pub.Read()
	v3ReadPublish(sub)

	for i := range b.Cfg.Router.Shards {
		id := fmt.Sprintf("router/shard-%d", i)
		before, _ := actorByID(t, base, id)
		if code := apiDo(t, "POST", base+"/api/v1/actors/"+url.PathEscape(id)+"/kill?mode=stop", "", nil); code != 202 {
			t.Fatalf("stop %s: %d", id, code)
		}
		waitFor(t, 5*time.Second, id+" to be started again", func() bool {
			a, code := actorByID(t, base, id)
			return code == 200 && a.MessagesProcessed < before.MessagesProcessed+1 && a.Kind == "router shard"
		})
	}
	pub.Send(&codec.Publish{QoS: 1, PacketID: 2, Topic: "h/live", Payload: []byte("l")})
	if ack, ok := pub.Read().(*codec.Puback); !ok || ack.PacketID != 2 {
		t.Fatalf("publish after the shards were healed: %+v", ack)
	}
	if m := v3ReadPublish(sub); string(m.Payload) != "l" {
		t.Fatalf("subscriber got %q", m.Payload)
	}
	late := dialRaw(t, b.TCP311, codec.V311)
	late.Connect("late")
	v3Subscribe(late, 1, "h/#", 0)
	if m := v3ReadPublish(late); m.Topic != "h/kept" || !m.Retain {
		t.Errorf("retained after heal: %s retain=%v", m.Topic, m.Retain)
	}

	if code := apiDo(t, "POST", base+"/api/v1/actors/"+url.PathEscape("listeners/mqtt")+"/kill?mode=stop", "", nil); code != 202 {
		t.Fatalf("stop listener: %d", code)
	}
	waitFor(t, 5*time.Second, "the listener to accept again on "+b.TCP311, func() bool {
		_, ok := connectsNow(t, b.TCP311, "again")
		return ok
	})
}

// TestRestartBudgetExhaustedShardIsHealed: with supervision.max_restarts = 1, a shard's second
// failure within the window exceeds its budget and its supervisor stops it; the router starts
// it again with its state, so routing and retained messages survive even that.
func TestRestartBudgetExhaustedShardIsHealed(t *testing.T) {
	b, base := consoleBroker(t, chaosOn(""), func(c *config.Config) {
		c.Supervision.MaxRestarts = 1
		c.Supervision.RestartWindow = config.Duration(time.Minute)
		c.Router.Shards = 1
	})
	sub := dialRaw(t, b.TCP311, codec.V311)
	sub.Connect("budget-sub")
	v3Subscribe(sub, 1, "b/#", 1)
	pub := dialRaw(t, b.TCP311, codec.V311)
	pub.Connect("budget-pub")
	pub.Send(&codec.Publish{QoS: 1, PacketID: 1, Retain: true, Topic: "b/kept", Payload: []byte("r")})
	pub.Read()
	v3ReadPublish(sub)

	kill := base + "/api/v1/actors/" + url.PathEscape("router/shard-0") + "/kill?mode=panic"
	for i := range 3 {
		if code := apiDo(t, "POST", kill, "", nil); code != 202 {
			t.Fatalf("panic %d: HTTP %d", i, code)
		}
		// Let the failure be handled before the next one.
		waitFor(t, 5*time.Second, "the shard to be back", func() bool {
			_, code := actorByID(t, base, "router/shard-0")
			return code == 200
		})
		time.Sleep(50 * time.Millisecond)
	}
	pub.Send(&codec.Publish{QoS: 1, PacketID: 2, Topic: "b/live", Payload: []byte("l")})
	if ack, ok := pub.Read().(*codec.Puback); !ok || ack.PacketID != 2 {
		t.Fatalf("publish after the budget ran out: %+v", ack)
	}
	if m := v3ReadPublish(sub); string(m.Payload) != "l" {
		t.Fatalf("subscriber got %q", m.Payload)
	}
	late := dialRaw(t, b.TCP311, codec.V311)
	late.Connect("budget-late")
	v3Subscribe(late, 1, "b/#", 0)
	if m := v3ReadPublish(late); m.Topic != "b/kept" {
		t.Errorf("retained after the budget ran out: %s", m.Topic)
	}
}

// TestTopLevelSupervisorsHeal: the session registry, the router, the connections supervisor
// and the listeners supervisor, stopped or crashed from the console, come back under their
// names. A registry that stopped or restarted stops its sessions first (protoactor's rule);
// the one that comes back starts the stored sessions from the store, so a persistent
// subscriber finds its session and the message queued for it; clean sessions are gone and
// their clients reconnect. Through all of it the broker keeps serving new clients.
func TestTopLevelSupervisorsHeal(t *testing.T) {
	b, base := consoleBroker(t, chaosOn(""))
	keep := func(c *codec.Connect) { c.CleanStart = false; c.Properties.SetSessionExpiryInterval(600) }
	for i, target := range []string{"sessions", "router", "connections", "listeners"} {
		for _, mode := range []string{"stop", "panic"} {
			id := fmt.Sprintf("%s-%s", target, mode)
			sub := dialRaw(t, b.TCP5, codec.V5)
			sub.Connect("keeper-"+id, keep)
			sub.Send(&codec.Subscribe{PacketID: 1, Subscriptions: []codec.Subscription{{Filter: "top/" + id, QoS: 1}}})
			sub.Read()
			sub.Send(&codec.Disconnect{})
			sub.ExpectClosed(5 * time.Second)
			pub := dialRaw(t, b.TCP5, codec.V5)
			pub.Connect("pub-" + id)
			pub.Send(&codec.Publish{QoS: 1, PacketID: 1, Topic: "top/" + id, Payload: []byte("queued")})
			if ack, ok := pub.Read().(*codec.Puback); !ok || ack.ReasonCode != codec.Success {
				t.Fatalf("%s: PUBACK %+v", id, ack)
			}

			before, _ := actorByID(t, base, target)
			if code := apiDo(t, "POST", base+"/api/v1/actors/"+url.PathEscape(target)+"/kill?mode="+mode, "", nil); code != 202 {
				t.Fatalf("%s: kill: HTTP %d", id, code)
			}
			// The kill is asynchronous: until it has taken effect, the old actor (and the
			// listeners it closes) would answer the checks below.
			waitFor(t, 10*time.Second, id+": the kill to take effect", func() bool {
				a, code := actorByID(t, base, target)
				return code == 200 && (a.StartedAt.After(before.StartedAt) || a.Restarts > before.Restarts)
			})
			waitFor(t, 10*time.Second, id+": a new client connects", func() bool {
				c, ok := connectsNow(t, b.TCP311, fmt.Sprintf("probe-%d-%s", i, mode))
				if ok {
					_ = c.Conn.Close()
				}
				return ok
			})
			again := reconnectPresent(t, b, "keeper-"+id)
			if m, ok := again.Read().(*codec.Publish); !ok || string(m.Payload) != "queued" {
				t.Fatalf("%s: after reconnecting: %+v, want the queued message", id, m)
			}
			d := &codec.Disconnect{}
			d.Properties.SetSessionExpiryInterval(0)
			again.Send(d)
			_ = pub.Conn.Close()
		}
	}
}

// TestRegistryRestartsDuringRestore: a registry killed again and again, each time while the
// one before it is still restoring the stored sessions, leaves them all present and routed to.
// Each restore waits on a count of its own sessions; one shared count, reused while the last
// restore's wait was still open, was a data race (found by -race in tests/chaos) and could
// panic ("WaitGroup is reused before previous Wait has returned").
func TestRegistryRestartsDuringRestore(t *testing.T) {
	b, base := consoleBroker(t, chaosOn(""))
	const sessions = 40
	keep := func(c *codec.Connect) { c.CleanStart = false; c.Properties.SetSessionExpiryInterval(600) }
	for i := range sessions {
		c := dialRaw(t, b.TCP5, codec.V5)
		c.Connect(fmt.Sprintf("restoring-%d", i), keep)
		c.Send(&codec.Subscribe{PacketID: 1, Subscriptions: []codec.Subscription{{Filter: fmt.Sprintf("restore/%d", i), QoS: 1}}})
		c.Read()
		c.Send(&codec.Disconnect{})
		c.ExpectClosed(5 * time.Second)
	}
	for range 12 {
		if code := apiDo(t, "POST", base+"/api/v1/actors/sessions/kill?mode=panic", "", nil); code != 202 {
			t.Fatalf("kill: HTTP %d", code)
		}
	}
	var pub *rawClient
	waitFor(t, 10*time.Second, "a publisher connects", func() bool {
		c, ok := connectsNow(t, b.TCP311, "restore-pub")
		pub = c
		return ok
	})
	for i := range sessions {
		c := reconnectPresent(t, b, fmt.Sprintf("restoring-%d", i))
		pub.Send(&codec.Publish{QoS: 1, PacketID: uint16(i + 1), Topic: fmt.Sprintf("restore/%d", i), Payload: []byte("r")})
		if ack, ok := pub.Read().(*codec.Puback); !ok || ack.PacketID != uint16(i+1) {
			t.Fatalf("session %d: PUBACK %+v", i, ack)
		}
		if m, ok := c.Read().(*codec.Publish); !ok || m.Topic != fmt.Sprintf("restore/%d", i) {
			t.Fatalf("session %d: got %+v, want its subscription's message", i, m)
		}
		_ = c.Conn.Close()
	}
}

// reconnectPresent connects clientID (5.0, no session expiry) as soon as the broker accepts it,
// and fails the test unless its stored session is present.
func reconnectPresent(t *testing.T, b *testBroker, clientID string) *rawClient {
	t.Helper()
	var c *rawClient
	waitFor(t, 10*time.Second, clientID+" reconnects", func() bool {
		rc, err := tryDialRaw(t, b.TCP5, codec.V5)
		if err != nil {
			return false
		}
		rc.Send(&codec.Connect{ProtocolName: "MQTT", Version: codec.V5, KeepAlive: 30, ClientID: clientID})
		p, err := rc.ReadErr(time.Second)
		if ack, ok := p.(*codec.Connack); err == nil && ok && ack.ReasonCode == codec.Success {
			if !ack.SessionPresent {
				t.Fatalf("%s: its stored session is gone", clientID)
			}
			c = rc
			return true
		}
		_ = rc.Conn.Close()
		return false
	})
	return c
}
