package topics

import (
	"fmt"
	"testing"
)

// Benchmark data: 100 sites x 100 devices. 10,000 exact filters
// site/S/dev/D/temp and 1,000 wildcard filters, 10 per site.
func benchTree() *Tree[int] {
	tr := NewTree[int]()
	for s := range 100 {
		for d := range 100 {
			tr.Add(fmt.Sprintf("site/%d/dev/%d/temp", s, d), fmt.Sprint("c", s*100+d), d)
		}
		for i, f := range []string{
			"site/%d/#", "site/%d/+/+/temp", "site/%d/dev/+/temp", "site/%d/dev/+/+",
			"site/%d/dev/#", "+/%d/dev/+/temp", "site/%d/dev/1/#", "site/%d/+/+/+",
			"site/%d/dev/+/humidity", "+/%d/#",
		} {
			tr.Add(fmt.Sprintf(f, s), fmt.Sprint("w", s, "-", i), i)
		}
	}
	return tr
}

func benchNames() []string {
	names := make([]string, 0, 10_000)
	for s := range 100 {
		for d := range 100 {
			names = append(names, fmt.Sprintf("site/%d/dev/%d/temp", s, d))
		}
	}
	return names
}

func benchIndex() *Index[int] {
	x := NewIndex[int]()
	for i, n := range benchNames() {
		x.Set(n, i)
	}
	return x
}

func BenchmarkTreeMatch(b *testing.B) {
	tr := benchTree()
	names := benchNames()
	n := 0
	fn := func(string, string, int) { n++ }
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		tr.Match(names[i%len(names)], fn)
	}
	b.ReportMetric(float64(n)/float64(b.N), "subs/op")
}

func BenchmarkIndexMatch(b *testing.B) {
	x := benchIndex()
	for _, f := range []string{"#", "site/42/#", "site/42/dev/+/temp", "site/+/dev/42/temp"} {
		b.Run(f, func(b *testing.B) {
			n := 0
			fn := func(string, int) bool { n++; return true }
			b.ReportAllocs()
			for b.Loop() {
				x.Match(f, fn)
			}
			b.ReportMetric(float64(n)/float64(b.N), "names/op")
		})
	}
}

func BenchmarkMatch(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		Match("site/+/dev/+/temp", "site/42/dev/17/temp")
	}
}

func BenchmarkValidateName(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = ValidateName("site/42/dev/17/temp", 0, 0)
	}
}
