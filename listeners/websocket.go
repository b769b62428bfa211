package listeners

import (
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/zap"
)

// wsSubprotocols in order of preference: "mqtt" is MQTT 3.1.1 and 5.0's
// [MQTT-6.0.0-3/4]; "mqttv3.1" is what MQTT 3.1 clients offer.
var wsSubprotocols = []string{"mqtt", "mqttv3.1"}

// wsMaxHeaderBytes leaves room for a browser's cookies but not for abuse.
const wsMaxHeaderBytes = 16 << 10

// wsWriteBuffers is shared by all ws connections: a buffer is held only while
// a message is written, so idle connections (most of them) hold none.
var wsWriteBuffers = &sync.Pool{}

// startWS serves HTTP on l.ln and upgrades requests on l.path and "/".
func (l *Listener) startWS(handshakeTimeout time.Duration) {
	if handshakeTimeout <= 0 {
		handshakeTimeout = DefaultHandshakeTimeout
	}
	up := &websocket.Upgrader{
		HandshakeTimeout: handshakeTimeout,
		Subprotocols:     wsSubprotocols,
		WriteBufferPool:  wsWriteBuffers,
		// Browser pages on any origin are ordinary MQTT clients; the MQTT
		// CONNECT authenticates them, not the Origin header.
		CheckOrigin:       func(*http.Request) bool { return true },
		EnableCompression: false,
		Error: func(w http.ResponseWriter, _ *http.Request, status int, reason error) {
			http.Error(w, reason.Error(), status)
		},
	}
	errLog, _ := zap.NewStdLogAt(l.log, zap.DebugLevel)
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { l.serveUpgrade(up, w, r) })
	l.srv = &http.Server{
		Handler: mux,
		// Slowloris: the request line and headers must come in time, and an
		// idle HTTP keep-alive connection must not hold a slot forever.
		ReadHeaderTimeout: handshakeTimeout,
		IdleTimeout:       handshakeTimeout,
		MaxHeaderBytes:    wsMaxHeaderBytes,
		ErrorLog:          errLog,
		// Count each connection's goroutine so Close can wait for it. StateNew
		// runs in Serve's goroutine before Serve can return, so every Add
		// happens before Close's Wait. A hijacked connection's goroutine is
		// counted on by serveUpgrade until it returns.
		ConnState: func(_ net.Conn, s http.ConnState) {
			switch s {
			case http.StateNew:
				l.conns.Add(1)
			case http.StateHijacked, http.StateClosed:
				l.conns.Done()
			}
		},
	}
	var ln net.Listener = wsAcceptor{l}
	if l.tls != nil {
		// http.Server runs the handshake under ReadHeaderTimeout; Hijack then hands over the
		// *tls.Conn, so the connection actor can see the client's certificate.
		ln = tls.NewListener(ln, l.tls.config())
	}
	go func() {
		defer close(l.done)
		err := l.srv.Serve(ln)
		if err != nil && !errors.Is(err, http.ErrServerClosed) && !l.closing.Load() {
			l.setErr(err)
		}
	}()
}

func (l *Listener) serveUpgrade(up *websocket.Upgrader, w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != l.path && r.URL.Path != "/" {
		http.NotFound(w, r)
		return
	}
	if websocket.IsWebSocketUpgrade(r) && !offersMQTT(r) {
		// Without a subprotocol gorilla would upgrade anyway; MQTT says the
		// client must offer "mqtt", so refuse plainly instead.
		http.Error(w, `MQTT over WebSocket needs the subprotocol "mqtt" (Sec-WebSocket-Protocol: mqtt)`, http.StatusBadRequest)
		return
	}
	// Hijacking ends the connection's StateNew count (StateHijacked), but this
	// goroutine still runs; the connection's count is still held here, so
	// this Add cannot race with Close's Wait.
	l.conns.Add(1)
	defer l.conns.Done()
	ws, err := up.Upgrade(w, r, nil)
	if err != nil {
		l.log.Debug("websocket upgrade failed", zap.Stringer("remote", stringer(r.RemoteAddr)), zap.Error(err))
		return
	}
	c := newWSConn(ws)
	if l.closing.Load() {
		_ = c.Close()
		return
	}
	l.handOff(c)
}

func offersMQTT(r *http.Request) bool {
	for _, p := range websocket.Subprotocols(r) {
		for _, s := range wsSubprotocols {
			if p == s {
				return true
			}
		}
	}
	return false
}

type stringer string

func (s stringer) String() string { return string(s) }

// wsAcceptor gives http.Server the connections that passed the limit; it
// retries temporary errors itself so the server's own retry never runs.
type wsAcceptor struct{ l *Listener }

func (a wsAcceptor) Accept() (net.Conn, error) { return a.l.accept() }
func (a wsAcceptor) Close() error              { return a.l.ln.Close() }
func (a wsAcceptor) Addr() net.Addr            { return a.l.ln.Addr() }
