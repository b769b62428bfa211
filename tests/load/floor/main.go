// Command floor is the least a Go MQTT server can do per connection, to measure brokers'
// connect cost against: one goroutine per socket in Go's net package, which reads the
// CONNECT, answers a CONNACK that accepts it (3.1, 3.1.1 or 5.0), answers PINGREQ and
// otherwise discards what comes until the client goes. No sessions, no subscriptions, no
// checks: it is a yardstick, not a broker (docs/BENCHMARKS.md, "the floor of a Go connect").
//
//	go run ./tests/load/floor -tcp 127.0.0.1:1885
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
	flag.Parse()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "floor:", err)
		os.Exit(1)
	}
	fmt.Fprintln(os.Stderr, "floor: listening on", ln.Addr())
	serve(ln)
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

// handle runs one connection: CONNACK for the CONNECT, PINGRESP for each PINGREQ, the end
// at DISCONNECT, EOF or anything it cannot frame.
func handle(c net.Conn) {
	defer c.Close()
	br := bufio.NewReaderSize(c, 512)
	first := true
	for {
		typ, body, err := readPacket(br)
		if err != nil {
			return
		}
		switch {
		case first && typ == 1: // CONNECT: protocol name (2+n bytes), then the level
			if len(body) < 2 || len(body) < 3+int(body[1]) {
				return
			}
			ack := []byte{0x20, 2, 0, 0}
			if body[2+int(body[1])] == 5 {
				ack = []byte{0x20, 3, 0, 0, 0} // and an empty property length
			}
			if _, err := c.Write(ack); err != nil {
				return
			}
			first = false
		case first || typ == 14: // no CONNECT first, or DISCONNECT
			return
		case typ == 12: // PINGREQ
			if _, err := c.Write([]byte{0xd0, 0}); err != nil {
				return
			}
		}
	}
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
	n, shift := 0, 0
	for {
		b, err := br.ReadByte()
		if err != nil {
			return 0, nil, err
		}
		n |= int(b&0x7f) << shift
		if b < 0x80 {
			break
		}
		if shift += 7; shift > 21 {
			return 0, nil, io.ErrUnexpectedEOF
		}
	}
	if n > maxBody {
		return 0, nil, fmt.Errorf("a packet of %d bytes", n)
	}
	body = make([]byte, n)
	_, err = io.ReadFull(br, body)
	return h >> 4, body, err
}
