package main

import (
	"io"
	"net"
	"syscall"
	"unsafe"
)

// rxStamper reads a TCP socket with recvmsg(2) and keeps the kernel's receive time of the
// bytes last read (SO_TIMESTAMPNS). A subscriber times a delivery by when it reached its
// socket, not by when its goroutine got to it: the generator runs every subscriber on one
// core, and taking in the 100 copies of a fan-out burst costs it about 2 ms, which would
// otherwise count as the broker's latency (docs/BENCHMARKS.md, "burst by burst").
type rxStamper struct {
	raw  syscall.RawConn
	b    []byte
	n    int
	err  error
	oob  [64]byte
	last int64 // realtime ns of the last read's bytes; 0 if the kernel gave none
	fn   func(fd uintptr) bool
}

// newRxStamper turns on receive timestamps for conn and returns its reader, or nil when conn
// is not a plain TCP socket or the kernel refuses.
func newRxStamper(conn net.Conn) *rxStamper {
	tc, ok := conn.(*net.TCPConn)
	if !ok {
		return nil
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	if turnOn(raw, syscall.SOL_SOCKET, syscall.SO_TIMESTAMPNS) != nil {
		return nil
	}
	r := &rxStamper{raw: raw}
	r.fn = r.recv
	return r
}

// Read reads once into b, waiting in the netpoller (and under the conn's deadlines) while
// the socket is empty.
func (r *rxStamper) Read(b []byte) (int, error) {
	r.b, r.n, r.err = b, 0, nil
	if err := r.raw.Read(r.fn); err != nil {
		return 0, err
	}
	r.b = nil
	return r.n, r.err
}

func (r *rxStamper) recv(fd uintptr) bool {
	n, oobn, _, _, err := syscall.Recvmsg(int(fd), r.b, r.oob[:], 0)
	for err == syscall.EINTR {
		n, oobn, _, _, err = syscall.Recvmsg(int(fd), r.b, r.oob[:], 0)
	}
	switch {
	case err == syscall.EAGAIN:
		return false
	case err != nil:
		r.err = err
		return true
	case n == 0:
		r.err = io.EOF
		return true
	}
	r.n = n
	r.last = stampOf(r.oob[:oobn])
	return true
}

// stampOf returns the SCM_TIMESTAMPNS time in oob, 0 if there is none.
func stampOf(oob []byte) int64 {
	const hdr = int(unsafe.Sizeof(syscall.Cmsghdr{}))
	for len(oob) >= hdr {
		h := (*syscall.Cmsghdr)(unsafe.Pointer(&oob[0]))
		l := int(h.Len)
		if l < hdr || l > len(oob) {
			return 0
		}
		if h.Level == syscall.SOL_SOCKET && h.Type == syscall.SCM_TIMESTAMPNS && l >= syscall.CmsgLen(int(unsafe.Sizeof(syscall.Timespec{}))) {
			ts := (*syscall.Timespec)(unsafe.Pointer(&oob[syscall.CmsgLen(0)]))
			return ts.Nano()
		}
		oob = oob[min(len(oob), syscall.CmsgSpace(l-syscall.CmsgLen(0))):]
	}
	return 0
}
