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

// rawWrite writes all of b.
func rawWrite(raw syscall.RawConn, b []byte) (int, error) {
	n := 0
	var werr error
	err := raw.Write(func(fd uintptr) bool {
		for n < len(b) {
			m, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&b[n])), uintptr(len(b)-n))
			switch e {
			case 0:
				n += int(m)
			case syscall.EINTR:
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
		for {
			m, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
			switch e {
			case 0:
				if m == 0 {
					rerr = io.EOF
				}
				n = int(m)
				return true
			case syscall.EINTR:
			case syscall.EAGAIN:
				return false // nothing yet: wait until the socket is readable
			default:
				rerr = os.NewSyscallError("read", e)
				return true
			}
		}
	})
	if err == nil {
		err = rerr
	}
	return n, err
}
