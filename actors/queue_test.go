package actors

import "testing"

// A queue that takes one message at a time keeps its small buffer when it drains, so it does
// not allocate one per message; after a burst it gives its buffer back, so that an idle session
// holds little.
func TestDrainedQueueKeepsOnlyASmallBuffer(t *testing.T) {
	q := deliveryQueue{max: 1000}
	allocs := testing.AllocsPerRun(100, func() {
		q.push(Deliver{QoS: 1}, false)
		q.pop()
	})
	if allocs != 0 {
		t.Errorf("%.1f allocations per message through an empty queue, want 0", allocs)
	}
	for range 100 {
		q.push(Deliver{QoS: 1}, false)
	}
	for q.len() > 0 {
		q.pop()
	}
	if cap(q.buf) != 0 {
		t.Errorf("a queue drained after a burst of 100 keeps room for %d messages, want none", cap(q.buf))
	}
}
