package main

import (
	"context"
	"errors"
	"io"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// modes are the floor's two ways to serve: net's goroutine per socket, and raw descriptors in
// one epoll set (Linux).
var modes = []string{"net", "raw"}

// start serves a floor of the given mode on a free port and returns its address.
func start(t *testing.T, mode string) string {
	t.Helper()
	if mode == "raw" {
		if runtime.GOOS != "linux" {
			t.Skip("-raw needs Linux (epoll)")
		}
		s, err := listenRaw("127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		go func() { _ = s.serve() }()
		return s.Addr().String()
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go serve(ln)
	return ln.Addr().String()
}

// eachMode runs test against a floor of each mode.
func eachMode(t *testing.T, test func(t *testing.T, addr string)) {
	for _, m := range modes {
		t.Run(m, func(t *testing.T) { test(t, start(t, m)) })
	}
}

// dial connects to addr for the rest of the test; reads wait at most 5 s.
func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	return c
}

// The yardstick must be a server real clients connect to, or its connect cost measures
// nothing: paho's 3.1.1 client and paho.golang's 5.0 client connect and leave.
func TestRealClientsConnect(t *testing.T) {
	eachMode(t, func(t *testing.T, addr string) {
		opts := mqtt.NewClientOptions().AddBroker("tcp://" + addr).
			SetClientID("floor-311").SetProtocolVersion(4).SetAutoReconnect(false)
		c := mqtt.NewClient(opts)
		tok := c.Connect()
		if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("3.1.1 connect: %v", tok.Error())
		}
		c.Disconnect(100)

		conn := dial(t, addr)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c5 := paho.NewClient(paho.ClientConfig{Conn: conn})
		ack, err := c5.Connect(ctx, &paho.Connect{ClientID: "floor-5", CleanStart: true, KeepAlive: 30})
		if err != nil || ack.ReasonCode != 0 {
			t.Fatalf("5.0 connect: %v %+v", err, ack)
		}
		if err := c5.Disconnect(&paho.Disconnect{}); err != nil {
			t.Fatal(err)
		}
	})
}

// A CONNECT that arrives in pieces, and a PINGREQ in the same write as the end of it, are
// answered in order: CONNACK, then PINGRESP.
func TestPacketsInPieces(t *testing.T) {
	connect := []byte{0x10, 12, 0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 30, 0, 0} // 3.1.1, empty client id
	eachMode(t, func(t *testing.T, addr string) {
		c := dial(t, addr)
		for _, piece := range [][]byte{connect[:1], connect[1:6], append(connect[6:], 0xc0, 0)} {
			if _, err := c.Write(piece); err != nil {
				t.Fatal(err)
			}
			time.Sleep(20 * time.Millisecond) // separate reads on the server's side
		}
		got := make([]byte, 6)
		if _, err := io.ReadFull(c, got); err != nil {
			t.Fatal(err)
		}
		if want := []byte{0x20, 2, 0, 0, 0xd0, 0}; string(got) != string(want) {
			t.Fatalf("got % x, want CONNACK then PINGRESP, % x", got, want)
		}
	})
}

// A body longer than the bound is refused before it is allocated.
func TestOversizedPacketEndsTheConnection(t *testing.T) {
	eachMode(t, func(t *testing.T, addr string) {
		c := dial(t, addr)
		// CONNECT with a remaining length of 2^21 bytes, none of which follow.
		if _, err := c.Write([]byte{0x10, 0x80, 0x80, 0x80, 0x01}); err != nil {
			t.Fatal(err)
		}
		var b [1]byte
		if n, err := c.Read(b[:]); n != 0 || !errors.Is(err, io.EOF) {
			t.Fatalf("read %d bytes, err %v: want the connection closed (EOF), not left waiting for the body", n, err)
		}
	})
}
