package hostile

// The memory ceiling: with the default configuration, hostile clients push each limit and the
// broker's heap stays under a bound stated for each, well below what the same load would cost
// without the limit. The heap is the test process's (HeapInuse after a GC): the broker runs
// in it, and the bounds leave room for the test's own clients.

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/actormq/actormq/codec"
	"github.com/actormq/actormq/config"
	"github.com/actormq/actormq/internal/brokertest"
)

// heapInuse is the heap in use after a full collection.
func heapInuse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

const mib = 1 << 20

// ceiling checks that the heap grew by less than bound since base, and logs the figures.
func ceiling(t *testing.T, what string, base, bound, without uint64) {
	t.Helper()
	now := heapInuse()
	grew := now - min(now, base)
	if without > 0 {
		t.Logf("%s: heap +%.1f MiB (bound %d MiB; without the limit: %d MiB)", what, float64(grew)/mib, bound/mib, without/mib)
	} else {
		t.Logf("%s: heap +%.1f MiB (bound %d MiB)", what, float64(grew)/mib, bound/mib)
	}
	if grew > bound {
		t.Errorf("%s: the heap grew by %.1f MiB, past its bound of %d MiB", what, float64(grew)/mib, bound/mib)
	}
}

// TestMemoryCeiling runs its phases one after the other on one broker with the default
// configuration (only the listeners' ports and the console's are chosen free), each starting
// from the idle broker.
func TestMemoryCeiling(t *testing.T) {
	def := config.Default()
	h := start(t)
	y := h.bystander(t)

	// A Remaining Length is the client's claim, not data (§2.1.4): 300 connected clients and
	// 300 sockets before CONNECT each announce a packet of limits.max_packet_size (1 MiB) and
	// send 20 bytes of it. What they cost must not depend on what they claim: at most 48 KiB
	// each (the 16 KiB a body gets before its bytes arrive, and the broker's and this test's
	// sides of the socket), where the claims add up to 600 MiB.
	t.Run("claimed packet sizes", func(t *testing.T) {
		const n = 300
		base := heapInuse()
		claim := def.Limits.MaxPacketSize - 5 // 1 byte of header, 4 of Remaining Length
		conns := make([]*brokertest.Conn, 2*n)
		errs := make([]error, 2*n)
		parallel(2*n, 32, func(i int) {
			if i < n {
				conns[i], errs[i] = h.connect(fmt.Sprintf("claim-%d", i), []codec.Version{codec.V311, codec.V5}[i%2], 60)
			} else {
				conns[i], errs[i] = brokertest.TryDial(t, h.TCP311, codec.V311)
			}
		})
		for i, err := range errs {
			if err != nil {
				t.Fatalf("client %d: %v", i, err)
			}
		}
		before := h.Stats().BytesIn.Load()
		head := append([]byte{0x30}, varint(claim)...)  // a PUBLISH after CONNECT,
		first := append([]byte{0x10}, varint(claim)...) // a CONNECT before
		parallel(2*n, 32, func(i int) {
			b := head
			if i >= n {
				b = first
			}
			errs[i] = sendRaw(conns[i], append(append([]byte(nil), b...), make([]byte, 20)...))
		})
		for i, err := range errs {
			if err != nil {
				t.Fatalf("client %d: %v", i, err)
			}
		}
		brokertest.WaitFor(t, wait, "the broker to read the claims", func() bool {
			return h.Stats().BytesIn.Load() >= before+uint64(2*n*(len(head)+20))
		})
		ceiling(t, "600 sockets claiming 1 MiB packets", base, 2*n*48<<10, uint64(2*n*claim))
		for _, c := range conns {
			_ = c.Conn.Close()
		}
		brokertest.WaitFor(t, wait, "the claimants' connections to end", func() bool { return h.Stats().Connections.Load() == 1 })
		y.check(t)
	})

	// Idle connections: what a connection costs while it does nothing, 32 KiB at most for the
	// two sides (the broker's is about 12.6 KB, BENCHMARKS.md).
	t.Run("idle connections", func(t *testing.T) {
		const n = 500
		base := heapInuse()
		conns := make([]*brokertest.Conn, n)
		errs := make([]error, n)
		parallel(n, 32, func(i int) {
			conns[i], errs[i] = h.connect(fmt.Sprintf("idle-%d", i), []codec.Version{codec.V311, codec.V5}[i%2], 60)
		})
		for i, err := range errs {
			if err != nil {
				t.Fatalf("client %d: %v", i, err)
			}
		}
		ceiling(t, fmt.Sprintf("%d idle connections", n), base, n*32<<10, 0)
		for _, c := range conns {
			_ = send(c, &codec.Disconnect{})
			_ = c.Conn.Close()
		}
		brokertest.WaitFor(t, wait, "the idle connections to end", func() bool { return h.Stats().Connections.Load() == 1 })
		y.check(t)
	})

	// Subscribers that stop reading, at the default queue limits: each holds at most
	// connections.writer_queue (1024) + sessions.max_queued_messages (1000) messages (QoS 0:
	// nothing in flight); past that their messages are dropped. Two of them and 20000 messages
	// of 2 KiB: without the limits each would hold all 39 MiB of them.
	t.Run("stalled subscribers", func(t *testing.T) {
		const stalled, size = 2, 2 << 10
		messages := 20000
		if raceEnabled {
			messages = 10000 // still five times what the limits let a stalled subscriber hold
		}
		base := heapInuse()
		var subs []*brokertest.Conn
		for i := range stalled {
			c := h.mustConnect(t, fmt.Sprintf("stalled-%d", i), codec.V5, 60)
			subscribe(t, c, "memory/stall", 0)
			subs = append(subs, c) // never read again
		}
		pub := h.mustConnect(t, "stall-publisher", codec.V5, 60)
		payload := make([]byte, size)
		go func() {
			for i := range messages {
				b, _ := encode(codec.V5, &codec.Publish{QoS: 1, PacketID: uint16(i%65000 + 1), Topic: "memory/stall", Payload: payload})
				if sendRaw(pub, b) != nil {
					return
				}
			}
		}()
		for i := range messages {
			if _, err := pub.ReadErr(wait); err != nil {
				t.Fatalf("PUBACK %d: %v", i, err)
			}
		}
		perSub := def.Connections.WriterQueue + def.Sessions.MaxQueuedMessages
		ceiling(t, fmt.Sprintf("%d stalled subscribers, %d messages of %d KiB", stalled, messages, size>>10),
			base, uint64(stalled*perSub*(size+256)+8*mib), uint64(stalled*messages*(size+256)))
		if d := h.Stats().DroppedQueue.Load(); d == 0 {
			t.Error("nothing dropped for the stalled subscribers")
		}
		for _, c := range append(subs, pub) {
			_ = c.Conn.Close()
		}
		brokertest.WaitFor(t, wait, "the stalled subscribers to end", func() bool { return h.Stats().Connections.Load() == 1 })
		y.check(t)
	})

	// Subscriptions: ten clients ask for 5000 each, limits.max_subscriptions_per_client (1000)
	// are granted. The refused ones cost nothing: the heap holds 10000 subscriptions at most 3
	// KiB each (the session's record and the shards' tries, every shard for a wildcard).
	t.Run("subscriptions", func(t *testing.T) {
		const clients, asked = 10, 5000
		base := heapInuse()
		conns := make([]*brokertest.Conn, clients)
		errs := make([]error, clients)
		parallel(clients, clients, func(i int) {
			c, err := h.connect(fmt.Sprintf("subscriber-%d", i), codec.V5, 60)
			if err != nil {
				errs[i] = err
				return
			}
			conns[i] = c
			subs := make([]codec.Subscription, asked)
			for j := range subs {
				subs[j] = codec.Subscription{Filter: fmt.Sprintf("memory/%d/sensor-%05d/+", i, j), QoS: 1}
			}
			if errs[i] = send(c, &codec.Subscribe{PacketID: 1, Subscriptions: subs}); errs[i] != nil {
				return
			}
			if o := await(c, wait, func(codec.Packet) bool { return true }); first(o) == nil || first(o).Type() != codec.TypeSuback {
				errs[i] = fmt.Errorf("got %s, want SUBACK", o)
			}
		})
		for i, err := range errs {
			if err != nil {
				t.Fatalf("client %d: %v", i, err)
			}
		}
		granted := clients * def.Limits.MaxSubscriptionsPerClient
		if n := h.Stats().Subscriptions.Load(); n != int64(granted)+1 {
			t.Errorf("%d subscriptions, want %d and the bystander's", n, granted)
		}
		ceiling(t, fmt.Sprintf("%d clients asking for %d subscriptions each", clients, asked),
			base, uint64(granted*3<<10), uint64(clients*asked*3<<10))
		// Their sessions end together, each with 1,000 wildcard subscriptions in every shard:
		// one message per shard each, not one per subscription and shard (40,000). Sampled,
		// a flood shows under the race detector (7,719 deep without the batching), which CI
		// runs; without it the shards may take in even 40,000 between two samples. The actors
		// package's TestSessionEndUnsubscribesOncePerShard counts the messages exactly.
		sampling := h.deepestMailbox()
		for _, c := range conns {
			_ = send(c, &codec.Disconnect{})
			_ = c.Conn.Close()
		}
		brokertest.WaitFor(t, wait, "the subscribers to end", func() bool { return h.Stats().Connections.Load() == 1 })
		brokertest.WaitFor(t, wait, "the shards to take in the ends", func() bool {
			d, err := h.metric("actormq_mailbox_depth", map[string]string{"kind": "router shard"})
			return err == nil && d == 0
		})
		deepest := sampling()
		t.Logf("%d sessions with %d wildcard subscriptions each ended: deepest mailbox %v", clients, def.Limits.MaxSubscriptionsPerClient, deepest)
		if bound := float64(2 * clients); deepest > bound {
			t.Errorf("a session or shard mailbox held %v messages while %d sessions ended, past %v", deepest, clients, bound)
		}
		y.check(t)
	})

	// A flood of SUBSCRIBE and UNSUBSCRIBE packets: each costs the session and the router
	// shards of its filter some work, so a SUBACK waits until they have taken it in, and the
	// reader passes on at most a few packets whose answers are still owed (64) and leaves the
	// rest in the socket. So the actors' mailboxes stay short while 200000 go through (read as
	// fast as the socket gave them, they piled up there, about 80 MiB), and the heap is back
	// where it was once they are answered.
	//
	// The mailboxes are what the bound is checked on, sampled through /metrics: the heap in use
	// during the flood also counts what was allocated while the collector was marking (it
	// stays until the next cycle), which with a large live heap (the retained store full) is
	// tens of MiB of garbage, and says nothing about the bound.
	subscribeFlood := func(t *testing.T, filter string) {
		n := 200000
		if raceEnabled {
			n = 50000
		}
		c := h.mustConnect(t, "subscribe-flood", codec.V5, 60)
		var all []byte
		for i := range n {
			var p codec.Packet = &codec.Subscribe{PacketID: uint16(i%60000 + 1), Subscriptions: []codec.Subscription{{Filter: filter, QoS: 1}}}
			if i%2 == 1 {
				p = &codec.Unsubscribe{PacketID: uint16(i%60000 + 1), Filters: []string{filter}}
			}
			b, _ := encode(codec.V5, p)
			all = append(all, b...)
		}
		base := heapInuse()
		sampling := h.deepestMailbox()
		go func() { _ = sendRaw(c, all) }()
		for i := range n {
			if p, err := c.ReadErr(wait); err != nil || (p.Type() != codec.TypeSuback && p.Type() != codec.TypeUnsuback) {
				t.Fatalf("answer %d: got %s, %v", i, describe(p), err)
			}
		}
		deepest := sampling()
		// The session's mailbox holds the packets passed on (64) and the shards' answers to
		// them (one per shard each); a shard's, the changes of those packets.
		bound := float64(64 * (1 + def.Router.Shards))
		t.Logf("%d SUBSCRIBE and UNSUBSCRIBE packets on %q: deepest mailbox %v (bound %v)", n, filter, deepest, bound)
		if deepest > bound {
			t.Errorf("a session or shard mailbox held %v messages during a flood of %d SUBSCRIBE packets, past its bound of %v", deepest, n, bound)
		}
		ceiling(t, fmt.Sprintf("%d SUBSCRIBE and UNSUBSCRIBE packets answered", n), base, 4*mib, 0)
		_ = c.Conn.Close()
		brokertest.WaitFor(t, wait, "the flood's connection to end", func() bool { return h.Stats().Connections.Load() == 1 })
		y.check(t)
	}
	t.Run("SUBSCRIBE flood", func(t *testing.T) { subscribeFlood(t, "memory/flood/x") })

	// Retained messages: retained.max_messages (100000) are stored, and 20000 more publishes to
	// new topics past it leave the heap where it was (within 2 MiB), where storing them would
	// take about 10 MiB more.
	t.Run("retained messages", func(t *testing.T) {
		if raceEnabled {
			// 120000 publishes are most of this package's time under the race detector; the
			// retained store's code paths run under it in TestRetainedFlood.
			t.Skip("the default retained.max_messages takes too long to fill under -race; this phase runs without it")
		}
		limit := def.Retained.MaxMessages
		const extra, publishers = 20000, 4
		retain := func(from, to int) {
			t.Helper()
			errs := make([]error, publishers)
			parallel(publishers, publishers, func(p int) {
				c, err := h.connect(fmt.Sprintf("retainer-%d", p), codec.V5, 60)
				if err != nil {
					errs[p] = err
					return
				}
				defer c.Conn.Close()
				var all []byte
				count := 0
				for i := from + p; i < to; i += publishers {
					b, _ := encode(codec.V5, &codec.Publish{QoS: 1, PacketID: uint16(count%65000 + 1), Retain: true,
						Topic: fmt.Sprintf("memory/retained/%06d", i), Payload: []byte("last known value")})
					all = append(all, b...)
					count++
				}
				go func() { _ = sendRaw(c, all) }()
				for range count {
					if _, err := c.ReadErr(wait); err != nil {
						errs[p] = err
						return
					}
				}
				_ = send(c, &codec.Disconnect{})
			})
			for i, err := range errs {
				if err != nil {
					t.Fatalf("retainer %d: %v", i, err)
				}
			}
		}
		base := heapInuse()
		retain(0, limit)
		// The shards may pass the limit by one each but the first (TestRetainedFlood).
		over := int64(def.Router.Shards - 1)
		if n := h.Stats().Retained.Load(); n < int64(limit) || n > int64(limit)+over {
			t.Fatalf("%d retained messages stored, want %d", n, limit)
		}
		atLimit := heapInuse()
		t.Logf("%d retained messages: heap +%.1f MiB", limit, float64(atLimit-min(atLimit, base))/mib)
		retain(limit, limit+extra)
		if n := h.Stats().Retained.Load(); n < int64(limit) || n > int64(limit)+over {
			t.Errorf("%d retained messages stored, want the limit %d", n, limit)
		}
		ceiling(t, fmt.Sprintf("%d retained messages past the limit", extra), atLimit, 2*mib,
			uint64(extra)*(atLimit-min(atLimit, base))/uint64(limit))
		y.check(t)
	})

	// QoS 2 publishes never released (3.1.1 has no Receive Maximum): the packet ids are 16-bit,
	// so a session keeps at most 65535 of them, at most 256 bytes each; resending them, as a
	// client may until it releases them [MQTT-4.3.3-2], adds nothing.
	t.Run("unreleased QoS 2", func(t *testing.T) {
		const ids, resent = 65535, 20000
		c := h.mustConnect(t, "unreleased", codec.V311, 60)
		flood := func(n int, dup bool) {
			t.Helper()
			var all []byte
			for id := 1; id <= n; id++ {
				b, _ := encode(codec.V311, &codec.Publish{QoS: 2, Dup: dup, PacketID: uint16(id), Topic: "memory/qos2", Payload: []byte("x")})
				all = append(all, b...)
			}
			go func() { _ = sendRaw(c, all) }()
			for i := range n {
				if p, err := c.ReadErr(wait); err != nil || p.Type() != codec.TypePubrec {
					t.Fatalf("PUBREC %d: got %s, %v", i, describe(p), err)
				}
			}
		}
		base := heapInuse()
		flood(ids, false)
		ceiling(t, fmt.Sprintf("%d unreleased QoS 2 publishes", ids), base, ids*256, 0)
		full := heapInuse()
		flood(resent, true)
		ceiling(t, fmt.Sprintf("%d of them resent", resent), full, 2*mib, 0)
		_ = c.Conn.Close()
		y.check(t)
	})

	// The same flood on a wildcard filter with the retained store full: every router shard
	// matches each new subscription against the retained messages. A SUBACK waits for the
	// shards, so the reader's bound on answers owed keeps them from falling behind.
	t.Run("SUBSCRIBE flood on a wildcard, retained store full", func(t *testing.T) {
		subscribeFlood(t, "memory/+/flood")
	})
}
