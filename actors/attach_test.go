package actors

import (
	"bufio"
	"net"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.uber.org/zap"

	"github.com/actormq/actormq/codec"
	"github.com/actormq/actormq/config"
	"github.com/actormq/actormq/store"
)

// A CONNECT whose session never answers (the attach was lost with an actor that stopped) is
// refused once limits.connect_timeout has passed: 0x88 Server unavailable, then the close
// [MQTT-3.2.2-6]. The client is not left waiting on an open socket, and the connection actor
// does not stay behind.
func TestUnansweredConnectIsRefused(t *testing.T) {
	sys := quietSystem()
	defer sys.Shutdown()
	cfg := config.Default()
	cfg.Limits.ConnectTimeout = config.Duration(200 * time.Millisecond)
	env := NewEnv(sys, cfg, zap.NewNop(), store.NewMemory())
	// A registry that loses every attach.
	env.Registry = sys.Root.Spawn(actor.PropsFromFunc(func(actor.Context) {}))
	server, client := net.Pipe()
	defer client.Close()
	pid := sys.Root.Spawn(actor.PropsFromProducer(NewConnection(env, &Accepted{Conn: server, Listener: "test", Protocol: 5})))

	b, _ := codec.Append(nil, &codec.Connect{ProtocolName: "MQTT", Version: codec.V5, CleanStart: true, KeepAlive: 30, ClientID: "lost"}, codec.V5)
	go func() { _, _ = client.Write(b) }()
	_ = client.SetReadDeadline(time.Now().Add(5 * time.Second))
	r := codec.NewReader(bufio.NewReader(client), 0)
	r.SetVersion(codec.V5)
	p, err := r.ReadPacket()
	if err != nil {
		t.Fatalf("no answer to the CONNECT: %v", err)
	}
	if ack, ok := p.(*codec.Connack); !ok || ack.ReasonCode != codec.ServerUnavailable {
		t.Fatalf("got %+v, want CONNACK 0x88", p)
	}
	if _, err := r.ReadPacket(); err == nil {
		t.Fatal("the connection stayed open after the refusal")
	}
	waitStopped(t, sys, pid)
}

// A session whose connection closed before the CONNACK went out (the client left, or its
// wait ran out) is not left attached to it: no detach will ever come from that connection.
// Its client was never told it connected, so its will is not published; a session that ends
// with its connection ends.
func TestAttachToClosedConnectionDetaches(t *testing.T) {
	sys := quietSystem()
	defer sys.Shutdown()
	env := NewEnv(sys, config.Default(), zap.NewNop(), store.NewMemory())
	routed := make(chan any, 8)
	env.Shards = []*actor.PID{sys.Root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		if r, ok := ctx.Message().(*route); ok {
			routed <- r
		}
	}))}
	link := newLink(&recordConn{}, &Stats{}, 16, 16, 0)
	link.Version = codec.V5
	link.CloseAfterFlush()
	ended := make(chan *sessionIdle, 1)
	// The session's parent stands in for the registry, which ends a session that says so.
	sys.Root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		switch m := ctx.Message().(type) {
		case *actor.Started:
			ref := &sessionRef{clientID: "gone"}
			ref.pid = ctx.Spawn(env.sessionProps("gone", ref, nil, false))
			ctx.Send(ref.pid, &attachRequest{clientID: "gone", link: link, conn: sys.NewLocalPID("conn"),
				connack: &codec.Connack{}, receiveMax: 10, gen: 1,
				will: &codec.Will{Topic: "w", Payload: []byte("x")}})
		case *sessionIdle:
			ended <- m
		}
	}))
	select {
	case m := <-ended:
		if m.gen != 1 {
			t.Errorf("session ended with gen %d, want 1", m.gen)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the session stayed attached to a closed connection")
	}
	select {
	case <-routed:
		t.Error("the will of a client that never got its CONNACK was published")
	case <-time.After(100 * time.Millisecond):
	}
}

// waitStopped waits until pid's actor has stopped.
func waitStopped(t *testing.T, sys *actor.ActorSystem, pid *actor.PID) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, ok := sys.ProcessRegistry.GetLocal(pid.Id); !ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not stop", pid.Id)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
