// Package listeners runs the accept loops of the broker's listeners (tcp, tls, ws, wss)
// and hands every accepted connection, as a plain net.Conn, to a Handler. It
// knows nothing of MQTT packets or actors: whatever the transport, the
// connection layer above sees only a byte stream.
package listeners

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/actormq/actormq/config"
)

// Handler is called for each accepted connection. It must return quickly:
// it only hands the conn on (the listener's accept loop waits for it). From
// then on the conn belongs to the handler's side, which must Close it.
type Handler func(c net.Conn, l *Listener)

// Options are shared by all listeners of a broker.
type Options struct {
	Log *zap.Logger // nil means a no-op logger
	// Limit is the broker-wide max_connections; nil means no limit.
	Limit *ConnLimit
	// HandshakeTimeout bounds the HTTP upgrade of a ws listener, so a client
	// that trickles its request (slowloris) cannot hold a slot. Default 10s.
	HandshakeTimeout time.Duration
}

// DefaultHandshakeTimeout is used when Options.HandshakeTimeout is zero.
const DefaultHandshakeTimeout = 10 * time.Second

// DefaultWSPath is the WebSocket path when the config names none.
const DefaultWSPath = "/mqtt"

// Accept-error backoff: long enough that a process out of file descriptors
// does not spin, short enough to recover quickly once some are freed.
const (
	minAcceptBackoff = 5 * time.Millisecond
	maxAcceptBackoff = time.Second
)

// Listener is one bound, serving listener.
type Listener struct {
	cfg   config.Listener
	path  string // ws only
	h     Handler
	log   *zap.Logger
	limit *ConnLimit
	ln    net.Listener
	srv   *http.Server // ws only
	tls   *tlsFiles    // tls and wss only

	closing   atomic.Bool
	stop      chan struct{} // closed by Close: interrupts accept backoff
	done      chan struct{} // closed when the serving goroutine has ended
	conns     sync.WaitGroup
	closeOnce sync.Once
	closeErr  error

	errMu sync.Mutex
	err   error // why serving stopped, if not Close
}

// Start binds the listener's address now, so that a taken port is reported
// before anything else starts, then serves in its own goroutine(s). A bind
// failure is a *BindError.
func Start(cfg config.Listener, h Handler, o Options) (*Listener, error) {
	if h == nil {
		return nil, fmt.Errorf("listener %q: nil handler", cfg.Name)
	}
	var tf *tlsFiles
	switch cfg.Kind {
	case "tcp", "ws":
	case "tls", "wss":
		// Certificates are read before the port is bound: a missing file is the error to show.
		var err error
		if tf, err = newTLSFiles(cfg.Name, cfg.TLSCert, cfg.TLSKey, cfg.TLSClientCA, cfg.TLSClientAuth); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("listener %q: unknown kind %q (want tcp, tls, ws or wss)", cfg.Name, cfg.Kind)
	}
	ln, err := bind(cfg)
	if err != nil {
		return nil, err
	}
	l := newListener(cfg, h, o, ln)
	l.tls = tf
	if cfg.Kind == "ws" || cfg.Kind == "wss" {
		l.log.Info("listening", zap.Stringer("address", ln.Addr()), zap.String("path", l.path))
		l.startWS(o.HandshakeTimeout)
	} else {
		l.log.Info("listening", zap.Stringer("address", ln.Addr()))
		go l.serveTCP()
	}
	return l, nil
}

// bind opens the socket with TCP keep-alive off: MQTT has its own keep-alive,
// and kernel probes would only add traffic and a second, slower timeout.
// TCP_NODELAY stays on (Go's default): MQTT packets are small and the
// connection writer already batches them.
func bind(cfg config.Listener) (net.Listener, error) {
	lc := net.ListenConfig{KeepAlive: -1}
	ln, err := lc.Listen(context.Background(), "tcp", cfg.Address)
	if err != nil {
		return nil, &BindError{Listener: cfg.Name, Kind: cfg.Kind, Address: cfg.Address, Err: err}
	}
	return ln, nil
}

// newListener builds a Listener around an already bound ln; tests use it
// to inject a listener whose Accept fails.
func newListener(cfg config.Listener, h Handler, o Options, ln net.Listener) *Listener {
	log := o.Log
	if log == nil {
		log = zap.NewNop()
	}
	l := &Listener{
		cfg:   cfg,
		h:     h,
		log:   log.With(zap.String("listener", cfg.Name), zap.String("kind", cfg.Kind)),
		limit: o.Limit,
		ln:    ln,
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	if cfg.Kind == "ws" || cfg.Kind == "wss" {
		l.path = cfg.Path
		if l.path == "" {
			l.path = DefaultWSPath
		}
		if l.path[0] != '/' {
			l.path = "/" + l.path
		}
	}
	return l
}

// Name is the listener's name from the config.
func (l *Listener) Name() string { return l.cfg.Name }

// Kind is "tcp", "tls", "ws" or "wss".
func (l *Listener) Kind() string { return l.cfg.Kind }

// Addr is the bound address (with the real port when the config said :0).
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

// ProtocolLevel is the MQTT protocol level assumed before CONNECT names one.
func (l *Listener) ProtocolLevel() byte { return l.cfg.ProtocolLevel() }

// Path is the WebSocket path of a ws or wss listener ("" otherwise).
func (l *Listener) Path() string { return l.path }

// Done is closed when the listener has stopped serving, by Close or because
// accepting failed for good (see Err). The owner watches it to restart a
// listener that died on its own.
func (l *Listener) Done() <-chan struct{} { return l.done }

// Err is why the listener stopped serving on its own; nil while it serves
// and after Close.
func (l *Listener) Err() error {
	l.errMu.Lock()
	defer l.errMu.Unlock()
	return l.err
}

func (l *Listener) setErr(err error) {
	l.errMu.Lock()
	l.err = err
	l.errMu.Unlock()
}

// Close stops accepting and waits until every goroutine of the listener has
// ended. Connections already handed to the Handler are not closed: they
// belong to their owners. A conn handed over while Close runs is handed over
// before Close returns. Close is idempotent and safe to call concurrently.
func (l *Listener) Close() error {
	l.closeOnce.Do(func() {
		l.closing.Store(true)
		close(l.stop)
		var err error
		if l.srv != nil {
			// Closes the listener and the connections still in HTTP; it
			// does not know hijacked (upgraded) ones, so those live on.
			err = l.srv.Close()
		} else {
			err = l.ln.Close()
		}
		if err != nil && !errors.Is(err, net.ErrClosed) {
			l.closeErr = err
		}
	})
	<-l.done
	l.conns.Wait()
	return l.closeErr
}

func (l *Listener) serveTCP() {
	defer close(l.done)
	for {
		c, err := l.accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				l.setErr(err)
			}
			return
		}
		if l.tls != nil {
			// The handshake runs on the connection's first read, in its reader goroutine,
			// under the connect timeout: a slow client never holds up the accept loop.
			c = tls.Server(c, l.tls.config())
		}
		l.handOff(c)
	}
}

// handOff gives c to the handler. A panicking handler is a bug, but it must
// not take the whole accept loop (and the process) down with it.
func (l *Listener) handOff(c net.Conn) {
	defer func() {
		if r := recover(); r != nil {
			l.log.Error("connection handler panicked; connection closed",
				zap.Any("panic", r), zap.Stringer("remote", c.RemoteAddr()))
			_ = c.Close()
		}
	}()
	l.h(c, l)
}

// accept returns the next connection that got a slot of the connection
// limit, wrapped so that closing it frees the slot. It retries temporary
// errors with backoff and returns net.ErrClosed once the listener is closed.
func (l *Listener) accept() (net.Conn, error) {
	var delay time.Duration
	for {
		c, err := l.ln.Accept()
		if err != nil {
			if l.closing.Load() || errors.Is(err, net.ErrClosed) {
				return nil, net.ErrClosed
			}
			if !isTemporary(err) {
				l.log.Error("accepting connections failed; the listener stops", zap.Error(err))
				return nil, err
			}
			delay = min(max(2*delay, minAcceptBackoff), maxAcceptBackoff)
			l.log.Warn("accepting a connection failed; retrying", zap.Error(err), zap.Duration("retry_in", delay))
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-l.stop:
				t.Stop()
				return nil, net.ErrClosed
			}
			continue
		}
		delay = 0
		if l.closing.Load() {
			_ = c.Close()
			return nil, net.ErrClosed
		}
		if !l.limit.acquire() {
			_ = c.Close()
			l.limit.reject(l.log, c.RemoteAddr())
			continue
		}
		return &trackedConn{Conn: c, limit: l.limit}, nil
	}
}

// isTemporary tells errors that go away by themselves (resources run out,
// a peer gave up while queued) from a listener that is broken for good.
func isTemporary(err error) bool {
	for _, e := range []syscall.Errno{
		syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM,
		syscall.ECONNABORTED, syscall.ECONNRESET, syscall.EINTR, syscall.EAGAIN,
		syscall.ETIMEDOUT, syscall.EPROTO, syscall.EPERM,
	} {
		if errors.Is(err, e) {
			return true
		}
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
