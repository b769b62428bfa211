//go:build !linux

package actors

import (
	"net"
	"syscall"
)

// Off Linux sockets are read and written through net.Conn (rawio_linux.go).
func rawConnOf(net.Conn) syscall.RawConn { return nil }

func rawWrite(syscall.RawConn, []byte) (int, error) { return 0, syscall.ENOTSUP }

func rawRead(syscall.RawConn, []byte) (int, error) { return 0, syscall.ENOTSUP }
