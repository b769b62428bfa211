package actors

import (
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.uber.org/zap"

	"github.com/actormq/actormq/codec"
	"github.com/actormq/actormq/topics"
)

// Shard is a router shard actor: the subscriptions that can match the topics hashed to it
// (its exact filters, and every wildcard filter) and the retained messages of its topics.
// They live in a shardState that the props producer captures, so that a shard restarted by
// its supervisor after a failure finds its trie and retained messages again (PROTOACTOR.md:
// a restart makes a fresh actor struct).
type Shard struct {
	env   *Env
	index int
	*shardState
}

type shardState struct {
	subs     *topics.Tree[*subEntry]
	groups   map[groupKey]*shareGroup
	retained *topics.Index[*retainedMsg]

	// merge is reused for every publish: one delivery per session, however many of its
	// subscriptions match [MQTT-3.3.4-2].
	merge map[*sessionRef]*Deliver
}

type subEntry struct {
	ref   *sessionRef
	opts  codec.Subscription
	subID uint32
	group *shareGroup // set on the one entry that stands for a whole share group
}

type groupKey struct{ filter, group string }

// shareGroup is a shared subscription: each message goes to one member, in turn.
type shareGroup struct {
	members []*subEntry
	next    int
}

type retainedMsg struct {
	pub      *codec.Publish
	received time.Time
}

// NewShard returns the props producer of shard index.
func NewShard(env *Env, index int) actor.Producer {
	st := &shardState{
		subs:     topics.NewTree[*subEntry](),
		groups:   make(map[groupKey]*shareGroup),
		retained: topics.NewIndex[*retainedMsg](),
		merge:    make(map[*sessionRef]*Deliver),
	}
	return func() actor.Actor { return &Shard{env: env, index: index, shardState: st} }
}

// Receive implements actor.Actor.
func (s *Shard) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		clear(s.merge) // a publish that failed half-way left its partial merge behind
	case *route:
		s.route(ctx, m)
	case *shardSubscribe:
		s.subscribe(ctx, m)
	case *shardUnsubscribe:
		s.unsubscribe(m)
	}
}

func (s *Shard) route(ctx actor.Context, m *route) {
	defer func() {
		// The shard's own share of the route, given back also when routing fails half-way, so
		// that a failure never keeps the publisher's credit; the failure then goes on to the
		// supervisor as before.
		m.release()
		if r := recover(); r != nil {
			panic(r)
		}
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
	matched := len(s.merge)
	for ref, d := range s.merge {
		d.Received, d.flow = m.received, m
		m.refs.Add(1)
		ref.pending.Add(1)
		ctx.Send(ref.pid, d)
	}
	clear(s.merge)
	if ce := s.env.Log.Check(zap.DebugLevel, "routed"); ce != nil {
		ce.Write(zap.String("topic", pub.Topic), zap.Uint8("qos", pub.QoS), zap.Bool("retain", pub.Retain),
			zap.String("from", m.from), zap.Int("sessions", matched), zap.Int("shard", s.index))
	}

	if m.link == nil {
		return // a will: no publisher to acknowledge
	}
	if pub.QoS > 0 {
		code := codec.Success
		if matched == 0 && m.link.Version == codec.V5 {
			code = codec.NoMatchingSubscribers
		}
		if pub.QoS == 1 {
			_ = m.link.sendAck(codec.TypePuback, pub.PacketID, code)
			m.link.InboundUnacked.Add(-1)
		} else {
			_ = m.link.sendAck(codec.TypePubrec, pub.PacketID, code)
		}
	}
}

// add merges one matching subscription into the delivery for its session.
func (s *Shard) add(e *subEntry, pub *codec.Publish) {
	qos := min(pub.QoS, e.opts.QoS)
	// 3.1.1 clears the retain flag on live deliveries [MQTT-3.3.1-9]; 5.0 keeps it when the
	// subscription asks for Retain As Published [MQTT-3.3.1-12, -13].
	retain := pub.Retain && e.opts.RetainAsPublished
	d := s.merge[e.ref]
	if d == nil {
		d = &Deliver{Pub: pub, QoS: qos, Retain: retain}
		s.merge[e.ref] = d
	} else {
		d.QoS = max(d.QoS, qos)
		d.Retain = d.Retain || retain
	}
	if e.subID != 0 {
		d.SubIDs = append(d.SubIDs, e.subID) // [MQTT-3.3.4-4]
	}
}

// retain stores, replaces or (empty payload) deletes the retained message of a topic
// [MQTT-3.3.1-5, -10, -11].
func (s *Shard) retain(m *route) {
	topic := m.pub.Topic
	if len(m.pub.Payload) == 0 {
		if s.retained.Delete(topic) {
			s.env.Stats.Retained.Add(-1)
		}
		return
	}
	if _, exists := s.retained.Get(topic); !exists &&
		s.env.Stats.Retained.Load() >= int64(s.env.Cfg.Retained.MaxMessages) {
		s.env.Log.Debug("retained message not stored: retained.max_messages reached",
			zap.String("topic", topic))
		return
	}
	if !s.retained.Set(topic, &retainedMsg{pub: m.pub, received: m.received}) {
		s.env.Stats.Retained.Add(1)
	}
}

func (s *Shard) subscribe(ctx actor.Context, m *shardSubscribe) {
	if ce := s.env.Log.Check(zap.DebugLevel, "subscription registered"); ce != nil {
		ce.Write(zap.String("client", m.ref.clientID), zap.String("filter", m.filter), zap.String("group", m.group),
			zap.Uint8("qos", m.opts.QoS), zap.Int("shard", s.index))
	}
	entry := &subEntry{ref: m.ref, opts: m.opts, subID: m.subID}
	if m.group != "" {
		s.joinGroup(m, entry)
		return // shared subscriptions get no retained messages [MQTT-3.8.4-?; 4.8.2]
	}
	s.subs.Add(m.filter, m.ref.clientID, entry)
	if !m.sendRetained {
		return
	}
	var batch []Deliver
	now := time.Now()
	s.retained.Match(m.filter, func(_ string, r *retainedMsg) bool {
		if expired(r.pub, r.received, now) {
			return true
		}
		batch = append(batch, Deliver{Pub: r.pub, QoS: min(r.pub.QoS, m.opts.QoS), Retain: true,
			SubIDs: subIDs(m.subID), Received: r.received})
		return true
	})
	if len(batch) > 0 {
		m.ref.pending.Add(1)
		ctx.Send(m.ref.pid, &deliverBatch{msgs: batch})
	}
}

func (s *Shard) joinGroup(m *shardSubscribe, entry *subEntry) {
	key := groupKey{m.filter, m.group}
	g := s.groups[key]
	if g == nil {
		g = &shareGroup{}
		s.groups[key] = g
		s.subs.Add(m.filter, "\x00"+m.group, &subEntry{group: g})
	}
	for i, old := range g.members {
		if old.ref.clientID == m.ref.clientID {
			g.members[i] = entry
			return
		}
	}
	g.members = append(g.members, entry)
}

func (s *Shard) unsubscribe(m *shardUnsubscribe) {
	if m.group == "" {
		s.subs.Remove(m.filter, m.clientID)
		return
	}
	key := groupKey{m.filter, m.group}
	g := s.groups[key]
	if g == nil {
		return
	}
	for i, e := range g.members {
		if e.ref.clientID == m.clientID {
			g.members = append(g.members[:i], g.members[i+1:]...)
			break
		}
	}
	if len(g.members) == 0 {
		delete(s.groups, key)
		s.subs.Remove(m.filter, "\x00"+m.group)
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
