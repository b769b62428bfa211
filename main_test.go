package main

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/actormq/actormq/internal/brokertest"
	"github.com/actormq/actormq/store"
)

// freeConfig writes a config whose listeners are on free loopback ports and returns its path.
func freeConfig(t *testing.T, extra string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.toml")
	body := `
[[listeners]]
name = "mqtt"
kind = "tcp"
address = "127.0.0.1:0"

[console]
listen = ""
` + extra
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestFirstRunWritesConfigAndBadFlagsFail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.toml")
	var stderr bytes.Buffer
	// -config to a missing file: written with defaults; then the broker would serve on the
	// default ports, so only the generation is checked here, through a second, broken load.
	if code := run([]string{"-nosuchflag"}, &stderr); code != 2 {
		t.Fatalf("unknown flag: exit %d, want 2", code)
	}
	if err := os.WriteFile(path+".dir", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	stderr.Reset()
	// A config path inside a file (not a directory) cannot be created: a one-line error.
	code := run([]string{"-config", filepath.Join(path+".dir", "config.toml")}, &stderr)
	if code != 1 || !strings.HasPrefix(stderr.String(), "actormq: ") || strings.Count(stderr.String(), "\n") != 1 {
		t.Fatalf("exit %d, stderr %q: want exit 1 and one line starting with actormq:", code, stderr.String())
	}
}

func TestBrokenConfigNamesFileLineAndKey(t *testing.T) {
	path := freeConfig(t, "\n[limits]\nmax_conections = 5\n")
	var stderr bytes.Buffer
	code := run([]string{"-config", path}, &stderr)
	msg := stderr.String()
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	for _, want := range []string{path + ":", "max_conections", `did you mean "max_connections"`} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not contain %q", msg, want)
		}
	}
	if strings.Contains(msg, "goroutine") || strings.Contains(msg, "panic") {
		t.Errorf("error looks like a stack trace: %q", msg)
	}
}

func TestTakenPortNamesListenerAndPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	path := freeConfig(t, "")
	body, _ := os.ReadFile(path)
	body = bytes.Replace(body, []byte("127.0.0.1:0"), []byte(ln.Addr().String()), 1)
	if err := os.WriteFile(path, body, 0o644); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	code := run([]string{"-config", path}, &stderr)
	msg := stderr.String()
	if code != 1 {
		t.Fatalf("exit %d, want 1 (stderr %q)", code, msg)
	}
	for _, want := range []string{`listener "mqtt"`, ":" + itoa(port), "already in use", "config.toml"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not contain %q", msg, want)
		}
	}
}

// TestBadStoreNamesItsDirectory: a data_dir that is not a store, or one another broker holds,
// stops the broker at start with one line naming the directory, never a reset or a trace.
func TestBadStoreNamesItsDirectory(t *testing.T) {
	for _, c := range []struct {
		name  string
		setup func(t *testing.T, dir string)
		want  string
	}{
		{"not a store", func(t *testing.T, dir string) {
			if err := os.WriteFile(filepath.Join(dir, "CURRENT"), []byte("not pebble\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, "cannot open"},
		{"held by another broker", func(t *testing.T, dir string) {
			st, err := store.Open(dir, store.SyncBatch, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
		}, "lock"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			c.setup(t, dir)
			path := freeConfig(t, "\n[store]\ndata_dir = "+strconv.Quote(dir)+"\n")
			var stderr bytes.Buffer
			code := run([]string{"-config", path}, &stderr)
			msg := stderr.String()
			if code != 1 || strings.Count(msg, "\n") != 1 || !strings.HasPrefix(msg, "actormq: store "+dir) {
				t.Fatalf("exit %d, stderr %q: want exit 1 and one line naming the store %s", code, msg, dir)
			}
			if !strings.Contains(msg, c.want) || strings.Contains(msg, "goroutine") {
				t.Errorf("error %q: want it to say %q, without a stack trace", msg, c.want)
			}
		})
	}
}

// TestSIGTERMExitsZero runs the real binary: on first run it writes config.toml, serves, and
// on SIGTERM it stops within a few seconds with exit status 0.
func TestSIGTERMExitsZero(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "actormq")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	// First run in an empty directory: config.toml appears (-check stops before serving, so
	// the test does not bind the default ports).
	first := exec.Command(bin, "-check")
	first.Dir = dir
	if out, err := first.CombinedOutput(); err != nil {
		t.Fatalf("-check on first run: %v\n%s", err, out)
	}
	generated, err := os.ReadFile(filepath.Join(dir, "config.toml"))
	if err != nil || !bytes.Contains(generated, []byte("[[listeners]]")) {
		t.Fatalf("config.toml not generated with listeners: %v", err)
	}

	path := freeConfig(t, "")
	cmd := exec.Command(bin, "-config", path)
	var stderr brokertest.Output
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(stderr.String(), "actormq started") {
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Fatalf("broker did not start: %s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	start := time.Now()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, stderr.String())
		}
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("no exit within 10 s of SIGTERM")
	}
	if d := time.Since(start); d > 6*time.Second {
		t.Errorf("shutdown took %v", d)
	}
	if !strings.Contains(stderr.String(), "actormq stopped") {
		t.Errorf("no 'actormq stopped' line:\n%s", stderr.String())
	}
}

// A second signal while the graceful stop still runs ends the process at once, with a non-zero
// exit; a stop that finishes first exits 0.
func TestSecondSignalDuringShutdownExits(t *testing.T) {
	hang := make(chan struct{})
	defer close(hang)
	again := make(chan os.Signal, 1)
	again <- syscall.SIGINT
	if code := finish(func() error { <-hang; return nil }, again, zap.NewNop()); code != 1 {
		t.Errorf("exit code %d after a second signal, want 1", code)
	}
	if code := finish(func() error { return nil }, make(chan os.Signal), zap.NewNop()); code != 0 {
		t.Errorf("exit code %d after a finished stop, want 0", code)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
