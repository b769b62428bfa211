package config

import (
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pelletier/go-toml/v2"
)

func TestDefault(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatalf("Default() does not validate: %v", err)
	}
	want := []Listener{
		{Name: "mqtt", Kind: "tcp", Address: ":1883", Protocol: "3.1.1", TLSClientAuth: "none"},
		{Name: "mqtt5", Kind: "tcp", Address: ":1884", Protocol: "5.0", TLSClientAuth: "none"},
		{Name: "ws", Kind: "ws", Address: ":8080", Protocol: "5.0", Path: "/mqtt", TLSClientAuth: "none"},
	}
	if !reflect.DeepEqual(c.Listeners, want) {
		t.Errorf("listeners = %+v, want %+v", c.Listeners, want)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"max_connections", c.Limits.MaxConnections, 10000},
		{"max_sessions", c.Limits.MaxSessions, 100000},
		{"connect_timeout", c.Limits.ConnectTimeout.Std(), 10 * time.Second},
		{"max_packet_size", c.Limits.MaxPacketSize, 1048576},
		{"max_client_id_length", c.Limits.MaxClientIDLength, 256},
		{"max_topic_length", c.Limits.MaxTopicLength, 65535},
		{"max_topic_levels", c.Limits.MaxTopicLevels, 128},
		{"max_subscriptions_per_client", c.Limits.MaxSubscriptionsPerClient, 1000},
		{"max_keep_alive", c.MQTT.MaxKeepAlive, 65535},
		{"receive_maximum", c.MQTT.ReceiveMaximum, 1024},
		{"topic_alias_maximum", c.MQTT.TopicAliasMaximum, 64},
		{"max_inflight", c.MQTT.MaxInflight, 128},
		{"max_qos", c.MQTT.MaxQoS, 2},
		{"retain_available", c.MQTT.RetainAvailable, true},
		{"wildcard_subscriptions", c.MQTT.WildcardSubscriptions, true},
		{"subscription_identifiers", c.MQTT.SubscriptionIdentifiers, true},
		{"shared_subscriptions", c.MQTT.SharedSubscriptions, true},
		{"max_session_expiry", c.Sessions.MaxSessionExpiry.Std(), 24 * time.Hour},
		{"max_queued_messages", c.Sessions.MaxQueuedMessages, 1000},
		{"queue_drop_policy", c.Sessions.QueueDropPolicy, "drop_oldest"},
		{"retained.max_messages", c.Retained.MaxMessages, 100000},
		{"shards", c.Router.Shards, 4},
		{"credit_window", c.Router.CreditWindow, 256},
		{"writer_queue", c.Connections.WriterQueue, 1024},
		{"write_timeout", c.Connections.WriteTimeout.Std(), 10 * time.Second},
		{"console.listen", c.Console.Listen, "127.0.0.1:3030"},
		{"console.chaos", c.Console.Chaos, false},
		{"console.token", c.Console.Token, ""},
		{"log.level", c.Log.Level, "info"},
		{"log.format", c.Log.Format, "console"},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}
	// Default returns a fresh copy: callers may change it.
	c.Listeners[0].Name = "changed"
	if Default().Listeners[0].Name != "mqtt" {
		t.Error("Default() shares its listeners slice between calls")
	}
}

func TestProtocolLevel(t *testing.T) {
	for proto, want := range map[string]byte{"3.1": 3, "3.1.1": 4, "5.0": 5} {
		if got := (Listener{Protocol: proto}).ProtocolLevel(); got != want {
			t.Errorf("ProtocolLevel(%q) = %d, want %d", proto, got, want)
		}
	}
}

func TestDurationText(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		out  string
	}{
		{"10s", 10 * time.Second, "10s"},
		{"1m30s", 90 * time.Second, "1m30s"},
		{"24h", 24 * time.Hour, "24h"},
		{"1h30m", 90 * time.Minute, "1h30m"},
		{"90m", 90 * time.Minute, "1h30m"},
		{"500ms", 500 * time.Millisecond, "500ms"},
		{"0s", 0, "0s"},
	} {
		var d Duration
		if err := d.UnmarshalText([]byte(tc.in)); err != nil {
			t.Fatalf("UnmarshalText(%q): %v", tc.in, err)
		}
		if d.Std() != tc.want {
			t.Errorf("UnmarshalText(%q) = %v, want %v", tc.in, d.Std(), tc.want)
		}
		if b, _ := d.MarshalText(); string(b) != tc.out {
			t.Errorf("MarshalText(%v) = %q, want %q", tc.want, b, tc.out)
		}
	}
	var d Duration
	err := d.UnmarshalText([]byte("10 seconds"))
	if err == nil || !strings.Contains(err.Error(), `"10 seconds" is not a duration`) {
		t.Errorf("UnmarshalText(bad) = %v, want a message quoting the value", err)
	}
}

func TestApplyEnv(t *testing.T) {
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == "LOG_LEVEL" {
				return v
			}
			return ""
		}
	}
	for in, want := range map[string]string{"debug": "debug", "WARN": "warn", " error ": "error", "": "info"} {
		c := Default()
		if err := c.ApplyEnv(env(in)); err != nil {
			t.Errorf("LOG_LEVEL=%q: %v", in, err)
		}
		if c.Log.Level != want {
			t.Errorf("LOG_LEVEL=%q: level = %q, want %q", in, c.Log.Level, want)
		}
	}

	c := Default()
	err := c.ApplyEnv(env("verbose"))
	if err == nil || !strings.Contains(err.Error(), `LOG_LEVEL="verbose"`) || !strings.Contains(err.Error(), `"debug"`) {
		t.Errorf("LOG_LEVEL=verbose: err = %v, want one naming LOG_LEVEL and the valid levels", err)
	}
	if c.Log.Level != "info" {
		t.Errorf("a rejected LOG_LEVEL changed the level to %q", c.Log.Level)
	}
}

func TestGenerate(t *testing.T) {
	gen := string(Generate())
	for _, want := range []string{"generated", "docs/CONFIG.md"} {
		if !strings.Contains(gen, want) {
			t.Errorf("the header does not mention %q", want)
		}
	}

	// Every key line has a one-line comment right above it.
	keyLine := regexp.MustCompile(`^[a-z_]+ = `)
	lines := strings.Split(gen, "\n")
	keys := map[string]bool{}
	for i, l := range lines {
		if !keyLine.MatchString(l) {
			continue
		}
		keys[strings.SplitN(l, " ", 2)[0]] = true
		if i == 0 || !strings.HasPrefix(lines[i-1], "# ") {
			t.Errorf("line %d %q has no comment above it", i+1, l)
		}
	}
	// Every key of every section is written (listeners show the keys their
	// kind uses; the TLS ones appear in the commented example).
	for _, sec := range fieldsOf(reflect.TypeOf(Config{})) {
		if sec.name == "listeners" {
			if n := strings.Count(gen, "\n[[listeners]]\n"); n != 3 {
				t.Errorf("%d [[listeners]] tables, want 3", n)
			}
			continue
		}
		if !strings.Contains(gen, "\n["+sec.name+"]\n") {
			t.Errorf("section [%s] missing", sec.name)
		}
		for _, f := range fieldsOf(sec.typ) {
			if !keys[f.name] {
				t.Errorf("key %s.%s missing", sec.name, f.name)
			}
		}
	}
	for _, k := range []string{"tls_cert", "tls_key", "tls_client_ca", "tls_client_auth"} {
		if !strings.Contains(gen, "# "+k+" = ") {
			t.Errorf("the TLS example does not show %s", k)
		}
	}

	// It is plain TOML with listeners as an array of tables.
	var doc map[string]any
	if err := toml.Unmarshal([]byte(gen), &doc); err != nil {
		t.Fatalf("generated file is not TOML: %v", err)
	}
	if ls, ok := doc["listeners"].([]any); !ok || len(ls) != 3 {
		t.Errorf("listeners = %#v, want an array of 3 tables", doc["listeners"])
	}
}

func TestRoundTrip(t *testing.T) {
	got, err := Parse(Generate(), "config.toml")
	if err != nil {
		t.Fatalf("Parse(Generate()): %v", err)
	}
	if want := Default(); !reflect.DeepEqual(got, want) {
		t.Errorf("Parse(Generate()) =\n%+v\nwant Default() =\n%+v", got, want)
	}
}

func TestTOMLString(t *testing.T) {
	for _, s := range []string{"plain", `quote " and \ backslash`, "tab\tnew\nline\r", "bell\x07 del\x7f", "ünïcode"} {
		var out struct{ V string }
		if err := toml.Unmarshal([]byte("V = "+tomlString(s)), &out); err != nil || out.V != s {
			t.Errorf("tomlString(%q) = %s decodes to %q, %v", s, tomlString(s), out.V, err)
		}
	}
}

// TestReferenceDocumentsEveryKey keeps docs/CONFIG.md in step with the types:
// every key appears in the table of its section, with its default.
func TestReferenceDocumentsEveryKey(t *testing.T) {
	doc, err := os.ReadFile("../docs/CONFIG.md")
	if err != nil {
		t.Skipf("reference not found: %v", err)
	}
	parts := strings.Split(string(doc), "\n## ")
	sectionText := map[string]string{}
	for _, p := range parts[1:] {
		title, body, _ := strings.Cut(p, "\n")
		sectionText[strings.Trim(title, "`[]")] = body
	}
	def := reflect.ValueOf(Default())
	for i, sec := range fieldsOf(reflect.TypeOf(Config{})) {
		body, ok := sectionText[sec.name]
		if !ok {
			t.Errorf("no section for [%s]", sec.name)
			continue
		}
		if sec.name == "listeners" {
			for _, f := range fieldsOf(sec.typ.Elem()) {
				if !strings.Contains(body, "| `"+f.name+"`") {
					t.Errorf("listeners.%s is not documented", f.name)
				}
			}
			continue
		}
		for j, f := range fieldsOf(sec.typ) {
			row := "| `" + f.name + "`"
			k := strings.Index(body, row)
			if k < 0 {
				t.Errorf("%s.%s is not documented", sec.name, f.name)
				continue
			}
			line, _, _ := strings.Cut(body[k:], "\n")
			if want := "`" + tomlValue(def.Field(i).Field(j)) + "`"; !strings.Contains(line, want) {
				t.Errorf("%s.%s: row %q does not show the default %s", sec.name, f.name, line, want)
			}
		}
	}
}
