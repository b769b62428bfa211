package main

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/actormq/actormq/auth"
	"github.com/actormq/actormq/codec"
	"github.com/actormq/actormq/config"
	"github.com/actormq/actormq/supervisor"
)

// The passwd subcommand writes a file the broker accepts logins from.
func TestPasswdSubcommandRoundTrip(t *testing.T) {
	file := filepath.Join(t.TempDir(), "passwd")
	var stderr bytes.Buffer
	if code := run([]string{"passwd", "-b", "first", file, "alice"}, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	// Again with the password on standard input (not a terminal: one line is read).
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	_, _ = w.WriteString("second\n")
	w.Close()
	defer r.Close()
	if code := passwd([]string{file, "alice"}, r, &stderr); code != 0 {
		t.Fatalf("stdin: exit %d: %s", code, stderr.String())
	}
	if code := run([]string{"passwd", "-b", "b", file, "bob"}, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	data, _ := os.ReadFile(file)
	if strings.Count(string(data), "alice:$2") != 1 || strings.Count(string(data), "bob:$2") != 1 || strings.Contains(string(data), "second") {
		t.Fatalf("file:\n%s", data)
	}
	if st, _ := os.Stat(file); st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode().Perm())
	}
	for _, bad := range [][]string{{"passwd"}, {"passwd", file}, {"passwd", "-nosuch", file, "x"}} {
		if code := run(bad, &stderr); code != 2 {
			t.Errorf("%v: exit %d, want 2", bad, code)
		}
	}
	if code := run([]string{"passwd", "-b", "x", file, "a:b"}, &stderr); code != 1 {
		t.Errorf("user with ':': exit %d, want 1", code)
	}

	cfg := config.Default()
	cfg.Listeners = cfg.Listeners[:1]
	cfg.Listeners[0].Address = "127.0.0.1:0"
	cfg.Console.Listen = ""
	cfg.Store.DataDir = t.TempDir() // not the default data/ beside the test
	cfg.Auth.AllowAnonymous = false
	cfg.Auth.PasswordFile = file
	b, err := supervisor.Start(cfg, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Stop(context.Background())
	addr := b.Addr("mqtt").String()
	for _, c := range []struct {
		user, pw string
		want     codec.ReasonCode
	}{
		{"alice", "second", codec.ConnAccepted},
		{"alice", "first", codec.ConnRefusedBadUsernamePassword},
		{"bob", "b", codec.ConnAccepted},
	} {
		if got := connectWith(t, addr, c.user, c.pw); got != c.want {
			t.Errorf("%s/%s: CONNACK %d, want %d", c.user, c.pw, got, c.want)
		}
	}
	// The file changes; the broker reads it on Reload (SIGHUP in serve).
	if code := run([]string{"passwd", "-b", "third", file, "bob"}, &stderr); code != 0 {
		t.Fatal(stderr.String())
	}
	if err := b.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := connectWith(t, addr, "bob", "third"); got != codec.ConnAccepted {
		t.Errorf("after reload: CONNACK %d", got)
	}
	if _, err := auth.LoadPasswords(file); err != nil {
		t.Fatal(err)
	}
}

func connectWith(t *testing.T, addr, user, pw string) codec.ReasonCode {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	p := &codec.Connect{ProtocolName: "MQTT", Version: codec.V311, CleanStart: true, KeepAlive: 30, ClientID: "c-" + user,
		Username: user, HasUsername: true, Password: []byte(pw), HasPassword: true}
	buf, err := codec.Append(nil, p, codec.V311)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write(buf); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	rd := codec.NewReader(bufio.NewReader(conn), 0)
	rd.SetVersion(codec.V311)
	pkt, err := rd.ReadPacket()
	if err != nil {
		t.Fatal(err)
	}
	return pkt.(*codec.Connack).ReasonCode
}
