package hostile

// The memory ceiling: with the default configuration, hostile clients push each limit and the
// broker's heap stays under a bound stated for each, well below what the same load would cost
// without the limit. The heap is the test process's (HeapInuse after a GC): the broker runs
// in it, and the bounds leave room for the test's own clients.

import (
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/actormq/actormq/codec"
	"github.com/actormq/actormq/config"
	"github.com/actormq/actormq/internal/brokertest"
)

// heapInuse is the heap in use after a full collection.
func heapInuse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

const mib = 1 << 20

// ceiling checks that the heap grew by less than bound since base, and logs the figures.
func ceiling(t *testing.T, what string, base, bound, without uint64) {
	t.Helper()
	now := heapInuse()
	grew := now - min(now, base)
	t.Logf("%s: heap +%.1f MiB (bound %d MiB; without the limit: %d MiB)", what, float64(grew)/mib, bound/mib, without/mib)
	if grew > bound {
		t.Errorf("%s: the heap grew by %.1f MiB, past its bound of %d MiB", what, float64(grew)/mib, bound/mib)
	}
}

// TestMemoryCeiling runs its phases one after the other on one broker with the default
// configuration (only the listeners' ports and the console's are chosen free), each starting
// from the idle broker.
func TestMemoryCeiling(t *testing.T) {
	def := config.Default()
	h := start(t)
	y := h.bystander(t)

	// A Remaining Length is the client's claim, not data (§2.1.4): 300 connected clients and
	// 300 sockets before CONNECT each announce a packet of limits.max_packet_size (1 MiB) and
	// send 20 bytes of it. What they cost must not depend on what they claim: at most 32 KiB
	// each, the broker's and this test's sides of the socket together, where the claims add up
	// to 600 MiB.
	t.Run("claimed packet sizes", func(t *testing.T) {
		const n = 300
		base := heapInuse()
		claim := def.Limits.MaxPacketSize - 5 // 1 byte of header, 4 of Remaining Length
		var conns []*brokertest.Conn
		var mu sync.Mutex
		errs := make([]error, 2*n)
		parallel(2*n, 32, func(i int) {
			var c *brokertest.Conn
			var err error
			head := []byte{0x30} // PUBLISH after CONNECT
			if i < n {
				c, err = h.connect(fmt.Sprintf("claim-%d", i), []codec.Version{codec.V311, codec.V5}[i%2], 60)
			} else {
				c, err = brokertest.TryDial(t, h.TCP311, codec.V311)
				head = []byte{0x10} // CONNECT first
			}
			if err != nil {
				errs[i] = err
				return
			}
			errs[i] = sendRaw(c, append(append(head, varint(claim)...), make([]byte, 20)...))
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		})
		for i, err := range errs {
			if err != nil {
				t.Fatalf("client %d: %v", i, err)
			}
		}
		// Let the broker read what was sent.
		time.Sleep(200 * time.Millisecond)
		ceiling(t, "600 sockets claiming 1 MiB packets", base, 2*n*32<<10, uint64(2*n*claim))
		for _, c := range conns {
			_ = c.Conn.Close()
		}
		brokertest.WaitFor(t, wait, "the claimants' connections to end", func() bool { return h.Stats().Connections.Load() == 1 })
		y.check(t)
	})
}
