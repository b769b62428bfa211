package topics

import (
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"
)

type hit struct{ filter, key string }

func treeHits[V any](t *Tree[V], name string) []hit {
	var out []hit
	t.Match(name, func(filter, key string, _ V) { out = append(out, hit{filter, key}) })
	slices.SortFunc(out, func(a, b hit) int { return strings.Compare(a.filter+"\x00"+a.key, b.filter+"\x00"+b.key) })
	return out
}

func TestTreeSpecExamples(t *testing.T) {
	// Each spec example, alone in a tree, and all of them together.
	all := NewTree[int]()
	for _, tc := range matchCases {
		one := NewTree[int]()
		one.Add(tc.filter, "c", 1)
		got := len(treeHits(one, tc.name)) == 1
		if got != tc.want {
			t.Errorf("Tree{%q}.Match(%q) matched=%v, want %v (%s)", tc.filter, tc.name, got, tc.want, tc.ref)
		}
		all.Add(tc.filter, "c", 1)
	}
	for _, tc := range matchCases {
		var want []hit
		seen := map[string]bool{}
		for _, f := range matchCases {
			if !seen[f.filter] && Match(f.filter, tc.name) {
				want = append(want, hit{f.filter, "c"})
			}
			seen[f.filter] = true
		}
		slices.SortFunc(want, func(a, b hit) int { return strings.Compare(a.filter, b.filter) })
		if got := treeHits(all, tc.name); !slices.Equal(got, want) {
			t.Errorf("Match(%q):\n got  %v\n want %v", tc.name, got, want)
		}
	}
}

func TestTreeAddRemove(t *testing.T) {
	tr := NewTree[int]()
	if tr.Add("a/+/c", "k1", 1) {
		t.Error("first Add reported replaced")
	}
	if !tr.Add("a/+/c", "k1", 2) {
		t.Error("second Add of the same (filter, key) did not report replaced")
	}
	tr.Add("a/+/c", "k2", 3)
	tr.Add("a/#", "k1", 4)
	tr.Add("a/b/c", "k1", 5)
	if tr.Len() != 4 || tr.Filters() != 3 {
		t.Fatalf("Len=%d Filters=%d, want 4 and 3", tr.Len(), tr.Filters())
	}
	var got []string
	tr.Match("a/b/c", func(f, k string, v int) { got = append(got, fmt.Sprint(f, " ", k, " ", v)) })
	slices.Sort(got)
	want := []string{"a/# k1 4", "a/+/c k1 2", "a/+/c k2 3", "a/b/c k1 5"}
	if !slices.Equal(got, want) {
		t.Fatalf("Match = %v, want %v", got, want)
	}
	if tr.Remove("a/+/c", "nobody") || tr.Remove("a/x/c", "k1") || tr.Remove("a/+", "k1") || tr.Remove("a", "k1") {
		t.Error("Remove of a missing subscription reported removed")
	}
	for _, s := range []hit{{"a/+/c", "k1"}, {"a/+/c", "k2"}, {"a/#", "k1"}, {"a/b/c", "k1"}} {
		if !tr.Remove(s.filter, s.key) {
			t.Errorf("Remove(%q, %q) = false", s.filter, s.key)
		}
		if tr.Remove(s.filter, s.key) {
			t.Errorf("second Remove(%q, %q) = true", s.filter, s.key)
		}
	}
	if tr.Len() != 0 || tr.Filters() != 0 || tr.nodeCount() != 0 {
		t.Errorf("after removing all: Len=%d Filters=%d nodes=%d, want 0", tr.Len(), tr.Filters(), tr.nodeCount())
	}
}

func TestTreeManyKeysOnOneFilter(t *testing.T) {
	// Crosses the small-slice / indexed threshold both ways.
	tr := NewTree[int]()
	const n = 100
	for i := range n {
		tr.Add("x/#", fmt.Sprint("k", i), i)
	}
	for i := 0; i < n; i += 2 {
		if !tr.Remove("x/#", fmt.Sprint("k", i)) {
			t.Fatalf("Remove k%d failed", i)
		}
	}
	for i := 1; i < n; i += 2 {
		if !tr.Add("x/#", fmt.Sprint("k", i), -i) {
			t.Fatalf("Add k%d did not replace", i)
		}
	}
	got := map[string]int{}
	tr.Match("x/y", func(_, k string, v int) { got[k] = v })
	if len(got) != n/2 {
		t.Fatalf("got %d subscribers, want %d", len(got), n/2)
	}
	for i := 1; i < n; i += 2 {
		if got[fmt.Sprint("k", i)] != -i {
			t.Fatalf("k%d = %d, want %d", i, got[fmt.Sprint("k", i)], -i)
		}
	}
	for i := n - 1; i > 0; i -= 2 {
		if !tr.Remove("x/#", fmt.Sprint("k", i)) {
			t.Fatalf("Remove k%d failed", i)
		}
	}
	if tr.Len() != 0 || tr.nodeCount() != 0 {
		t.Errorf("Len=%d nodes=%d, want 0", tr.Len(), tr.nodeCount())
	}
}

func TestTreeWalk(t *testing.T) {
	tr := NewTree[int]()
	filters := []string{"a", "a/b", "+", "#", "a/+/c", "$SYS/#", "/", ""}
	for i, f := range filters {
		tr.Add(f, "k", i)
	}
	var got []string
	tr.Walk(func(f, _ string, _ int) bool { got = append(got, f); return true })
	slices.Sort(got)
	want := slices.Clone(filters)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("Walk = %q, want %q", got, want)
	}
	calls := 0
	tr.Walk(func(string, string, int) bool { calls++; return calls < 3 })
	if calls != 3 {
		t.Errorf("Walk went on after false: %d calls, want 3", calls)
	}
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// Adding and removing 100,000 subscriptions must leave no node behind, and
// the heap must shrink back: long-running shards see clients come and go.
func TestTreePruneReturnsMemory(t *testing.T) {
	const n = 100_000
	filters := make([]string, n)
	for i := range filters {
		switch i % 4 {
		case 0:
			filters[i] = fmt.Sprintf("clients/%d/inbox", i)
		case 1:
			filters[i] = fmt.Sprintf("site/%d/+/temp", i%1000)
		case 2:
			filters[i] = fmt.Sprintf("site/%d/dev/%d/#", i%1000, i)
		default:
			filters[i] = fmt.Sprintf("+/%d//x", i)
		}
	}
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprint("client-", i)
	}
	base := heapInUse()
	tr := NewTree[int]()
	for i := range n {
		tr.Add(filters[i], keys[i], i)
	}
	if tr.Len() != n {
		t.Fatalf("Len = %d, want %d", tr.Len(), n)
	}
	peak := heapInUse()
	nodes := tr.nodeCount()
	for i := range n {
		if !tr.Remove(filters[i], keys[i]) {
			t.Fatalf("Remove(%q, %q) = false", filters[i], keys[i])
		}
	}
	after := heapInUse()
	if tr.Len() != 0 || tr.Filters() != 0 || tr.nodeCount() != 0 {
		t.Fatalf("after removing all: Len=%d Filters=%d nodes=%d, want 0", tr.Len(), tr.Filters(), tr.nodeCount())
	}
	if tr.root.children.len() != 0 || tr.root.plus != nil || tr.root.hash != nil {
		t.Fatal("root still has children")
	}
	grew := int64(peak) - int64(base)
	left := int64(after) - int64(base)
	t.Logf("nodes at peak %d; heap: %+d KiB at peak, %+d KiB after removal", nodes, grew>>10, left>>10)
	if grew <= 0 || left > grew/20 {
		t.Errorf("heap after removal is +%d bytes over the start, peak was +%d", left, grew)
	}
	runtime.KeepAlive(tr)
	runtime.KeepAlive(filters) // else they are freed before "after" and hide a leak
	runtime.KeepAlive(keys)
}

func TestTreeMatchDoesNotAllocate(t *testing.T) {
	tr := benchTree()
	names := benchNames()
	count := 0
	fn := func(string, string, int) { count++ }
	i := 0
	if a := testing.AllocsPerRun(1000, func() {
		tr.Match(names[i%len(names)], fn)
		i++
	}); a != 0 {
		t.Errorf("Tree.Match allocates %v times per call", a)
	}
	if count == 0 {
		t.Error("no matches: benchmark data is wrong")
	}
}

func TestKidsShrink(t *testing.T) {
	var k kids[int]
	v := new(int)
	for i := range 1000 {
		k.put(fmt.Sprint(i), v)
	}
	for i := range 900 {
		k.del(fmt.Sprint(i))
	}
	// Rebuilt at 250 (a quarter of the peak), so peak now tracks the new map.
	if k.len() != 100 || k.peak > 250 {
		t.Errorf("len=%d peak=%d, want 100 and <= 250", k.len(), k.peak)
	}
	for i := 900; i < 999; i++ {
		k.del(fmt.Sprint(i))
	}
	if k.m != nil || k.one != v || k.key != "999" || k.get("999") != v {
		t.Errorf("last child not kept inline: m=%v key=%q", k.m != nil, k.key)
	}
	k.del("999")
	if k.len() != 0 || k.get("999") != nil {
		t.Error("not empty after deleting all")
	}
}

// Node memory matters with 10,000s of filters; this guards against a
// regression and logs the figure recorded in docs/BENCHMARKS.md.
func TestMemoryPerEntry(t *testing.T) {
	names := benchNames()
	base := heapInUse()
	tr := NewTree[int]()
	for i, n := range names {
		tr.Add(n, "client", i)
	}
	mid := heapInUse()
	x := NewIndex[int]()
	for i, n := range names {
		x.Set(n, i)
	}
	end := heapInUse()
	perFilter, perName := (int64(mid)-int64(base))/int64(len(names)), (int64(end)-int64(mid))/int64(len(names))
	t.Logf("Tree: %d B per exact filter; Index: %d B per name (%d entries)", perFilter, perName, len(names))
	if perFilter > 1024 || perName > 1024 {
		t.Errorf("over 1 KiB per entry")
	}
	runtime.KeepAlive(tr)
	runtime.KeepAlive(x)
}
