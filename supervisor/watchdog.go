package supervisor

import (
	"github.com/asynkron/protoactor-go/actor"
	"go.uber.org/zap"
)

// watchdog starts a top-level supervisor (listeners, connections, sessions, router) again when
// it stops: from the console, or past the restart budget protoactor gives actors spawned from
// the root. protoactor tells no one, and a broker without its registry or router would accept
// clients it cannot serve. Each comes back under its name, so every PID that addresses it
// still does, and from the state it keeps: the router with its shards' tries, the registry
// with the stored sessions, the listeners on their ports. The watchdog itself is not shown in
// the console, so it cannot be killed from there.
type watchdog struct{ b *Broker }

func (w *watchdog) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		for name := range w.b.rootProps {
			ctx.Watch(w.b.sys.NewLocalPID(name))
		}
	case *actor.Terminated:
		props := w.b.rootProps[m.Who.Id]
		if props == nil || w.b.env.Stopping.Load() {
			return
		}
		w.b.log.Error("top-level supervisor stopped; starting it again", zap.String("actor", m.Who.Id))
		pid, err := w.b.sys.Root.SpawnNamed(props(), m.Who.Id)
		if err != nil {
			w.b.log.Error("cannot start the supervisor again", zap.String("actor", m.Who.Id), zap.Error(err))
			return
		}
		ctx.Watch(pid)
	}
}
