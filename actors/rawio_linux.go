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
// else (deadlines, close, addresses) is the connection's own.
type socket struct {
	net.Conn
	raw syscall.RawConn
}

// newSocket returns conn for reading and writing: on plain TCP a socket, else conn itself.
func newSocket(conn net.Conn) net.Conn {
	if raw := rawConnOf(conn); raw != nil {
		return &socket{Conn: conn, raw: raw}
	}
	return conn
}

func (s *socket) Read(b []byte) (int, error)  { return rawRead(s.raw, b) }
func (s *socket) Write(b []byte) (int, error) { return rawWrite(s.raw, b) }

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

// rawWrite writes all of b.
func rawWrite(raw syscall.RawConn, b []byte) (int, error) {
	n := 0
	var werr error
	err := raw.Write(func(fd uintptr) bool {
		for n < len(b) {
			m, e := rawIO(syscall.SYS_WRITE, fd, b[n:])
			switch e {
			case 0:
				n += m
			case syscall.EAGAIN:
				return false // no room: wait until the socket is writable
			default:
				werr = os.NewSyscallError("write", e)
				return true
			}
		}
		return true
	})
	if err == nil {
		err = werr
	}
	return n, err
}

// rawRead reads into b once: at least one byte, or an error (io.EOF when the peer closed).
func rawRead(raw syscall.RawConn, b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	n := 0
	var rerr error
	err := raw.Read(func(fd uintptr) bool {
		m, e := rawIO(syscall.SYS_READ, fd, b)
		switch {
		case e == syscall.EAGAIN:
			return false // nothing yet: wait until the socket is readable
		case e != 0:
			rerr = os.NewSyscallError("read", e)
		case m == 0:
			rerr = io.EOF
		default:
			n = m
		}
		return true
	})
	if err == nil {
		err = rerr
	}
	return n, err
}
