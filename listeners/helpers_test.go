package listeners

import (
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/actormq/actormq/config"
)

func tcpConfig() config.Listener {
	return config.Listener{Name: "mqtt", Kind: "tcp", Address: "127.0.0.1:0", Protocol: "3.1.1"}
}

func wsConfig() config.Listener {
	return config.Listener{Name: "web", Kind: "ws", Address: "127.0.0.1:0", Protocol: "5.0"}
}

// handed collects what a listener hands over; tests close those conns.
type handed struct{ ch chan handoff }

type handoff struct {
	c net.Conn
	l *Listener
}

func newHanded() *handed { return &handed{ch: make(chan handoff, 64)} }

func (h *handed) handler(c net.Conn, l *Listener) { h.ch <- handoff{c, l} }

func (h *handed) next(t *testing.T) net.Conn {
	t.Helper()
	return h.nextWith(t).c
}

func (h *handed) nextWith(t *testing.T) handoff {
	t.Helper()
	select {
	case ho := <-h.ch:
		t.Cleanup(func() { _ = ho.c.Close() })
		return ho
	case <-time.After(5 * time.Second):
		t.Fatal("no connection handed to the handler")
		return handoff{}
	}
}

func (h *handed) none(t *testing.T, wait time.Duration) {
	t.Helper()
	select {
	case ho := <-h.ch:
		_ = ho.c.Close()
		t.Fatal("a connection was handed over, none expected")
	case <-time.After(wait):
	}
}

func start(t *testing.T, cfg config.Listener, h Handler, o Options) *Listener {
	t.Helper()
	l, err := Start(cfg, h, o)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// eventually polls cond for up to 5s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func waitGoroutines(t *testing.T, atMost int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > atMost {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			n := runtime.Stack(buf, true)
			t.Fatalf("goroutines: %d, want <= %d\n%s", runtime.NumGoroutine(), atMost, buf[:n])
		}
		time.Sleep(10 * time.Millisecond)
	}
}
