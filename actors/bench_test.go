package actors

import (
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.uber.org/zap"

	"github.com/actormq/actormq/codec"
	"github.com/actormq/actormq/config"
	"github.com/actormq/actormq/store"
)

// benchCtx is the part of actor.Context a Shard uses: Message and Send. Anything else panics
// (nil embedded interface), which a benchmark would show at once. Send plays the session:
// it takes the delivery in and releases its share of the route at once.
type benchCtx struct {
	actor.Context
	msg  any
	sent int
}

func (c *benchCtx) Message() any { return c.msg }

func (c *benchCtx) Send(_ *actor.PID, m any) {
	c.sent++
	if d, ok := m.(*Deliver); ok {
		d.flow.release()
		d.recycle() // as a session does once it has taken it
	}
}

func benchEnv() *Env {
	return NewEnv(nil, config.Default(), zap.NewNop(), store.NewMemory())
}

// BenchmarkShardRoute drives Shard.Receive with route messages through a fake context: the
// shard's own cost per publish (trie match, merge per session, one Deliver per session), no
// mailbox. ns/op is per routed publish; deliveries/op is what it sends.
//
//   - fan-in: 1 session subscribed to in/+, publishes to in/<i> (50 topics), QoS 0
//   - fan-in-qos1: the same at QoS 1: the shard also queues the PUBACK on the publisher's Link
//     (a discard conn; its writer goroutine runs on the other core)
//   - fan-out: 100 sessions subscribed to out/t, QoS 0
//   - overlap: 1 session with 3 matching subscriptions (with identifiers), merged to 1 delivery
func BenchmarkShardRoute(b *testing.B) {
	for _, c := range []struct {
		name     string
		sessions int
		filters  []string
		topics   int
		prefix   string
		qos      byte
		subIDs   bool
	}{
		{"fan-in", 1, []string{"in/+"}, 50, "in/", 0, false},
		{"fan-in-qos1", 1, []string{"in/+"}, 50, "in/", 1, false},
		{"fan-out", 100, []string{"out/t"}, 1, "out/t", 0, false},
		{"overlap", 1, []string{"a/b/c", "a/+/c", "a/#"}, 1, "a/b/c", 0, true},
	} {
		b.Run(c.name, func(b *testing.B) {
			env := benchEnv()
			s := &Shard{env: env, guard: newMailboxGuard(env), ShardState: NewShardState()}
			ctx := &benchCtx{}
			for i := range c.sessions {
				ref := &sessionRef{pid: actor.NewPID("local", fmt.Sprint("session/", i)), clientID: fmt.Sprint("sub-", i)}
				for j, f := range c.filters {
					var id uint32
					if c.subIDs {
						id = uint32(j + 1)
					}
					ctx.msg = &shardSubscribe{ref: ref, subs: []shardSub{{shardFilter: shardFilter{filter: f}, opts: codec.Subscription{QoS: 1}, subID: id}}}
					s.Receive(ctx)
				}
			}
			pubs := make([]*codec.Publish, c.topics)
			for i := range pubs {
				t := c.prefix
				if c.topics > 1 {
					t += fmt.Sprint(i)
				}
				pubs[i] = &codec.Publish{Topic: t, QoS: c.qos, PacketID: 1, Payload: make([]byte, 64)}
			}
			var link *Link
			if c.qos > 0 {
				link = newLink(discardConn{}, &Stats{}, 1<<20, 256, 0)
			}
			now := time.Now()
			ctx.sent = 0
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				ctx.msg = newRoute(env, pubs[i%len(pubs)], "pub", link, now)
				s.Receive(ctx)
			}
			b.ReportMetric(float64(ctx.sent)/float64(b.N), "deliveries/op")
		})
	}
}

// BenchmarkShardActor runs a real actor system: one shard actor and N sink actors standing in
// for sessions (they count deliveries, release the route and recycle the Deliver, as a session
// does once the message is in its window). The publisher takes a credit from a window of 256 before each route, as a
// reader does, so the mailboxes stay bounded. ns/op is per routed publish, all its deliveries
// taken by the sinks; allocations include protoactor's mailbox and envelope costs.
func BenchmarkShardActor(b *testing.B) {
	for _, sinks := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("sessions=%d", sinks), func(b *testing.B) {
			sys := actor.NewActorSystem()
			defer sys.Shutdown()
			env := NewEnv(sys, config.Default(), zap.NewNop(), store.NewMemory())
			shard, err := sys.Root.SpawnNamed(env.ShardProps(0, NewShardState()), "router/shard-0")
			if err != nil {
				b.Fatal(err)
			}
			var got atomic.Int64
			for i := range sinks {
				pid := sys.Root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
					if d, ok := ctx.Message().(*Deliver); ok {
						d.flow.release()
						d.recycle()
						got.Add(1)
					}
				}))
				ref := &sessionRef{pid: pid, clientID: fmt.Sprint("sub-", i)}
				sys.Root.Send(shard, &shardSubscribe{ref: ref, subs: []shardSub{{shardFilter: shardFilter{filter: "bench/+"}, opts: codec.Subscription{QoS: 0}}}})
			}
			link := newLink(discardConn{}, &Stats{}, 1024, 256, 0)
			pub := &codec.Publish{Topic: "bench/t", Payload: make([]byte, 64)}
			// One route first: the subscriptions are in place once it is delivered everywhere.
			sys.Root.Send(shard, newRoute(env, pub, "pub", link, time.Now()))
			waitCount(b, &got, int64(sinks))
			got.Store(0)
			now := time.Now()
			b.ReportAllocs()
			b.ResetTimer()
			// A b.N loop rather than b.Loop: the wait for the last deliveries must be timed.
			for range b.N {
				link.credits() <- struct{}{}
				sys.Root.Send(shard, newRoute(env, pub, "pub", link, now))
			}
			waitCount(b, &got, int64(b.N*sinks))
			b.StopTimer()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*sinks), "ns/delivery")
		})
	}
}

func waitCount(b *testing.B, got *atomic.Int64, want int64) {
	deadline := time.Now().Add(30 * time.Second)
	for got.Load() < want {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d deliveries arrived", got.Load(), want)
		}
		runtime.Gosched()
	}
}

// discardConn is a net.Conn that takes every write and never has anything to read.
type discardConn struct{}

func (discardConn) Read([]byte) (int, error)         { return 0, io.EOF }
func (discardConn) Write(p []byte) (int, error)      { return len(p), nil }
func (discardConn) Close() error                     { return nil }
func (discardConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (discardConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (discardConn) SetDeadline(time.Time) error      { return nil }
func (discardConn) SetReadDeadline(time.Time) error  { return nil }
func (discardConn) SetWriteDeadline(time.Time) error { return nil }

func benchDeliveries() []struct {
	name string
	v    codec.Version
	it   outItem
} {
	pub := &codec.Publish{QoS: 1, Topic: "tenant/42/dev/17/telemetry", Payload: make([]byte, 64)}
	return []struct {
		name string
		v    codec.Version
		it   outItem
	}{
		{"3.1.1/qos0", codec.V311, outItem{kind: itemPublish, pub: pub}},
		{"3.1.1/qos1", codec.V311, outItem{kind: itemPublish, pub: pub, qos: 1, id: 7}},
		{"5.0/qos0", codec.V5, outItem{kind: itemPublish, pub: pub}},
		{"5.0/qos1", codec.V5, outItem{kind: itemPublish, pub: pub, qos: 1, id: 7, subIDs: []uint32{3}}},
	}
}

// BenchmarkLinkEncode: Link.encode of one delivery (64 B payload) into a reused buffer, the
// same publish every time, so after the second op it takes the shared bytes where it may
// ("shared"); "full" encodes every delivery from the publish. 5.0 QoS 1 carries a subscription
// identifier, which always takes the full encode. No topic alias (the client asked for none).
func BenchmarkLinkEncode(b *testing.B) {
	for _, mode := range []string{"full", "shared"} {
		for _, c := range benchDeliveries() {
			b.Run(mode+"/"+c.name, func(b *testing.B) {
				defer setSharedEncoding(mode == "shared")()
				l := newLink(discardConn{}, &Stats{}, 16, 16, time.Second)
				l.Version = c.v
				var aliases map[string]uint16
				var scratch codec.Publish
				buf := make([]byte, 0, 4096)
				it := c.it
				buf = l.encode(buf[:0], &it, &aliases, &scratch)
				b.SetBytes(int64(len(buf)))
				b.ReportAllocs()
				for b.Loop() {
					buf = l.encode(buf[:0], &it, &aliases, &scratch)
				}
			})
		}
	}
}

// BenchmarkLinkEncodeFanOut: one new publish per op (topic tenant/42/dev/17/telemetry, 64 B
// or 4 KiB payload, made outside the timer's concern but counted in allocs/op: 2 allocations)
// encoded for 100 subscribers' Links, each with its own packet id, as their writers do in a
// fan-out. ns/delivery and allocs/delivery are per subscriber.
func BenchmarkLinkEncodeFanOut(b *testing.B) {
	const subs = 100
	for _, mode := range []string{"full", "shared"} {
		for _, c := range []struct {
			name string
			v    codec.Version
			qos  byte
			size int
		}{
			{"3.1.1/qos0/64B", codec.V311, 0, 64},
			{"3.1.1/qos1/64B", codec.V311, 1, 64},
			{"5.0/qos1/64B", codec.V5, 1, 64},
			{"5.0/qos1/4KiB", codec.V5, 1, 4096},
		} {
			b.Run(mode+"/"+c.name, func(b *testing.B) {
				defer setSharedEncoding(mode == "shared")()
				ls := make([]*Link, subs)
				for i := range ls {
					ls[i] = newLink(discardConn{}, &Stats{}, 16, 16, time.Second)
					ls[i].Version = c.v
				}
				var aliases map[string]uint16
				var scratch codec.Publish
				buf := make([]byte, 0, 64<<10)
				b.ReportAllocs()
				for b.Loop() {
					pub := &codec.Publish{Topic: "tenant/42/dev/17/telemetry", QoS: c.qos, Payload: make([]byte, c.size)}
					for i, l := range ls {
						it := outItem{kind: itemPublish, pub: pub, qos: c.qos}
						if c.qos > 0 {
							it.id = uint16(i + 1)
						}
						buf = l.encode(buf[:0], &it, &aliases, &scratch)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*subs), "ns/delivery")
			})
		}
	}
}

func setSharedEncoding(on bool) (restore func()) {
	old := sharedEncoding
	sharedEncoding = on
	return func() { sharedEncoding = old }
}

// BenchmarkLinkWrite: Link.push of deliveries from one goroutine and the writer goroutine
// (Link.run) encoding and writing them: ns/op is per delivery, end to end, on
//
//   - discard: a net.Conn whose Write does nothing (queue, swap, encode; no syscall)
//   - pipe: net.Pipe, drained by io.Copy to io.Discard (synchronous hand-over per write)
//   - tcp: a loopback TCP connection, drained by io.Copy (one write(2) per wake-up)
//
// Link.push starts the writer when it is idle and the writer ends when its queue is empty, so
// the figures include those goroutine starts. The producer never waits for the writer except when the queue (connections.writer_queue,
// 1024) is full, as a session does (it keeps the message and tries again later).
func BenchmarkLinkWrite(b *testing.B) {
	for _, conn := range []string{"discard", "pipe", "tcp"} {
		for _, c := range benchDeliveries() {
			if c.name == "3.1.1/qos0" || c.name == "5.0/qos1" {
				b.Run(conn+"/"+c.name, func(b *testing.B) { benchLinkWrite(b, conn, c.v, c.it) })
			}
		}
	}
}

func benchLinkWrite(b *testing.B, kind string, v codec.Version, it outItem) {
	var w net.Conn
	switch kind {
	case "discard":
		w = discardConn{}
	case "pipe":
		a, r := net.Pipe()
		defer r.Close()
		go func() { _, _ = io.Copy(io.Discard, r) }()
		w = a
	case "tcp":
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		defer ln.Close()
		go func() {
			r, err := ln.Accept()
			if err == nil {
				_, _ = io.Copy(io.Discard, r)
				r.Close()
			}
		}()
		if w, err = net.Dial("tcp", ln.Addr().String()); err != nil {
			b.Fatal(err)
		}
	}
	stats := &Stats{}
	l := newLink(w, stats, 1024, 256, 10*time.Second)
	l.Version = v
	// The first push starts the writer goroutine (Link.run); it ends whenever the queue is
	// empty and the next push starts another, so this counts those starts too.
	defer func() { l.CloseAfterFlush(); <-l.Done() }()
	b.ReportAllocs()
	b.ResetTimer()
	// A b.N loop rather than b.Loop: the wait for the writer to finish must be timed.
	n := uint64(b.N)
	for range b.N {
		for {
			err := l.push(it)
			if err == nil {
				break
			}
			if !errors.Is(err, ErrLinkFull) {
				b.Fatal(err)
			}
			runtime.Gosched()
		}
	}
	for stats.MessagesOut() < n {
		runtime.Gosched()
	}
	b.StopTimer()
	b.ReportMetric(float64(stats.BytesOut.Load())/float64(n), "B/delivery")
}
