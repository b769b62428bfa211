package main

import (
	"fmt"
	"io"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// target is where the load goes: a TCP host:port or a WebSocket URL.
type target struct {
	ws      bool
	addr    string // host:port
	url     string // ws://host:port/path when ws
	sources int    // local addresses 127.0.0.1 … 127.0.0.<sources> to dial from, in turn
}

// nextSource picks the local address of the next connection. Linux gives connect(2) ephemeral
// ports of one parity first: past about 14,000 connections from one source address to one
// port, each connect searches the whole half range, about 0.5 ms of the client's kernel time
// (measured here: 50 µs per dial up to 10,000, 600–700 µs from 14,000). Several source
// addresses keep that cost out of a connect-rate measurement of the broker.
var nextSource atomic.Uint32

func (t target) dialer(timeout time.Duration) *net.Dialer {
	// No TCP keep-alive: MQTT has its own, and its four setsockopt calls are a tenth of what a
	// connect costs the generator.
	d := &net.Dialer{Timeout: timeout, KeepAlive: -1}
	if t.sources > 1 {
		i := nextSource.Add(1) % uint32(t.sources)
		d.LocalAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(1+i))}
		d.Control = bindNoPort
	}
	return d
}

// parseTarget accepts tcp://host:port, host:port and ws://host:port/path and
// refuses anything that is not a loopback address: this tool is for
// measuring a broker on the same machine, not for loading someone else's.
func parseTarget(s string) (target, error) {
	var t target
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		u, err = url.Parse("tcp://" + s)
		if err != nil {
			return t, fmt.Errorf("target %q: %v", s, err)
		}
	}
	switch u.Scheme {
	case "tcp", "mqtt":
	case "ws":
		t.ws = true
		if u.Path == "" {
			u.Path = "/mqtt"
		}
		t.url = u.String()
	default:
		return t, fmt.Errorf("target %q: scheme must be tcp or ws", s)
	}
	t.addr = u.Host
	host := u.Hostname()
	ips, err := net.LookupIP(host)
	if err != nil || len(ips) == 0 {
		return t, fmt.Errorf("target %q: cannot resolve %q", s, host)
	}
	for _, ip := range ips {
		if !ip.IsLoopback() {
			return t, fmt.Errorf("target %q: %s is not a loopback address; this load generator only runs against a broker on this machine", s, ip)
		}
	}
	return t, nil
}

func (t target) String() string {
	if t.ws {
		return t.url
	}
	return "tcp://" + t.addr
}

func (t target) dial(timeout time.Duration) (net.Conn, error) {
	if !t.ws {
		c, err := t.dialer(timeout).Dial("tcp", t.addr)
		if err != nil {
			return nil, err
		}
		return c, nil
	}
	d := websocket.Dialer{
		NetDialContext:   t.dialer(timeout).DialContext,
		HandshakeTimeout: timeout,
		Subprotocols:     []string{"mqtt"},
		ReadBufferSize:   16 << 10,
		WriteBufferSize:  16 << 10,
	}
	ws, _, err := d.Dial(t.url, nil)
	if err != nil {
		return nil, err
	}
	return &wsStream{Conn: ws}, nil
}

// wsStream turns a WebSocket into the byte stream MQTT runs on: every Write
// is one binary message (the client writes whole batches of packets), Read
// continues across message boundaries.
type wsStream struct {
	*websocket.Conn
	rmu sync.Mutex
	cur io.Reader
	wmu sync.Mutex
}

func (w *wsStream) Read(p []byte) (int, error) {
	w.rmu.Lock()
	defer w.rmu.Unlock()
	for {
		if w.cur == nil {
			kind, r, err := w.NextReader()
			if err != nil {
				return 0, err
			}
			if kind != websocket.BinaryMessage {
				return 0, fmt.Errorf("websocket: unexpected message type %d", kind)
			}
			w.cur = r
		}
		n, err := w.cur.Read(p)
		if err == io.EOF {
			w.cur = nil
			if n > 0 {
				return n, nil
			}
			continue
		}
		return n, err
	}
}

func (w *wsStream) Write(p []byte) (int, error) {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	if err := w.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (w *wsStream) SetDeadline(t time.Time) error {
	if err := w.SetReadDeadline(t); err != nil {
		return err
	}
	return w.SetWriteDeadline(t)
}
