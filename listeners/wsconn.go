package listeners

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// ErrTextFrame is returned by Read on a WebSocket connection whose peer sent
// a text frame: MQTT travels in binary frames only [MQTT-6.0.0-1]. The
// connection has been sent close code 1003; its owner closes it.
var ErrTextFrame = errors.New("websocket: text frame received, MQTT needs binary frames")

// wsCloseTimeout bounds the best-effort close frame: Close runs in a
// connection actor, which must not wait on a peer that does not read.
const wsCloseTimeout = 100 * time.Millisecond

// wsConn presents a WebSocket connection as the byte stream MQTT expects.
// MQTT packets are not aligned on frames [MQTT-6.0.0-2], so Read streams
// message after message, and never holds a whole message in memory.
//
// gorilla allows one reader and one writer at a time; net.Conn allows any
// number, hence the mutexes (uncontended in the broker: one reader
// goroutine, one writer goroutine per connection).
type wsConn struct {
	ws *websocket.Conn

	readMu  sync.Mutex
	cur     io.Reader // the current message, nil between messages
	readErr error     // sticky: gorilla panics after 1000 reads of a failed conn

	writeMu       sync.Mutex
	deadlineMu    sync.Mutex
	writeDeadline time.Time

	closeSent atomic.Bool
}

var _ net.Conn = (*wsConn)(nil)

func newWSConn(ws *websocket.Conn) *wsConn { return &wsConn{ws: ws} }

func (c *wsConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.readMu.Lock()
	defer c.readMu.Unlock()
	for c.readErr == nil {
		if c.cur == nil {
			typ, r, err := c.ws.NextReader()
			if err != nil {
				c.readErr = c.mapErr("read", err)
				break
			}
			if typ != websocket.BinaryMessage {
				c.readErr = ErrTextFrame
				c.sendClose(websocket.CloseUnsupportedData, "MQTT needs binary frames")
				break
			}
			c.cur = r
		}
		n, err := c.cur.Read(p)
		if err == io.EOF {
			// End of this message; the stream goes on with the next one.
			c.cur = nil
			err = nil
		}
		if err != nil {
			c.readErr = c.mapErr("read", err)
			return n, c.readErr
		}
		if n > 0 {
			return n, nil
		}
	}
	return 0, c.readErr
}

// Write sends p as exactly one binary message (one frame).
func (c *wsConn) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	c.deadlineMu.Lock()
	d := c.writeDeadline
	c.deadlineMu.Unlock()
	// gorilla re-applies its own write deadline at every write, so it must
	// learn ours; it reads that field only under writeMu.
	_ = c.ws.SetWriteDeadline(d)
	if err := c.ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, c.mapErr("write", err)
	}
	return len(p), nil
}

// Close sends a close frame if it can do so at once, then closes the socket.
// A writer blocked on a peer that does not read holds the write side, and
// waiting for it would stall the caller, so the frame is then skipped.
func (c *wsConn) Close() error {
	if c.writeMu.TryLock() {
		c.sendClose(websocket.CloseNormalClosure, "")
		c.writeMu.Unlock()
	}
	return c.ws.Close()
}

func (c *wsConn) sendClose(code int, text string) {
	if c.closeSent.CompareAndSwap(false, true) {
		_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, text), time.Now().Add(wsCloseTimeout))
	}
}

func (c *wsConn) LocalAddr() net.Addr  { return c.ws.LocalAddr() }
func (c *wsConn) RemoteAddr() net.Addr { return c.ws.RemoteAddr() }

// SetReadDeadline acts on the socket at once. As with gorilla, a read that
// times out leaves the connection unusable for reading.
func (c *wsConn) SetReadDeadline(t time.Time) error { return c.ws.SetReadDeadline(t) }

// SetWriteDeadline applies to later writes and, set on the socket too, to a
// write already blocked.
func (c *wsConn) SetWriteDeadline(t time.Time) error {
	c.deadlineMu.Lock()
	c.writeDeadline = t
	c.deadlineMu.Unlock()
	return c.ws.NetConn().SetWriteDeadline(t)
}

func (c *wsConn) SetDeadline(t time.Time) error {
	return errors.Join(c.SetReadDeadline(t), c.SetWriteDeadline(t))
}

// mapErr makes WebSocket errors look like a TCP socket's, so the connection
// layer needs no transport-specific cases: a peer's close (clean or not) is
// io.EOF and a deadline is os.ErrDeadlineExceeded.
func (c *wsConn) mapErr(op string, err error) error {
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		return io.EOF
	}
	if errors.Is(err, websocket.ErrCloseSent) {
		return &net.OpError{Op: op, Net: "websocket", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: net.ErrClosed}
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return &net.OpError{Op: op, Net: "websocket", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: os.ErrDeadlineExceeded}
	}
	return err
}

// Unwrap gives the socket under the WebSocket: a *tls.Conn on a wss listener, whose
// ConnectionState carries the client's certificate.
func (c *wsConn) Unwrap() net.Conn { return c.ws.UnderlyingConn() }
