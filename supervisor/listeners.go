package supervisor

import (
	"fmt"
	"sync"

	"github.com/asynkron/protoactor-go/actor"
	"go.uber.org/zap"

	"github.com/actormq/actormq/actors"
	"github.com/actormq/actormq/config"
	"github.com/actormq/actormq/listeners"
)

// listenerSet is the broker's current listener of each name. Start fills it with the
// listeners it bound; a restarted listener actor replaces its entry with the one it rebound.
type listenerSet struct {
	mu      sync.RWMutex
	current map[string]*listeners.Listener
	handed  map[string]bool // bound by Start and already taken over by its actor
}

func newListenerSet() *listenerSet {
	return &listenerSet{current: make(map[string]*listeners.Listener), handed: make(map[string]bool)}
}

func (s *listenerSet) get(name string) *listeners.Listener {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.current[name]
}

func (s *listenerSet) set(name string, l *listeners.Listener) {
	s.mu.Lock()
	s.current[name] = l
	s.mu.Unlock()
}

func (s *listenerSet) all() []*listeners.Listener {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]*listeners.Listener, 0, len(s.current))
	for _, l := range s.current {
		out = append(out, l)
	}
	return out
}

// takeOver hands the listener Start bound to its actor, once; a restarted actor gets nil and
// binds again.
func (s *listenerSet) takeOver(name string) *listeners.Listener {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.handed[name] {
		return nil
	}
	s.handed[name] = true
	return s.current[name]
}

// listenersSupervisor is the parent of one listener actor per configured listener.
type listenersSupervisor struct {
	b        *Broker
	stopping bool
}

func (s *listenersSupervisor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actors.Ready:
		ctx.Respond(true) // after Started: every listener actor exists
	case *actor.Started:
		for _, lc := range s.b.env.Cfg.Listeners {
			s.spawn(ctx, lc)
		}
	case *actor.Stopping, *actor.Restarting:
		s.stopping = true // its listeners go with it; a restarted supervisor starts them again
	case *actor.Terminated:
		// A listener stopped past its restart budget, or from the console: a broker that
		// silently stops accepting on a port is worse than one that retries, so it is started
		// again (it binds its address afresh).
		if s.stopping {
			return
		}
		for _, lc := range s.b.env.Cfg.Listeners {
			if m.Who.Id == ctx.Self().Id+"/"+lc.Name {
				s.b.log.Error("listener stopped; starting it again", zap.String("listener", lc.Name))
				s.spawn(ctx, lc)
			}
		}
	}
}

func (s *listenersSupervisor) spawn(ctx actor.Context, lc config.Listener) {
	props := s.b.env.Props(actors.KindListener, func() actor.Actor {
		return &listenerActor{b: s.b, cfg: lc}
	})
	if _, err := ctx.SpawnNamed(props, lc.Name); err != nil {
		s.b.log.Error("cannot start listener actor", zap.String("listener", lc.Name), zap.Error(err))
	}
}

// listenerActor owns one listener: it closes it when it stops or restarts, and binds the same
// address again when it (re)starts, so a failed or killed listener comes back where it was.
type listenerActor struct {
	b   *Broker
	cfg config.Listener
	l   *listeners.Listener
}

// listenerFailed: the accept loop ended by itself (not by Close).
type listenerFailed struct {
	l   *listeners.Listener
	err error
}

func (a *listenerActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		l := a.b.listeners.takeOver(a.cfg.Name)
		if l == nil {
			cfg := a.cfg
			if old := a.b.listeners.get(cfg.Name); old != nil {
				cfg.Address = old.Addr().String() // the port it had, even if configured as 0
			}
			var err error
			if l, err = a.b.bind(cfg); err != nil {
				// A broker fault from here on: the supervisor retries within its budget.
				panic(fmt.Sprintf("rebinding listener %q: %v", cfg.Name, err))
			}
			a.b.log.Warn("listener restarted", zap.String("listener", cfg.Name), zap.Stringer("address", l.Addr()))
		}
		a.l = l
		a.b.listeners.set(a.cfg.Name, l)
		self, root := ctx.Self(), a.b.sys.Root
		go func() {
			<-l.Done()
			if err := l.Err(); err != nil {
				root.Send(self, &listenerFailed{l: l, err: err})
			}
		}()
	case *listenerFailed:
		if m.l == a.l {
			panic(fmt.Sprintf("listener %q stopped accepting: %v", a.cfg.Name, m.err))
		}
	case *actor.Restarting, *actor.Stopping:
		if a.l != nil {
			_ = a.l.Close()
		}
	}
}
