package actors

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.uber.org/zap"

	"github.com/actormq/actormq/codec"
	"github.com/actormq/actormq/config"
	"github.com/actormq/actormq/store"
	"github.com/actormq/actormq/topics"
)

// Registry is the sessions supervisor: it owns the map from client id to session actor, so
// that two connections with one client id always reach the same session (takeover), and it
// alone ends sessions, so that an attach never races with a session's end.
//
// The store is where it starts from: when it starts (with the broker, or again after a
// failure, which stops all its sessions) it starts every stored session from its records; a
// stored session that stops without the registry ending it (the console, a failure past its
// restart budget) is started again from the store, under the same name, so that shards
// holding its subscriptions reach it again.
type Registry struct {
	env      *Env
	guard    *mailboxGuard
	sessions map[string]*regEntry
	stopping bool           // the broker is shutting down, or the registry restarting: no healing
	seq      uint64         // for the names of sessions whose id's name is still taken
	ending   map[string]int // sessions stopped by the registry, by name, whose Terminated is due

	restoring *sync.WaitGroup // stored sessions started by restore that have not all registered yet
	readyTo   []*actor.PID    // who asked Ready meanwhile
}

type regEntry struct {
	pid *actor.PID
	ref *sessionRef
	gen uint64 // attaches routed to this session so far

	heals     int       // times started again from the store since healSince
	healSince time.Time // start of the current restart window
}

// Ready asks a top-level actor to answer once it has started: the registry once the stored
// sessions have registered their subscriptions, the router once its shards exist, the
// listeners once each has its actor.
type Ready struct{}

// RegistryProps returns the props of the registry actor: a fresh actor and mailbox guard for
// each start, so that what reaches a registry that stopped (attaches among it) is handed to
// the one the watchdog starts next (leftover.go).
func RegistryProps(env *Env) *actor.Props {
	g := newMailboxGuard(env)
	return env.Props(KindRegistry, func() actor.Actor {
		return &Registry{env: env, guard: g, sessions: make(map[string]*regEntry), ending: make(map[string]int)}
	}, g)
}

// RestartStrategy supervises the actors that restart on failure (sessions, router shards,
// listeners): they find their state again, since it outlives the actor struct. Past the
// budget the child is stopped and its parent decides (PROTOACTOR.md: protoactor does not
// escalate).
func RestartStrategy(s config.Supervision) actor.SupervisorStrategy {
	return actor.NewOneForOneStrategy(s.MaxRestarts, s.RestartWindow.Std(), func(any) actor.Directive { return actor.RestartDirective })
}

// Receive implements actor.Actor.
func (r *Registry) Receive(ctx actor.Context) { r.handle(ctx, ctx.Message(), ctx.Sender()) }

func (r *Registry) handle(ctx actor.Context, msg any, sender *actor.PID) {
	switch m := msg.(type) {
	case *actor.Started:
		left := r.guard.started(ctx.Self())
		r.restore(ctx)
		// Started again after it stopped: what the registry before it left comes next.
		for _, l := range left {
			_, msg, sender := actor.UnwrapEnvelope(l)
			r.handle(ctx, msg, sender)
		}
	case *Ready:
		if r.restoring != nil {
			r.readyTo = append(r.readyTo, sender)
			return
		}
		ctx.Send(sender, true)
	case *restored:
		if m.of != r.restoring {
			return // the restore of an earlier start, whose sessions have been stopped
		}
		for _, pid := range m.pids {
			ctx.Send(pid, &timersDue{})
		}
		r.restoring = nil
		for _, to := range r.readyTo {
			ctx.Send(to, true)
		}
		r.readyTo = nil
	case *attachRequest:
		if r.stopping {
			// Its sessions are being stopped; the one that comes next has the stored ones.
			ctx.Send(m.conn, &connectRefused{code: codec.ServerUnavailable, msg: "the session registry is restarting; connect again"})
			return
		}
		r.attach(ctx, m)
	case *sessionIdle:
		e := r.sessions[m.clientID]
		if e != nil && e.pid.Equal(m.pid) && e.gen == m.gen {
			delete(r.sessions, m.clientID)
			r.env.Stats.Sessions.Add(-1)
			r.ending[m.pid.Id]++
			ctx.Stop(m.pid)
		}
	case *actor.Restarting, *actor.Stopping:
		// protoactor stops every session with the registry. One that restarts, or is started
		// again by the broker's watchdog, starts the stored ones again from the store.
		r.stopping = true
		r.env.Stats.Sessions.Add(-int64(len(r.sessions)))
		r.sessions = nil
		if _, ok := m.(*actor.Stopping); ok {
			r.guard.stopping(!r.env.Stopping.Load())
		}
	case *actor.Stopped:
		r.guard.stop(!r.env.Stopping.Load()) // the watchdog starts it again unless the broker stops
	case *actor.Terminated:
		r.terminated(ctx, m.Who)
	}
}

// restore starts every stored session. The broker opens its listeners once they have all
// registered their subscriptions (Ready).
func (r *Registry) restore(ctx actor.Context) {
	stored, orphans, err := loadSessions(r.env.Store.Load)
	if err != nil {
		r.env.Log.Error("cannot load the stored sessions; they are not restored", zap.Error(err))
		return
	}
	if len(orphans) > 0 {
		var b store.Batch
		for _, id := range orphans {
			b.DeleteSession(id)
		}
		r.env.Store.Commit(&b, nil)
	}
	if len(stored) == 0 {
		return
	}
	// One count per restore: a registry started again while the last restore's wait is still
	// open must not add to it (a WaitGroup reused before its Wait returned; found by -race).
	restoring := new(sync.WaitGroup)
	restoring.Add(len(stored))
	r.restoring = restoring
	pids := make([]*actor.PID, len(stored))
	for i, from := range stored {
		from.restoring = restoring
		pids[i] = r.spawn(ctx, from.rec.ClientID, from, false).pid
	}
	self, root := ctx.Self(), r.env.System.Root
	go func() {
		restoring.Wait()
		root.Send(self, &restored{pids: pids, of: restoring})
	}()
	r.env.Log.Info("restored stored sessions", zap.Int("sessions", len(stored)))
}

// loadSessions reads stored sessions through load (Store.Load for all, LoadClient for one):
// each session record with its messages and inbound ids. Orphans are client ids with records
// but no session record (a damaged store, or a crash of an older format); they are to be
// deleted.
func loadSessions(load func(store.Visitor) error) (sessions []*storedSession, orphans []string, err error) {
	var cur *storedSession
	owner := func(id string) *storedSession { // records come grouped by client id, session first
		if cur != nil && cur.rec.ClientID == id {
			return cur
		}
		if len(orphans) == 0 || orphans[len(orphans)-1] != id {
			orphans = append(orphans, id)
		}
		return nil
	}
	err = load(store.Visitor{
		Session: func(rec *store.SessionRecord) error {
			cur = &storedSession{rec: rec}
			sessions = append(sessions, cur)
			return nil
		},
		Message: func(id string, seq uint64, rec *store.MessageRecord) error {
			if s := owner(id); s != nil {
				s.msgs = append(s.msgs, storedMessage{seq, rec})
			}
			return nil
		},
		Inbound: func(id string, packetID uint16) error {
			if s := owner(id); s != nil {
				s.inbound = append(s.inbound, packetID)
			}
			return nil
		},
	})
	return sessions, orphans, err
}

// spawn starts the session actor of clientID: new, from stored records, or (reload) from the
// store itself.
func (r *Registry) spawn(ctx actor.Context, clientID string, from *storedSession, reload bool) *regEntry {
	e := r.sessions[clientID]
	if e == nil {
		e = &regEntry{ref: &sessionRef{clientID: clientID}}
		r.sessions[clientID] = e
		r.env.Stats.Sessions.Add(1)
	}
	if e.ref.pid != nil {
		// Started again: it keeps its ref, shared with shards and connections (not to be
		// written under them), so it takes the name the ref addresses, which may be
		// session/<id>#<n>. The stopped one has given that name up: protoactor removes it
		// before the parent learns of the stop.
		name := strings.TrimPrefix(e.ref.pid.Id, ctx.Self().Id+"/")
		pid, err := ctx.SpawnNamed(r.env.sessionProps(clientID, e.ref, from, reload), name)
		if err != nil {
			panic(fmt.Sprintf("session %s: starting it again under its name: %v", clientID, err)) // a registry fault: restarted, it restores
		}
		e.pid = pid
		return e
	}
	name := "session/" + clientID
	for {
		// A new session's ref gets its PID before the actor can run and hand the ref to the
		// shards. (Props once per attempt: they carry the new actor's mailbox guard.)
		e.ref.pid = r.env.System.NewLocalPID(ctx.Self().Id + "/" + name)
		pid, err := ctx.SpawnNamed(r.env.sessionProps(clientID, e.ref, from, reload), name)
		if err == nil {
			e.pid = pid
			return e
		}
		// The name is still held by a session of that id that is stopping: another serves.
		r.seq++
		name = fmt.Sprintf("session/%s#%d", clientID, r.seq)
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
		e = r.spawn(ctx, m.clientID, nil, false)
	}
	e.gen++
	m.gen = e.gen
	ctx.Send(e.pid, m)
}

// terminated: a session stopped. One the registry ended is gone already. A stored one was
// stopped from outside (the console, a failure past its restart budget): it is started again
// from the store, at most supervision.max_restarts times per restart_window, after which it
// is given up (an ERROR line, and its records deleted) rather than failing forever. One with
// nothing stored is forgotten: its client starts afresh on its next connect.
func (r *Registry) terminated(ctx actor.Context, who *actor.PID) {
	if n := r.ending[who.Id]; n > 0 {
		// One the registry ended. Its name may already serve a new session of the same id
		// (PIDs are names): this Terminated is not that one's.
		if n == 1 {
			delete(r.ending, who.Id)
		} else {
			r.ending[who.Id] = n - 1
		}
		return
	}
	if r.stopping {
		return
	}
	for id, e := range r.sessions {
		if !e.pid.Equal(who) {
			continue
		}
		if !e.ref.stored.Load() {
			r.env.Log.Warn("session stopped; its client starts afresh on its next connect", zap.String("client", id))
			delete(r.sessions, id)
			r.env.Stats.Sessions.Add(-1)
			return
		}
		sup := r.env.Cfg.Supervision
		if now := time.Now(); now.Sub(e.healSince) > sup.RestartWindow.Std() {
			e.heals, e.healSince = 0, now
		}
		if e.heals++; e.heals > sup.MaxRestarts {
			r.env.Log.Error("stored session keeps failing; giving it up and deleting its records",
				zap.String("client", id), zap.Int("restarts", e.heals-1), zap.Duration("window", sup.RestartWindow.Std()))
			r.giveUp(ctx, id)
			r.env.RetireGuard(e.pid.Id)
			delete(r.sessions, id)
			r.env.Stats.Sessions.Add(-1)
			return
		}
		r.env.Log.Warn("stored session stopped; starting it again from the store", zap.String("client", id))
		r.spawn(ctx, id, nil, true)
		return
	}
}

// giveUp unregisters a stored session's subscriptions (it left them in the shards when it
// stopped, for the session started again) and deletes its records.
func (r *Registry) giveUp(ctx actor.Context, clientID string) {
	drop := newUnsubscribeBatch(r.env, clientID)
	err := r.env.Store.LoadClient(clientID, store.Visitor{Session: func(rec *store.SessionRecord) error {
		for _, sub := range rec.Subscriptions {
			group, inner, _, _ := topics.ParseShared(sub.Filter) // inner is the filter itself when not shared
			drop.add(shardFilter{inner, group})
		}
		return nil
	}})
	drop.send(ctx, 0, nil)
	if err != nil {
		r.env.Log.Error("cannot read the session given up; its subscriptions stay in the router",
			zap.String("client", clientID), zap.Error(err))
	}
	var b store.Batch
	b.DeleteSession(clientID)
	r.env.Store.Commit(&b, nil)
}
