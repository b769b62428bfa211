package main

import "syscall"

// ipBindAddressNoPort is IP_BIND_ADDRESS_NO_PORT (Linux 4.2): a socket bound to a source
// address with port 0 gets its port at connect(2), which checks the whole 4-tuple (and can
// reuse a port in TIME_WAIT toward another peer), instead of at bind(2), which needs a port
// free on that address for every peer and runs out after one or two big runs.
const ipBindAddressNoPort = 24

func bindNoPort(_, _ string, c syscall.RawConn) error {
	return turnOn(c, syscall.IPPROTO_IP, ipBindAddressNoPort)
}

// turnOn sets the socket option (level, opt) of c to 1.
func turnOn(c syscall.RawConn, level, opt int) error {
	var serr error
	if err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), level, opt, 1) }); err != nil {
		return err
	}
	return serr
}
