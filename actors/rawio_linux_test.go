package actors

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// rawSocket is conn read and written with raw system calls.
func rawSocket(t *testing.T, conn net.Conn) *socket {
	t.Helper()
	s, ok := newSocket(conn).(*socket)
	if !ok {
		t.Fatal("a TCP connection is not read and written with raw system calls")
	}
	return s
}

func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// A raw write larger than the socket buffers waits for room as net.Conn's Write does, and
// every byte arrives, in order; one that cannot finish by the write deadline reports it as
// net.Conn would (os.ErrDeadlineExceeded), which the Link counts as a slow consumer.
func TestRawWriteWaitsForRoomAndKeepsDeadlines(t *testing.T) {
	client, server := tcpPair(t)
	sock := rawSocket(t, server)
	want := make([]byte, 8<<20)
	for i := range want {
		want[i] = byte(i * 7)
	}
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(client)
		got <- b
	}()
	if n, err := sock.Write(want); err != nil || n != len(want) {
		t.Fatalf("raw write: %d bytes, %v", n, err)
	}
	server.Close()
	if b := <-got; !bytes.Equal(b, want) {
		t.Fatalf("received %d bytes, not the %d written", len(b), len(want))
	}

	stalled, server2 := tcpPair(t)
	_ = stalled // never reads
	_ = server2.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
	if _, err := rawSocket(t, server2).Write(want); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("write to a peer that does not read: %v, want the deadline", err)
	}
}

// A raw read returns what has arrived, waits (up to the read deadline) when nothing has, and
// reports the peer's close as io.EOF.
func TestRawReadWaitsAndEnds(t *testing.T) {
	client, server := tcpPair(t)
	sock := rawSocket(t, server)
	buf := make([]byte, 64)
	_ = server.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if _, err := sock.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read with nothing sent: %v, want the deadline", err)
	}
	_ = server.SetReadDeadline(time.Time{})
	go func() {
		time.Sleep(50 * time.Millisecond)
		_, _ = client.Write([]byte("mqtt"))
		client.Close()
	}()
	n, err := sock.Read(buf)
	if err != nil || string(buf[:n]) != "mqtt" {
		t.Fatalf("read %q, %v", buf[:n], err)
	}
	if _, err := sock.Read(buf); err != io.EOF {
		t.Fatalf("read after the peer closed: %v, want io.EOF", err)
	}
}

// A raw read or write allocates nothing: the broker makes one or two of each per message.
func TestRawIOAllocatesNothing(t *testing.T) {
	client, server := tcpPair(t)
	sock := rawSocket(t, server)
	out, in := []byte("mqtt"), make([]byte, 4)
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := sock.Write(out); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(client, in); err != nil {
			t.Fatal(err)
		}
		if _, err := client.Write(out); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(sock, in); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("%.1f allocations per raw write and read, want 0", allocs)
	}
}
