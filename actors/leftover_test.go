package actors

import (
	"fmt"
	"log/slog"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.uber.org/zap"

	"github.com/actormq/actormq/codec"
	"github.com/actormq/actormq/config"
	"github.com/actormq/actormq/store"
)

// recorder stands in for a session: it records the payloads delivered to it, in order, and
// takes each delivery in as a session does (its share of the route given back).
type recorder struct {
	mu  sync.Mutex
	got []string
}

func (r *recorder) receive(ctx actor.Context) {
	if d, ok := ctx.Message().(*Deliver); ok {
		r.mu.Lock()
		r.got = append(r.got, string(d.Pub.Payload))
		r.mu.Unlock()
		d.flow.release()
	}
}

func (r *recorder) snapshot() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.got...)
}

// healer is a router supervisor in small: it starts shard-0 and starts it again whenever it
// stops, with the same state, as supervisor/tree.go does.
type healer struct {
	env *Env
	st  *ShardState
}

func (h *healer) Receive(ctx actor.Context) {
	switch ctx.Message().(type) {
	case *actor.Started, *actor.Terminated:
		if _, err := ctx.SpawnNamed(h.env.ShardProps(0, h.st), "shard-0"); err != nil {
			panic(err)
		}
	}
}

// shardWithRecorder starts a healed shard with one recorder subscribed to "t", under a
// supervisor that allows maxRestarts failures.
func shardWithRecorder(t *testing.T, maxRestarts int) (*Env, *recorder, *actor.PID) {
	t.Helper()
	sys := quietSystem()
	cfg := config.Default()
	env := NewEnv(sys, cfg, zap.NewNop(), store.NewMemory())
	sub := env.WatchDeadLetters()
	t.Cleanup(func() {
		env.Stopping.Store(true)
		sys.EventStream.Unsubscribe(sub)
		sys.Shutdown()
	})
	strategy := RestartStrategy(config.Supervision{MaxRestarts: maxRestarts, RestartWindow: config.Duration(time.Minute)})
	parent, err := sys.Root.SpawnNamed(actor.PropsFromProducer(func() actor.Actor { return &healer{env: env, st: NewShardState()} },
		actor.WithSupervisor(strategy)), "router")
	if err != nil {
		t.Fatal(err)
	}
	env.Shards = []*actor.PID{sys.NewLocalPID(parent.Id + "/shard-0")}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		if _, ok := sys.ProcessRegistry.Get(env.Shards[0]); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("shard-0 did not start")
		}
	}
	rec := &recorder{}
	ref := &sessionRef{pid: sys.Root.Spawn(actor.PropsFromFunc(rec.receive)), clientID: "rec"}
	sys.Root.Send(env.Shards[0], &shardSubscribe{ref: ref, subs: []shardSub{{shardFilter: shardFilter{filter: "t"}, opts: codec.Subscription{QoS: 1}}}})
	return env, rec, parent
}

func publishN(env *Env, from, n int) {
	for i := from; i < from+n; i++ {
		env.System.Root.Send(env.Shards[0], newRoute(env, &codec.Publish{Topic: "t", Payload: []byte(strconv.Itoa(i))}, "pub", nil, time.Time{}))
	}
}

func expectInOrder(t *testing.T, rec *recorder, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(rec.snapshot()) < n && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	got := rec.snapshot()
	if len(got) != n {
		t.Fatalf("%d of %d publishes delivered", len(got), n)
	}
	for i, p := range got {
		if p != strconv.Itoa(i) {
			t.Fatalf("delivery %d is publish %s: the order was not kept", i, p)
		}
	}
}

// TestStoppedShardHandsOverItsMailbox: a shard stopped with publishes still in its mailbox, and
// publishes sent to its name while it is gone, hands them all to the shard started again
// after it, which routes them first: none is lost and none overtakes another.
func TestStoppedShardHandsOverItsMailbox(t *testing.T) {
	env, rec, _ := shardWithRecorder(t, 10)
	const n = 3000
	publishN(env, 0, n)
	env.System.Root.Stop(env.Shards[0]) // most are still queued
	publishN(env, n, n)                 // to the stopping shard, then to no one (dead letters)
	publishN(env, 2*n, n)               // to the shard started again, sooner or later
	expectInOrder(t, rec, 3*n)
}

// TestShardPastItsBudgetHandsOverItsMailbox: a shard that fails past its restart budget is
// stopped by protoactor with its mailbox suspended, where queued messages would stay forever;
// its guard resumes the mailbox, so they reach the shard started again, in order.
func TestShardPastItsBudgetHandsOverItsMailbox(t *testing.T) {
	env, rec, _ := shardWithRecorder(t, 1)
	poison := func() { env.System.Root.Send(env.Shards[0], &route{env: env}) } // no publish: routing panics
	const n = 2000
	publishN(env, 0, n)
	poison()
	publishN(env, n, n)
	poison() // the second failure within the window: past the budget of 1
	publishN(env, 2*n, n)
	expectInOrder(t, rec, 3*n)
}

// TestRetiredGuardGivesBack: the leftovers of an actor that will not come back are given back:
// the publisher's credit returns, and a publish that waited to be stored is answered as failed
// (a 5.0 PUBACK with 0x80), never as delivered.
func TestRetiredGuardGivesBack(t *testing.T) {
	sys := quietSystem()
	defer sys.Shutdown()
	env := NewEnv(sys, config.Default(), zap.NewNop(), store.NewMemory())
	d, link, conn := awaitedDelivery(env)

	g := newMailboxGuard(env)
	g.pid = actor.NewPID("local", "sessions/session/gone")
	env.guards.Store(g.pid.Id, g)
	g.stop(true)
	g.keep(d)
	if len(link.Credits) != 1 {
		t.Fatal("a kept leftover gave its credit back before it was known to be lost")
	}
	g.retire()
	if len(link.Credits) != 0 {
		t.Error("the credit of a leftover was not given back")
	}
	expectFailedPuback(t, conn)
	if _, ok := env.guards.Load(g.pid.Id); ok {
		t.Error("a retired guard stays registered")
	}
}

// quietSystem is an actor system whose own log (every recovered panic, every dead letter) is
// discarded.
func quietSystem() *actor.ActorSystem {
	return actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return slog.New(slog.DiscardHandler)
	}))
}

// recordConn is a net.Conn that keeps what is written to it.
type recordConn struct {
	discardConn
	mu sync.Mutex
	b  []byte
}

func (c *recordConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.b = append(c.b, p...)
	return len(p), nil
}

func (c *recordConn) bytes() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]byte(nil), c.b...)
}

func waitForBytes(t *testing.T, c *recordConn, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for len(c.bytes()) < n {
		if time.Now().After(deadline) {
			t.Fatal(fmt.Sprintf("nothing written within 5 s (%d bytes)", len(c.bytes())))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestEarlyMailboxTakesSendsDuringSpawn: protoactor registers a spawned actor's name before
// its mailbox has a dispatcher, so a send to the name in that window made the sender panic.
// Messages sent while an actor is spawned again and again under one name are kept until it
// has started, and it sees Started before any of them.
func TestEarlyMailboxTakesSendsDuringSpawn(t *testing.T) {
	sys := quietSystem()
	defer sys.Shutdown()
	pid := sys.NewLocalPID("again")
	var before atomic.Int64 // user messages seen before Started
	var got atomic.Int64
	props := actor.PropsFromProducer(func() actor.Actor {
		started := false
		return actor.ReceiveFunc(func(ctx actor.Context) {
			switch ctx.Message().(type) {
			case *actor.Started:
				started = true
			case string:
				got.Add(1)
				if !started {
					before.Add(1)
				}
			}
		})
	}, actor.WithMailbox(mailboxProducer()))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
					sys.Root.Send(pid, "hello")
				}
			}
		}()
	}
	deadline := time.Now().Add(5 * time.Second)
	for i := 0; (i < 300 || got.Load() == 0) && time.Now().Before(deadline); i++ {
		p, err := sys.Root.SpawnNamed(props, "again")
		if err != nil {
			t.Fatal(err)
		}
		runtime.Gosched()
		if err := sys.Root.StopFuture(p).Wait(); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	if got.Load() == 0 {
		t.Fatal("no message reached the actor: the sends did not race with the spawns")
	}
	if n := before.Load(); n > 0 {
		t.Errorf("%d messages were handled before Started", n)
	}
}

// guarded is an actor with a mailbox guard, as sessions, shards and the registry have one.
type guarded struct {
	g         *mailboxGuard
	comesBack bool
}

func (a *guarded) Receive(ctx actor.Context) {
	switch ctx.Message().(type) {
	case *actor.Started:
		a.g.started(ctx.Self())
	case *actor.Stopping:
		a.g.stopping(a.comesBack)
	case *actor.Stopped:
		a.g.stop(a.comesBack)
	}
}

// TestHeirThatDoesNotComeBackEndsTheChain: an actor that took over a stopped one's name and
// leftovers, then stops for good (a session that ended, any actor while the broker stops),
// leaves nothing registered under the name, and what is sent to the name afterwards is given
// back. The predecessor's guard, left in place, passed such a message on to its gone heir,
// whose dead letter came back to it: a recursion without end (stack overflow in CI).
func TestHeirThatDoesNotComeBackEndsTheChain(t *testing.T) {
	sys := quietSystem()
	defer sys.Shutdown()
	env := NewEnv(sys, config.Default(), zap.NewNop(), store.NewMemory())
	sub := env.WatchDeadLetters()
	defer sys.EventStream.Unsubscribe(sub)
	spawn := func(comesBack bool) *actor.PID {
		g := newMailboxGuard(env)
		pid, err := sys.Root.SpawnNamed(env.Props("test", func() actor.Actor { return &guarded{g: g, comesBack: comesBack} }, g), "x")
		if err != nil {
			t.Fatal(err)
		}
		return pid
	}
	if err := sys.Root.StopFuture(spawn(true)).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := sys.Root.StopFuture(spawn(false)).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, ok := env.guards.Load("x"); ok {
		t.Error("a guard stays registered under a name no actor will take again")
	}

	d, link, conn := awaitedDelivery(env)
	sys.Root.Send(sys.NewLocalPID("x"), d)
	waitForBytes(t, conn, 1)
	if len(link.Credits) != 0 {
		t.Error("the credit of a message sent to the gone name was not given back")
	}
	expectFailedPuback(t, conn)
}

// awaitedDelivery is the delivery of a QoS 1 publish (packet id 9, from a 5.0 client whose
// socket is conn) to a stored session, as a shard leaves it after routing: it holds its
// publisher's credit, and the PUBACK waits for it.
func awaitedDelivery(env *Env) (*Deliver, *Link, *recordConn) {
	conn := &recordConn{}
	link := newLink(conn, &Stats{}, 16, 4, 0)
	link.Version = codec.V5
	link.credits() <- struct{}{}
	r := newRoute(env, &codec.Publish{Topic: "t", QoS: 1, PacketID: 9}, "pub", link, time.Time{})
	r.refs.Add(1)
	r.holdAck()
	r.release() // the shard's shares, as after routing
	r.ackDone()
	return &Deliver{flow: r, Pub: r.pub, QoS: 1, ack: true}, link, conn
}

// expectFailedPuback checks that the publisher of awaitedDelivery was answered as failed: a
// 5.0 PUBACK 9 with 0x80, never as delivered.
func expectFailedPuback(t *testing.T, conn *recordConn) {
	t.Helper()
	waitForBytes(t, conn, 1)
	p, _, err := codec.Decode(conn.bytes(), codec.V5)
	if ack, ok := p.(*codec.Puback); err != nil || !ok || ack.PacketID != 9 || ack.ReasonCode != codec.UnspecifiedError {
		t.Errorf("answer to the publisher: %+v %v, want PUBACK 9 with 0x80", p, err)
	}
}
