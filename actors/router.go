package actors

import (
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.uber.org/zap"

	"github.com/actormq/actormq/codec"
	"github.com/actormq/actormq/store"
	"github.com/actormq/actormq/topics"
)

// Shard is a router shard actor: the subscriptions that can match the topics hashed to it
// (its exact filters, and every wildcard filter) and the retained messages of its topics.
//
// Its state lives in a ShardState that outlives the actor: a shard restarted after a failure,
// or started again after it stopped, keeps its trie (rebuilding it from the sessions would
// lose what is routed meanwhile) and reloads its retained messages from the store, where every
// change to them is written before the publisher is answered.
type Shard struct {
	env   *Env
	index int
	guard *mailboxGuard
	*ShardState
}

// ShardState is what a shard keeps across its restarts.
type ShardState struct {
	subs     *topics.Tree[*subEntry]
	groups   map[shardFilter]*shareGroup // by filter and share name
	retained *topics.Index[*retainedMsg]

	// merge and posts are reused for every publish: one delivery per session, however many
	// of its subscriptions match [MQTT-3.3.4-2]. merge finds a session's delivery in posts,
	// which keeps them in the order they were matched, to be walked without the map.
	merge map[*sessionRef]int
	posts []posting
	batch store.Batch // reused for each retained change

	refused       int       // retained messages kept out by the limit since refusedLogged
	refusedLogged time.Time // when that was last logged
}

// posting is one session's delivery of the publish being routed.
type posting struct {
	ref *sessionRef
	d   *Deliver
}

type subEntry struct {
	ref   *sessionRef
	opts  codec.Subscription
	subID uint32
	group *shareGroup // set on the one entry that stands for a whole share group
}

// shareGroup is a shared subscription: each message goes to one member, in turn.
type shareGroup struct {
	members []*subEntry
	next    int
}

type retainedMsg struct {
	pub      *codec.Publish
	received time.Time
}

// NewShardState returns the empty state of a shard.
func NewShardState() *ShardState {
	return &ShardState{
		subs:     topics.NewTree[*subEntry](),
		groups:   make(map[shardFilter]*shareGroup),
		retained: topics.NewIndex[*retainedMsg](),
		merge:    make(map[*sessionRef]int),
	}
}

// ShardProps returns the props of shard index with state st: a fresh actor (and guard) for
// each spawn, the same state for all of them.
func (e *Env) ShardProps(index int, st *ShardState) *actor.Props {
	g := newMailboxGuard(e)
	return e.Props(KindShard, func() actor.Actor {
		return &Shard{env: e, index: index, guard: g, ShardState: st}
	}, g)
}

// Receive implements actor.Actor.
func (s *Shard) Receive(ctx actor.Context) { s.handle(ctx, ctx.Message()) }

func (s *Shard) handle(ctx actor.Context, msg any) {
	switch m := msg.(type) {
	case *actor.Started:
		left := s.guard.started(ctx.Self())
		s.clearMerge() // a publish that failed half-way left its partial merge behind
		s.batch.Reset()
		s.loadRetained()
		// Started again after it stopped: what the shard before it left comes first.
		for _, m := range left {
			s.handle(ctx, m)
		}
	case *route:
		s.route(ctx, m)
	case *shardSubscribe:
		var retained []Deliver
		for i := range m.subs {
			retained = s.subscribe(m.ref, &m.subs[i], retained)
		}
		if m.req != 0 {
			ctx.Send(m.ref.pid, &subscribed{req: m.req, msgs: retained})
		}
	case *shardUnsubscribe:
		if m.req != 0 {
			defer ctx.Send(m.reply, &subscribed{req: m.req}) // even if a removal fails
		}
		for _, f := range m.subs {
			s.unsubscribe(m.clientID, f)
		}
	case *actor.Stopping:
		s.guard.stopping(!s.env.Stopping.Load())
	case *actor.Stopped:
		s.guard.stop(!s.env.Stopping.Load()) // its supervisor starts it again unless the broker stops
	}
}

// loadRetained rebuilds the retained index from the store, at the shard's first start and
// after a failure, so that what it holds is what was acknowledged.
func (s *Shard) loadRetained() {
	idx := topics.NewIndex[*retainedMsg]()
	err := s.env.Store.Load(store.Visitor{Retained: func(topic string, r *store.MessageRecord) error {
		if s.env.shardOf(topic) == s.index {
			idx.Set(topic, &retainedMsg{pub: r.Pub, received: r.Received})
		}
		return nil
	}})
	if err != nil {
		// The messages in memory are the best there is; the store's error is the news.
		s.env.Log.Error("router shard: cannot load its retained messages; keeping those in memory",
			zap.Int("shard", s.index), zap.Error(err))
		return
	}
	s.env.Stats.Retained.Add(int64(idx.Len() - s.retained.Len()))
	s.retained = idx
}

func (s *Shard) route(ctx actor.Context, m *route) {
	answered, posted := false, 0
	defer func() {
		// The shard's shares of the route are given back also when routing fails half-way,
		// so that a failure never keeps the publisher's credit, and the publisher is told
		// unless it was answered already; the failure then goes on to the supervisor.
		if r := recover(); r != nil {
			for _, p := range s.posts[posted:] {
				if p.d.flow != nil { // counted, never posted
					s.env.giveBack(p.d)
				}
			}
			s.clearMerge()
			if answered {
				m.release()
			} else {
				m.abandon()
			}
			panic(r)
		}
		m.release()
	}()
	pub := m.pub
	if pub.Retain {
		s.retain(m)
	}
	s.subs.Match(pub.Topic, func(_, _ string, e *subEntry) {
		if e.group != nil {
			e = e.group.pick()
		} else if e.opts.NoLocal && e.ref.clientID == m.from {
			return // [MQTT-3.8.3-3]
		}
		s.add(e, pub)
	})
	for _, p := range s.posts {
		m.refs.Add(1)
		d := p.d
		d.Received, d.flow = m.received, m
		if d.QoS > 0 && m.link != nil && p.ref.stored.Load() {
			// The session keeps it in the store: the publisher is answered once it is there.
			m.holdAck()
			d.ack = true
		}
	}
	matched := len(s.posts)
	m.matched = matched > 0
	// The shard's part is done: every delivery is built and holds what it must. The
	// publisher is answered now (unless a stored session or the store still holds the
	// answer), before the deliveries are posted: Go runs the goroutine started last first,
	// so the sessions' goroutines, started by the posts, run before the writer that the
	// answer starts, and the subscribers' copies go out before the publisher's PUBACK
	// (pairs at 5,000/s: median latency 0.27 → 0.19 ms, BENCHMARKS.md).
	answered = true
	m.ackDone()
	for ; posted < len(s.posts); posted++ {
		p := s.posts[posted]
		ctx.Send(p.ref.pid, p.d)
	}
	if ce := s.env.Log.Check(zap.DebugLevel, "routed"); ce != nil {
		ce.Write(zap.String("topic", pub.Topic), zap.Uint8("qos", pub.QoS), zap.Bool("retain", pub.Retain),
			zap.String("from", m.from), zap.Int("sessions", matched), zap.Int("shard", s.index))
	}
	s.clearMerge() // last: a failure before it finds posts as the route left them
}

// clearMerge empties merge and posts for the next publish, keeping posts' array.
func (s *ShardState) clearMerge() {
	clear(s.merge)
	clear(s.posts) // the deliveries are the sessions' now
	s.posts = s.posts[:0]
}

// add merges one matching subscription into the delivery for its session.
func (s *Shard) add(e *subEntry, pub *codec.Publish) {
	qos := min(pub.QoS, e.opts.QoS)
	// 3.1.1 clears the retain flag on live deliveries [MQTT-3.3.1-9]; 5.0 keeps it when the
	// subscription asks for Retain As Published [MQTT-3.3.1-12, -13].
	retain := pub.Retain && e.opts.RetainAsPublished
	var d *Deliver
	if i, ok := s.merge[e.ref]; ok {
		d = s.posts[i].d
		d.QoS = max(d.QoS, qos)
		d.Retain = d.Retain || retain
	} else {
		d = newDeliver()
		d.Pub, d.QoS, d.Retain = pub, qos, retain
		s.merge[e.ref] = len(s.posts)
		s.posts = append(s.posts, posting{e.ref, d})
	}
	if e.subID != 0 {
		d.SubIDs = append(d.SubIDs, e.subID) // [MQTT-3.3.4-4]
	}
}

// retain stores, replaces or (empty payload) deletes the retained message of a topic
// [MQTT-3.3.1-5, -10, -11], in the index and in the store.
func (s *Shard) retain(m *route) {
	topic := m.pub.Topic
	if len(m.pub.Payload) == 0 {
		if s.retained.Delete(topic) {
			s.env.Stats.Retained.Add(-1)
			s.batch.DeleteRetained(topic)
			s.commit(m)
		}
		return
	}
	if _, exists := s.retained.Get(topic); !exists {
		// A place is taken before the message is stored: shards share the limit, so a check
		// then an add would let them pass it together.
		if s.env.Stats.Retained.Add(1) > int64(s.env.Cfg.Retained.MaxMessages) {
			s.env.Stats.Retained.Add(-1)
			s.refusedRetained(topic)
			return
		}
	}
	s.retained.Set(topic, &retainedMsg{pub: m.pub, received: m.received})
	s.batch.PutRetained(topic, &store.MessageRecord{Pub: m.pub, QoS: m.pub.QoS, Retain: true, Received: m.received})
	s.commit(m)
}

// commit writes the retained change; the publisher's answer waits for it.
func (s *Shard) commit(m *route) {
	if isSys(m.pub.Topic) {
		s.batch.Reset() // the broker's own $SYS messages are published again after a restart
		return
	}
	var done func(error)
	if m.link != nil && m.pub.QoS > 0 {
		m.holdAck()
		done = func(err error) {
			if err != nil {
				m.fail()
			}
			if m.once != nil {
				// Its last share commits the publish's batch, which must not be queued from
				// the store's own goroutine (it would wait for itself when the queue is full).
				go m.ackDone()
				return
			}
			m.ackDone()
		}
	}
	s.env.Store.Commit(&s.batch, done)
	s.batch.Reset()
}

// refusedRetained logs a retained message the limit kept out: at WARN, at most every ten
// seconds per shard with the count since, so that a flood does not flood the log too.
func (s *Shard) refusedRetained(topic string) {
	s.refused++
	if now := time.Now(); now.Sub(s.refusedLogged) >= 10*time.Second {
		s.env.Log.Warn("retained messages not stored: retained.max_messages reached",
			zap.String("topic", topic), zap.Int("refused", s.refused), zap.Int("max", s.env.Cfg.Retained.MaxMessages), zap.Int("shard", s.index))
		s.refused, s.refusedLogged = 0, now
	}
}

func isSys(topic string) bool { return topic == "$SYS" || strings.HasPrefix(topic, "$SYS/") }

// subscribe registers one subscription of ref and appends the retained messages it is to get
// to retained.
func (s *Shard) subscribe(ref *sessionRef, m *shardSub, retained []Deliver) []Deliver {
	if ce := s.env.Log.Check(zap.DebugLevel, "subscription registered"); ce != nil {
		ce.Write(zap.String("client", ref.clientID), zap.String("filter", m.filter), zap.String("group", m.group),
			zap.Uint8("qos", m.opts.QoS), zap.Int("shard", s.index))
	}
	entry := &subEntry{ref: ref, opts: m.opts, subID: m.subID}
	if m.group != "" {
		s.joinGroup(m, entry) // shared subscriptions get no retained messages [MQTT-4.8.2-?]
		return retained
	}
	s.subs.Add(m.filter, ref.clientID, entry)
	if m.sendRetained {
		now := time.Now()
		s.retained.Match(m.filter, func(_ string, r *retainedMsg) bool {
			if !expired(r.pub, r.received, now) {
				retained = append(retained, Deliver{Pub: r.pub, QoS: min(r.pub.QoS, m.opts.QoS), Retain: true,
					SubIDs: subIDs(m.subID), Received: r.received})
			}
			return true
		})
	}
	return retained
}

func (s *Shard) joinGroup(m *shardSub, entry *subEntry) {
	g := s.groups[m.shardFilter]
	if g == nil {
		g = &shareGroup{}
		s.groups[m.shardFilter] = g
		s.subs.Add(m.filter, "\x00"+m.group, &subEntry{group: g})
	}
	for i, old := range g.members {
		if old.ref.clientID == entry.ref.clientID {
			g.members[i] = entry
			return
		}
	}
	g.members = append(g.members, entry)
}

func (s *Shard) unsubscribe(clientID string, f shardFilter) {
	if f.group == "" {
		s.subs.Remove(f.filter, clientID)
		return
	}
	g := s.groups[f]
	if g == nil {
		return
	}
	for i, e := range g.members {
		if e.ref.clientID == clientID {
			g.members = append(g.members[:i], g.members[i+1:]...)
			break
		}
	}
	if len(g.members) == 0 {
		delete(s.groups, f)
		s.subs.Remove(f.filter, "\x00"+f.group)
	}
}

func (g *shareGroup) pick() *subEntry {
	if g.next >= len(g.members) {
		g.next = 0
	}
	e := g.members[g.next]
	g.next++
	return e
}

func subIDs(id uint32) []uint32 {
	if id == 0 {
		return nil
	}
	return []uint32{id}
}

// expired reports whether a message's expiry interval has passed since it was received
// [MQTT-3.3.2-5].
func expired(p *codec.Publish, received, now time.Time) bool {
	e, ok := p.Properties.MessageExpiryInterval()
	return ok && now.Sub(received) >= time.Duration(e)*time.Second
}
