package codec

import (
	"bufio"
	"bytes"
	"io"
	"reflect"
	"runtime"
	"testing"
	"testing/iotest"
)

// A body larger than bodyChunk, arriving a few bytes at a time, is read whole: the growing
// buffer loses nothing and keeps no spare capacity.
func TestReadPacketLargeBodyInPieces(t *testing.T) {
	for _, size := range []int{bodyChunk - 10, bodyChunk + 1, 3*bodyChunk + 7, 300 << 10} {
		want := &Publish{QoS: 1, Topic: "big/body", PacketID: 9, Payload: bytes.Repeat([]byte("0123456789"), size/10)}
		raw, err := Append(nil, want, V311)
		if err != nil {
			t.Fatal(err)
		}
		r := NewReader(bufio.NewReaderSize(iotest.HalfReader(bytes.NewReader(raw)), 16), 0)
		r.SetVersion(V311)
		got, err := r.ReadPacket()
		if err != nil {
			t.Fatalf("%d bytes: %v", len(raw), err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%d bytes: the packet read differs from the one written", len(raw))
		}
		if p := got.(*Publish).Payload; cap(p) != len(p) {
			t.Errorf("%d bytes: payload capacity %d for %d bytes", len(raw), cap(p), len(p))
		}
	}
}

// The Remaining Length is the peer's claim: a packet that announces a megabyte and sends 100
// bytes of it costs about bodyChunk, not the megabyte.
func TestReadPacketAllocatesWhatArrives(t *testing.T) {
	claim := append([]byte{0x30}, vbi(1<<20)...)
	stream := io.MultiReader(bytes.NewReader(claim), bytes.NewReader(make([]byte, 100)))
	r := NewReader(bufio.NewReaderSize(stream, 16), 2<<20)
	r.SetVersion(V311)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := r.ReadPacket()
	runtime.ReadMemStats(&after)
	if err != io.ErrUnexpectedEOF {
		t.Fatalf("got %v, want io.ErrUnexpectedEOF", err)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 2*bodyChunk {
		t.Errorf("allocated %d bytes for a claim of 1 MiB with 100 bytes sent; want at most %d", n, 2*bodyChunk)
	}
}
