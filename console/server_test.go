package console

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/actormq/actormq/actors"
	"github.com/actormq/actormq/config"
)

// fake is a Backend with fixed answers, recording writes.
type fake struct {
	cfg      config.Config
	stats    actors.Stats
	actors   []ActorInfo
	clients  []actors.ClientView
	retained []actors.RetainedView
	slow     bool // Retained and Router wait for the context to end

	killed, kicked []string
}

func (f *fake) Actors() []ActorInfo { return f.actors }
func (f *fake) Kill(id, mode string) error {
	if mode != "stop" && mode != "panic" {
		return ErrBadRequest
	}
	for _, a := range f.actors {
		if a.ID == id {
			f.killed = append(f.killed, id+" "+mode)
			return nil
		}
	}
	return ErrNotFound
}
func (f *fake) Clients() []actors.ClientView { return f.clients }
func (f *fake) Client(id string) (actors.ClientView, bool) {
	for _, c := range f.clients {
		if c.ClientID == id {
			return c, true
		}
	}
	return actors.ClientView{}, false
}
func (f *fake) Disconnect(id string) error {
	if _, ok := f.Client(id); !ok {
		return ErrNotFound
	}
	f.kicked = append(f.kicked, id)
	return nil
}
func (f *fake) Router(ctx context.Context) []ShardInfo {
	if f.slow {
		<-ctx.Done()
		return []ShardInfo{{Error: "actor router/shard-0 did not answer"}}
	}
	return []ShardInfo{{ShardView: actors.ShardView{Index: 0, Retained: len(f.retained)}}}
}
func (f *fake) Retained(ctx context.Context, filter string) ([]actors.RetainedView, error) {
	if f.slow {
		<-ctx.Done()
		return nil, errors.Join(ErrTimeout, ctx.Err())
	}
	return f.retained, nil
}
func (f *fake) Stats() *actors.Stats         { return &f.stats }
func (f *fake) Directory() *actors.Directory { return nil }
func (f *fake) Totals() actors.Totals {
	t := actors.Totals{Connected: map[actors.ListenerProtocol]int{}}
	for _, c := range f.clients {
		t.Inflight += c.Inflight
		t.Queued += c.Queued
		if c.Connected {
			t.Connected[actors.ListenerProtocol{Listener: c.Listener, Protocol: c.Protocol}]++
		}
	}
	return t
}
func (f *fake) Config() config.Config             { return f.cfg }
func (f *fake) StartedAt() time.Time              { return time.Now().Add(-time.Minute) }
func (f *fake) RestartsByKind() map[string]uint64 { return map[string]uint64{"session": 2} }
func (f *fake) Listeners() []ListenerInfo {
	return []ListenerInfo{{Name: "mqtt", Kind: "tcp", Address: "127.0.0.1:1883", Protocol: "3.1.1"}}
}

func newFake() *fake {
	f := &fake{cfg: config.Default()}
	f.actors = []ActorInfo{
		{ID: "sessions", Kind: "session registry", Children: []string{"sessions/session/a/b#1"}},
		{ID: "sessions/session/a/b#1", Kind: "session", Parent: "sessions", MailboxDepth: 3},
	}
	f.clients = []actors.ClientView{
		{ClientID: "a/b#1", Connected: true, Protocol: "5.0", Listener: "mqtt5", Inflight: 2,
			Subscriptions: []actors.SubView{{Filter: "x/#", QoS: 1}}},
		{ClientID: "c", Subscriptions: []actors.SubView{{Filter: "x/#", QoS: 0}, {Filter: "y", QoS: 2}}},
	}
	for i := range 5 {
		f.retained = append(f.retained, actors.RetainedView{Topic: "t/" + string(rune('a'+i))})
	}
	f.stats.MessagesInQoS[1].Add(7)
	return f
}

func serve(t *testing.T, f *fake) *httptest.Server {
	s := &Server{b: f, log: zap.NewNop()}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return ts
}

// do sends a request and decodes a JSON answer into out (when not nil); it returns the status.
func do(t *testing.T, method, u string, hdr map[string]string, out any) int {
	t.Helper()
	code, ct, body := request(t, method, u, hdr)
	if out != nil && ct != "application/json" {
		t.Errorf("%s %s: content type %q", method, u, ct)
	}
	if out != nil {
		if err := json.Unmarshal(body, out); err != nil {
			t.Fatalf("%s %s: %q: %v", method, u, body, err)
		}
	}
	return code
}

// request sends a request and returns the status, the content type and the body.
func request(t *testing.T, method, u string, hdr map[string]string) (int, string, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, u, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Content-Type"), body
}

func TestReads(t *testing.T) {
	ts := serve(t, newFake())
	var a ActorInfo
	// An id with '/' and '#', escaped as one segment and as the rest of the path.
	for _, p := range []string{"sessions%2Fsession%2Fa%2Fb%231", "sessions/session/a/b%231"} {
		if code := do(t, "GET", ts.URL+"/api/v1/actors/"+p, nil, &a); code != 200 || a.MailboxDepth != 3 {
			t.Errorf("actor %s: %d %+v", p, code, a)
		}
	}
	var e struct{ Error string }
	if code := do(t, "GET", ts.URL+"/api/v1/actors/none", nil, &e); code != 404 || e.Error == "" {
		t.Errorf("unknown actor: %d %+v", code, e)
	}
	var c actors.ClientView
	if code := do(t, "GET", ts.URL+"/api/v1/clients/a%2Fb%231", nil, &c); code != 200 || c.Inflight != 2 {
		t.Errorf("client: %d %+v", code, c)
	}
	var subs struct{ Subscriptions []FilterSubscribers }
	do(t, "GET", ts.URL+"/api/v1/subscriptions", nil, &subs)
	if len(subs.Subscriptions) != 2 || subs.Subscriptions[0].Filter != "x/#" || len(subs.Subscriptions[0].Subscribers) != 2 {
		t.Errorf("subscriptions: %+v", subs)
	}
	var o Overview
	do(t, "GET", ts.URL+"/api/v1/overview", nil, &o)
	if o.ActorRestarts != 2 || o.UptimeSeconds < 59 || len(o.Listeners) != 1 {
		t.Errorf("overview: %+v", o)
	}
	if code := do(t, "GET", ts.URL+"/api/v1/nothing", nil, &e); code != 404 {
		t.Errorf("unknown endpoint: %d", code)
	}
}

func TestRetainedPaging(t *testing.T) {
	ts := serve(t, newFake())
	var r struct {
		Total, Offset, Limit int
		Messages             []actors.RetainedView
	}
	do(t, "GET", ts.URL+"/api/v1/retained?limit=2&offset=3", nil, &r)
	if r.Total != 5 || len(r.Messages) != 2 || r.Messages[0].Topic != "t/d" {
		t.Errorf("page: %+v", r)
	}
	do(t, "GET", ts.URL+"/api/v1/retained?offset=9", nil, &r)
	if len(r.Messages) != 0 || r.Messages == nil {
		t.Errorf("past the end: %+v", r)
	}
	var e struct{ Error string }
	for _, q := range []string{"limit=0", "limit=x", "offset=-1", "filter=a/%23/b"} {
		if code := do(t, "GET", ts.URL+"/api/v1/retained?"+q, nil, &e); code != 400 || e.Error == "" {
			t.Errorf("%s: %d %+v", q, code, e)
		}
	}
}

func TestStuckShardsTimeOut(t *testing.T) {
	f := newFake()
	f.slow = true
	ts := serve(t, f)
	var e struct{ Error string }
	start := time.Now()
	if code := do(t, "GET", ts.URL+"/api/v1/retained", nil, &e); code != 504 || e.Error == "" {
		t.Errorf("retained from a stuck shard: %d %+v", code, e)
	}
	var r struct{ Shards []ShardInfo }
	if code := do(t, "GET", ts.URL+"/api/v1/router", nil, &r); code != 200 || r.Shards[0].Error == "" {
		t.Errorf("router with a stuck shard: %d %+v", code, r)
	}
	if d := time.Since(start); d > 3*askTimeout {
		t.Errorf("took %v", d)
	}
}

func TestWriteGuards(t *testing.T) {
	f := newFake()
	ts := serve(t, f)
	kill := ts.URL + "/api/v1/actors/sessions%2Fsession%2Fa%2Fb%231/kill?mode=panic"
	var e struct{ Error string }
	if code := do(t, "POST", kill, nil, &e); code != 403 || !strings.Contains(e.Error, "chaos") {
		t.Errorf("chaos off: %d %+v", code, e)
	}

	f.cfg.Console.Chaos, f.cfg.Console.Token = true, "t0ken"
	for _, h := range []map[string]string{nil, {"Authorization": "Bearer nope"}, {"Authorization": "t0ken"}} {
		if code := do(t, "POST", kill, h, &e); code != 401 {
			t.Errorf("token %v: %d", h, code)
		}
	}
	auth := map[string]string{"Authorization": "Bearer t0ken"}
	cross := map[string]string{"Authorization": "Bearer t0ken", "Origin": "http://evil.example"}
	if code := do(t, "POST", kill, cross, &e); code != 403 {
		t.Errorf("cross-origin: %d", code)
	}
	if code := do(t, "POST", kill, auth, nil); code != 202 || len(f.killed) != 1 || f.killed[0] != "sessions/session/a/b#1 panic" {
		t.Errorf("kill: %d %v", code, f.killed)
	}
	if code := do(t, "POST", ts.URL+"/api/v1/actors/sessions/kill?mode=melt", auth, &e); code != 400 {
		t.Errorf("bad mode: %d", code)
	}
	if code := do(t, "POST", ts.URL+"/api/v1/actors/sessions/poke", auth, &e); code != 404 {
		t.Errorf("unknown write: %d", code)
	}
	if code := do(t, "POST", ts.URL+"/api/v1/clients/a%2Fb%231/disconnect", auth, nil); code != 202 || len(f.kicked) != 1 {
		t.Errorf("disconnect: %d %v", code, f.kicked)
	}
	if code := do(t, "POST", ts.URL+"/api/v1/clients/zz/disconnect", auth, &e); code != 404 {
		t.Errorf("disconnect unknown: %d", code)
	}
}

// TestProfiles: Go's profiles are served for go tool pprof, behind the token when one is set.
func TestProfiles(t *testing.T) {
	f := newFake()
	ts := serve(t, f)
	get := func(hdr map[string]string) (int, string) {
		code, _, body := request(t, "GET", ts.URL+"/debug/pprof/heap?debug=1", hdr)
		return code, string(body)
	}
	if code, body := get(nil); code != 200 || !strings.Contains(body, "heap profile") {
		t.Errorf("heap profile without a token set: %d %.80q", code, body)
	}
	f.cfg.Console.Token = "t0ken"
	if code, _ := get(nil); code != 401 {
		t.Errorf("heap profile without the token: %d, want 401", code)
	}
	if code, body := get(map[string]string{"Authorization": "Bearer t0ken"}); code != 200 || !strings.Contains(body, "heap profile") {
		t.Errorf("heap profile with the token: %d", code)
	}
}

func TestConfigRedacted(t *testing.T) {
	f := newFake()
	f.cfg.Console.Token = "hide-me"
	ts := serve(t, f)
	resp, err := http.Get(ts.URL + "/api/v1/config")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(body), "hide-me") || !strings.Contains(string(body), `"sys_interval": "10s"`) {
		t.Errorf("config: %s", body)
	}
	m := map[string]any{"a": []any{map[string]any{"password": "x", "name": "n"}}, "api_token": ""}
	redact(m)
	if m["a"].([]any)[0].(map[string]any)["password"] != "<redacted>" || m["api_token"] != "" {
		t.Errorf("redact: %v", m)
	}
}

func TestMetricsAndPage(t *testing.T) {
	ts := serve(t, newFake())
	resp, err := http.Get(ts.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`actormq_messages_received_total{qos="1"} 7`,
		`actormq_actor_restarts_total{kind="session"} 2`,
		`actormq_mailbox_depth{kind="session"} 3`,
		`actormq_connections{listener="mqtt5",protocol="5.0"} 1`,
		`actormq_inflight_messages 2`,
		"actormq_parked_workers ",
		"go_goroutines",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	resp, err = http.Get(ts.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "actormq console") || strings.Contains(string(body), "https://") {
		t.Errorf("page: %d bytes, must be self-contained", len(body))
	}
}

func TestStartClose(t *testing.T) {
	s, err := Start("127.0.0.1:0", newFake(), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + s.Addr().String() + "/readyz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("readyz: %v %v", resp, err)
	}
	resp.Body.Close()
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := Start(s.Addr().String()+"x", newFake(), zap.NewNop()); err == nil {
		t.Error("a bad address must fail")
	}
}
