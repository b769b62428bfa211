package listeners

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/actormq/actormq/config"
	"github.com/gorilla/websocket"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestTCPAcceptHandsConn(t *testing.T) {
	h := newHanded()
	l := start(t, tcpConfig(), h.handler, Options{Log: zap.NewNop()})
	if l.Name() != "mqtt" || l.Kind() != "tcp" || l.ProtocolLevel() != 4 {
		t.Fatalf("Name/Kind/ProtocolLevel = %q %q %d", l.Name(), l.Kind(), l.ProtocolLevel())
	}
	client, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()

	ho := h.nextWith(t)
	if ho.l != l {
		t.Fatal("handler got another *Listener")
	}
	if got, want := ho.c.RemoteAddr().String(), client.LocalAddr().String(); got != want {
		t.Fatalf("RemoteAddr = %s, want %s", got, want)
	}
	u, ok := ho.c.(interface{ Unwrap() net.Conn })
	if !ok {
		t.Fatal("handed conn has no Unwrap")
	}
	if _, ok := u.Unwrap().(*net.TCPConn); !ok {
		t.Fatalf("Unwrap = %T, want *net.TCPConn", u.Unwrap())
	}
	if _, err := client.Write([]byte{0xC0, 0x00}); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2)
	if _, err := io.ReadFull(ho.c, buf); err != nil || buf[0] != 0xC0 {
		t.Fatalf("read %x, %v", buf, err)
	}
}

func TestBindErrorPortInUse(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	port := fmt.Sprint(taken.Addr().(*net.TCPAddr).Port)

	for _, kind := range []string{"tcp", "ws"} {
		cfg := config.Listener{Name: "mqtt", Kind: kind, Address: taken.Addr().String()}
		_, err := Start(cfg, func(net.Conn, *Listener) {}, Options{})
		var be *BindError
		if !errors.As(err, &be) {
			t.Fatalf("%s: err = %v (%T), want *BindError", kind, err, err)
		}
		if be.Listener != "mqtt" || be.Kind != kind || be.Address != cfg.Address {
			t.Fatalf("%s: BindError fields %+v", kind, be)
		}
		if !errors.Is(err, syscall.EADDRINUSE) {
			t.Fatalf("%s: not EADDRINUSE: %v", kind, err)
		}
		msg := err.Error()
		for _, want := range []string{`listener "mqtt" (` + kind + `)`, port, "already in use", "mosquitto", `change the address of listener "mqtt" in config.toml`} {
			if !strings.Contains(msg, want) {
				t.Errorf("%s: message %q lacks %q", kind, msg, want)
			}
		}
	}
}

func TestBindErrorMessages(t *testing.T) {
	sysErr := func(e syscall.Errno) error {
		return &net.OpError{Op: "listen", Net: "tcp", Err: os.NewSyscallError("bind", e)}
	}
	cases := []struct {
		err  error
		want string
	}{
		{sysErr(syscall.EACCES), "cannot listen on :80: permission denied: ports below 1024 need root or CAP_NET_BIND_SERVICE"},
		{sysErr(syscall.EADDRNOTAVAIL), "does not belong to this machine"},
	}
	for _, c := range cases {
		msg := (&BindError{Listener: "low", Kind: "tcp", Address: ":80", Err: c.err}).Error()
		if !strings.Contains(msg, c.want) || !strings.Contains(msg, `listener "low" in config.toml`) {
			t.Errorf("message %q, want it to contain %q", msg, c.want)
		}
		if strings.Contains(msg, "bind:") || strings.Contains(msg, "listen tcp") {
			t.Errorf("message %q carries Go's error prefixes", msg)
		}
	}

	_, err := Start(config.Listener{Name: "bad", Kind: "tcp", Address: "localhost"}, func(net.Conn, *Listener) {}, Options{})
	var be *BindError
	if !errors.As(err, &be) || !strings.Contains(err.Error(), "missing port") || !strings.Contains(err.Error(), `"bad"`) {
		t.Fatalf("bad address: %v", err)
	}
}

func TestStartRejectsKinds(t *testing.T) {
	nop := func(net.Conn, *Listener) {}
	for kind, want := range map[string]string{
		"tls": `listener "x": a TLS listener needs tls_cert and tls_key`,
		"wss": `listener "x": a TLS listener needs tls_cert and tls_key`,
		"udp": `unknown kind "udp"`,
	} {
		_, err := Start(config.Listener{Name: "x", Kind: kind, Address: "127.0.0.1:0"}, nop, Options{})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("kind %s: err = %v, want %q", kind, err, want)
		}
	}
	if _, err := Start(tcpConfig(), nil, Options{}); err == nil {
		t.Error("nil handler accepted")
	}
}

func TestConnLimitRejectsAndReleases(t *testing.T) {
	limit := NewConnLimit(2)
	h := newHanded()
	l := start(t, tcpConfig(), h.handler, Options{Limit: limit})
	dial := func() net.Conn {
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	dial()
	dial()
	a, b := h.next(t), h.next(t)
	if limit.Count() != 2 {
		t.Fatalf("Count = %d, want 2", limit.Count())
	}

	third := dial()
	_ = third.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := third.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("over the limit: read err = %v, want the server to close", err)
	}
	h.none(t, 50*time.Millisecond)
	if limit.Rejected() != 1 || limit.Count() != 2 {
		t.Fatalf("Rejected = %d, Count = %d; want 1, 2", limit.Rejected(), limit.Count())
	}

	_ = a.Close()
	_ = a.Close()
	if limit.Count() != 1 {
		t.Fatalf("after double Close: Count = %d, want 1", limit.Count())
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() { defer wg.Done(); _ = b.Close() }()
	}
	wg.Wait()
	if limit.Count() != 0 {
		t.Fatalf("after concurrent Closes: Count = %d, want 0", limit.Count())
	}

	dial()
	h.next(t)
	if limit.Count() != 1 {
		t.Fatalf("slot not reusable: Count = %d", limit.Count())
	}
}

func TestConnLimitWarnIsRateLimited(t *testing.T) {
	core, logs := observer.New(zapcore.WarnLevel)
	limit := NewConnLimit(1)
	h := newHanded()
	l := start(t, tcpConfig(), h.handler, Options{Log: zap.New(core), Limit: limit})
	for range 6 {
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	h.next(t)
	eventually(t, "5 rejections", func() bool { return limit.Rejected() == 5 })
	warns := logs.FilterMessageSnippet("connection limit").All()
	if len(warns) != 1 {
		t.Fatalf("%d WARN lines for 5 rejections within a second, want 1", len(warns))
	}
	if f := warns[0].ContextMap(); f["listener"] != "mqtt" || f["max_connections"] != int64(1) {
		t.Fatalf("WARN fields %v", f)
	}
}

func TestConnLimitUnit(t *testing.T) {
	var nilLimit *ConnLimit
	if !nilLimit.acquire() || nilLimit.Count() != 0 || nilLimit.Rejected() != 0 || nilLimit.Max() != 0 {
		t.Fatal("nil ConnLimit must mean no limit")
	}
	nilLimit.release()

	unlimited := NewConnLimit(0)
	for range 100 {
		if !unlimited.acquire() {
			t.Fatal("max 0 must not limit")
		}
	}
	if unlimited.Count() != 100 {
		t.Fatalf("unlimited Count = %d", unlimited.Count())
	}

	// Many goroutines racing for 10 slots get exactly 10.
	limit := NewConnLimit(10)
	var got atomic.Int32
	var wg sync.WaitGroup
	for range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if limit.acquire() {
				got.Add(1)
			}
		}()
	}
	wg.Wait()
	if got.Load() != 10 || limit.Count() != 10 {
		t.Fatalf("acquired %d, Count %d; want 10", got.Load(), limit.Count())
	}
}

func TestCloseStopsAcceptingAndGoroutinesEnd(t *testing.T) {
	base := runtime.NumGoroutine()
	limit := NewConnLimit(100)
	h := newHanded()
	tcp, err := Start(tcpConfig(), h.handler, Options{Limit: limit})
	if err != nil {
		t.Fatal(err)
	}
	ws, err := Start(wsConfig(), h.handler, Options{Limit: limit})
	if err != nil {
		t.Fatal(err)
	}

	tc, err := net.Dial("tcp", tcp.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	served := h.next(t)
	wc, _, err := websocket.DefaultDialer.Dial("ws://"+ws.Addr().String()+"/mqtt", mqttHeader("mqtt"))
	if err != nil {
		t.Fatal(err)
	}
	defer wc.Close()
	wsServed := h.next(t)
	// One connection stuck in HTTP: it never sends a request.
	stuck, err := net.Dial("tcp", ws.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer stuck.Close()
	eventually(t, "3 connections counted", func() bool { return limit.Count() == 3 })

	for _, l := range []*Listener{tcp, ws} {
		if err := l.Close(); err != nil {
			t.Fatalf("Close %s: %v", l.Kind(), err)
		}
		if err := l.Close(); err != nil {
			t.Fatalf("second Close %s: %v", l.Kind(), err)
		}
		select {
		case <-l.Done():
		default:
			t.Fatal("Done not closed after Close")
		}
		if l.Err() != nil {
			t.Fatalf("Err after Close = %v", l.Err())
		}
		if c, err := net.DialTimeout("tcp", l.Addr().String(), time.Second); err == nil {
			c.Close()
			t.Fatalf("%s still accepts after Close", l.Kind())
		}
	}
	// The stuck HTTP connection was closed with the server; the handed-over
	// ones still work: they belong to their owners.
	eventually(t, "stuck HTTP conn released", func() bool { return limit.Count() == 2 })
	if _, err := tc.Write([]byte{1}); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(served, make([]byte, 1)); err != nil {
		t.Fatalf("handed TCP conn closed by listener Close: %v", err)
	}
	if err := wc.WriteMessage(websocket.BinaryMessage, []byte{2}); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(wsServed, make([]byte, 1)); err != nil {
		t.Fatalf("handed ws conn closed by listener Close: %v", err)
	}
	waitGoroutines(t, base)
}

func TestConcurrentClose(t *testing.T) {
	l, err := Start(wsConfig(), func(c net.Conn, _ *Listener) { c.Close() }, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() { defer wg.Done(); _ = l.Close() }()
	}
	wg.Wait()
}

// fakeListener fails Accept with err until closed.
type fakeListener struct {
	err    error
	calls  atomic.Int32
	closed chan struct{}
	once   sync.Once
}

func newFakeListener(err error) *fakeListener {
	return &fakeListener{err: err, closed: make(chan struct{})}
}

func (f *fakeListener) Accept() (net.Conn, error) {
	f.calls.Add(1)
	select {
	case <-f.closed:
		return nil, net.ErrClosed
	default:
		return nil, f.err
	}
}

func (f *fakeListener) Close() error   { f.once.Do(func() { close(f.closed) }); return nil }
func (f *fakeListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }

func TestAcceptBacksOffOnTemporaryErrors(t *testing.T) {
	core, logs := observer.New(zapcore.WarnLevel)
	fl := newFakeListener(&net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)})
	l := newListener(tcpConfig(), func(net.Conn, *Listener) {}, Options{Log: zap.New(core)}, fl)
	go l.serveTCP()

	time.Sleep(300 * time.Millisecond)
	// 5+10+20+40+80+160 ms: about 6 tries in 300 ms, where a busy loop
	// would make millions.
	if n := fl.calls.Load(); n < 3 || n > 10 {
		t.Fatalf("%d Accept calls in 300ms, want a backoff (about 6)", n)
	}
	if logs.FilterMessageSnippet("retrying").Len() == 0 {
		t.Fatal("no WARN for the accept error")
	}
	// Close does not wait out the backoff: after the 7th try the next wait
	// is 320 ms.
	eventually(t, "7 tries", func() bool { return fl.calls.Load() >= 7 })
	begin := time.Now()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(begin); d > 150*time.Millisecond {
		t.Fatalf("Close took %v during backoff", d)
	}
	if l.Err() != nil {
		t.Fatalf("Err = %v after Close", l.Err())
	}
}

func TestAcceptFatalErrorEndsListener(t *testing.T) {
	boom := errors.New("boom")
	fl := newFakeListener(boom)
	l := newListener(tcpConfig(), func(net.Conn, *Listener) {}, Options{}, fl)
	go l.serveTCP()
	select {
	case <-l.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("listener did not stop on a fatal accept error")
	}
	if !errors.Is(l.Err(), boom) {
		t.Fatalf("Err = %v, want boom", l.Err())
	}
	_ = l.Close()
}

func TestHandlerPanicKeepsAccepting(t *testing.T) {
	limit := NewConnLimit(10)
	h := newHanded()
	var first atomic.Bool
	l := start(t, tcpConfig(), func(c net.Conn, l *Listener) {
		if first.CompareAndSwap(false, true) {
			panic("handler bug")
		}
		h.handler(c, l)
	}, Options{Limit: limit})
	for range 2 {
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	h.next(t)
	eventually(t, "panicked conn released", func() bool { return limit.Count() == 1 })
}
