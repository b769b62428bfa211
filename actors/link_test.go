package actors

import (
	"bytes"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/actormq/actormq/codec"
)

// The writer encodes every delivery of a fan-out: it must not allocate per delivery.
func TestLinkEncodeDeliveryDoesNotAllocate(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	pub := &codec.Publish{QoS: 1, Topic: "devices/42/temperature", Payload: make([]byte, 64)}
	pub.Properties.SetMessageExpiryInterval(60)
	for _, v := range []codec.Version{codec.V311, codec.V5} {
		l := newLink(a, &Stats{}, 16, 16, time.Second)
		l.Version = v
		it := outItem{kind: itemPublish, pub: pub, qos: 1, id: 7, subIDs: []uint32{3}, hasExpiry: true, expiry: 30}
		var aliases map[string]uint16
		var scratch codec.Publish
		buf := make([]byte, 0, 4096)
		allocs := testing.AllocsPerRun(1000, func() {
			buf = l.encode(buf[:0], &it, &aliases, &scratch)
		})
		if allocs != 0 {
			t.Errorf("%v: %.1f allocations per delivery, want 0", v, allocs)
		}
		if len(buf) == 0 {
			t.Errorf("%v: nothing encoded", v)
		}
	}
}

// Finish queues the last packet and the close in one step: what others queue afterwards is
// refused, so nothing follows a DISCONNECT on the wire [MQTT-3.14.4-1].
func TestLinkFinishIsTheLastPacket(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	l := newLink(a, &Stats{}, 16, 16, time.Second)
	l.Version = codec.V311
	if err := l.Send(&codec.Pingresp{}); err != nil {
		t.Fatal(err)
	}
	l.Finish(&codec.Disconnect{})
	if err := l.sendAck(codec.TypePuback, 1, codec.Success); err == nil {
		t.Fatal("a PUBACK was accepted after the final DISCONNECT")
	}
	l.Finish(&codec.Connack{}) // idempotent: a second end adds nothing

	got, err := io.ReadAll(b)
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{0xD0, 0x00, 0xE0, 0x00} // PINGRESP, DISCONNECT, then the socket closes
	if !bytes.Equal(got, want) {
		t.Errorf("wire % x, want % x", got, want)
	}
	<-l.Done()
}

// A closing connection whose client reads nothing is cut off by abortAfter, even when its
// write would wait longer: the socket is closed and Done is closed.
func TestLinkAbortAfterCutsOffAClientThatReadsNothing(t *testing.T) {
	a, b := net.Pipe() // a write waits until the other end reads, which it never does
	defer b.Close()
	l := newLink(a, &Stats{}, 16, 16, time.Hour)
	l.Version = codec.V311
	l.Finish(&codec.Disconnect{})
	l.abortAfter(20 * time.Millisecond)
	select {
	case <-l.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the connection was not finished after abortAfter's time")
	}
	if _, err := a.Write([]byte{0}); err == nil {
		t.Error("the socket is still open")
	}
	if l.cutoff.Stop() {
		t.Error("the cutoff timer is still running after the connection finished")
	}

	// A Link finished already arms nothing.
	c, d := net.Pipe()
	defer d.Close()
	done := newLink(c, &Stats{}, 16, 16, time.Hour)
	done.Abort() // no writer runs: finished at once
	done.abortAfter(time.Millisecond)
	if done.cutoff != nil {
		t.Error("abortAfter armed a timer for a finished connection")
	}
}

// sharedCases are publishes and deliveries that cover every field the shared bytes patch or
// depend on: both protocol families, QoS 0/1/2, DUP, RETAIN, packet ids with both bytes set,
// Remaining Lengths of 1 to 3 bytes, topics longer than 255 bytes, 5.0 properties of the
// publisher, a remaining message expiry, subscription identifiers, outbound topic aliases, a
// client's Maximum Packet Size, and packets above maxSharedEncoding.
func sharedCases() (pubs []*codec.Publish, links []func() *Link, items []outItem) {
	long := strings.Repeat("t", 300)
	props := &codec.Publish{Topic: "a/props", Payload: []byte("x")}
	props.Properties.SetMessageExpiryInterval(60)
	props.Properties.SetContentType("text/plain")
	props.Properties.SetResponseTopic("reply/here")
	props.Properties.SetCorrelationData([]byte{1, 2, 3})
	props.Properties.SetPayloadFormatIndicator(1)
	props.Properties.AddUserProperty("k", "v")
	pubs = []*codec.Publish{
		{Topic: "a/b", Payload: make([]byte, 64)},
		{Topic: "a/b", QoS: 1, PacketID: 9, Retain: true, Payload: make([]byte, 200)},
		{Topic: long, Payload: nil},
		{Topic: "big", Payload: make([]byte, maxSharedEncoding+100)},
		{Topic: "mid", Payload: make([]byte, 20000)},
		props,
	}
	mk := func(v codec.Version, maxPacket uint32, aliasMax uint16) func() *Link {
		return func() *Link {
			l := newLink(discardConn{}, &Stats{}, 16, 16, time.Second)
			l.Version = v
			l.setClientLimits(maxPacket, aliasMax)
			return l
		}
	}
	links = []func() *Link{
		mk(codec.V31, 0, 0), mk(codec.V311, 0, 0), mk(codec.V5, 0, 0),
		mk(codec.V5, 0, 10), mk(codec.V5, 100, 0), mk(codec.V311, 100, 0),
	}
	items = []outItem{
		{qos: 0},
		{qos: 0, retain: true},
		{qos: 1, id: 7},
		{qos: 1, id: 0x1234, dup: true, retain: true},
		{qos: 2, id: 0xFF01},
		{qos: 2, id: 3, dup: true},
		{qos: 1, id: 5, subIDs: []uint32{3, 300}},
		{qos: 1, id: 6, hasExpiry: true, expiry: 42},
		{qos: 0, hasExpiry: true, expiry: 41},
	}
	return pubs, links, items
}

// Every delivery's bytes on the wire equal a full encode of it, whether it was the first
// delivery of its publish (full encode), the second (builds the shared bytes) or a later one
// (copies and patches them), and whatever the next subscriber's packet id and flags are.
func TestSharedEncodingMatchesFullEncode(t *testing.T) {
	pubs, links, items := sharedCases()
	shared := 0
	for pi, pub := range pubs {
		for li, newL := range links {
			for ii, base := range items {
				// Three subscribers in a row; the third must find the shared bytes.
				for sub := 0; sub < 3; sub++ {
					it := base
					it.kind, it.pub = itemPublish, pub
					if it.qos > 0 {
						it.id += uint16(sub)
						it.dup = base.dup && sub != 1
					}
					l, ref := newL(), newL()
					var la, ra map[string]uint16
					var ls, rs codec.Publish
					got := l.encode([]byte{0xEE}, &it, &la, &ls)
					want := ref.appendFull([]byte{0xEE}, &it, &ra, &rs)
					if !bytes.Equal(got, want) {
						t.Fatalf("pub %d, link %d, item %d, subscriber %d:\n got % x\nwant % x", pi, li, ii, sub, got, want)
					}
					if l.Dropped.Load() != ref.Dropped.Load() || l.MessagesOut.Load() != ref.MessagesOut.Load() {
						t.Fatalf("pub %d, link %d, item %d: dropped %d / sent %d, want %d / %d", pi, li, ii,
							l.Dropped.Load(), l.MessagesOut.Load(), ref.Dropped.Load(), ref.MessagesOut.Load())
					}
					if sub == 2 {
						if k, ok := l.sharedKey(&it); ok && l.lookupShared(&it, k, &ls) != nil {
							shared++
						}
					}
				}
			}
		}
	}
	if shared == 0 {
		t.Fatal("no delivery used shared bytes")
	}
	t.Logf("%d of the cases used shared bytes", shared)
}

// The table lets go of its publishes: two sweeps after the last fill it is empty.
func TestSharedEncodingIsSwept(t *testing.T) {
	l := newLink(discardConn{}, &Stats{}, 16, 16, time.Second)
	l.Version = codec.V311
	pub := &codec.Publish{Topic: "a/b", Payload: []byte("x")}
	it := outItem{kind: itemPublish, pub: pub, qos: 1, id: 1}
	var scratch codec.Publish
	var aliases map[string]uint16
	for range 3 {
		l.encode(nil, &it, &aliases, &scratch)
	}
	k, _ := l.sharedKey(&it)
	slot := encSlotOf(encTag(uintptr(unsafe.Pointer(pub)), k))
	if e := slot.entry.Load(); e == nil || e.pub != pub {
		t.Fatal("the third delivery left no shared entry")
	}
	sweepOnce()
	if slot.entry.Load() == nil {
		t.Fatal("an entry was dropped by its first sweep")
	}
	sweepOnce()
	if e := slot.entry.Load(); e != nil && e.pub == pub {
		t.Fatal("the entry survived two sweeps")
	}
}

// Many writers encode the same publishes at once (run with -race).
func TestSharedEncodingConcurrent(t *testing.T) {
	pubs, _, _ := sharedCases()
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var ls, rs codec.Publish
			var la, ra map[string]uint16
			for round := 0; round < 200; round++ {
				for _, pub := range pubs {
					for _, v := range []codec.Version{codec.V311, codec.V5} {
						l := newLink(discardConn{}, &Stats{}, 16, 16, time.Second)
						l.Version = v
						it := outItem{kind: itemPublish, pub: pub, qos: byte(round % 3), hasExpiry: g%2 == 0, expiry: 30}
						if it.qos > 0 {
							it.id = uint16(g*1000 + round + 1)
						}
						got := l.encode(nil, &it, &la, &ls)
						want := l.appendFull(nil, &it, &ra, &rs)
						if !bytes.Equal(got, want) {
							t.Errorf("goroutine %d round %d: got % x, want % x", g, round, got, want)
							return
						}
					}
				}
			}
		}()
	}
	wg.Wait()
}

// A fan-out to 100 subscribers allocates for the shared bytes once per publish, not per
// delivery.
func TestSharedEncodingAllocations(t *testing.T) {
	const subs = 100
	ls := make([]*Link, subs)
	for i := range ls {
		ls[i] = newLink(discardConn{}, &Stats{}, 16, 16, time.Second)
		ls[i].Version = codec.V5
	}
	buf := make([]byte, 0, 4096)
	var scratch codec.Publish
	var aliases map[string]uint16
	allocs := testing.AllocsPerRun(200, func() {
		pub := &codec.Publish{Topic: "fan/out", QoS: 1, Payload: make([]byte, 64)}
		for i, l := range ls {
			it := outItem{kind: itemPublish, pub: pub, qos: 1, id: uint16(i + 1)}
			buf = l.encode(buf[:0], &it, &aliases, &scratch)
		}
	})
	// The publish and its payload (2), the shared bytes and their entry (2).
	if allocs > 4 {
		t.Errorf("%.1f allocations per publish to %d subscribers, want at most 4", allocs, subs)
	}
}
