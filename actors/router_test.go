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
		ctx.msg = &shardSubscribe{ref: ref, subs: []shardSub{{shardFilter: shardFilter{filter: "t"}, opts: codec.Subscription{QoS: 1}}}}
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
		ctx.msg = &shardSubscribe{ref: ref, subs: []shardSub{{shardFilter: shardFilter{filter: "t"}, opts: codec.Subscription{QoS: 1}}}}
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
	self *actor.PID
	to   []*actor.PID
	msgs []any
}

func (c *recordingCtx) Self() *actor.PID { return c.self }

func (c *recordingCtx) Send(pid *actor.PID, m any) {
	c.to = append(c.to, pid)
	c.msgs = append(c.msgs, m)
}

// subscribedSession is a session that subscribed to 1,000 wildcard filters, 100 exact ones
// and a shared one in one SUBSCRIBE, with four shards run by hand, which hold three retained
// messages those filters match.
type subscribedSession struct {
	env    *Env
	shards []*Shard
	byID   map[string]*Shard
	s      *Session
}

func newSubscribedSession(t *testing.T) *subscribedSession {
	t.Helper()
	env := benchEnv()
	env.Cfg.Limits.MaxSubscriptionsPerClient = 2000
	x := &subscribedSession{env: env, shards: make([]*Shard, 4), byID: make(map[string]*Shard)}
	env.Shards = make([]*actor.PID, len(x.shards))
	for i := range x.shards {
		x.shards[i] = &Shard{env: env, index: i, guard: newMailboxGuard(env), ShardState: NewShardState()}
		env.Shards[i] = actor.NewPID("local", fmt.Sprint("shard-", i))
		x.byID[env.Shards[i].Id] = x.shards[i]
	}
	for _, topic := range []string{"w/1/a", "w/2/b", "e/5"} {
		x.shards[env.shardOf(topic)].retained.Set(topic, &retainedMsg{pub: &codec.Publish{Topic: topic, QoS: 1, Retain: true}, received: time.Now()})
	}
	ref := &sessionRef{pid: actor.NewPID("local", "session/c"), clientID: "c"}
	link := newLink(discardConn{}, &Stats{}, 1<<10, 4, 0)
	link.Version = codec.V5
	x.s = &Session{env: env, st: &sessionState{clientID: "c", ref: ref, link: link}}
	p := &codec.Subscribe{PacketID: 1}
	for i := range 1000 {
		p.Subscriptions = append(p.Subscriptions, codec.Subscription{Filter: fmt.Sprintf("w/%d/+", i), QoS: 1})
	}
	for i := range 100 {
		p.Subscriptions = append(p.Subscriptions, codec.Subscription{Filter: fmt.Sprintf("e/%d", i), QoS: 1})
	}
	p.Subscriptions = append(p.Subscriptions, codec.Subscription{Filter: "$share/g/s/+", QoS: 1})
	sent := &recordingCtx{self: ref.pid}
	x.s.subscribe(sent, p)
	back := x.deliver(t, sent)
	if n, want := x.held(), 1000*len(x.shards)+100+len(x.shards); n != want {
		t.Fatalf("the shards hold %d subscriptions, want %d", n, want)
	}
	x.answered(t, back)
	retained := 0
	for _, m := range back.msgs {
		retained += len(m.(*subscribed).msgs)
	}
	if retained != 3 {
		t.Errorf("the answers carry %d retained messages, want the 3 the filters match", retained)
	}
	x.s.st.answers = nil // the SUBACK's: answered
	return x
}

// held is the subscriptions the shards hold, share groups counted once per shard.
func (x *subscribedSession) held() int {
	n := 0
	for _, s := range x.shards {
		n += s.subs.Len()
	}
	return n
}

// deliver hands what the session sent to the shards, one message per shard expected, and
// returns what the shards sent back.
func (x *subscribedSession) deliver(t *testing.T, sent *recordingCtx) *recordingCtx {
	t.Helper()
	if len(sent.msgs) != len(x.shards) {
		t.Fatalf("%d messages to the shards, want one per shard (%d)", len(sent.msgs), len(x.shards))
	}
	back := &recordingCtx{}
	for k, m := range sent.msgs {
		back.msg = m
		x.byID[sent.to[k].Id].Receive(back)
	}
	return back
}

// answered checks that each shard answered the session's first answer once, and that the
// answer waits for all four.
func (x *subscribedSession) answered(t *testing.T, back *recordingCtx) {
	t.Helper()
	if len(back.msgs) != len(x.shards) {
		t.Fatalf("the shards answered %d times, want once each (%d)", len(back.msgs), len(x.shards))
	}
	a := x.s.st.answers[0]
	for k, m := range back.msgs {
		if r, ok := m.(*subscribed); !ok || r.req != a.req || !back.to[k].Equal(x.s.st.ref.pid) {
			t.Fatalf("answer %d is %T %+v to %v, want subscribed{req: %d} to the session", k, m, m, back.to[k], a.req)
		}
	}
	if a.waiting != len(x.shards) {
		t.Errorf("the answer waits for %d shards, want %d", a.waiting, len(x.shards))
	}
}

// dropped checks that the shards hold nothing of the session any more.
func (x *subscribedSession) dropped(t *testing.T) {
	t.Helper()
	if n := x.held(); n != 0 {
		t.Errorf("the shards hold %d subscriptions of the session after it dropped them all", n)
	}
	for i, s := range x.shards {
		if n := len(s.groups); n != 0 {
			t.Errorf("shard %d holds %d share groups of the session", i, n)
		}
	}
}

// TestSubscribeOncePerShard: a SUBSCRIBE of 1,101 filters reaches each shard as one message
// (not one per filter and shard: 4,104), each shard answers it once with the retained messages
// of all its filters, and each holds what it should: every wildcard filter, its own exact ones,
// the share group.
func TestSubscribeOncePerShard(t *testing.T) {
	newSubscribedSession(t) // checks as it builds
}

// TestSessionEndUnsubscribesOncePerShard: a session that ends takes its subscriptions out of
// the router with one message per shard, however many it had (1,000 wildcard subscriptions
// were 4,000 messages in the shards' mailboxes at once), and each shard is left with none of
// them: wildcard filters from every shard, exact ones from their own, a shared one from its
// group. Nobody waits for an answer.
func TestSessionEndUnsubscribesOncePerShard(t *testing.T) {
	x := newSubscribedSession(t)
	sent := &recordingCtx{}
	x.s.reset(sent)
	if back := x.deliver(t, sent); len(back.msgs) != 0 {
		t.Errorf("the shards answered %d times; nobody waits", len(back.msgs))
	}
	x.dropped(t)
	if n := len(x.s.st.subs); n != 0 {
		t.Errorf("the session kept %d subscriptions", n)
	}
}

// TestUnsubscribeAnsweredOncePerShard: an UNSUBSCRIBE of every filter reaches each shard as
// one message, and each shard answers it once; the UNSUBACK waits for the four answers.
func TestUnsubscribeAnsweredOncePerShard(t *testing.T) {
	x := newSubscribedSession(t)
	p := &codec.Unsubscribe{PacketID: 7}
	for f := range x.s.st.subs {
		p.Filters = append(p.Filters, f)
	}
	sent := &recordingCtx{self: x.s.st.ref.pid}
	x.s.unsubscribe(sent, p)
	x.answered(t, x.deliver(t, sent))
	x.dropped(t)
}
