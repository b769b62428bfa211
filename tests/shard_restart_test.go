package tests

import (
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/actormq/actormq/codec"
)

// TestRouterShardRestartKeepsSubscriptionsAndRetained: a router shard that fails (a chaos
// panic through the console) is restarted by its supervisor with its trie and retained
// messages intact, so subscribers keep receiving and retained messages are still delivered.
func TestRouterShardRestartKeepsSubscriptionsAndRetained(t *testing.T) {
	b, base := consoleBroker(t, chaosOn(""))
	sub := dialRaw(t, b.TCP311, codec.V311)
	sub.connect("survivor")
	v3Subscribe(sub, 1, "r/#", 1)
	pub := dialRaw(t, b.TCP311, codec.V311)
	pub.connect("publisher")
	const topics = 8 // spread over the shards
	for i := range topics {
		pub.send(&codec.Publish{QoS: 1, PacketID: uint16(i + 1), Retain: true, Topic: fmt.Sprintf("r/%d", i), Payload: []byte("kept")})
		pub.read()
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
		pub.send(&codec.Publish{QoS: 1, PacketID: uint16(100 + i), Topic: fmt.Sprintf("r/%d", i), Payload: []byte("live")})
		if ack, ok := pub.read().(*codec.Puback); !ok || ack.PacketID != uint16(100+i) {
			t.Fatalf("publish %d after the restarts: %+v", i, ack)
		}
		if m := v3ReadPublish(sub); string(m.Payload) != "live" {
			t.Fatalf("subscriber got %q", m.Payload)
		}
	}
	// The retained messages survived: a new subscriber gets all of them.
	late := dialRaw(t, b.TCP311, codec.V311)
	late.connect("late")
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
