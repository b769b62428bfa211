package actors

import (
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/actormq/actormq/codec"
)

// Registry is the sessions supervisor: it owns the map from client id to session actor, so
// that two connections with one client id always reach the same session (takeover), and it
// alone ends sessions, so that an attach never races with a session's end.
type Registry struct {
	env      *Env
	sessions map[string]*regEntry
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

// SessionStrategy supervises sessions: a failing session restarts and finds its state again
// (sessionState outlives the actor struct).
func SessionStrategy() actor.SupervisorStrategy {
	return actor.NewOneForOneStrategy(10, 10*time.Second, func(any) actor.Directive { return actor.RestartDirective })
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
	case *actor.Terminated:
		// A session stopped by its supervisor past its restart budget: forget it, so that the
		// client id gets a fresh session on its next connect.
		for id, e := range r.sessions {
			if e.pid.Equal(m.Who) {
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
