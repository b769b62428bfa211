package supervisor

import (
	"fmt"
	"strconv"

	"github.com/asynkron/protoactor-go/actor"
	"go.uber.org/zap"

	"github.com/actormq/actormq/actors"
)

// routerSupervisor spawns the shards as its children, under the fixed names the Env uses. The
// shards' states are made once, so a shard's trie outlives both a restart of the shard and of
// this supervisor.
type routerSupervisor struct {
	env      *actors.Env
	shards   []*actors.ShardState
	stopping bool
}

func newRouter(env *actors.Env) actor.Producer {
	shards := make([]*actors.ShardState, len(env.Shards))
	for i := range shards {
		shards[i] = actors.NewShardState()
	}
	return func() actor.Actor { return &routerSupervisor{env: env, shards: shards} }
}

func (r *routerSupervisor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actors.Ready:
		ctx.Respond(true) // after Started: every shard exists
	case *actor.Started:
		for i := range r.shards {
			r.spawn(ctx, i)
		}
	case *actor.Stopping, *actor.Restarting:
		// Its shards are stopped with it; a restarted router spawns them again when it starts.
		r.stopping = true
	case *actor.Terminated:
		// A shard stopped past its restart budget, or from the console: without it the topics
		// hashed to it would route nowhere, so it is started again with its kept state.
		for i, pid := range r.env.Shards {
			if m.Who.Id == pid.Id && !r.stopping {
				r.env.Log.Error("router shard stopped; starting it again", zap.Int("shard", i))
				r.spawn(ctx, i)
			}
		}
	}
}

func (r *routerSupervisor) spawn(ctx actor.Context, i int) {
	if _, err := ctx.SpawnNamed(r.env.ShardProps(i, r.shards[i]), fmt.Sprintf("shard-%d", i)); err != nil {
		panic(fmt.Sprintf("router shard %d: %v", i, err)) // a broker fault: our supervisor restarts us
	}
}

// connectionsSupervisor spawns a connection actor per accepted socket and relays broker-wide
// orders (shutdown) to all of them.
type connectionsSupervisor struct {
	env *actors.Env
	n   uint64
}

func newConnections(env *actors.Env) actor.Producer {
	return func() actor.Actor { return &connectionsSupervisor{env: env} }
}

func (c *connectionsSupervisor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actors.Accepted:
		c.n++
		props := c.env.Props(actors.KindConnection, actors.NewConnection(c.env, m))
		name := m.Conn.RemoteAddr().String() + "#" + strconv.FormatUint(c.n, 10)
		if _, err := ctx.SpawnNamed(props, name); err != nil {
			_ = m.Conn.Close()
		}
	case *actors.Kick:
		for _, child := range ctx.Children() {
			ctx.Send(child, m)
		}
	}
}
