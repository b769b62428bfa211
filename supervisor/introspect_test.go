package supervisor

import (
	"testing"
	"unsafe"
)

// An idle connection carries two probes when the console is on (docs/BENCHMARKS.md, "Idle
// memory, console on and off"): a field added here should not push it past 128 bytes unseen.
func TestProbeFitsItsSizeClass(t *testing.T) {
	if size := unsafe.Sizeof(probe{}); size > 128 {
		t.Errorf("a probe is %d bytes, want at most 128", size)
	}
}
