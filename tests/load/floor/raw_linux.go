package main

import (
	"errors"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
)

// rawServer is the floor with -raw: the listener's goroutine accepts with accept4 and adds
// each socket to one epoll set; one goroutine harvests the set, reads with read(2) and answers
// with write(2). Go's netpoller waits for the listening socket and for the epoll descriptor,
// not for the connections. (net's own listener cannot be used: its RawConn does not read.)
type rawServer struct {
	ln   *os.File // the listening socket
	ep   *os.File // the epoll set
	epfd int
	addr net.Addr

	mu    sync.Mutex
	conns map[int32]*rawConn // by descriptor
}

// rawConn is a connection's stream and its write, made once.
type rawConn struct {
	stream
	write func([]byte) error
}

// newRawConn returns the connection of fd. A reply is a few bytes to a socket with nothing
// queued: it fits, or the connection is ended.
func newRawConn(fd int) *rawConn {
	return &rawConn{stream: stream{first: true}, write: func(b []byte) error {
		if w, err := syscall.Write(fd, b); err != nil || w != len(b) {
			return errors.New("reply not written whole")
		}
		return nil
	}}
}

// listenRaw opens a non-blocking listening socket on addr (host:port, port 0 for any) and
// an epoll set for its connections.
func listenRaw(addr string) (*rawServer, error) {
	ta, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		return nil, err
	}
	family, sa := syscall.AF_INET6, syscall.Sockaddr(nil)
	if ip4 := ta.IP.To4(); ip4 != nil || ta.IP == nil {
		a := &syscall.SockaddrInet4{Port: ta.Port}
		copy(a.Addr[:], ip4)
		family, sa = syscall.AF_INET, a
	} else {
		a := &syscall.SockaddrInet6{Port: ta.Port}
		copy(a.Addr[:], ta.IP.To16())
		sa = a
	}
	fd, err := syscall.Socket(family, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, os.NewSyscallError("socket", err)
	}
	_ = syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
	if err := syscall.Bind(fd, sa); err != nil {
		syscall.Close(fd)
		return nil, os.NewSyscallError("bind", err)
	}
	if err := syscall.Listen(fd, syscall.SOMAXCONN); err != nil {
		syscall.Close(fd)
		return nil, os.NewSyscallError("listen", err)
	}
	s := &rawServer{conns: make(map[int32]*rawConn)}
	sa, _ = syscall.Getsockname(fd) // the port the kernel gave for port 0
	switch a := sa.(type) {
	case *syscall.SockaddrInet4:
		s.addr = &net.TCPAddr{IP: net.IP(a.Addr[:]).To16(), Port: a.Port}
	case *syscall.SockaddrInet6:
		s.addr = &net.TCPAddr{IP: net.IP(a.Addr[:]), Port: a.Port}
	}
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		syscall.Close(fd)
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	_ = syscall.SetNonblock(epfd, true)
	// Non-blocking descriptors given to os.NewFile join Go's netpoller.
	s.ln, s.ep, s.epfd = os.NewFile(uintptr(fd), "floor-listener"), os.NewFile(uintptr(epfd), "floor-epoll"), epfd
	return s, nil
}

func (s *rawServer) Addr() net.Addr { return s.addr }

// Close stops accepting and harvesting; connections already accepted stay open.
func (s *rawServer) Close() error {
	s.ep.Close()
	return s.ln.Close()
}

// serve accepts and serves connections until Close.
func (s *rawServer) serve() error {
	ep, err := s.ep.SyscallConn()
	if err != nil {
		return err
	}
	ln, err := s.ln.SyscallConn()
	if err != nil {
		return err
	}
	go func() { _ = ep.Read(s.harvest) }()
	if err := ln.Read(s.accept); !errors.Is(err, os.ErrClosed) {
		return err
	}
	return nil
}

// accept takes every pending connection; false (nothing pending) makes Go wait for the
// listener to be readable again.
func (s *rawServer) accept(lfd uintptr) bool {
	for {
		fd, _, err := syscall.Accept4(int(lfd), syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC)
		switch {
		case err == syscall.EAGAIN:
			return false
		case err == syscall.EINTR || err == syscall.ECONNABORTED:
			continue
		case err != nil:
			// Out of descriptors: as the default mode, wait and try again.
			time.Sleep(10 * time.Millisecond)
			continue
		}
		// As Go's net does for every TCP connection it accepts.
		_ = syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
		s.mu.Lock()
		s.conns[int32(fd)] = newRawConn(fd)
		s.mu.Unlock()
		ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP, Fd: int32(fd)}
		if syscall.EpollCtl(s.epfd, syscall.EPOLL_CTL_ADD, fd, &ev) != nil {
			s.close(int32(fd))
		}
	}
}

// harvest serves every ready socket; false (none ready) makes Go wait for the epoll
// descriptor to be readable.
func (s *rawServer) harvest(epfd uintptr) bool {
	events := make([]syscall.EpollEvent, 256)
	buf := make([]byte, 4096)
	for {
		n, err := syscall.EpollWait(int(epfd), events, 0)
		if err == syscall.EINTR {
			continue
		}
		if err != nil || n <= 0 {
			return false
		}
		for i := range events[:n] {
			s.serveConn(events[i].Fd, buf)
		}
	}
}

// serveConn reads what fd has and answers each whole packet; it closes fd at EOF, an error, a
// packet it cannot frame, or when answer ends the connection.
func (s *rawServer) serveConn(fd int32, buf []byte) {
	s.mu.Lock()
	c := s.conns[fd]
	s.mu.Unlock()
	if c == nil {
		return
	}
	for {
		n, err := syscall.Read(int(fd), buf)
		if err == syscall.EAGAIN {
			return
		}
		if err == syscall.EINTR {
			continue
		}
		if err != nil || n == 0 {
			s.close(fd)
			return
		}
		if !c.take(buf[:n], c.write) {
			s.close(fd)
			return
		}
	}
}

func (s *rawServer) close(fd int32) {
	s.mu.Lock()
	delete(s.conns, fd)
	s.mu.Unlock()
	_ = syscall.Close(int(fd)) // which also takes it out of the epoll set
}
