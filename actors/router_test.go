package actors

import (
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/actormq/actormq/codec"
)

// panickingCtx plays the sessions of a shard that fails while posting: the first delivery is
// taken in (stored, then its shares given up, as a stored session does), the second post
// panics.
type panickingCtx struct {
	benchCtx
}

func (c *panickingCtx) Send(_ *actor.PID, m any) {
	c.sent++
	if c.sent == 2 {
		panic("post failed")
	}
	d := m.(*Deliver)
	if d.ack {
		d.flow.ackDone()
	}
	d.flow.release()
}

// TestShardFailingToPostGivesTheRestBack: the shard answers a publish once its deliveries are
// built and before it posts them. When posting fails half-way, a stored session's copy that
// was never posted fails the route (the publisher must not be told it is stored: it sends it
// again), and every share of the route is given back, so the publisher's credit returns.
func TestShardFailingToPostGivesTheRestBack(t *testing.T) {
	env := benchEnv()
	s := &Shard{env: env, guard: newMailboxGuard(env), ShardState: NewShardState()}
	ctx := &panickingCtx{}
	for i := range 2 {
		ref := &sessionRef{pid: actor.NewPID("local", fmt.Sprint("session/", i)), clientID: fmt.Sprint("sub-", i)}
		ref.stored.Store(true)
		ctx.msg = &shardSubscribe{ref: ref, filter: "t", opts: codec.Subscription{QoS: 1}}
		s.Receive(ctx)
	}
	link := newLink(discardConn{}, &Stats{}, 1<<10, 4, 0)
	link.Version = codec.V5
	link.credits() <- struct{}{} // taken by the reader before it routes
	r := newRoute(env, &codec.Publish{Topic: "t", QoS: 1, PacketID: 1, Payload: []byte("x")}, "pub", link, time.Now())
	ctx.msg = r
	func() {
		defer func() {
			if recover() == nil {
				t.Error("the shard's failure did not go on to its supervisor")
			}
		}()
		s.Receive(ctx)
	}()
	if !r.failed.Load() {
		t.Error("a stored copy was never posted, yet the route did not fail")
	}
	if n := r.refs.Load(); n != 0 {
		t.Errorf("%d shares of the route were kept", n)
	}
	if n := len(link.Credits); n != 0 {
		t.Errorf("the publisher's credit was not returned (%d held)", n)
	}
	if n := len(s.merge) + len(s.posts); n != 0 {
		t.Errorf("the shard kept %d deliveries of the failed publish", n)
	}
}

// TestShardFailingAfterPostingKeepsNoShare: a failure after every delivery is posted (here the
// debug log of the route) goes on to the supervisor as it was, gives back the shard's share,
// and gives back no delivery the sessions hold already.
func TestShardFailingAfterPostingKeepsNoShare(t *testing.T) {
	env := benchEnv()
	env.Log = zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(io.Discard), zap.DebugLevel),
		zap.Hooks(func(e zapcore.Entry) error {
			if e.Message == "routed" {
				panic("log failed")
			}
			return nil
		}))
	s := &Shard{env: env, guard: newMailboxGuard(env), ShardState: NewShardState()}
	ctx := &benchCtx{} // takes each delivery in and gives up its share, as a clean session does
	for i := range 2 {
		ref := &sessionRef{pid: actor.NewPID("local", fmt.Sprint("session/", i)), clientID: fmt.Sprint("sub-", i)}
		ctx.msg = &shardSubscribe{ref: ref, filter: "t", opts: codec.Subscription{QoS: 1}}
		s.Receive(ctx)
	}
	link := newLink(discardConn{}, &Stats{}, 1<<10, 4, 0)
	link.credits() <- struct{}{}
	r := newRoute(env, &codec.Publish{Topic: "t", QoS: 1, PacketID: 1, Payload: []byte("x")}, "pub", link, time.Now())
	ctx.msg = r
	func() {
		defer func() {
			if got := recover(); got != "log failed" {
				t.Errorf("the supervisor would get %v, not the shard's own failure", got)
			}
		}()
		s.Receive(ctx)
	}()
	if ctx.sent != 2 {
		t.Fatalf("%d deliveries posted, want 2", ctx.sent)
	}
	if r.failed.Load() {
		t.Error("deliveries the sessions hold were given back as failed")
	}
	if n := r.refs.Load(); n != 0 {
		t.Errorf("%d shares of the route were kept", n)
	}
	if n := len(link.Credits); n != 0 {
		t.Errorf("the publisher's credit was not returned (%d held)", n)
	}
}

// recordingCtx keeps what is sent, and to whom.
type recordingCtx struct {
	benchCtx
	to   []*actor.PID
	msgs []any
}

func (c *recordingCtx) Send(pid *actor.PID, m any) {
	c.to = append(c.to, pid)
	c.msgs = append(c.msgs, m)
}

// TestSessionEndUnsubscribesOncePerShard: a session that ends takes its subscriptions out of
// the router with one message per shard, however many it had (1,000 wildcard subscriptions
// were 4,000 messages in the shards' mailboxes at once), and each shard is left with none of
// them: wildcard filters from every shard, exact ones from their own, a shared one from its
// group.
func TestSessionEndUnsubscribesOncePerShard(t *testing.T) {
	env := benchEnv()
	shards := make([]*Shard, 4)
	env.Shards = make([]*actor.PID, len(shards))
	byID := make(map[string]*Shard)
	for i := range shards {
		shards[i] = &Shard{env: env, index: i, guard: newMailboxGuard(env), ShardState: NewShardState()}
		env.Shards[i] = actor.NewPID("local", fmt.Sprint("shard-", i))
		byID[env.Shards[i].Id] = shards[i]
	}
	ref := &sessionRef{pid: actor.NewPID("local", "session/c"), clientID: "c"}
	st := &sessionState{clientID: "c", ref: ref, subs: make(map[string]*subscription)}
	subscribe := func(written, filter, group string) {
		st.subs[written] = &subscription{filter: filter, group: group, opts: codec.Subscription{Filter: written, QoS: 1}}
		from, to := env.shardsOf(filter)
		for _, s := range shards[from:to] {
			s.Receive(&benchCtx{msg: &shardSubscribe{ref: ref, filter: filter, group: group, opts: codec.Subscription{QoS: 1}}})
		}
	}
	for i := range 1000 {
		f := fmt.Sprintf("w/%d/+", i)
		subscribe(f, f, "")
	}
	for i := range 100 {
		f := fmt.Sprintf("e/%d", i)
		subscribe(f, f, "")
	}
	subscribe("$share/g/s/+", "s/+", "g")
	held := 0
	for _, s := range shards {
		held += s.subs.Len()
	}
	if want := 1000*len(shards) + 100 + len(shards); held != want {
		t.Fatalf("the shards hold %d subscriptions before the end, want %d", held, want)
	}

	ctx := &recordingCtx{}
	(&Session{env: env, st: st}).reset(ctx)
	if len(ctx.msgs) != len(shards) {
		t.Fatalf("%d messages to the shards, want one per shard (%d)", len(ctx.msgs), len(shards))
	}
	for k, m := range ctx.msgs {
		if _, ok := m.(*shardUnsubscribeAll); !ok {
			t.Fatalf("message %d is a %T, want a *shardUnsubscribeAll", k, m)
		}
		byID[ctx.to[k].Id].Receive(&benchCtx{msg: m})
	}
	for i, s := range shards {
		if n := s.subs.Len(); n != 0 {
			t.Errorf("shard %d holds %d subscriptions of the ended session", i, n)
		}
		if n := len(s.groups); n != 0 {
			t.Errorf("shard %d holds %d share groups of the ended session", i, n)
		}
	}
	if n := len(st.subs); n != 0 {
		t.Errorf("the session kept %d subscriptions", n)
	}
}
