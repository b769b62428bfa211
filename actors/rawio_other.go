//go:build !linux

package actors

import "net"

// Off Linux sockets are read and written through net.Conn (rawio_linux.go).
func newSocket(conn net.Conn) net.Conn { return conn }
