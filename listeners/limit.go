package listeners

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"
)

// ConnLimit is the broker-wide cap on open connections (max_connections),
// shared by all listeners. A slot is taken when a socket is accepted, before
// any byte is read, so a flood of connections costs no more than a close.
// All methods are safe on a nil *ConnLimit, which means no limit.
type ConnLimit struct {
	max      int64
	n        atomic.Int64
	rejected atomic.Uint64
	lastWarn atomic.Int64  // unix nanoseconds of the last WARN
	warned   atomic.Uint64 // rejected count at the last WARN
}

// NewConnLimit caps open connections at max; max <= 0 means no cap, but
// connections are still counted.
func NewConnLimit(max int) *ConnLimit {
	return &ConnLimit{max: int64(max)}
}

// Max is the cap (0 for none).
func (c *ConnLimit) Max() int {
	if c == nil || c.max < 0 {
		return 0
	}
	return int(c.max)
}

// Count is the number of connections holding a slot now.
func (c *ConnLimit) Count() int {
	if c == nil {
		return 0
	}
	return int(c.n.Load())
}

// Rejected is how many connections were refused because the cap was reached.
func (c *ConnLimit) Rejected() uint64 {
	if c == nil {
		return 0
	}
	return c.rejected.Load()
}

func (c *ConnLimit) acquire() bool {
	if c == nil {
		return true
	}
	if c.max <= 0 {
		c.n.Add(1)
		return true
	}
	for {
		n := c.n.Load()
		if n >= c.max {
			return false
		}
		if c.n.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

func (c *ConnLimit) release() {
	if c != nil {
		c.n.Add(-1)
	}
}

// reject counts a refused connection and logs at most once a second: a
// flood must not turn into a flood of log lines.
func (c *ConnLimit) reject(log *zap.Logger, remote net.Addr) {
	total := c.rejected.Add(1)
	now := time.Now().UnixNano()
	last := c.lastWarn.Load()
	if last != 0 && now-last < int64(time.Second) {
		return
	}
	if !c.lastWarn.CompareAndSwap(last, now) {
		return
	}
	log.Warn("connection limit reached: new connections are closed at once",
		zap.Int("max_connections", c.Max()),
		zap.Uint64("refused", total-c.warned.Swap(total)),
		zap.Uint64("refused_total", total),
		zap.Stringer("last_remote", remote))
}

// trackedConn holds a slot of the ConnLimit until its first Close.
type trackedConn struct {
	net.Conn
	limit *ConnLimit
	once  sync.Once
}

func (c *trackedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.limit.release)
	return err
}

// Unwrap gives the accepted socket (a *net.TCPConn), e.g. for TLS or
// socket options. Closing it directly would leak the slot: close the
// wrapper.
func (c *trackedConn) Unwrap() net.Conn { return c.Conn }

// SyscallConn gives the socket's descriptor, so that the connection layer
// can wait for a plain TCP connection to become readable without a
// goroutine of its own (a TLS or WebSocket conn built on top has no such
// method: its bytes are not the socket's).
func (c *trackedConn) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := c.Conn.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, errors.ErrUnsupported
}
