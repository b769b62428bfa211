// Package chaos kills the broker's actors at random under steady traffic and checks that
// nothing a client was promised is lost. Run longer with CHAOS_DURATION (e.g. 2m).
package chaos

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/actormq/actormq/codec"
	"github.com/actormq/actormq/config"
	"github.com/actormq/actormq/internal/brokertest"
)

// killable are the actor kinds the chaos monkey kills: the ones that carry traffic, and now
// and then (one kill in ten) a supervisor above them: the session registry, the router, the
// connections or listeners supervisor.
var killable = []string{"connection", "session", "router shard", "listener"}

var rarelyKilled = []string{"session registry", "supervisor"}

// TestChaos: publishers at QoS 0, 1 and 2 (3.1.1 and 5.0), persistent subscribers with
// wildcard and shared subscriptions, and a monkey killing random connection, session, router
// shard and listener actors, and now and then their supervisors, through the console (stop and
// panic), for CHAOS_DURATION (8 s by default). Then:
//   - every QoS 1 and 2 message a publisher got a success acknowledgement for reached every
//     matching persistent subscriber (one member of a shared group) at least once;
//   - no QoS 2 message reached a subscriber twice [MQTT-4.3.3];
//   - on each topic, each publisher's messages arrived in order at each subscriber [MQTT-4.6.0-5];
//   - no persistent session was lost: every reconnect found it present [MQTT-3.2.2-2];
//   - the retained messages are all there;
//   - the broker serves new clients on every listener;
//   - once the clients have gone, actors, goroutines (brokertest) and heap are back near their
//     baseline.
func TestChaos(t *testing.T) {
	duration := 8 * time.Second
	if d, err := time.ParseDuration(os.Getenv("CHAOS_DURATION")); err == nil {
		duration = d
	}
	b := brokertest.Start(t, func(c *config.Config) {
		c.Console.Listen = "127.0.0.1:0"
		c.Console.Chaos = true
		c.Console.SysInterval = 0
		// The monkey kills each actor often; the test is about healing, not about giving up.
		c.Supervision.MaxRestarts = 1000
		// A subscriber kicked off by a kill is offline for a moment: its queue must hold what
		// arrives meanwhile, so that a drop by the queue's limit cannot pass for a loss (the
		// test checks that there is none).
		c.Sessions.MaxQueuedMessages = 100000
	})
	base := "http://" + b.ConsoleAddr().String()
	runtime.GC()
	var baseline runtime.MemStats
	runtime.ReadMemStats(&baseline)

	// Retained messages, set before the chaos: all must survive it.
	const retained = 50
	keeper := newClient("chaos-retainer", codec.V311, b.TCP311, 16)
	must(t, keeper.start())
	for i := range retained {
		keeper.publish(fmt.Sprintf("retained/%d", i), 1, uint64(i), true)
	}
	if n := keeper.settle(10 * time.Second); n != 0 {
		t.Fatalf("%d retained publishes not acknowledged", n)
	}
	keeper.close()

	// Subscribers: persistent, 3.1.1 and 5.0; two members of a shared group.
	all := codec.Subscription{Filter: "chaos/#", QoS: 2}
	shared := codec.Subscription{Filter: "$share/g/chaos/shared/#", QoS: 1}
	subs := []*client{
		newClient("chaos-sub-311", codec.V311, b.TCP311, 1, all),
		newClient("chaos-sub-5", codec.V5, b.TCP5, 1, all),
	}
	group := []*client{
		newClient("chaos-group-a", codec.V5, b.TCP5, 1, shared),
		newClient("chaos-group-b", codec.V311, b.TCP311, 1, shared),
	}
	for _, c := range append(append([]*client{}, subs...), group...) {
		must(t, c.start())
	}

	// Publishers: each on four topics (spread over the shards), and one on the shared topic.
	type pubSpec struct {
		c      *client
		qos    byte
		topics []string
	}
	four := func(id string) []string {
		return []string{"chaos/" + id + "/0", "chaos/" + id + "/1", "chaos/" + id + "/2", "chaos/" + id + "/3"}
	}
	pubs := []pubSpec{
		{newClient("p311q1", codec.V311, b.TCP311, 16), 1, four("p311q1")},
		{newClient("p5q2", codec.V5, b.TCP5, 16), 2, four("p5q2")},
		{newClient("p311q2", codec.V311, b.TCP311, 16), 2, four("p311q2")},
		{newClient("p5q0", codec.V5, b.TCP5, 16), 0, four("p5q0")},
		{newClient("pshared", codec.V5, b.TCP5, 16), 1, []string{"chaos/shared/x"}},
	}
	var wg sync.WaitGroup
	quit := make(chan struct{})
	for _, p := range pubs {
		must(t, p.c.start())
		wg.Add(1)
		go func(p pubSpec) {
			defer wg.Done()
			pace := time.NewTicker(2 * time.Millisecond) // ~500 messages/s each: steady, not a flood
			defer pace.Stop()
			for seq := uint64(1); ; seq++ {
				select {
				case <-quit:
					return
				case <-pace.C:
				}
				if !p.c.publish(p.topics[int(seq)%len(p.topics)], p.qos, seq, false) {
					return
				}
			}
		}(p)
	}

	kills := monkey(t, base, duration)
	close(quit)
	wg.Wait()

	// Quiet: every publish answered, every owed message delivered.
	for _, p := range pubs {
		if n := p.c.settle(30 * time.Second); n != 0 {
			t.Errorf("%s: %d publishes never answered after the chaos", p.c.id, n)
		}
	}
	owed := func(sub *client, from *client) []string {
		var missing []string
		for _, m := range from.ackedPayloads() {
			if !sub.has(m) {
				missing = append(missing, m)
			}
		}
		return missing
	}
	groupHas := func(m string) bool { return group[0].has(m) || group[1].has(m) }
	deadline := time.Now().Add(30 * time.Second)
	for {
		missing := 0
		for _, s := range subs {
			for _, p := range pubs {
				if p.qos > 0 {
					missing += len(owed(s, p.c))
				}
			}
		}
		for _, m := range pubs[4].c.ackedPayloads() {
			if !groupHas(m) {
				missing++
			}
		}
		if missing == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}

	// The invariants.
	var acked, failed, dups1 int
	for _, p := range pubs {
		acked += len(p.c.ackedPayloads())
		failed += p.c.failed
	}
	for _, s := range subs {
		for _, p := range pubs {
			if p.qos == 0 {
				continue
			}
			if missing := owed(s, p.c); len(missing) > 0 {
				t.Errorf("%s lost %d acknowledged messages of %s, e.g. %v", s.id, len(missing), p.c.id, head(missing))
			}
		}
		s.mu.Lock()
		for payload, n := range s.got {
			pub, _, _ := parsePayload(payload)
			switch {
			case n > 1 && (pub == "p5q2" || pub == "p311q2"):
				t.Errorf("%s got the QoS 2 message %s %d times [MQTT-4.3.3]", s.id, payload, n)
			case n > 1:
				dups1 += n - 1
			}
		}
		s.mu.Unlock()
	}
	for _, m := range pubs[4].c.ackedPayloads() {
		if !groupHas(m) {
			t.Errorf("shared group lost %s", m)
			break
		}
	}
	if n := b.Stats().DroppedQueue.Load(); n > 0 {
		t.Errorf("%d messages dropped by a session queue's limit: a subscriber was away too long", n)
	}
	for _, c := range subs {
		if bad := c.orderViolations(); len(bad) > 0 {
			t.Errorf("%s: out of order [MQTT-4.6.0-5]: %v", c.id, head(bad))
		}
	}
	for i, c := range group {
		if bad := c.orderViolations(group[1-i]); len(bad) > 0 {
			t.Errorf("%s: out of order [MQTT-4.6.0-5]: %v", c.id, head(bad))
		}
	}
	for _, c := range append(append([]*client{}, subs...), group...) {
		if c.lostState > 0 {
			t.Errorf("%s: %d of %d reconnects found no session [MQTT-3.2.2-2]", c.id, c.lostState, c.connects)
		}
	}
	for _, p := range pubs {
		if p.qos > 0 && p.c.lostState > 0 {
			t.Errorf("%s: %d of %d reconnects found no session", p.c.id, p.c.lostState, p.c.connects)
		}
	}

	// The broker still serves new clients on every listener, and kept the retained messages.
	for _, u := range []string{"tcp://" + b.TCP311, "tcp://" + b.TCP5, "ws://" + b.WS + "/mqtt"} {
		checkServes(t, u)
	}
	checkRetained(t, "tcp://"+b.TCP311, retained)

	restarts := restartsTotal(t, base)
	var kinds []string
	total := 0
	for k, n := range kills {
		kinds = append(kinds, fmt.Sprintf("%s %d", k, n))
		total += n
	}
	sort.Strings(kinds)
	deliveries := 0
	for _, s := range append(append([]*client{}, subs...), group...) {
		deliveries += s.total
	}
	reconnects := 0
	for _, c := range append(append([]*client{}, subs...), group...) {
		reconnects += c.connects - 1
	}
	for _, p := range pubs {
		reconnects += p.c.connects - 1
	}
	t.Logf("chaos for %v: %d kills (%s); %d restarts; %d reconnects; %d publishes acknowledged, %d failed (told so); "+
		"%d deliveries; QoS 1 duplicates %d; lost 0", duration, total, strings.Join(kinds, ", "), restarts, reconnects,
		acked, failed, deliveries, dups1)

	everyone := append(append([]*client{}, subs...), group...)
	for _, p := range pubs {
		everyone = append(everyone, p.c)
	}
	for _, c := range everyone {
		c.close()
		// The clients' own records of every message grow with the run's length and share the
		// broker's heap: dropped, so that the heap below is the broker's.
		c.forget()
	}
	brokertest.WaitFor(t, 10*time.Second, "the sessions to end", func() bool { return b.Stats().Sessions.Load() == 0 })
	// Heap: what the clients and the chaos left must be gone. The live heap is measured, not
	// the spans in use: after minutes of churn those stay fragmented (19 MiB in use for 6 MiB
	// live after three minutes under -race), which is not something the broker keeps. The
	// bound leaves room for the store's memtable and the pools.
	const slack = 48 << 20
	var after runtime.MemStats
	defer func() { // also when WaitFor fails: the figures say by how much
		t.Logf("live heap: %d KiB before, %d KiB after (spans in use: %d KiB, %d KiB)",
			baseline.HeapAlloc>>10, after.HeapAlloc>>10, baseline.HeapInuse>>10, after.HeapInuse>>10)
	}()
	brokertest.WaitFor(t, 10*time.Second, fmt.Sprintf("the live heap to return within %d MiB of its baseline", slack>>20), func() bool {
		runtime.GC()
		runtime.ReadMemStats(&after)
		return after.HeapAlloc <= baseline.HeapAlloc+slack
	})
}

// monkey kills random actors of the killable kinds through the console, by stop and by panic,
// for d; it returns the kills by "kind mode".
func monkey(t *testing.T, base string, d time.Duration) map[string]int {
	kills := map[string]int{}
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		time.Sleep(time.Duration(50+rand.IntN(100)) * time.Millisecond)
		resp, err := hc.Get(base + "/api/v1/actors")
		if err != nil {
			t.Fatalf("console: %v", err)
		}
		var list struct {
			Actors []struct {
				ID   string `json:"id"`
				Kind string `json:"kind"`
			} `json:"actors"`
		}
		err = json.NewDecoder(resp.Body).Decode(&list)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("console actors: %v", err)
		}
		kind := killable[rand.IntN(len(killable))]
		if rand.IntN(10) == 0 {
			kind = rarelyKilled[rand.IntN(len(rarelyKilled))]
		}
		if only := os.Getenv("CHAOS_KINDS"); only != "" { // e.g. "session registry,session"
			kinds := strings.Split(only, ",")
			kind = kinds[rand.IntN(len(kinds))]
		}
		var ids []string
		for _, a := range list.Actors {
			if a.Kind == kind {
				ids = append(ids, a.ID)
			}
		}
		if len(ids) == 0 {
			continue
		}
		mode := []string{"stop", "panic"}[rand.IntN(2)]
		id := ids[rand.IntN(len(ids))]
		resp, err = hc.Post(base+"/api/v1/actors/"+url.PathEscape(id)+"/kill?mode="+mode, "", nil)
		if err != nil {
			t.Fatalf("kill %s: %v", id, err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusAccepted {
			kills[kind+" "+mode]++
		}
	}
	return kills
}

// checkServes connects a new client (paho, 3.1.1) to u, subscribes and gets its own message.
func checkServes(t *testing.T, u string) {
	t.Helper()
	got := make(chan string, 1)
	o := mqtt.NewClientOptions().AddBroker(u).SetClientID("chaos-after-" + strings.ReplaceAll(u, "/", "_")).
		SetConnectTimeout(5 * time.Second).SetAutoReconnect(false)
	c := mqtt.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Errorf("%s does not serve new clients after the chaos: %v", u, tok.Error())
		return
	}
	defer c.Disconnect(100)
	if tok := c.Subscribe("after/chaos", 1, func(_ mqtt.Client, m mqtt.Message) { got <- string(m.Payload()) }); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Errorf("%s: subscribe: %v", u, tok.Error())
		return
	}
	if tok := c.Publish("after/chaos", 1, false, "alive"); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Errorf("%s: publish: %v", u, tok.Error())
		return
	}
	select {
	case m := <-got:
		if m != "alive" {
			t.Errorf("%s: got %q", u, m)
		}
	case <-time.After(5 * time.Second):
		t.Errorf("%s: own message not delivered after the chaos", u)
	}
}

// checkRetained subscribes a new client to retained/# and expects all n retained messages.
func checkRetained(t *testing.T, u string, n int) {
	t.Helper()
	var mu sync.Mutex
	seen := map[string]bool{}
	o := mqtt.NewClientOptions().AddBroker(u).SetClientID("chaos-retained-check").SetAutoReconnect(false)
	c := mqtt.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Errorf("retained check: connect: %v", tok.Error())
		return
	}
	defer c.Disconnect(100)
	c.Subscribe("retained/#", 1, func(_ mqtt.Client, m mqtt.Message) {
		if m.Retained() {
			mu.Lock()
			seen[m.Topic()] = true
			mu.Unlock()
		}
	}).WaitTimeout(5 * time.Second)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		mu.Lock()
		k := len(seen)
		mu.Unlock()
		if k == n {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	t.Errorf("retained messages after the chaos: %d of %d", len(seen), n)
}

// restartsTotal sums actormq_actor_restarts_total from /metrics.
func restartsTotal(t *testing.T, base string) int {
	resp, err := hc.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sb strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		sb.Write(buf[:n])
		if err != nil {
			break
		}
	}
	total := 0
	for _, line := range strings.Split(sb.String(), "\n") {
		if strings.HasPrefix(line, "actormq_actor_restarts_total{") {
			var v float64
			if _, err := fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v); err == nil {
				total += int(v)
			}
		}
	}
	return total
}

// hc keeps no idle connections: the leak check counts the console's goroutines.
var hc = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func head(s []string) []string {
	if len(s) > 5 {
		return s[:5]
	}
	return s
}
