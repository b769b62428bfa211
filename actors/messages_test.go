package actors

import (
	"reflect"
	"slices"
	"testing"
)

// TestRecycledDeliverSharesNothing: a session copies a Deliver out and recycles it at once, so
// the shard's next Deliver may be the same one. It must start empty, and filling it must not
// write into the subscription identifiers the session's copy still holds.
func TestRecycledDeliverSharesNothing(t *testing.T) {
	d := newDeliver()
	d.QoS, d.Retain = 1, true
	d.SubIDs = append(d.SubIDs, 1, 2)
	taken := *d
	d.recycle()
	for range 10 {
		n := newDeliver()
		if !reflect.DeepEqual(*n, Deliver{}) {
			t.Fatalf("a Deliver from the pool is not empty: %+v", *n)
		}
		n.SubIDs = append(n.SubIDs, 9, 9)
		n.recycle()
	}
	if !slices.Equal(taken.SubIDs, []uint32{1, 2}) {
		t.Errorf("the taken copy's subscription identifiers became %v", taken.SubIDs)
	}
}
