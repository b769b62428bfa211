package actors

import (
	"fmt"
	"testing"

	"github.com/asynkron/protoactor-go/actor"
)

// A /metrics scrape sums the directory: its cost must not grow with the number of clients
// (it copied every client once: about 7 MB a scrape at 10,000).
func TestDirectoryTotalsDoNotAllocatePerClient(t *testing.T) {
	allocsWith := func(clients int) float64 {
		d := NewDirectory()
		for i := range clients {
			e := d.entry(fmt.Sprintf("c%d", i), actor.NewPID("nonhost", fmt.Sprintf("s%d", i)))
			e.conn.Store(&connInfo{listener: "mqtt", protocol: "3.1.1", link: &Link{}})
			e.inflight.Store(1)
		}
		if got := d.Totals(); got.Inflight != int64(clients) || got.Connected[ListenerProtocol{"mqtt", "3.1.1"}] != clients {
			t.Fatalf("totals with %d clients: %+v", clients, got)
		}
		return testing.AllocsPerRun(20, func() { d.Totals() })
	}
	small, large := allocsWith(10), allocsWith(10000)
	if large > small+2 {
		t.Errorf("Totals allocates %.0f times with 10,000 clients and %.0f with 10", large, small)
	}
}
