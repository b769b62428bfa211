package supervisor

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/eventstream"

	"github.com/actormq/actormq/actors"
	"github.com/actormq/actormq/codec"
	"github.com/actormq/actormq/config"
	"github.com/actormq/actormq/console"
)

// introspector lists the actors of the tree without messaging them. Every actor gets a probe:
// a mailbox middleware that counts posted and received messages (depth = posted - received),
// registered with its PID and parent when protoactor initialises the actor. Restarts and
// failures come from the EventStream. A probe also runs the two things that must happen on an
// actor's own goroutine: a chaos panic, and a read of a router shard's state. Doing them in
// MessageReceived rather than in a receiver middleware keeps the per-message cost at two
// atomic adds and a type switch: protoactor allocates an envelope per message for actors
// that have receiver middleware or a context decorator.
type introspector struct {
	sys *actor.ActorSystem
	sub *eventstream.Subscription

	mu     sync.RWMutex
	probes map[string]*probe

	restartMu sync.Mutex
	restarts  map[string]uint64 // by kind, dead actors included
}

func newIntrospector(sys *actor.ActorSystem) *introspector {
	in := &introspector{sys: sys, probes: make(map[string]*probe), restarts: make(map[string]uint64)}
	in.sub = sys.EventStream.Subscribe(in.onEvent)
	return in
}

func (in *introspector) close() { in.sys.EventStream.Unsubscribe(in.sub) }

// probe is the console's view of one actor. Everything but ctx is safe to read from any
// goroutine; ctx is used only on the actor's own goroutine (MessageReceived). An idle
// connection has two, so it is kept to the 128-byte size class (started in Unix
// nanoseconds, not a time.Time).
type probe struct {
	in      *introspector
	kind    string
	pid     *actor.PID
	parent  string
	started int64
	ctx     actor.Context
	shard   bool

	posted, received, routed, restarts atomic.Uint64

	mu          sync.Mutex
	lastFailure *console.Failure
}

// chaosPanic makes the receiving actor fail through its supervisor.
type chaosPanic struct{}

// inspect runs fn with the actor on the actor's own goroutine.
type inspect struct{ fn func(actor.Actor) }

func (p *probe) MailboxStarted()   {}
func (p *probe) MailboxEmpty()     {}
func (p *probe) MessagePosted(any) { p.posted.Add(1) }
func (p *probe) MessageReceived(m any) {
	switch q := m.(type) {
	case *chaosPanic:
		// Not counted as received: onEvent counts the failed message, like any failure's.
		panic("chaos: killed from the console")
	case *inspect:
		q.fn(p.ctx.Actor())
	case *actor.Stop, *actor.Terminated:
		// The actor is gone once its registry entry is (finalizeStop removes it first).
		if _, alive := p.in.sys.ProcessRegistry.Get(p.pid); !alive {
			p.in.remove(p)
		}
	default:
		if p.shard && actors.IsRoute(m) {
			p.routed.Add(1)
		}
	}
	p.received.Add(1)
}

// props is Env.Props with a probe: the actor's mailbox gets the probe after its own
// middlewares, and the probe learns its actor's PID and parent when protoactor initialises it.
func (in *introspector) props(kind string, prod actor.Producer, mw ...actor.MailboxMiddleware) *actor.Props {
	pr := &probe{in: in, kind: kind, shard: kind == actors.KindShard}
	return actors.NewProps(prod, append(mw, pr), actor.WithOnInit(pr.init))
}

// init runs once, at spawn, before the mailbox starts: the probe learns its actor and is
// listed.
func (p *probe) init(ctx actor.Context) {
	p.ctx, p.pid, p.started = ctx, ctx.Self(), time.Now().UnixNano()
	if parent := ctx.Parent(); parent != nil {
		p.parent = parent.Id
	}
	p.in.mu.Lock()
	p.in.probes[p.pid.Id] = p
	p.in.mu.Unlock()
}

func (in *introspector) remove(p *probe) {
	in.mu.Lock()
	if in.probes[p.pid.Id] == p {
		delete(in.probes, p.pid.Id)
	}
	in.mu.Unlock()
}

func (in *introspector) get(id string) *probe {
	in.mu.RLock()
	defer in.mu.RUnlock()
	return in.probes[id]
}

func (in *introspector) onEvent(evt any) {
	e, ok := evt.(*actor.SupervisorEvent)
	if !ok || e.Child == nil {
		return
	}
	p := in.get(e.Child.Id)
	if p == nil {
		return
	}
	// The failing message never reached MessageReceived: count it, or the depth stays one high.
	p.received.Add(1)
	if e.Directive == actor.RestartDirective {
		p.restarts.Add(1)
		in.restartMu.Lock()
		in.restarts[p.kind]++
		in.restartMu.Unlock()
	}
	p.mu.Lock()
	p.lastFailure = &console.Failure{Reason: fmt.Sprint(e.Reason), Directive: e.Directive.String(), At: time.Now()}
	p.mu.Unlock()
}

func (in *introspector) restartsByKind() map[string]uint64 {
	in.restartMu.Lock()
	defer in.restartMu.Unlock()
	out := make(map[string]uint64, len(in.restarts))
	for k, v := range in.restarts {
		out[k] = v
	}
	return out
}

// actors lists the live actors, parents before children.
func (in *introspector) actors() []console.ActorInfo {
	in.mu.RLock()
	ps := make([]*probe, 0, len(in.probes))
	for _, p := range in.probes {
		ps = append(ps, p)
	}
	in.mu.RUnlock()

	out := make([]console.ActorInfo, 0, len(ps))
	index := make(map[string]int, len(ps))
	for _, p := range ps {
		if _, alive := in.sys.ProcessRegistry.Get(p.pid); !alive {
			continue // stopping: its probe goes with its last message
		}
		out = append(out, p.info())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	for i := range out {
		index[out[i].ID] = i
	}
	for i := range out {
		if j, ok := index[out[i].Parent]; ok {
			out[j].Children = append(out[j].Children, out[i].ID)
		}
	}
	return out
}

func (p *probe) info() console.ActorInfo {
	// received is read first so that a message arriving in between cannot make depth negative.
	recv := p.received.Load()
	depth := int64(p.posted.Load()) - int64(recv)
	name := p.pid.Id
	if p.parent != "" {
		name = strings.TrimPrefix(name, p.parent+"/")
	}
	a := console.ActorInfo{
		ID: p.pid.Id, Name: name, Kind: p.kind, Parent: p.parent, Children: []string{},
		MailboxDepth: max(depth, 0), MessagesProcessed: recv, Restarts: p.restarts.Load(), StartedAt: time.Unix(0, p.started),
	}
	p.mu.Lock()
	if f := p.lastFailure; f != nil {
		c := *f
		a.LastFailure = &c
	}
	p.mu.Unlock()
	return a
}

// kill stops or crashes an actor.
func (in *introspector) kill(id, mode string) error {
	p := in.get(id)
	if p == nil {
		return fmt.Errorf("%w: no actor %q", console.ErrNotFound, id)
	}
	switch mode {
	case "", "stop":
		in.sys.Root.Stop(p.pid) // a system message: returns at once, even on a full mailbox
	case "panic":
		in.sys.Root.Send(p.pid, &chaosPanic{})
	default:
		return fmt.Errorf("%w: mode must be stop or panic", console.ErrBadRequest)
	}
	return nil
}

// ask runs fn on the actor's goroutine and waits for its result at most until ctx ends. The
// result travels by channel, so a late answer after a timeout touches nothing of the caller's.
func ask[T any](ctx context.Context, sys *actor.ActorSystem, pid *actor.PID, fn func(actor.Actor) T) (T, error) {
	res := make(chan T, 1)
	q := &inspect{fn: func(a actor.Actor) { res <- fn(a) }}
	sys.Root.Send(pid, q)
	select {
	case v := <-res:
		return v, nil
	case <-ctx.Done():
		var zero T
		return zero, fmt.Errorf("%w: actor %s did not answer (busy, failed or stopped)", console.ErrTimeout, pid.Id)
	}
}

// backend is the console's view of a broker.
type backend struct {
	b  *Broker
	in *introspector
}

var _ console.Backend = (*backend)(nil)

func (k *backend) Actors() []console.ActorInfo       { return k.in.actors() }
func (k *backend) Kill(id, mode string) error        { return k.in.kill(id, mode) }
func (k *backend) Clients() []actors.ClientView      { return k.b.env.Dir.Clients() }
func (k *backend) Stats() *actors.Stats              { return k.b.env.Stats }
func (k *backend) Directory() *actors.Directory      { return k.b.env.Dir }
func (k *backend) Totals() actors.Totals             { return k.b.env.Dir.Totals() }
func (k *backend) Config() config.Config             { return k.b.env.Cfg }
func (k *backend) StartedAt() time.Time              { return k.b.started }
func (k *backend) RestartsByKind() map[string]uint64 { return k.in.restartsByKind() }
func (k *backend) Listeners() []console.ListenerInfo {
	var out []console.ListenerInfo
	for _, lc := range k.b.env.Cfg.Listeners {
		if l := k.b.listeners.get(lc.Name); l != nil {
			out = append(out, console.ListenerInfo{Name: lc.Name, Kind: lc.Kind, Address: l.Addr().String(), Protocol: lc.Protocol})
		}
	}
	return out
}

func (k *backend) Client(id string) (actors.ClientView, bool) {
	return k.b.env.Dir.Client(id)
}

func (k *backend) Disconnect(clientID string) error {
	c, ok := k.b.env.Dir.Client(clientID)
	if !ok || c.ConnPID() == nil {
		return fmt.Errorf("%w: no connected client %q", console.ErrNotFound, clientID)
	}
	k.b.sys.Root.Send(c.ConnPID(), &actors.Kick{Code: codec.AdministrativeAction, Reason: "disconnected from the console"})
	return nil
}

func (k *backend) Router(ctx context.Context) []console.ShardInfo {
	out := make([]console.ShardInfo, len(k.b.env.Shards))
	var wg sync.WaitGroup
	for i, pid := range k.b.env.Shards {
		out[i].Index, out[i].Actor = i, pid.Id
		if p := k.in.get(pid.Id); p != nil {
			out[i].MessagesRouted = p.routed.Load()
			out[i].MailboxDepth = p.info().MailboxDepth
		}
		wg.Add(1)
		go func(si *console.ShardInfo) {
			defer wg.Done()
			v, err := ask(ctx, k.b.sys, pid, func(a actor.Actor) actors.ShardView {
				v, _ := actors.InspectShard(a)
				return v
			})
			if err != nil {
				si.Error = err.Error()
				return
			}
			si.ShardView = v
		}(&out[i])
	}
	wg.Wait()
	return out
}

func (k *backend) Retained(ctx context.Context, filter string) ([]actors.RetainedView, error) {
	parts := make([][]actors.RetainedView, len(k.b.env.Shards))
	errs := make([]error, len(k.b.env.Shards))
	var wg sync.WaitGroup
	for i, pid := range k.b.env.Shards {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			parts[i], errs[i] = ask(ctx, k.b.sys, pid, func(a actor.Actor) []actors.RetainedView {
				return actors.ShardRetained(a, filter)
			})
		}(i)
	}
	wg.Wait()
	var all []actors.RetainedView
	for i := range parts {
		if errs[i] != nil {
			return nil, errs[i]
		}
		all = append(all, parts[i]...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].Topic < all[j].Topic })
	return all, nil
}
