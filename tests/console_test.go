package tests

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/actormq/actormq/codec"
	"github.com/actormq/actormq/config"
	"github.com/actormq/actormq/internal/brokertest"
	"strconv"

	"github.com/prometheus/common/expfmt"
)

// consoleBroker starts a broker with its console on a free loopback port and returns the
// console's base URL.
func consoleBroker(t *testing.T, mutate ...func(*config.Config)) (*testBroker, string) {
	t.Helper()
	b := startBroker(t, append([]func(*config.Config){func(c *config.Config) {
		c.Console.Listen = "127.0.0.1:0"
		c.Console.SysInterval = 0
	}}, mutate...)...)
	addr := b.ConsoleAddr()
	if addr == nil {
		t.Fatal("console not started")
	}
	return b, "http://" + addr.String()
}

// httpClient keeps no idle connections: the leak check counts the console's goroutines.
var httpClient = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

func apiDo(t *testing.T, method, u, token string, out any) int {
	t.Helper()
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(body, out); err != nil {
			t.Fatalf("%s %s: %d %q: %v", method, u, resp.StatusCode, body, err)
		}
	}
	return resp.StatusCode
}

func apiGet(t *testing.T, u string, out any) {
	t.Helper()
	if code := apiDo(t, "GET", u, "", out); code != http.StatusOK {
		t.Fatalf("GET %s: status %d", u, code)
	}
}

type apiActor struct {
	StartedAt         time.Time `json:"started_at"`
	ID                string    `json:"id"`
	Kind              string    `json:"kind"`
	Parent            string    `json:"parent"`
	Children          []string  `json:"children"`
	MailboxDepth      int64     `json:"mailbox_depth"`
	MessagesProcessed uint64    `json:"messages_processed"`
	Restarts          uint64    `json:"restarts"`
	LastFailure       *struct {
		Reason string `json:"reason"`
	} `json:"last_failure"`
}

type apiClient struct {
	ClientID      string `json:"client_id"`
	Connected     bool   `json:"connected"`
	Protocol      string `json:"protocol"`
	Listener      string `json:"listener"`
	Address       string `json:"address"`
	MessagesIn    uint64 `json:"messages_in"`
	BytesIn       uint64 `json:"bytes_in"`
	SessionActor  string `json:"session_actor"`
	ConnActor     string `json:"connection_actor"`
	Subscriptions []struct {
		Filter string `json:"filter"`
		QoS    byte   `json:"qos"`
	} `json:"subscriptions"`
}

func clientsByID(t *testing.T, base string) map[string]apiClient {
	t.Helper()
	var r struct{ Clients []apiClient }
	apiGet(t, base+"/api/v1/clients", &r)
	m := map[string]apiClient{}
	for _, c := range r.Clients {
		m[c.ClientID] = c
	}
	return m
}

func actorByID(t *testing.T, base, id string) (apiActor, int) {
	t.Helper()
	var a apiActor
	code := apiDo(t, "GET", base+"/api/v1/actors/"+url.PathEscape(id), "", &a)
	return a, code
}

func TestConsoleClientsActorsAndReads(t *testing.T) {
	b, base := consoleBroker(t)
	c3 := v3Connect(t, "tcp://"+b.TCP311, "console-v3")
	c3.sub("a/#", 1)
	c5, _ := v5Connect(t, b, "console-v5")
	c5.sub("b/+", 0)
	c3.pub("a/retained", 1, true, "kept")
	c3.next()

	var clients map[string]apiClient
	waitFor(t, 5*time.Second, "both clients with their subscriptions", func() bool {
		clients = clientsByID(t, base)
		return len(clients["console-v3"].Subscriptions) == 1 && len(clients["console-v5"].Subscriptions) == 1
	})
	v3, v5 := clients["console-v3"], clients["console-v5"]
	if !v3.Connected || v3.Protocol != "3.1.1" || v3.Listener != "mqtt" || v3.Subscriptions[0].Filter != "a/#" || v3.Subscriptions[0].QoS != 1 {
		t.Errorf("v3 client: %+v", v3)
	}
	if !v5.Connected || v5.Protocol != "5.0" || v5.Listener != "mqtt5" || v5.Subscriptions[0].Filter != "b/+" {
		t.Errorf("v5 client: %+v", v5)
	}
	if v3.MessagesIn != 1 || v3.BytesIn == 0 {
		t.Errorf("v3 client traffic: %d messages, %d bytes in", v3.MessagesIn, v3.BytesIn)
	}

	var all struct{ Actors []apiActor }
	apiGet(t, base+"/api/v1/actors", &all)
	byID := map[string]apiActor{}
	for _, a := range all.Actors {
		byID[a.ID] = a
	}
	for _, c := range []apiClient{v3, v5} {
		conn, sess := byID[c.ConnActor], byID[c.SessionActor]
		if conn.Kind != "connection" || conn.Parent != "connections" {
			t.Errorf("connection actor of %s: %+v", c.ClientID, conn)
		}
		if sess.Kind != "session" || sess.Parent != "sessions" || sess.MessagesProcessed == 0 {
			t.Errorf("session actor of %s: %+v", c.ClientID, sess)
		}
	}
	if r := byID["router"]; len(r.Children) != b.Cfg.Router.Shards || byID["router/shard-0"].Kind != "router shard" {
		t.Errorf("router: %+v, shard 0: %+v", r, byID["router/shard-0"])
	}
	// One actor, by escaped id and by the id as the rest of the path.
	if a, code := actorByID(t, base, v3.ConnActor); code != 200 || a.ID != v3.ConnActor {
		t.Errorf("actor by escaped id: %d %+v", code, a)
	}
	var a apiActor
	raw := strings.ReplaceAll(v3.SessionActor, "#", "%23")
	if code := apiDo(t, "GET", base+"/api/v1/actors/"+raw, "", &a); code != 200 || a.ID != v3.SessionActor {
		t.Errorf("actor by path: %d %+v", code, a)
	}
	if _, code := actorByID(t, base, "nobody"); code != 404 {
		t.Errorf("unknown actor: %d", code)
	}
	var one apiClient
	if code := apiDo(t, "GET", base+"/api/v1/clients/console-v5", "", &one); code != 200 || one.ClientID != "console-v5" {
		t.Errorf("one client: %d %+v", code, one)
	}

	var subs struct {
		Subscriptions []struct {
			Filter      string
			Subscribers []struct {
				ClientID string `json:"client_id"`
				QoS      byte   `json:"qos"`
			}
		}
	}
	apiGet(t, base+"/api/v1/subscriptions", &subs)
	if len(subs.Subscriptions) != 2 || subs.Subscriptions[0].Filter != "a/#" || subs.Subscriptions[0].Subscribers[0].ClientID != "console-v3" {
		t.Errorf("subscriptions: %+v", subs)
	}

	var ret struct {
		Total    int
		Messages []struct{ Topic, Payload string }
	}
	apiGet(t, base+"/api/v1/retained?filter=a/%23&limit=10", &ret)
	if ret.Total != 1 || ret.Messages[0].Topic != "a/retained" || ret.Messages[0].Payload != "kept" {
		t.Errorf("retained: %+v", ret)
	}
	apiGet(t, base+"/api/v1/retained?offset=5", &ret)
	if ret.Total != 1 || len(ret.Messages) != 0 {
		t.Errorf("retained past the end: %+v", ret)
	}
	var e struct{ Error string }
	if code := apiDo(t, "GET", base+"/api/v1/retained?filter=a/%23/b", "", &e); code != 400 || e.Error == "" {
		t.Errorf("bad filter: %d %+v", code, e)
	}

	var router struct {
		Shards []struct {
			Index          int
			Subscriptions  int
			Retained       int
			MessagesRouted uint64 `json:"messages_routed"`
			Error          string
		}
	}
	apiGet(t, base+"/api/v1/router", &router)
	var routed uint64
	retained := 0
	for _, s := range router.Shards {
		if s.Error != "" {
			t.Errorf("shard %d: %s", s.Index, s.Error)
		}
		routed += s.MessagesRouted
		retained += s.Retained
	}
	if len(router.Shards) != b.Cfg.Router.Shards || routed != 1 || retained != 1 {
		t.Errorf("router: %+v", router)
	}

	var cfg struct{ Console, Router map[string]any }
	apiGet(t, base+"/api/v1/config", &cfg)
	if cfg.Console["listen"] != "127.0.0.1:0" || cfg.Router["shards"] != 4.0 {
		t.Errorf("config: %v %v", cfg.Console, cfg.Router)
	}
	for _, p := range []string{"/healthz", "/readyz", "/"} {
		if code := apiDo(t, "GET", base+p, "", nil); code != 200 {
			t.Errorf("GET %s: %d", p, code)
		}
	}
	c5.disconnect()
}

func TestConsoleConfigRedactsToken(t *testing.T) {
	_, base := consoleBroker(t, func(c *config.Config) { c.Console.Token = "s3cret" })
	var cfg struct{ Console map[string]any }
	apiGet(t, base+"/api/v1/config", &cfg)
	if cfg.Console["token"] != "<redacted>" {
		t.Errorf("token shown as %v", cfg.Console["token"])
	}
}

func TestConsoleWritesNeedChaos(t *testing.T) {
	_, base := consoleBroker(t)
	var e struct{ Error string }
	if code := apiDo(t, "POST", base+"/api/v1/actors/sessions/kill?mode=panic", "", &e); code != 403 || !strings.Contains(e.Error, "chaos") {
		t.Errorf("kill with chaos off: %d %+v", code, e)
	}
	if code := apiDo(t, "POST", base+"/api/v1/clients/x/disconnect", "", &e); code != 403 {
		t.Errorf("disconnect with chaos off: %d", code)
	}
}

func chaosOn(token string) func(*config.Config) {
	return func(c *config.Config) { c.Console.Chaos, c.Console.Token = true, token }
}

func TestConsoleKillStopClosesConnection(t *testing.T) {
	b, base := consoleBroker(t, chaosOn("tok"))
	rc := dialRaw(t, b.TCP5, codec.V5)
	rc.Connect("victim")
	var c apiClient
	waitFor(t, 5*time.Second, "the client in the directory", func() bool {
		return apiDo(t, "GET", base+"/api/v1/clients/victim", "", &c) == 200 && c.Connected
	})
	kill := base + "/api/v1/actors/" + url.PathEscape(c.ConnActor) + "/kill?mode=stop"
	var e struct{ Error string }
	if code := apiDo(t, "POST", kill, "", &e); code != 401 || e.Error == "" {
		t.Fatalf("kill without token: %d %+v", code, e)
	}
	if code := apiDo(t, "POST", kill, "wrong", &e); code != 401 {
		t.Fatalf("kill with a wrong token: %d", code)
	}
	if code := apiDo(t, "POST", base+"/api/v1/actors/"+url.PathEscape(c.ConnActor)+"/kill?mode=boom", "tok", &e); code != 400 {
		t.Errorf("bad mode: %d", code)
	}
	if code := apiDo(t, "POST", base+"/api/v1/actors/nobody/kill", "tok", &e); code != 404 {
		t.Errorf("unknown actor: %d", code)
	}
	if code := apiDo(t, "POST", kill, "tok", nil); code != 202 {
		t.Fatalf("kill: %d", code)
	}
	rc.ExpectClosed(5 * time.Second)
	waitFor(t, 5*time.Second, "the connection actor to go", func() bool {
		_, code := actorByID(t, base, c.ConnActor)
		return code == 404
	})
}

func TestConsoleKillPanicRestartsSession(t *testing.T) {
	b, base := consoleBroker(t, chaosOn(""))
	sub := v3Connect(t, "tcp://"+b.TCP311, "survivor")
	sub.sub("s/#", 1)
	pub := v3Connect(t, "tcp://"+b.TCP311, "pub")
	c := clientsByID(t, base)["survivor"]
	if c.SessionActor == "" {
		t.Fatalf("no session actor: %+v", c)
	}
	if code := apiDo(t, "POST", base+"/api/v1/actors/"+url.PathEscape(c.SessionActor)+"/kill?mode=panic", "", nil); code != 202 {
		t.Fatalf("kill: %d", code)
	}
	var a apiActor
	waitFor(t, 5*time.Second, "the session to restart", func() bool {
		a, _ = actorByID(t, base, c.SessionActor)
		return a.Restarts >= 1
	})
	if a.LastFailure == nil || !strings.Contains(a.LastFailure.Reason, "chaos") {
		t.Errorf("last failure: %+v", a.LastFailure)
	}
	// The restarted session kept its subscription and its connection.
	pub.pub("s/after", 1, false, "still here")
	if m := sub.next(); m.Payload != "still here" {
		t.Errorf("got %+v", m)
	}
	// The restart's own system messages may be in flight when the restart first shows.
	waitFor(t, 5*time.Second, "the mailbox depth to settle at 0 after the restart", func() bool {
		a, _ = actorByID(t, base, c.SessionActor)
		return a.MailboxDepth == 0
	})
	var m string
	waitFor(t, 5*time.Second, "the restart in /metrics", func() bool {
		m = metricsText(t, base)
		return strings.Contains(m, `actormq_actor_restarts_total{kind="session"} 1`)
	})
}

func TestConsoleDisconnectClient(t *testing.T) {
	b, base := consoleBroker(t, chaosOn(""))
	rc := dialRaw(t, b.TCP5, codec.V5)
	rc.Connect("kicked")
	waitFor(t, 5*time.Second, "the client", func() bool { return clientsByID(t, base)["kicked"].Connected })
	if code := apiDo(t, "POST", base+"/api/v1/clients/kicked/disconnect", "", nil); code != 202 {
		t.Fatalf("disconnect: %d", code)
	}
	d, ok := rc.ExpectClosed(5 * time.Second).(*codec.Disconnect)
	if !ok || d.ReasonCode != codec.AdministrativeAction {
		t.Errorf("got %+v, want DISCONNECT 0x98", d)
	}
	if code := apiDo(t, "POST", base+"/api/v1/clients/kicked/disconnect", "", nil); code != 404 {
		t.Errorf("disconnect of a gone client: %d", code)
	}
}

func metricsText(t *testing.T, base string) string {
	t.Helper()
	resp, err := httpClient.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestConsoleMetrics(t *testing.T) {
	b, base := consoleBroker(t)
	sub := v3Connect(t, "tcp://"+b.TCP311, "m-sub")
	sub.sub("m/#", 1)
	pub := v3Connect(t, "tcp://"+b.TCP311, "m-pub")
	pub.pub("m/1", 1, true, "x")
	sub.next()
	pub.pub("m/2", 0, false, "y")
	sub.next()
	text := metricsText(t, base)
	for _, want := range []string{
		`actormq_connections{listener="mqtt",protocol="3.1.1"} 2`,
		`actormq_connects_total 2`,
		`actormq_messages_received_total{qos="1"} 1`,
		`actormq_messages_received_total{qos="0"} 1`,
		`actormq_messages_sent_total{qos="1"} 1`,
		`actormq_retained_messages 1`,
		`actormq_sessions 2`,
		`actormq_subscriptions 1`,
		`actormq_actors{kind="session"} 2`,
		`actormq_actors{kind="connection"} 2`,
		`actormq_messages_dropped_total{reason="queue_full"} 0`,
		`actormq_slow_consumers_closed_total 0`,
		`actormq_mailbox_depth{kind="router shard"}`,
		`actormq_inflight_messages`,
		`actormq_queued_messages`,
		`go_goroutines`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	for _, name := range []string{"actormq_bytes_received_total", "actormq_bytes_sent_total"} {
		if !strings.Contains(text, name+" ") || strings.Contains(text, name+" 0\n") {
			t.Errorf("%s missing or zero", name)
		}
	}
	pub.Disconnect(100)
	waitFor(t, 5*time.Second, "the disconnect in /metrics", func() bool {
		return strings.Contains(metricsText(t, base), `actormq_disconnects_total{reason="client DISCONNECT"} 1`)
	})
}

func TestSysTopics(t *testing.T) {
	b, _ := consoleBroker(t, func(c *config.Config) { c.Console.SysInterval = config.Duration(50 * time.Millisecond) })
	all := v3Connect(t, "tcp://"+b.TCP311, "sys-hash")
	all.sub("#", 0)
	sys := v3Connect(t, "tcp://"+b.TCP311, "sys-sub")
	sys.sub("$SYS/#", 0)
	want := []string{"$SYS/broker/version", "$SYS/broker/uptime", "$SYS/broker/clients/total",
		"$SYS/broker/messages/received", "$SYS/broker/bytes/sent", "$SYS/broker/subscriptions/count",
		"$SYS/broker/retained messages/count"}
	seen := map[string]string{}
	complete := func() bool {
		for _, topic := range want {
			if _, ok := seen[topic]; !ok {
				return false
			}
		}
		return seen["$SYS/broker/clients/connected"] == "2"
	}
	// The topics live in different shards: they come in no fixed order.
	for deadline := time.Now().Add(5 * time.Second); !complete() && time.Now().Before(deadline); {
		m := sys.next()
		seen[m.Topic] = m.Payload
	}
	if seen["$SYS/broker/clients/connected"] != "2" {
		t.Fatalf("$SYS/broker/clients/connected: %q (seen %v)", seen["$SYS/broker/clients/connected"], seen)
	}
	for _, topic := range want {
		if _, ok := seen[topic]; !ok {
			t.Errorf("no %s", topic)
		}
	}
	all.none(200 * time.Millisecond) // "#" does not match $SYS topics [MQTT-4.7.2-1]
}

// TestSysValuesMatchTraffic: the $SYS counters say what the test did: 3 clients connected at
// most, 5 messages published, 2 retained, one dropped past a full queue.
func TestSysValuesMatchTraffic(t *testing.T) {
	b, _ := consoleBroker(t, func(c *config.Config) {
		c.Console.SysInterval = config.Duration(50 * time.Millisecond)
		c.Sessions.MaxQueuedMessages = 2
	})
	sys := v3Connect(t, "tcp://"+b.TCP311, "sys-watch")
	pub := v3Connect(t, "tcp://"+b.TCP311, "sys-pub")
	// A persistent subscriber that goes away: its queue of 2 overflows on the third message.
	away, _ := v3RawConnect(t, b.TCP311, "sys-away", v3NotClean)
	v3Subscribe(away, 1, "t/q", 1)
	v3Disconnect(away)
	waitFor(t, 2*time.Second, "the subscriber to leave", func() bool { return b.Stats().Connected.Load() == 2 })

	pub.pub("t/r1", 1, true, "a")
	pub.pub("t/r2", 1, true, "b")
	for range 3 {
		pub.pub("t/q", 1, false, "c")
	}
	sys.sub("$SYS/#", 0)
	want := map[string]string{
		"$SYS/broker/clients/connected":        "2",
		"$SYS/broker/clients/maximum":          "3",
		"$SYS/broker/messages/received":        "5",
		"$SYS/broker/publish/messages/dropped": "1",
		"$SYS/broker/subscriptions/count":      "2", // $SYS/# and the away session's t/q
	}
	seen := map[string]string{}
	deadline := time.Now().Add(5 * time.Second)
	// Retained messages: the test's 2 plus the broker's own retained $SYS topics, as Mosquitto
	// counts them.
	sysTopics := func() int {
		n := 0
		for k := range seen {
			if strings.HasPrefix(k, "$SYS/") {
				n++
			}
		}
		return n
	}
	retainedOK := func() bool {
		return seen["$SYS/broker/retained messages/count"] == strconv.Itoa(2+sysTopics())
	}
	matches := func() bool {
		for k, v := range want {
			if seen[k] != v {
				return false
			}
		}
		return retainedOK()
	}
	for !matches() && time.Now().Before(deadline) {
		m := sys.next()
		seen[m.Topic] = m.Payload
	}
	for k, v := range want {
		if seen[k] != v {
			t.Errorf("%s = %q, want %q", k, seen[k], v)
		}
	}
	if !retainedOK() {
		t.Errorf("retained messages/count = %q, want 2 + %d $SYS topics", seen["$SYS/broker/retained messages/count"], sysTopics())
	}
	for _, k := range []string{"$SYS/broker/heap/current", "$SYS/broker/heap/maximum"} {
		if n, err := strconv.ParseUint(seen[k], 10, 64); err != nil || n == 0 {
			t.Errorf("%s = %q, want a positive byte count", k, seen[k])
		}
	}
	// End the persistent session so the leak check sees only the connected clients' sessions.
	rc, _ := v3RawConnect(t, b.TCP311, "sys-away")
	v3Disconnect(rc)
	waitFor(t, 2*time.Second, "the away session to end", func() bool { return b.Stats().Sessions.Load() == 2 })
}

// TestMetricsParseAndMatchTraffic reads /metrics with the Prometheus text parser and checks
// the counters against the messages the test sent.
func TestMetricsParseAndMatchTraffic(t *testing.T) {
	b, base := consoleBroker(t)
	sub := v3Connect(t, "tcp://"+b.TCP311, "p-sub")
	sub.sub("p/#", 2)
	pub := v3Connect(t, "tcp://"+b.TCP311, "p-pub")
	for i := range 4 {
		pub.pub("p/x", byte(i%3), false, "m")
		sub.next()
	}
	var parser expfmt.TextParser
	families, err := parser.TextToMetricFamilies(strings.NewReader(metricsText(t, base)))
	if err != nil {
		t.Fatalf("/metrics is not valid Prometheus text: %v", err)
	}
	value := func(name string, labels map[string]string) float64 {
		if families[name] == nil {
			t.Fatalf("no metric family %s", name)
		}
		for _, m := range brokertest.Series(families, name, labels) {
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			}
		}
		t.Fatalf("%s%v not found", name, labels)
		return 0
	}
	// QoS 0, 1, 2, 0: two at QoS 0, one each at 1 and 2, all delivered at the publish QoS.
	for qos, n := range map[string]float64{"0": 2, "1": 1, "2": 1} {
		if got := value("actormq_messages_received_total", map[string]string{"qos": qos}); got != n {
			t.Errorf("messages received at QoS %s = %v, want %v", qos, got, n)
		}
		if got := value("actormq_messages_sent_total", map[string]string{"qos": qos}); got != n {
			t.Errorf("messages sent at QoS %s = %v, want %v", qos, got, n)
		}
	}
	if got := value("actormq_sessions", nil); got != 2 {
		t.Errorf("sessions = %v, want 2", got)
	}
	if got := value("actormq_subscriptions", nil); got != 1 {
		t.Errorf("subscriptions = %v, want 1", got)
	}
}

// TestConsoleKillStopSession: a session stopped from the console does not leave a client
// attached to nothing: its client gets DISCONNECT 0x98 (Administrative action). A stored
// session (Session Expiry above 0) is then started again from the store: its subscription
// keeps matching, a QoS 1 message published meanwhile waits for the client, and its next
// connect finds the session present [MQTT-3.2.2-2]. A session with nothing stored is gone:
// its subscriptions leave the router.
func TestConsoleKillStopSession(t *testing.T) {
	b, base := consoleBroker(t, chaosOn(""))
	stop := func(clientID string) {
		t.Helper()
		var c apiClient
		waitFor(t, 5*time.Second, "the client in the directory", func() bool {
			return apiDo(t, "GET", base+"/api/v1/clients/"+clientID, "", &c) == 200 && c.Connected && c.SessionActor != ""
		})
		if code := apiDo(t, "POST", base+"/api/v1/actors/"+url.PathEscape(c.SessionActor)+"/kill?mode=stop", "", nil); code != 202 {
			t.Fatalf("kill: %d", code)
		}
	}
	keep := func(c *codec.Connect) { c.CleanStart = false; c.Properties.SetSessionExpiryInterval(300) }

	rc := dialRaw(t, b.TCP5, codec.V5)
	rc.Connect("stopped", keep)
	rc.Send(&codec.Subscribe{PacketID: 1, Subscriptions: []codec.Subscription{{Filter: "s/#", QoS: 1}}})
	rc.Read()
	clean := dialRaw(t, b.TCP5, codec.V5)
	clean.Connect("clean")
	clean.Send(&codec.Subscribe{PacketID: 1, Subscriptions: []codec.Subscription{{Filter: "c/#", QoS: 1}}})
	clean.Read()

	stop("stopped")
	d, ok := rc.ExpectClosed(5 * time.Second).(*codec.Disconnect)
	if !ok || d.ReasonCode != codec.AdministrativeAction {
		t.Errorf("last packet before close: %+v, want DISCONNECT Administrative action", d)
	}
	stop("clean")
	if d, ok := clean.ExpectClosed(5 * time.Second).(*codec.Disconnect); !ok || d.ReasonCode != codec.AdministrativeAction {
		t.Errorf("clean session's client: last packet %+v, want DISCONNECT Administrative action", d)
	}
	waitFor(t, 5*time.Second, "the stored session back and the clean one gone", func() bool {
		return b.Stats().Subscriptions.Load() == 1 && b.Stats().Sessions.Load() == 1
	})

	pub := dialRaw(t, b.TCP5, codec.V5)
	pub.Connect("publisher")
	pub.Send(&codec.Publish{QoS: 1, PacketID: 3, Topic: "s/x", Payload: []byte("while away")})
	if ack, ok := pub.Read().(*codec.Puback); !ok || ack.ReasonCode != codec.Success {
		t.Fatalf("PUBACK: %+v, want Success (the stored session's subscription matched)", ack)
	}
	again := dialRaw(t, b.TCP5, codec.V5)
	if ack := again.Connect("stopped", keep); !ack.SessionPresent {
		t.Error("the stored session did not come back present")
	}
	if m, ok := again.Read().(*codec.Publish); !ok || string(m.Payload) != "while away" {
		t.Errorf("after reconnecting: %+v, want the message published meanwhile", m)
	}
	again.Send(&codec.Disconnect{})
	pub.Send(&codec.Disconnect{})
	endSessions(t, b, "stopped")
}
