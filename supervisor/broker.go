// Package supervisor builds the broker's supervision tree on protoactor-go and runs it:
//
//	listeners    one listener actor per configured listener
//	connections  one connection actor per socket
//	sessions     the session registry, parent of one session actor per client id
//	router       router/shard-<k>: topic trie and retained messages of one shard
//
// Start binds every listener before it returns, so a taken port is reported at once; Stop
// stops accepting, tells 5.0 clients the server is shutting down, flushes and stops the tree.
package supervisor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/eventstream"
	"go.uber.org/zap"
	"go.uber.org/zap/exp/zapslog"
	"go.uber.org/zap/zapcore"

	"github.com/actormq/actormq/actors"
	"github.com/actormq/actormq/auth"
	"github.com/actormq/actormq/codec"
	"github.com/actormq/actormq/config"
	"github.com/actormq/actormq/console"
	"github.com/actormq/actormq/listeners"
	"github.com/actormq/actormq/store"
)

// Broker is a running broker.
type Broker struct {
	stopOnce sync.Once
	stopErr  error

	sys       *actor.ActorSystem
	env       *actors.Env
	log       *zap.Logger
	listeners *listenerSet
	limit     *listeners.ConnLimit
	lsup      *actor.PID   // the listeners supervisor, stopped first
	roots     []*actor.PID // stopped in this order, after the listeners
	rootProps map[string]func() *actor.Props
	watchdog  *actor.PID
	conns     *actor.PID

	deadLetters *eventstream.Subscription

	// console (introspect.go); all nil when console.listen is ""
	started time.Time
	in      *introspector
	console *console.Server
	sysPub  *actors.SysPublisher
}

// Start opens the store, builds the tree, restores the stored sessions and retained
// messages, and binds every listener.
func Start(cfg config.Config, log *zap.Logger) (*Broker, error) {
	st, err := openStore(cfg.Store, log)
	if err != nil {
		return nil, err
	}
	sys := actor.NewActorSystem(actor.WithLoggerFactory(actorLogger(log)))
	env := actors.NewEnv(sys, cfg, log, st)
	b := &Broker{sys: sys, env: env, log: log, listeners: newListenerSet(), started: time.Now(),
		limit: listeners.NewConnLimit(cfg.Limits.MaxConnections)}
	fail := func(err error) (*Broker, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = b.Stop(ctx)
		return nil, err
	}
	if auth.Needed(cfg) { // security (reload.go): nil keeps the publish path free of checks
		a, err := auth.New(cfg.Auth)
		if err != nil {
			return fail(err)
		}
		env.Auth = a
	}
	if cfg.Console.Listen != "" {
		// Instrumented only when someone can read it: probes cost two atomic adds per message.
		env.Dir = actors.NewDirectory()
		b.in = newIntrospector(sys)
		env.Props = b.in.props
	}
	b.deadLetters = env.WatchDeadLetters()
	restart := actor.WithSupervisor(actors.RestartStrategy(cfg.Supervision))

	// Shards and the registry are addressed by fixed PIDs, so that every actor can reach them
	// from the start and a restarted one keeps its address.
	env.Shards = make([]*actor.PID, cfg.Router.Shards)
	for i := range env.Shards {
		env.Shards[i] = sys.NewLocalPID(fmt.Sprintf("router/shard-%d", i))
	}
	routerActor := newRouter(env) // made once: it holds the shards' states
	router, err := b.spawnRoot("router", func() *actor.Props {
		return env.Props(actors.KindSupervisor, routerActor).Configure(restart)
	})
	if err != nil {
		return fail(err)
	}
	b.roots = append(b.roots, router)
	// The router spawns its shards when it starts (each loads its retained messages first
	// thing); publishes must not arrive before that.
	if _, err := sys.Root.RequestFuture(router, &actors.Ready{}, 5*time.Second).Result(); err != nil {
		return fail(fmt.Errorf("router did not start: %w", err))
	}
	sessions, err := b.spawnRoot("sessions", func() *actor.Props {
		return actors.RegistryProps(env).Configure(restart)
	})
	if err != nil {
		return fail(err)
	}
	env.Registry = sessions
	b.roots = append([]*actor.PID{sessions}, b.roots...)
	// The registry starts the stored sessions when it starts, and answers once they have
	// registered their subscriptions: before a client may publish.
	if _, err := sys.Root.RequestFuture(sessions, &actors.Ready{}, time.Minute).Result(); err != nil {
		return fail(fmt.Errorf("session registry did not start and restore the stored sessions: %w", err))
	}
	b.conns, err = b.spawnRoot("connections", func() *actor.Props {
		return env.Props(actors.KindSupervisor, newConnections(env)).Configure(actor.WithSupervisor(actors.ConnectionStrategy()))
	})
	if err != nil {
		return fail(err)
	}
	b.roots = append([]*actor.PID{b.conns}, b.roots...)

	// Every listener is bound before Start returns, so a taken port is an error now; then the
	// listener actors take them over.
	for _, lc := range cfg.Listeners {
		l, err := b.bind(lc)
		if err != nil {
			return fail(err)
		}
		b.listeners.set(lc.Name, l)
	}
	b.lsup, err = b.spawnRoot("listeners", func() *actor.Props {
		return env.Props(actors.KindSupervisor, func() actor.Actor { return &listenersSupervisor{b: b} }).Configure(restart)
	})
	if err != nil {
		return fail(err)
	}
	if _, err := sys.Root.RequestFuture(b.lsup, &actors.Ready{}, 5*time.Second).Result(); err != nil {
		return fail(fmt.Errorf("listeners did not start: %w", err))
	}
	b.watchdog, err = sys.Root.SpawnNamed(actor.PropsFromProducer(func() actor.Actor { return &watchdog{b: b} }), "watchdog")
	if err != nil {
		return fail(err)
	}
	if b.in != nil {
		b.console, err = console.Start(cfg.Console.Listen, &backend{b: b, in: b.in}, log)
		if err != nil {
			return fail(err)
		}
		if iv := cfg.Console.SysInterval.Std(); iv > 0 {
			b.sysPub = actors.StartSys(env, iv)
		}
	}
	return b, nil
}

// spawnRoot spawns a top-level supervisor and keeps how to make its props, for the watchdog:
// props are made for each spawn (the console's probe belongs to one actor).
func (b *Broker) spawnRoot(name string, props func() *actor.Props) (*actor.PID, error) {
	if b.rootProps == nil {
		b.rootProps = make(map[string]func() *actor.Props)
	}
	b.rootProps[name] = props
	return b.sys.Root.SpawnNamed(props(), name)
}

// ConsoleAddr is the bound address of the console (useful with port 0), nil when it is off.
func (b *Broker) ConsoleAddr() net.Addr {
	if b.console == nil {
		return nil
	}
	return b.console.Addr()
}

// bind starts one listener; its accepted sockets go to the connections supervisor.
func (b *Broker) bind(lc config.Listener) (*listeners.Listener, error) {
	return listeners.Start(lc, b.accept, listeners.Options{
		Log:              b.log,
		Limit:            b.limit,
		HandshakeTimeout: b.env.Cfg.Limits.ConnectTimeout.Std(),
	})
}

func (b *Broker) accept(c net.Conn, l *listeners.Listener) {
	b.sys.Root.Send(b.conns, &actors.Accepted{Conn: c, Listener: l.Name(), Protocol: l.ProtocolLevel()})
}

// Addr is the bound address of the named listener (useful with port 0), nil if there is none.
func (b *Broker) Addr(listener string) net.Addr {
	if l := b.listeners.get(listener); l != nil {
		return l.Addr()
	}
	return nil
}

// Stats are the broker-wide counters.
func (b *Broker) Stats() *actors.Stats { return b.env.Stats }

// ActorCount is the number of live actors, for leak checks.
func (b *Broker) ActorCount() int {
	n := 0
	for _, bucket := range b.sys.ProcessRegistry.LocalPIDs.LocalPIDs {
		n += bucket.Count()
	}
	return n
}

// Stop shuts the broker down gracefully within ctx: it stops accepting, sends every 5.0
// client DISCONNECT 0x8B (Server shutting down), waits for the connections to flush and
// close, then stops the tree.
func (b *Broker) Stop(ctx context.Context) error {
	b.stopOnce.Do(func() { b.stopErr = b.stop(ctx) })
	return b.stopErr
}

func (b *Broker) stop(ctx context.Context) error {
	var errs []error
	if b.watchdog != nil {
		_ = b.sys.Root.StopFuture(b.watchdog).Wait() // nothing is started again from here on
	}
	if b.console != nil {
		errs = append(errs, b.console.Close(ctx))
	}
	if b.sysPub != nil {
		b.sysPub.Stop()
	}
	// Stop accepting: the listener actors close their listeners as they stop.
	if b.lsup != nil {
		if err := b.sys.Root.StopFuture(b.lsup).Wait(); err != nil {
			errs = append(errs, fmt.Errorf("stopping listeners: %w", err))
		}
	}
	for _, l := range b.listeners.all() {
		_ = l.Close() // idempotent; covers a listener whose actor never took it over
	}
	if b.conns != nil {
		b.sys.Root.Send(b.conns, &actors.Kick{Code: codec.ServerShuttingDown, Reason: "the server is shutting down"})
		for b.env.Stats.Connections.Load() > 0 && ctx.Err() == nil {
			time.Sleep(5 * time.Millisecond)
		}
	}
	b.env.Stopping.Store(true)
	for _, pid := range b.roots {
		if err := b.sys.Root.StopFuture(pid).Wait(); err != nil {
			errs = append(errs, fmt.Errorf("stopping %s: %w", pid.Id, err))
		}
	}
	if b.in != nil {
		b.in.close()
	}
	if b.deadLetters != nil {
		b.sys.EventStream.Unsubscribe(b.deadLetters)
	}
	b.sys.Shutdown()
	// Last: every actor has committed what it wrote; Close waits for the commits in flight.
	if err := b.env.Store.Close(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// openStore opens the store the configuration asks for and reads it through once, so that a
// damaged store stops the broker at start with an error naming its directory, never later.
func openStore(cfg config.Store, log *zap.Logger) (store.Store, error) {
	if !cfg.Persistence {
		return store.NewMemory(), nil
	}
	st, err := store.Open(cfg.DataDir, store.SyncMode(cfg.Sync), log)
	if err != nil {
		return nil, err
	}
	if err := st.Load(store.Visitor{
		Session:  func(*store.SessionRecord) error { return nil },
		Message:  func(string, uint64, *store.MessageRecord) error { return nil },
		Inbound:  func(string, uint16) error { return nil },
		Retained: func(string, *store.MessageRecord) error { return nil },
	}); err != nil {
		_ = st.Close()
		return nil, err
	}
	return st, nil
}

// actorLogger routes protoactor's own logs into zap, from WARN up: its INFO lines (every
// recovered panic, every dead letter) would drown the broker's.
func actorLogger(log *zap.Logger) func(*actor.ActorSystem) *slog.Logger {
	core, _ := zapcore.NewIncreaseLevelCore(log.Core(), zapcore.WarnLevel)
	if core == nil {
		core = log.Core()
	}
	return func(*actor.ActorSystem) *slog.Logger {
		return slog.New(zapslog.NewHandler(core, zapslog.WithName("protoactor")))
	}
}
