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
