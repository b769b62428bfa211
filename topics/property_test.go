package topics

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// refMatch is a second, deliberately naive matcher (strings.Split) to check
// Match against; it states the rules in the most direct form.
func refMatch(filter, name string) bool {
	f, n := strings.Split(filter, "/"), strings.Split(name, "/")
	if strings.HasPrefix(name, "$") && (f[0] == "+" || f[0] == "#") {
		return false // [MQTT-4.7.2-1]
	}
	for i, fl := range f {
		if fl == "#" {
			return i == len(f)-1 // this level and all below, incl. the parent
		}
		if i >= len(n) || (fl != "+" && fl != n[i]) {
			return false
		}
	}
	return len(f) == len(n)
}

// A small alphabet so that random filters and names collide often; '$'
// levels and empty levels are in it on purpose.
var nameLevels = []string{"a", "b", "$", "$a", "", "ab"}

func randName(r *rand.Rand) string {
	lv := make([]string, 1+r.IntN(4))
	for i := range lv {
		lv[i] = nameLevels[r.IntN(len(nameLevels))]
	}
	if n := strings.Join(lv, "/"); n != "" {
		return n
	}
	return randName(r) // "" is not a topic name [MQTT-4.7.3-1]
}

// randFilter returns a valid filter most of the time and, when invalid is
// set, sometimes a broken one ('#' inside, "a+"): all matchers must still
// agree on those.
func randFilter(r *rand.Rand, invalid bool) string {
	lv := make([]string, 1+r.IntN(4))
	for i := range lv {
		switch k := r.IntN(10); {
		case k < 3:
			lv[i] = "+"
		case invalid && k == 3:
			lv[i] = []string{"#", "a+", "+#"}[r.IntN(3)]
		default:
			lv[i] = nameLevels[r.IntN(len(nameLevels))]
		}
	}
	if r.IntN(3) == 0 {
		lv = append(lv, "#")
	}
	if r.IntN(8) == 0 {
		lv = []string{lv[0]}
		if r.IntN(2) == 0 {
			lv[0] = "#"
		}
	}
	if f := strings.Join(lv, "/"); f != "" {
		return f
	}
	return randFilter(r, invalid) // "" is not a filter [MQTT-4.7.3-1]
}

func TestPropertyMatchersAgree(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for round := range 300 {
		invalid := round%2 == 1
		tr := NewTree[int]()
		idx := NewIndex[int]()
		subs := map[hit]int{}
		names := map[string]int{}
		for i := range 60 {
			f, k := randFilter(r, invalid), string(rune('k'+r.IntN(3)))
			if !invalid && ValidateFilter(f, 0, 0) != nil {
				t.Fatalf("generator made invalid filter %q", f)
			}
			tr.Add(f, k, i)
			subs[hit{f, k}] = i
			n := randName(r)
			idx.Set(n, i)
			names[n] = i
		}
		// Remove about a third, so pruning is exercised between matches.
		for s := range subs {
			if r.IntN(3) == 0 {
				if !tr.Remove(s.filter, s.key) {
					t.Fatalf("Remove(%q, %q) = false", s.filter, s.key)
				}
				delete(subs, s)
			}
		}
		for n := range names {
			if r.IntN(3) == 0 {
				if !idx.Delete(n) {
					t.Fatalf("Delete(%q) = false", n)
				}
				delete(names, n)
			}
		}
		if tr.Len() != len(subs) || idx.Len() != len(names) {
			t.Fatalf("Len: tree %d want %d, index %d want %d", tr.Len(), len(subs), idx.Len(), len(names))
		}

		for range 50 {
			name := randName(r)
			var want []hit
			for s := range subs {
				m := Match(s.filter, name)
				if m != refMatch(s.filter, name) {
					t.Fatalf("Match(%q, %q) = %v, reference says %v", s.filter, name, m, !m)
				}
				if m {
					want = append(want, s)
				}
			}
			slices.SortFunc(want, func(a, b hit) int { return strings.Compare(a.filter+"\x00"+a.key, b.filter+"\x00"+b.key) })
			if got := treeHits(tr, name); !slices.Equal(got, want) {
				t.Fatalf("round %d: Tree.Match(%q)\n got  %v\n want %v", round, name, got, want)
			}

			filter := randFilter(r, invalid)
			var wantN []string
			for n := range names {
				if Match(filter, n) {
					wantN = append(wantN, n)
				}
			}
			slices.Sort(wantN)
			if got := indexHits(idx, filter); !slices.Equal(got, wantN) {
				t.Fatalf("round %d: Index.Match(%q)\n got  %q\n want %q", round, filter, got, wantN)
			}
		}
	}
}

// FuzzMatch checks Match against the reference and the one-entry Tree and
// Index against Match, for any strings at all. `go test` runs the seeds.
func FuzzMatch(f *testing.F) {
	for _, tc := range matchCases {
		f.Add(tc.filter, tc.name)
	}
	f.Add("", "")
	f.Add("#", "")
	f.Add("/#", "/")
	f.Fuzz(func(t *testing.T, filter, name string) {
		want := refMatch(filter, name)
		if got := Match(filter, name); got != want {
			t.Fatalf("Match(%q, %q) = %v, reference %v", filter, name, got, want)
		}
		tr := NewTree[bool]()
		tr.Add(filter, "k", true)
		if got := len(treeHits(tr, name)) == 1; got != want {
			t.Fatalf("Tree{%q}.Match(%q) = %v, want %v", filter, name, got, want)
		}
		tr.Remove(filter, "k")
		if tr.nodeCount() != 0 {
			t.Fatalf("Tree{%q}: %d nodes left", filter, tr.nodeCount())
		}
		x := NewIndex[bool]()
		x.Set(name, true)
		if got := len(indexHits(x, filter)) == 1; got != want {
			t.Fatalf("Index{%q}.Match(%q) = %v, want %v", name, filter, got, want)
		}
		x.Delete(name)
		if x.nodeCount() != 0 {
			t.Fatalf("Index{%q}: %d nodes left", name, x.nodeCount())
		}
	})
}
