package topics

import (
	"fmt"
	"slices"
	"testing"
)

func indexHits[V any](x *Index[V], filter string) []string {
	var out []string
	x.Match(filter, func(name string, _ V) bool { out = append(out, name); return true })
	slices.Sort(out)
	return out
}

func TestIndexSpecExamples(t *testing.T) {
	all := NewIndex[int]()
	for _, tc := range matchCases {
		one := NewIndex[int]()
		one.Set(tc.name, 1)
		got := len(indexHits(one, tc.filter)) == 1
		if got != tc.want {
			t.Errorf("Index{%q}.Match(%q) matched=%v, want %v (%s)", tc.name, tc.filter, got, tc.want, tc.ref)
		}
		all.Set(tc.name, 1)
	}
	for _, tc := range matchCases {
		var want []string
		all.Walk(func(name string, _ int) bool {
			if Match(tc.filter, name) {
				want = append(want, name)
			}
			return true
		})
		slices.Sort(want)
		if got := indexHits(all, tc.filter); !slices.Equal(got, want) {
			t.Errorf("Match(%q):\n got  %q\n want %q", tc.filter, got, want)
		}
	}
}

func TestIndexSetGetDelete(t *testing.T) {
	x := NewIndex[string]()
	if x.Set("a/b", "1") {
		t.Error("first Set reported replaced")
	}
	if !x.Set("a/b", "2") {
		t.Error("second Set did not report replaced")
	}
	x.Set("a", "3")
	x.Set("a/b/c", "4")
	if v, ok := x.Get("a/b"); !ok || v != "2" {
		t.Errorf("Get(a/b) = %q, %v", v, ok)
	}
	for _, missing := range []string{"a/b/c/d", "a/x", "b", "a/"} {
		if _, ok := x.Get(missing); ok {
			t.Errorf("Get(%q) found a value", missing)
		}
		if x.Delete(missing) {
			t.Errorf("Delete(%q) = true", missing)
		}
	}
	if x.Len() != 3 {
		t.Errorf("Len = %d, want 3", x.Len())
	}
	// Deleting an inner name keeps the names below it.
	if !x.Delete("a/b") || x.Delete("a/b") {
		t.Error("Delete(a/b) twice: want true then false")
	}
	if v, ok := x.Get("a/b/c"); !ok || v != "4" {
		t.Errorf("Get(a/b/c) = %q, %v after deleting a/b", v, ok)
	}
	x.Delete("a/b/c")
	x.Delete("a")
	if x.Len() != 0 || x.nodeCount() != 0 || x.root.children.len() != 0 {
		t.Errorf("after deleting all: Len=%d nodes=%d", x.Len(), x.nodeCount())
	}
}

func TestIndexStop(t *testing.T) {
	x := NewIndex[int]()
	for i := range 100 {
		x.Set(fmt.Sprintf("a/%d/b", i), i)
		x.Set(fmt.Sprintf("a/%d", i), i)
	}
	for _, f := range []string{"#", "a/#", "a/+/b", "+/+"} {
		calls := 0
		x.Match(f, func(string, int) bool { calls++; return calls < 5 })
		if calls != 5 {
			t.Errorf("Match(%q) went on after false: %d calls", f, calls)
		}
	}
	calls := 0
	x.Walk(func(string, int) bool { calls++; return calls < 5 })
	if calls != 5 {
		t.Errorf("Walk went on after false: %d calls", calls)
	}
}

func TestIndexSysNames(t *testing.T) {
	// [MQTT-4.7.2-1]: retained $ names stay out of wildcard-first filters
	// but are found by Walk and by filters that name them.
	x := NewIndex[int]()
	x.Set("$SYS/broker/uptime", 1)
	x.Set("a/b", 2)
	if got := indexHits(x, "#"); !slices.Equal(got, []string{"a/b"}) {
		t.Errorf(`Match("#") = %q`, got)
	}
	if got := indexHits(x, "+/broker/+"); len(got) != 0 {
		t.Errorf(`Match("+/broker/+") = %q`, got)
	}
	if got := indexHits(x, "$SYS/#"); !slices.Equal(got, []string{"$SYS/broker/uptime"}) {
		t.Errorf(`Match("$SYS/#") = %q`, got)
	}
	n := 0
	x.Walk(func(string, int) bool { n++; return true })
	if n != 2 {
		t.Errorf("Walk visited %d, want 2", n)
	}
}

func TestIndexPruneReturnsNodes(t *testing.T) {
	x := NewIndex[int]()
	const n = 100_000
	name := func(i int) string { return fmt.Sprintf("site/%d/dev/%d/temp", i%500, i) }
	for i := range n {
		x.Set(name(i), i)
	}
	for i := range n {
		if !x.Delete(name(i)) {
			t.Fatalf("Delete(%q) = false", name(i))
		}
	}
	if x.Len() != 0 || x.nodeCount() != 0 || x.root.children.len() != 0 {
		t.Errorf("Len=%d nodes=%d, want 0", x.Len(), x.nodeCount())
	}
}

func TestIndexMatchDoesNotAllocate(t *testing.T) {
	x := benchIndex()
	count := 0
	fn := func(string, int) bool { count++; return true }
	for _, f := range []string{"#", "site/7/#", "site/+/dev/3/+", "site/7/dev/3/temp"} {
		if a := testing.AllocsPerRun(20, func() { x.Match(f, fn) }); a != 0 {
			t.Errorf("Index.Match(%q) allocates %v times per call", f, a)
		}
	}
	if count == 0 {
		t.Error("no matches: benchmark data is wrong")
	}
}
