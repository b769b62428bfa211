package actors

import (
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
