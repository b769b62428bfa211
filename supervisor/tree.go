package supervisor

import (
	"fmt"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/actormq/actormq/actors"
)

// routerSupervisor spawns the shards as its children, under the fixed names the Env uses.
type routerSupervisor struct{ env *actors.Env }

func newRouter(env *actors.Env) actor.Producer {
	return func() actor.Actor { return &routerSupervisor{env: env} }
}

// ready asks the router to answer once its shards exist.
type ready struct{}

func (r *routerSupervisor) Receive(ctx actor.Context) {
	if _, ok := ctx.Message().(*ready); ok {
		ctx.Respond(true)
		return
	}
	if _, ok := ctx.Message().(*actor.Started); ok {
		for i := range r.env.Shards {
			props := actor.PropsFromProducer(actors.NewShard(r.env, i))
			if _, err := ctx.SpawnNamed(props, fmt.Sprintf("shard-%d", i)); err != nil {
				panic(fmt.Sprintf("router shard %d: %v", i, err)) // a broker fault: the supervisor restarts us
			}
		}
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
		props := actor.PropsFromProducer(actors.NewConnection(c.env, m))
		name := fmt.Sprintf("%s#%d", m.Conn.RemoteAddr(), c.n)
		if _, err := ctx.SpawnNamed(props, name); err != nil {
			_ = m.Conn.Close()
		}
	case *actors.Kick:
		for _, child := range ctx.Children() {
			ctx.Send(child, m)
		}
	}
}
