package listeners

import (
	"net"
	"syscall"
	"testing"
)

// TestKeepAliveOff: MQTT has its own keep-alive; kernel probes are off and
// Nagle stays off.
func TestKeepAliveOff(t *testing.T) {
	h := newHanded()
	l := start(t, tcpConfig(), h.handler, Options{})
	client, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	tc := h.next(t).(interface{ Unwrap() net.Conn }).Unwrap().(*net.TCPConn)
	rc, err := tc.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var keepAlive, noDelay int
	var serr error
	err = rc.Control(func(fd uintptr) {
		keepAlive, serr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_KEEPALIVE)
		if serr == nil {
			noDelay, serr = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_NODELAY)
		}
	})
	if err != nil || serr != nil {
		t.Fatal(err, serr)
	}
	if keepAlive != 0 || noDelay == 0 {
		t.Fatalf("SO_KEEPALIVE = %d (want 0), TCP_NODELAY = %d (want on)", keepAlive, noDelay)
	}
}
