// Command floor is the least a Go MQTT server can do per connection, to measure brokers'
// connect cost against. It reads the CONNECT, answers a CONNACK that accepts it (3.1, 3.1.1
// or 5.0), answers PINGREQ and otherwise discards what comes until the client goes. No
// sessions, no subscriptions, no checks: it is a yardstick, not a broker (docs/BENCHMARKS.md,
// "the floor of a Go connect").
//
// By default it uses Go's net package as any Go server does: a goroutine per socket, blocked
// in Read. With -raw (Linux) it does what Mosquitto does instead: no goroutine and no netpoller
// registration per socket, but accept4, read and write on raw descriptors and one epoll set
// for them all, harvested by one goroutine.
//
//	go run ./tests/load/floor -tcp 127.0.0.1:1885 [-raw]
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/actormq/actormq/codec"
)

func main() {
	addr := flag.String("tcp", "127.0.0.1:1885", "address to listen on")
	raw := flag.Bool("raw", false, "raw descriptors and one epoll set instead of net's goroutine per socket (Linux)")
	flag.Parse()
	if err := run(*addr, *raw); err != nil {
		fmt.Fprintln(os.Stderr, "floor:", err)
		os.Exit(1)
	}
}

// run listens on addr and serves, in the mode raw says, until the listener fails.
func run(addr string, raw bool) error {
	if raw {
		s, err := listenRaw(addr)
		if err != nil {
			return err
		}
		fmt.Fprintln(os.Stderr, "floor: listening on", s.Addr(), "(raw)")
		return s.serve()
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "floor: listening on", ln.Addr())
	serve(ln)
	return nil
}

func serve(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			// Out of descriptors, or a connection reset before it was accepted: the next
			// Accept may do. A yardstick that stopped here would read as a slow broker.
			time.Sleep(10 * time.Millisecond)
			continue
		}
		go handle(c)
	}
}

// handle runs one connection of net's kind until its stream ends it.
func handle(c net.Conn) {
	defer c.Close()
	st := &stream{first: true}
	write := func(b []byte) error { _, err := c.Write(b); return err }
	buf := make([]byte, 512)
	for {
		n, err := c.Read(buf)
		if err != nil || !st.take(buf[:n], write) {
			return
		}
	}
}

// stream is what a connection keeps between reads, in either mode: whether its CONNECT has
// come, and the start of a packet that has not all arrived.
type stream struct {
	first   bool
	pending []byte
}

// take answers the whole packets that data completes, with write, and keeps the rest; false
// ends the connection: answer ended it, a write failed, or a packet cannot be framed.
func (s *stream) take(data []byte, write func([]byte) error) bool {
	if len(s.pending) > 0 {
		data = append(s.pending, data...)
	}
	for len(data) > 0 {
		typ, body, rest, err := frame(data)
		if errors.Is(err, io.ErrUnexpectedEOF) {
			break // the rest of the packet is still to come
		}
		if err != nil {
			return false
		}
		reply, end := answer(&s.first, typ, body)
		if reply != nil && write(reply) != nil {
			return false
		}
		if end {
			return false
		}
		data = rest
	}
	s.pending = append(s.pending[:0], data...)
	return true
}

var (
	connack311 = []byte{0x20, 2, 0, 0}
	connack5   = []byte{0x20, 3, 0, 0, 0} // and an empty property length
	pingresp   = []byte{0xd0, 0}
)

// answer is what a packet gets: a CONNACK for the CONNECT, a PINGRESP for each PINGREQ,
// nothing for the rest; the connection ends at a DISCONNECT, or at a first packet that is not
// a CONNECT. first is whether the CONNECT is still to come.
func answer(first *bool, typ byte, body []byte) (reply []byte, end bool) {
	switch {
	case *first && typ == 1: // CONNECT: protocol name (2+n bytes), then the level
		if len(body) < 3 || len(body) < 3+int(body[1]) {
			return nil, true
		}
		*first = false
		if body[2+int(body[1])] == 5 {
			return connack5, false
		}
		return connack311, false
	case *first || typ == 14:
		return nil, true
	case typ == 12:
		return pingresp, false
	}
	return nil, false
}

// maxBody bounds what one packet may make it keep: enough for any CONNECT a load generator
// sends.
const maxBody = 64 << 10

// frame splits the packet at the start of data into its type and body, and returns what
// follows it; io.ErrUnexpectedEOF when data holds only part of it.
func frame(data []byte) (typ byte, body, rest []byte, err error) {
	if len(data) < 2 {
		return 0, nil, nil, io.ErrUnexpectedEOF
	}
	n, size, err := codec.ParseRemainingLength(data[1:])
	switch {
	case err != nil:
		return 0, nil, nil, err
	case n > maxBody:
		return 0, nil, nil, fmt.Errorf("a packet of %d bytes", n)
	case len(data) < 1+size+n:
		return 0, nil, nil, io.ErrUnexpectedEOF
	}
	head := 1 + size
	return data[0] >> 4, data[head : head+n], data[head+n:], nil
}
