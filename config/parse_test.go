package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// parseErr parses src and returns its error's problems, failing the test
// when there is no *ValidationError.
func parseErr(t *testing.T, src string) []string {
	t.Helper()
	_, err := Parse([]byte(src), "config.toml")
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("Parse(%q) error = %v (%T), want *ValidationError", src, err, err)
	}
	if ve.File != "config.toml" {
		t.Errorf("File = %q, want config.toml", ve.File)
	}
	for _, p := range ve.Problems {
		if strings.Contains(p, "goroutine") || strings.Contains(p, "panic") {
			t.Errorf("problem looks like a crash: %q", p)
		}
	}
	return ve.Problems
}

func wantProblems(t *testing.T, src string, want ...string) {
	t.Helper()
	got := parseErr(t, src)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("problems:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

func TestParsePartialKeepsDefaults(t *testing.T) {
	c, err := Parse([]byte("[limits]\nmax_connections = 50\nmax_sessions = 60\n[sessions]\nmax_session_expiry = \"1h30m\"\n"), "config.toml")
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.Limits.MaxConnections = 50
	want.Limits.MaxSessions = 60
	want.Sessions.MaxSessionExpiry = Duration(90 * time.Minute)
	if c.Limits != want.Limits || c.Sessions != want.Sessions || c.MQTT != want.MQTT || len(c.Listeners) != 3 {
		t.Errorf("got %+v\nwant %+v", c, want)
	}

	// Dotted keys and inline tables reach the same values.
	c, err = Parse([]byte("limits.max_connections = 50\nlimits.max_sessions = 60\nmqtt = { max_qos = 1 }\n"), "config.toml")
	if err != nil || c.Limits.MaxConnections != 50 || c.Limits.MaxSessions != 60 || c.MQTT.MaxQoS != 1 || c.MQTT.MaxInflight != 128 {
		t.Errorf("dotted keys: %+v, %v", c, err)
	}
}

func TestParseListenersReplaceDefaults(t *testing.T) {
	src := `
[[listeners]]
name = "plain"
address = "127.0.0.1:0"

[[listeners]]
name = "web"
kind = "wss"
address = ":0"
tls_cert = "c.pem"
tls_key = "k.pem"
`
	c, err := Parse([]byte(src), "config.toml")
	if err != nil {
		t.Fatal(err)
	}
	want := []Listener{
		{Name: "plain", Kind: "tcp", Address: "127.0.0.1:0", Protocol: "3.1.1", TLSClientAuth: "none"},
		{Name: "web", Kind: "wss", Address: ":0", Protocol: "3.1.1", Path: "/mqtt", TLSCert: "c.pem", TLSKey: "k.pem", TLSClientAuth: "none"},
	}
	if len(c.Listeners) != len(want) {
		t.Fatalf("listeners = %+v, want %+v", c.Listeners, want)
	}
	for i := range want {
		if c.Listeners[i] != want[i] {
			t.Errorf("listener %d = %+v, want %+v", i, c.Listeners[i], want[i])
		}
	}

	// The inline-array form works too.
	c, err = Parse([]byte(`listeners = [{ name = "a", address = ":0" }]`), "config.toml")
	if err != nil || len(c.Listeners) != 1 || c.Listeners[0].Name != "a" {
		t.Errorf("inline listeners: %+v, %v", c.Listeners, err)
	}
}

func TestParseUnknownKey(t *testing.T) {
	// Line 12 on purpose: the message of the brief.
	src := strings.Repeat("\n", 10) + "[limits]\nmax_conections = 5\n"
	wantProblems(t, src, `config.toml:12: unknown key "limits.max_conections" (did you mean "max_connections"?)`)

	wantProblems(t, "[limits]\nzzz = 1\n", `config.toml:2: unknown key "limits.zzz"`)
}

func TestParseUnknownKeysAllReported(t *testing.T) {
	src := `max_connections = 1
[limits]
max-sessions = 5
connect_timeout = "1s"
nothing_like_it = 1
[limit]
x = 1
[[listeners]]
nam = "a"
[mqtt]
Max_QoS = 1
`
	wantProblems(t, src,
		`config.toml:1: unknown key "max_connections" (did you mean "limits.max_connections"? it belongs in [limits])`,
		`config.toml:3: unknown key "limits.max-sessions" (did you mean "max_sessions"?)`,
		`config.toml:5: unknown key "limits.nothing_like_it"`,
		`config.toml:6: unknown table [limit] (did you mean [limits]?)`,
		`config.toml:9: unknown key "listeners.nam" (did you mean "name"?)`,
		`config.toml:11: unknown key "mqtt.Max_QoS" (did you mean "max_qos"?)`,
	)
}

func TestParseWrongTypes(t *testing.T) {
	src := "# line 1\n\n\n\n\n[limits]\nmax_connections = \"lots\"\n"
	wantProblems(t, src, `config.toml:7: key "limits.max_connections": expected an integer, got string "lots"`)

	for _, tc := range []struct{ src, want string }{
		{"[limits]\nmax_packet_size = 1.5", `config.toml:2: key "limits.max_packet_size": expected an integer, got float 1.5`},
		{"[mqtt]\nretain_available = \"yes\"", `config.toml:2: key "mqtt.retain_available": expected true or false, got string "yes"`},
		{"[log]\nlevel = 3", `config.toml:2: key "log.level": expected a string, got integer 3`},
		{"[limits]\nconnect_timeout = 10", `config.toml:2: key "limits.connect_timeout": expected a duration string such as "10s", got integer 10`},
		{"limits = 3", `config.toml:1: key "limits": expected a table [limits], got integer 3`},
		{"listeners = \"x\"", `config.toml:1: key "listeners": expected [[listeners]] tables, got string "x"`},
		{"[listeners]\nname = \"x\"", `config.toml:1: listeners is a list of tables: write [[listeners]], not [listeners]`},
		{"[[limits]]", `config.toml:1: [[limits]] is not a list: write [limits]`},
		{"[console.listen]", `config.toml:1: key "console.listen" is a single value, not a table`},
		{"[mqtt]\nmax_qos = 99999999999999999999", `config.toml:2: key "mqtt.max_qos": 99999999999999999999 is too large`},
		{"[[listeners]]\nname = \"a\"\naddress = 1883", `config.toml:3: key "listeners.address": expected a string, got integer 1883`},
		{"[log]\nlevel = true", `config.toml:2: key "log.level": expected a string, got true`},
		{"[log]\nlevel = [\"info\"]", `config.toml:2: key "log.level": expected a string, got an array`},
		{"[log]\nlevel = { a = 1 }", `config.toml:2: key "log.level": expected a string, got a table`},
		{"[log]\nlevel = 1979-05-27", `config.toml:2: key "log.level": expected a string, got date/time 1979-05-27`},
		{"mqtt.max_qos = \"two\"", `config.toml:1: key "mqtt.max_qos": expected an integer, got string "two"`},
		{"[log]\nlevel.x = 1", `config.toml:2: key "log.level": expected a string, got a table`},
		{"listeners.name = \"x\"", `config.toml:1: key "listeners": expected [[listeners]] tables, got a table`},
		{"mqtt = { max_qos = \"two\" }", `config.toml:1: key "mqtt.max_qos": expected an integer, got string "two"`},
	} {
		got := parseErr(t, tc.src)
		if len(got) != 1 || got[0] != tc.want {
			t.Errorf("%q:\n got %q\nwant %q", tc.src, got, tc.want)
		}
		for _, goName := range []string{"int64", "of type", "struct", "config.Limits"} {
			if strings.Contains(got[0], goName) {
				t.Errorf("%q: message %q names a Go type", tc.src, got[0])
			}
		}
	}
}

func TestParseBadDuration(t *testing.T) {
	wantProblems(t, "[connections]\nwrite_timeout = \"10 seconds\"\n",
		`config.toml:2: key "connections.write_timeout": "10 seconds" is not a duration (write a number with a unit, like "500ms", "10s", "1m30s" or "24h")`)
}

func TestParseSyntaxError(t *testing.T) {
	wantProblems(t, "[limits\nmax_connections = 1\n", `config.toml:1:8: syntax error: expected ']' to close table name`)
	wantProblems(t, "[log]\nlevel = \"info\nformat = \"json\"\n", `config.toml:2:14: syntax error: basic strings cannot have new lines`)
	// Only a decoder sees a key defined twice; it still gets file and line.
	wantProblems(t, "[mqtt]\nmax_qos = 1\nmax_qos = 2\n", `config.toml:3:1: key max_qos is already defined`)
}

func TestParseValidationHasLines(t *testing.T) {
	src := `[[listeners]]
name = "a"
address = ":1883"

[[listeners]]
name = "b"
kind = "tls"
address = ":8883"

[limits]
max_packet_size = 10
`
	wantProblems(t, src,
		`config.toml:5: listener #2 "b": kind "tls" needs tls_cert (a PEM certificate file)`,
		`config.toml:5: listener #2 "b": kind "tls" needs tls_key (a PEM private key file)`,
		`config.toml:11: limits.max_packet_size = 10: must be between 64 and 268435460`,
	)
	// A relation points at whichever of its keys the file has.
	wantProblems(t, "[limits]\nmax_connections = 200000\n",
		`config.toml:2: limits.max_sessions = 100000: must be at least limits.max_connections (200000), since every connection has a session`)
	// A problem with a default value has no line to point at.
	wantProblems(t, "[[listeners]]\nname = \"c\"\naddress = \":3030\"\n",
		`config.toml: console.listen: address "127.0.0.1:3030" uses port 3030, already taken by listener #1 "c" (":3030")`)
	wantProblems(t, "listeners = []\n",
		`config.toml:1: listeners: at least one [[listeners]] table is needed, or the broker accepts no clients`)
}

func TestParseBOM(t *testing.T) {
	if _, err := Parse(append([]byte("\uFEFF"), Generate()...), "config.toml"); err != nil {
		t.Errorf("a file starting with a byte order mark: %v", err)
	}
}

// FuzzParse checks that no input makes Parse panic or return a Go-looking
// message; go test runs the seeds.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"", "[", "a=", "[[listeners]]\n[listeners.x.y]\n", "listeners=[1,{}]", "x={a={b=1}}", "[limits]\nmax_connections=0x7fffffffffffffff", string(Generate())} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		_, err := Parse(data, "config.toml")
		if err != nil && strings.Contains(err.Error(), "goroutine ") {
			t.Errorf("stack trace in %q", err)
		}
	})
}

func TestLoadCreates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.toml")
	c, created, err := Load(path)
	if err != nil || !created {
		t.Fatalf("Load(missing) = created %v, %v", created, err)
	}
	if c.Limits != Default().Limits || len(c.Listeners) != 3 {
		t.Errorf("Load(missing) did not give the defaults: %+v", c)
	}
	data, err := os.ReadFile(path)
	if err != nil || string(data) != string(Generate()) {
		t.Fatalf("written file differs from Generate(): %v", err)
	}
	st, _ := os.Stat(path)
	if p := st.Mode().Perm(); p&0o600 != 0o600 || p&0o133 != 0 {
		t.Errorf("mode %v, want 0644 (less the umask)", p)
	}

	if _, created, err = Load(path); err != nil || created {
		t.Errorf("second Load = created %v, %v; want the existing file read", created, err)
	}

	// Deleting the file brings the defaults back.
	os.Remove(path)
	if _, created, err = Load(path); err != nil || !created {
		t.Errorf("Load after delete = created %v, %v", created, err)
	}
}

// TestLoadDataDirBesideTheFile: a relative store.data_dir is relative to the configuration
// file's directory, not to wherever the broker was started from; an absolute one stays.
func TestLoadDataDirBesideTheFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.toml")
	c, _, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "data"); c.Store.DataDir != want {
		t.Errorf("default data_dir = %q, want %q", c.Store.DataDir, want)
	}
	abs := filepath.Join(t.TempDir(), "elsewhere")
	os.WriteFile(path, []byte("[store]\ndata_dir = "+tomlString(abs)+"\n"), 0o644)
	if c, _, err = Load(path); err != nil || c.Store.DataDir != abs {
		t.Errorf("absolute data_dir = %q, %v; want %q", c.Store.DataDir, err, abs)
	}
	os.WriteFile(path, []byte("[store]\nsync = \"sometimes\"\ndata_dir = \"\"\n"), 0o644)
	_, _, err = Load(path)
	for _, want := range []string{path + ":2:", "store.sync", `"batch", "always" or "none"`, "store.data_dir"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("bad [store]: error %v does not name %q", err, want)
		}
	}
}

func TestLoadNeverOverwrites(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.toml")
	mine := "[limits]\nmax_connections = 7\nmax_sessions = 7\n"
	os.WriteFile(path, []byte(mine), 0o644)
	c, created, err := Load(path)
	if err != nil || created || c.Limits.MaxConnections != 7 {
		t.Errorf("Load(existing) = %d, created %v, %v", c.Limits.MaxConnections, created, err)
	}

	// Not even when it is broken.
	bad := "[limits]\nmax_conections = 7\n"
	os.WriteFile(path, []byte(bad), 0o644)
	_, created, err = Load(path)
	if err == nil || created || !strings.Contains(err.Error(), path+":2:") {
		t.Errorf("Load(broken) = created %v, %v; want an error at %s:2", created, err, path)
	}
	if data, _ := os.ReadFile(path); string(data) != bad {
		t.Errorf("Load rewrote a broken file: %q", data)
	}
}

func TestLoadUnreadable(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o644)
	for name, path := range map[string]string{
		"a directory":            dir,
		"below a file":           filepath.Join(file, "config.toml"),
		"in a missing directory": filepath.Join(dir, "missing", "config.toml"),
	} {
		_, created, err := Load(path)
		if err == nil || created || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: Load(%s) = created %v, %v; want an error naming the path", name, path, created, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "missing")); err == nil {
		t.Error("Load created a missing parent directory")
	}
}

func TestParseCapsProblems(t *testing.T) {
	src := "[limits]\n" + strings.Repeat("x = 1\n", 60)
	_, err := Parse([]byte(src), "config.toml")
	var ve *ValidationError
	if !errors.As(err, &ve) || len(ve.Problems) != 50 || ve.Omitted != 10 {
		t.Fatalf("Parse(60 unknown keys) = %v", err)
	}
	if msg := err.Error(); !strings.HasPrefix(msg, "config.toml: 60 problems:") || !strings.HasSuffix(msg, "\n  ... and 10 more") {
		t.Errorf("Error() = %q", msg)
	}

	// Long values are shortened in messages.
	long := strings.Repeat("é", 100)
	got := parseErr(t, "[log]\nlevel = \""+long+"\"\n")
	if len(got) != 1 || len(got[0]) > 200 || !strings.Contains(got[0], `é..."`) {
		t.Errorf("long value: %q", got)
	}
}
