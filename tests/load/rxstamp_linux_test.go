package main

import (
	"net"
	"testing"
	"time"
)

// TestRxStamperTimesTheSocket: a read through the stamper says when its bytes reached the
// socket, which lies between the write and the read.
func TestRxStamperTimesTheSocket(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peer, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	conn, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rx := newRxStamper(conn)
	if rx == nil {
		t.Fatal("no receive timestamps on a TCP socket")
	}
	// The kernel turns receive timestamps on a moment after the first socket asks: until
	// then reads carry none.
	stamped := 0
	for i := 0; stamped < 3; i++ {
		if i == 200 {
			t.Fatal("200 reads and no receive timestamp")
		}
		before := time.Now().UnixNano()
		if _, err := peer.Write([]byte("delivery")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond) // the bytes wait in the socket before they are read
		read := time.Now().UnixNano()
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		b := make([]byte, 64)
		n, err := rx.Read(b)
		if err != nil || string(b[:n]) != "delivery" {
			t.Fatalf("read %d: %q, %v", i, b[:n], err)
		}
		if rx.last == 0 {
			continue
		}
		stamped++
		if rx.last < before || rx.last > read {
			t.Fatalf("read %d: stamped %d ns after the write began, the read began %d ns after it",
				i, rx.last-before, read-before)
		}
	}
	peer.Close()
	if _, err := rx.Read(make([]byte, 8)); err == nil {
		t.Fatal("no error after the peer closed")
	}
}
