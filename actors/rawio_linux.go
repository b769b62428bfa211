package actors

import (
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"
)

// Reads and writes of plain TCP sockets go through the socket's RawConn with raw system calls:
// the socket is non-blocking, so a call never waits, and a raw call skips the runtime's
// bookkeeping for a call that might block. That bookkeeping is not only its own cost: with one
// P (a broker on one core), a write that is still in the kernel when sysmon looks has its P
// handed to another thread, and taking it back costs two thread switches. When the socket has
// no data (or no room), RawConn parks the goroutine in the netpoller as net.Conn would, and
// the deadlines set on the conn apply the same way.

// socket is a plain TCP connection whose bytes go through raw system calls; everything
// else (deadlines, close, addresses) is the connection's own. One goroutine reads and one
// writes at a time (the reader and the Link's writer), so each direction has one call in
// progress, rd and wr, whose function RawConn runs is bound once: a closure per call over the
// call's results would escape to the heap, three allocations for every read and every write.
type socket struct {
	net.Conn
	raw    syscall.RawConn
	rd, wr rawCall
}

// rawCall is one read or write in progress: its buffer, its result, and the function given to
// RawConn.
type rawCall struct {
	b   []byte
	n   int
	err error
	fn  func(fd uintptr) bool
}

// newSocket returns conn for reading and writing: on plain TCP a socket, else conn itself.
func newSocket(conn net.Conn) net.Conn {
	raw := rawConnOf(conn)
	if raw == nil {
		return conn
	}
	s := &socket{Conn: conn, raw: raw}
	s.rd.fn, s.wr.fn = s.rd.read, s.wr.write
	return s
}

// Read reads into b once: at least one byte, or an error (io.EOF when the peer closed).
// RawConn waits in the netpoller (up to the conn's deadline) whenever fn reports the socket
// not ready, as net.Conn would.
func (s *socket) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	s.rd.start(b)
	return s.rd.finish(s.raw.Read(s.rd.fn))
}

// Write writes all of b.
func (s *socket) Write(b []byte) (int, error) {
	s.wr.start(b)
	return s.wr.finish(s.raw.Write(s.wr.fn))
}

func (c *rawCall) start(b []byte) { c.b, c.n, c.err = b, 0, nil }

// finish returns the call's result; err is RawConn's own (a deadline, a closed conn).
func (c *rawCall) finish(err error) (int, error) {
	if err == nil {
		err = c.err
	}
	c.b, c.err = nil, nil // keep neither the caller's buffer nor the error
	return c.n, err
}

func (c *rawCall) read(fd uintptr) bool {
	m, e := rawIO(syscall.SYS_READ, fd, c.b)
	switch {
	case e == syscall.EAGAIN:
		return false // nothing yet: wait until the socket is readable
	case e != 0:
		c.err = os.NewSyscallError("read", e)
	case m == 0:
		c.err = io.EOF
	default:
		c.n = m
	}
	return true
}

func (c *rawCall) write(fd uintptr) bool {
	for c.n < len(c.b) {
		m, e := rawIO(syscall.SYS_WRITE, fd, c.b[c.n:])
		switch e {
		case 0:
			c.n += m
		case syscall.EAGAIN:
			return false // no room: wait until the socket is writable
		default:
			c.err = os.NewSyscallError("write", e)
			return true
		}
	}
	return true
}

// rawConnOf returns conn's RawConn if its bytes are the socket's (a plain TCP connection, as
// the reader's parking also assumes), else nil.
func rawConnOf(conn net.Conn) syscall.RawConn {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return raw
}

// rawIO makes one read or write system call (trap) on fd with b, again if interrupted.
func rawIO(trap, fd uintptr, b []byte) (int, syscall.Errno) {
	for {
		n, _, e := syscall.RawSyscall(trap, fd, uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)))
		if e != syscall.EINTR {
			return int(n), e
		}
	}
}
