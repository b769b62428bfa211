package actors

import (
	"testing"
	"unsafe"
)

// An idle connection keeps one reader, one Link and one session state for as long as it
// lasts (docs/BENCHMARKS.md, "idle memory"). Each sits at the top of a Go size class: a
// field added to one should not move it to the next class (32 to 48 bytes more per
// connection) unseen. Reorder to fill padding, or raise the limit knowingly.
func TestIdleConnectionStructsFitTheirSizeClasses(t *testing.T) {
	for _, c := range []struct {
		name       string
		size, want uintptr
	}{
		{"reader", unsafe.Sizeof(reader{}), 352},
		{"Link", unsafe.Sizeof(Link{}), 288},
		{"session state", unsafe.Sizeof(sessionState{}), 416},
	} {
		if c.size > c.want {
			t.Errorf("a %s is %d bytes, want at most %d", c.name, c.size, c.want)
		}
	}
}
