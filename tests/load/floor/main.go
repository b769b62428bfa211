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
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"time"
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

// handle runs one connection of net's kind until answer ends it, EOF, or a packet it cannot
// frame.
func handle(c net.Conn) {
	defer c.Close()
	br := bufio.NewReaderSize(c, 512)
	first := true
	for {
		typ, body, err := readPacket(br)
		if err != nil {
			return
		}
		reply, end := answer(&first, typ, body)
		if reply != nil {
			if _, err := c.Write(reply); err != nil {
				return
			}
		}
		if end {
			return
		}
	}
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

// maxBody bounds what one packet may make it allocate: enough for any CONNECT a load
// generator sends.
const maxBody = 64 << 10

// readPacket reads one packet's type and body; the body is read into a new slice, as a
// decoder would.
func readPacket(br *bufio.Reader) (typ byte, body []byte, err error) {
	h, err := br.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	n, err := remainingLength(br)
	if err != nil {
		return 0, nil, err
	}
	body = make([]byte, n)
	_, err = io.ReadFull(br, body)
	return h >> 4, body, err
}

// remainingLength reads a fixed header's Remaining Length, at most maxBody.
func remainingLength(r io.ByteReader) (int, error) {
	n, shift := 0, 0
	for {
		b, err := r.ReadByte()
		if err != nil {
			return 0, err
		}
		n |= int(b&0x7f) << shift
		if b < 0x80 {
			break
		}
		if shift += 7; shift > 21 {
			return 0, errors.New("a Remaining Length of more than 4 bytes")
		}
	}
	if n > maxBody {
		return 0, fmt.Errorf("a packet of %d bytes", n)
	}
	return n, nil
}
