package actors

import (
	"fmt"

	"github.com/asynkron/protoactor-go/actor"
	"go.uber.org/zap"

	"github.com/actormq/actormq/codec"
	"github.com/actormq/actormq/config"
)

// Registry is the sessions supervisor: it owns the map from client id to session actor, so
// that two connections with one client id always reach the same session (takeover), and it
// alone ends sessions, so that an attach never races with a session's end.
type Registry struct {
	env      *Env
	sessions map[string]*regEntry
	stopping bool // the broker is shutting down: its sessions ending is no news
}

type regEntry struct {
	pid *actor.PID
	ref *sessionRef
	gen uint64 // attaches routed to this session so far
}

// NewRegistry returns the producer of the registry actor.
func NewRegistry(env *Env) actor.Producer {
	return func() actor.Actor {
		return &Registry{env: env, sessions: make(map[string]*regEntry)}
	}
}

// RestartStrategy supervises the actors that restart on failure (sessions, router shards,
// listeners): they find their state again, since it outlives the actor struct. Past the
// budget the child is stopped and its parent decides (PROTOACTOR.md: protoactor does not
// escalate).
func RestartStrategy(s config.Supervision) actor.SupervisorStrategy {
	return actor.NewOneForOneStrategy(s.MaxRestarts, s.RestartWindow.Std(), func(any) actor.Directive { return actor.RestartDirective })
}

// Receive implements actor.Actor.
func (r *Registry) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *attachRequest:
		r.attach(ctx, m)
	case *sessionIdle:
		e := r.sessions[m.clientID]
		if e != nil && e.pid.Equal(m.pid) && e.gen == m.gen {
			delete(r.sessions, m.clientID)
			r.env.Stats.Sessions.Add(-1)
			ctx.Stop(m.pid)
		}
	case *actor.Stopping:
		r.stopping = true
	case *actor.Terminated:
		// A session stopped past its restart budget (or from the console): forget it, so that
		// the client id gets a fresh session on its next connect.
		for id, e := range r.sessions {
			if e.pid.Equal(m.Who) {
				if !r.stopping {
					r.env.Log.Error("session stopped; its client starts afresh on its next connect", zap.String("client", id))
				}
				delete(r.sessions, id)
				r.env.Stats.Sessions.Add(-1)
				break
			}
		}
	}
}

func (r *Registry) attach(ctx actor.Context, m *attachRequest) {
	e := r.sessions[m.clientID]
	if e == nil {
		if len(r.sessions) >= r.env.Cfg.Limits.MaxSessions {
			ctx.Send(m.conn, &connectRefused{code: codec.QuotaExceeded,
				msg: fmt.Sprintf("the broker holds limits.max_sessions = %d sessions", r.env.Cfg.Limits.MaxSessions)})
			return
		}
		ref := &sessionRef{clientID: m.clientID}
		props := actor.PropsFromProducer(NewSession(r.env, m.clientID, ref))
		pid, err := ctx.SpawnNamed(props, "session/"+m.clientID)
		if err != nil {
			// The name is still held by a session that is stopping; a generated one serves.
			pid = ctx.SpawnPrefix(props, "session/"+m.clientID+"#")
		}
		ref.pid = pid
		e = &regEntry{pid: pid, ref: ref}
		r.sessions[m.clientID] = e
		r.env.Stats.Sessions.Add(1)
	}
	e.gen++
	m.gen = e.gen
	ctx.Send(e.pid, m)
}
