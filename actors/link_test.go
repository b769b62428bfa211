package actors

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"

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
		buf := make([]byte, 0, 4096)
		allocs := testing.AllocsPerRun(1000, func() {
			buf = l.encode(buf[:0], &it, &aliases)
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
