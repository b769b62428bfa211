package topics

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
)

// A tree of 100,000 subscriptions, the mix of a device fleet: 900 tenants of 100 devices.
//
//   - 90,000 exact filters, one per device: tenant/T/dev/D/telemetry
//   - 9,000 single-level wildcard filters, 10 per tenant: tenant/T/dev/+/telemetry,
//     tenant/T/dev/+/status, tenant/T/dev/+/+ and tenant/T/+/K/telemetry for K = 0…6
//   - 1,000 multi-level wildcard filters: tenant/T/# for every tenant, and 100 fleet-wide
//     tenant/+/dev/K/# (K = 0…99), which every publish has to visit
//
// A device's telemetry matches 5 subscriptions (6 for devices 0…6): its exact filter, three of
// its tenant's '+' filters (four), tenant/T/# and one fleet-wide filter.
const (
	b100kTenants = 900
	b100kDevices = 100
)

type b100kSub struct{ filter, key string }

func bench100kSubs() []b100kSub {
	subs := make([]b100kSub, 0, 100_000)
	for t := range b100kTenants {
		for d := range b100kDevices {
			subs = append(subs, b100kSub{fmt.Sprintf("tenant/%d/dev/%d/telemetry", t, d), fmt.Sprintf("dev-%d-%d", t, d)})
		}
		for i, f := range []string{"tenant/%d/dev/+/telemetry", "tenant/%d/dev/+/status", "tenant/%d/dev/+/+"} {
			subs = append(subs, b100kSub{fmt.Sprintf(f, t), fmt.Sprintf("app-%d-%d", t, i)})
		}
		for k := range 7 {
			subs = append(subs, b100kSub{fmt.Sprintf("tenant/%d/+/%d/telemetry", t, k), fmt.Sprintf("svc-%d-%d", t, k)})
		}
		subs = append(subs, b100kSub{fmt.Sprintf("tenant/%d/#", t), fmt.Sprintf("audit-%d", t)})
	}
	for k := range 100 {
		subs = append(subs, b100kSub{fmt.Sprintf("tenant/+/dev/%d/#", k), fmt.Sprintf("fleet-%d", k)})
	}
	return subs
}

func bench100kTree(tb testing.TB) *Tree[int] {
	tr := NewTree[int]()
	for i, s := range bench100kSubs() {
		tr.Add(s.filter, s.key, i)
	}
	if tr.Len() != 100_000 {
		tb.Fatalf("tree holds %d subscriptions, want 100,000", tr.Len())
	}
	return tr
}

// bench100kNames returns the names to publish to, shuffled (fixed seed) so that successive
// matches do not walk neighbouring nodes.
func bench100kNames(level string) []string {
	names := make([]string, 0, b100kTenants*b100kDevices)
	for t := range b100kTenants {
		for d := range b100kDevices {
			names = append(names, fmt.Sprintf("tenant/%d/dev/%d/%s", t, d, level))
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	r.Shuffle(len(names), func(i, j int) { names[i], names[j] = names[j], names[i] })
	return names
}

// BenchmarkTree100kMatch: Tree.Match on the 100,000-subscription tree.
//
//   - telemetry: a device's telemetry topic (exact filter plus wildcards, 5.07 matches on average)
//   - status: tenant/T/dev/D/status, which no exact filter matches (only wildcards: 4)
//   - sys: $SYS/broker/clients, which wildcard filters at the first level must not match
func BenchmarkTree100kMatch(b *testing.B) {
	tr := bench100kTree(b)
	for _, c := range []struct {
		name  string
		names []string
	}{
		{"telemetry", bench100kNames("telemetry")},
		{"status", bench100kNames("status")},
		{"sys", []string{"$SYS/broker/clients"}},
	} {
		b.Run(c.name, func(b *testing.B) {
			n := 0
			fn := func(string, string, int) { n++ }
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				tr.Match(c.names[i%len(c.names)], fn)
			}
			b.ReportMetric(float64(n)/float64(b.N), "matches/op")
		})
	}
}

// BenchmarkTree100kChurn: one op removes a subscription from the 100,000-subscription tree and
// adds it back, as a client that disconnects and subscribes again does.
//
//   - device: an exact device filter; its last two levels are pruned and rebuilt every time
//   - wildcard: a tenant's tenant/T/dev/+/status; the '+' node is shared, only the leaf goes
//   - second-key: a second subscriber on an existing device filter (no node is created or
//     pruned: the subscriber list grows and shrinks)
func BenchmarkTree100kChurn(b *testing.B) {
	tr := bench100kTree(b)
	r := rand.New(rand.NewPCG(3, 4))
	pick := func(sub func(t, d int) b100kSub) []b100kSub {
		s := make([]b100kSub, 4096)
		for i := range s {
			s[i] = sub(r.IntN(b100kTenants), r.IntN(b100kDevices))
		}
		return s
	}
	for _, c := range []struct {
		name string
		subs []b100kSub
	}{
		{"device", pick(func(t, d int) b100kSub {
			return b100kSub{fmt.Sprintf("tenant/%d/dev/%d/telemetry", t, d), fmt.Sprintf("dev-%d-%d", t, d)}
		})},
		{"wildcard", pick(func(t, _ int) b100kSub {
			return b100kSub{fmt.Sprintf("tenant/%d/dev/+/status", t), fmt.Sprintf("app-%d-1", t)}
		})},
		{"second-key", pick(func(t, d int) b100kSub {
			return b100kSub{fmt.Sprintf("tenant/%d/dev/%d/telemetry", t, d), fmt.Sprintf("dashboard-%d-%d", t, d)}
		})},
	} {
		b.Run(c.name, func(b *testing.B) {
			second := c.name == "second-key"
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				s := c.subs[i%len(c.subs)]
				if second {
					tr.Add(s.filter, s.key, i)
					tr.Remove(s.filter, s.key)
				} else {
					tr.Remove(s.filter, s.key)
					tr.Add(s.filter, s.key, i)
				}
			}
			if tr.Len() != 100_000 {
				b.Fatalf("tree holds %d subscriptions after churn, want 100,000", tr.Len())
			}
		})
	}
}

// BenchmarkTree100kBuild adds the 100,000 subscriptions to an empty tree: ns and heap bytes per
// subscription (filter and key strings are made before the timer and not counted).
func BenchmarkTree100kBuild(b *testing.B) {
	subs := bench100kSubs()
	var ms0, ms1 runtime.MemStats
	var tr *Tree[int]
	b.ReportAllocs()
	for b.Loop() {
		tr = NewTree[int]()
		for i, s := range subs {
			tr.Add(s.filter, s.key, i)
		}
	}
	b.StopTimer()
	// Live heap of one tree, measured once outside the loop.
	tr = nil
	runtime.GC()
	runtime.ReadMemStats(&ms0)
	tr = NewTree[int]()
	for i, s := range subs {
		tr.Add(s.filter, s.key, i)
	}
	runtime.GC()
	runtime.ReadMemStats(&ms1)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(subs)), "ns/sub")
	b.ReportMetric(float64(ms1.HeapAlloc-ms0.HeapAlloc)/float64(len(subs)), "live-B/sub")
	b.ReportMetric(float64(tr.nodeCount()), "nodes")
	runtime.KeepAlive(tr)
}
