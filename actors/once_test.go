package actors

import (
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.uber.org/zap"

	"github.com/actormq/actormq/codec"
	"github.com/actormq/actormq/config"
	"github.com/actormq/actormq/store"
)

// queuedStore queues commits while held, without applying them: a store whose committer has
// not reached them yet. step applies the oldest one, as a crash after it would leave things.
type queuedStore struct {
	store.Store
	mu      sync.Mutex
	held    bool
	pending []queuedCommit
}

type queuedCommit struct {
	b    *store.Batch
	done func(error)
}

func (q *queuedStore) Commit(b *store.Batch, done func(error)) {
	q.mu.Lock()
	if q.held {
		c := new(store.Batch)
		c.Append(b) // b is the caller's again once Commit returns
		q.pending = append(q.pending, queuedCommit{c, done})
		q.mu.Unlock()
		return
	}
	q.mu.Unlock()
	q.Store.Commit(b, done)
}

func (q *queuedStore) hold() {
	q.mu.Lock()
	q.held = true
	q.mu.Unlock()
}

func (q *queuedStore) queued() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.pending)
}

// step applies the oldest queued commit and reports whether there was one.
func (q *queuedStore) step() bool {
	q.mu.Lock()
	if len(q.pending) == 0 {
		q.mu.Unlock()
		return false
	}
	c := q.pending[0]
	q.pending = q.pending[1:]
	q.mu.Unlock()
	q.Store.Commit(c.b, c.done)
	return true
}

func (q *queuedStore) release() {
	q.mu.Lock()
	q.held = false
	q.mu.Unlock()
	for q.step() {
	}
}

// count returns the inbound ids of client and the messages of each other client in the store.
func (q *queuedStore) count(t *testing.T, client string) (inbound int, msgs map[string]int) {
	t.Helper()
	msgs = map[string]int{}
	err := q.Store.Load(store.Visitor{
		Inbound: func(id string, _ uint16) error {
			if id == client {
				inbound++
			}
			return nil
		},
		Message: func(id string, _ uint64, _ *store.MessageRecord) error {
			msgs[id]++
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return inbound, msgs
}

// onceBroker is one router shard and stored sessions with recorded connections.
type onceBroker struct {
	env   *Env
	st    *queuedStore
	pids  map[string]*actor.PID
	conns map[string]*recordConn
	links map[string]*Link
}

func newOnceBroker(t *testing.T, clients ...string) *onceBroker {
	t.Helper()
	sys := quietSystem()
	b := &onceBroker{st: &queuedStore{Store: store.NewMemory()}, pids: map[string]*actor.PID{},
		conns: map[string]*recordConn{}, links: map[string]*Link{}}
	b.env = NewEnv(sys, config.Default(), zap.NewNop(), b.st)
	sub := b.env.WatchDeadLetters()
	t.Cleanup(func() {
		b.env.Stopping.Store(true)
		sys.EventStream.Unsubscribe(sub)
		sys.Shutdown()
	})
	shard, err := sys.Root.SpawnNamed(b.env.ShardProps(0, NewShardState()), "shard")
	if err != nil {
		t.Fatal(err)
	}
	b.env.Shards = []*actor.PID{shard}
	for _, id := range clients {
		ref := &sessionRef{clientID: id}
		pid, err := sys.Root.SpawnNamed(b.env.sessionProps(id, ref, nil, false), id)
		if err != nil {
			t.Fatal(err)
		}
		ref.pid = pid
		conn := &recordConn{}
		link := newLink(conn, &Stats{}, 64, 16, 0)
		link.Version = codec.V5
		link.ClientID = id
		sys.Root.Send(pid, &attachRequest{clientID: id, expiry: 300, link: link, conn: sys.NewLocalPID("conn-" + id),
			connack: &codec.Connack{}, receiveMax: 10, gen: 1})
		waitForBytes(t, conn, 1)
		b.pids[id], b.conns[id], b.links[id] = pid, conn, link
	}
	return b
}

// subscribe subscribes client to filter at QoS 2 and waits for its SUBACK.
func (b *onceBroker) subscribe(t *testing.T, client, filter string) {
	t.Helper()
	n := len(b.conns[client].bytes())
	b.env.System.Root.Send(b.pids[client], &clientPacket{gen: 1, pkt: &codec.Subscribe{PacketID: 1,
		Subscriptions: []codec.Subscription{{Filter: filter, QoS: 2}}}})
	waitForBytes(t, b.conns[client], n+1)
}

// publish has client publish a QoS 2 message with packet id 7, as its reader does.
func (b *onceBroker) publish(client, topic, payload string) {
	pub := &codec.Publish{Topic: topic, QoS: 2, PacketID: 7, Payload: []byte(payload)}
	r := newRoute(b.env, pub, client, b.links[client], time.Now())
	b.env.System.Root.Send(b.pids[client], &inboundQoS2{gen: 1, route: r})
}

// publishHeld holds the store, has client publish as publish does, and waits until the
// publish's batch is in the store's queue, not yet written.
func (b *onceBroker) publishHeld(t *testing.T, client, topic, payload string) {
	t.Helper()
	b.st.hold()
	b.publish(client, topic, payload)
	for deadline := time.Now().Add(5 * time.Second); b.st.queued() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("nothing was committed within 5 s")
		}
	}
}

// packets decodes what client was sent after its first skip bytes.
func (b *onceBroker) packets(t *testing.T, client string, skip int) []codec.Packet {
	t.Helper()
	var out []codec.Packet
	for rest := b.conns[client].bytes()[skip:]; len(rest) > 0; {
		p, n, err := codec.Decode(rest, codec.V5)
		if err != nil {
			t.Fatalf("%s: decode % x: %v", client, rest, err)
		}
		out = append(out, p)
		rest = rest[n:]
	}
	return out
}

// A QoS 2 publish from a stored session is written in one batch: its publisher's packet id
// and every stored subscriber's copy. Whichever commits a crash stops after, the store holds
// all of them or none: the id without a copy would have the restarted broker answer the
// publisher's resend with PUBREC and route nothing (lost), a copy without the id would have
// it routed again (delivered twice), against exactly once [MQTT-4.3.3-1]. Nothing is sent
// before the batch is durable: neither the PUBREC to the publisher (sent "having accepted
// ownership of the Application Message" [MQTT-4.3.3-8]) nor the copies to the subscribers.
func TestQoS2PublishIsOneWrite(t *testing.T) {
	b := newOnceBroker(t, "pub", "sub1", "sub2")
	b.subscribe(t, "sub1", "t/#")
	b.subscribe(t, "sub2", "t/+")
	mark := map[string]int{}
	for id, c := range b.conns {
		mark[id] = len(c.bytes())
	}

	b.publishHeld(t, "pub", "t/x", "once")
	time.Sleep(100 * time.Millisecond) // time for a wrong early send or commit to show
	for id, c := range b.conns {
		if n := len(c.bytes()); n != mark[id] {
			t.Fatalf("%s was sent %d bytes before the publish was durable: %v", id, n-mark[id], b.packets(t, id, mark[id]))
		}
	}
	for b.st.step() {
		inbound, msgs := b.st.count(t, "pub")
		if inbound != msgs["sub1"] || inbound != msgs["sub2"] {
			t.Fatalf("after a commit the store holds %d packet id(s) of the publisher and copies %v: a crash here loses or doubles it",
				inbound, msgs)
		}
	}
	if inbound, msgs := b.st.count(t, "pub"); inbound != 1 || msgs["sub1"] != 1 || msgs["sub2"] != 1 {
		t.Fatalf("in the end the store holds %d id(s) and copies %v, want 1 and one each", inbound, msgs)
	}
	// The copies go out now, with later commits still held: each was written in the batch
	// under the packet id it is sent with, so no "sent under id N" must be durable first, or
	// be written at all. (The store is released at the end.)
	defer b.st.release()

	waitForBytes(t, b.conns["pub"], mark["pub"]+1)
	if got := b.packets(t, "pub", mark["pub"]); len(got) != 1 || got[0].(*codec.Pubrec).ReasonCode != codec.Success {
		t.Errorf("publisher got %v, want one PUBREC, success", got)
	}
	for _, id := range []string{"sub1", "sub2"} {
		waitForBytes(t, b.conns[id], mark[id]+1)
		got := b.packets(t, id, mark[id])
		if len(got) != 1 || string(got[0].(*codec.Publish).Payload) != "once" || got[0].(*codec.Publish).QoS != 2 {
			t.Errorf("%s got %v, want the QoS 2 PUBLISH once", id, got)
		}
	}
	if n := b.st.queued(); n != 0 {
		t.Errorf("%d commits after the batch; want none: the records hold the ids the copies went out under", n)
	}
}

// When a copy cannot be stored (here: its session is gone), nothing of the publish is
// written, the publisher is told it failed (5.0: PUBREC with a failure code ends the exchange
// [MQTT-4.3.3-4]), and the subscriber that had taken its copy drops it: the publisher's next
// attempt is the one delivered, once.
func TestFailedQoS2PublishWritesNothing(t *testing.T) {
	b := newOnceBroker(t, "pub", "sub")
	b.subscribe(t, "sub", "t/#")
	gone := &sessionRef{pid: b.env.System.NewLocalPID("gone"), clientID: "gone"}
	gone.stored.Store(true)
	b.env.System.Root.Send(b.env.Shards[0], &shardSubscribe{ref: gone, subs: []shardSub{{shardFilter: shardFilter{filter: "t/x"}, opts: codec.Subscription{QoS: 2}}}})
	mark := map[string]int{"pub": len(b.conns["pub"].bytes()), "sub": len(b.conns["sub"].bytes())}

	b.publish("pub", "t/x", "first")
	waitForBytes(t, b.conns["pub"], mark["pub"]+1)
	got := b.packets(t, "pub", mark["pub"])
	if len(got) != 1 || got[0].(*codec.Pubrec).ReasonCode < 0x80 {
		t.Fatalf("publisher got %v, want one PUBREC with a failure code", got)
	}
	if inbound, msgs := b.st.count(t, "pub"); inbound != 0 || len(msgs) != 0 {
		t.Fatalf("store holds %d id(s) and copies %v after a failed publish, want nothing", inbound, msgs)
	}

	b.env.System.Root.Send(b.env.Shards[0], &shardUnsubscribe{clientID: "gone", subs: []shardFilter{{filter: "t/x"}}})
	mark["pub"] = len(b.conns["pub"].bytes())
	b.publish("pub", "t/x", "again")
	waitForBytes(t, b.conns["pub"], mark["pub"]+1)
	waitForBytes(t, b.conns["sub"], mark["sub"]+1)
	time.Sleep(100 * time.Millisecond) // time for the dropped copy to show, if it were sent
	got = b.packets(t, "sub", mark["sub"])
	if len(got) != 1 || string(got[0].(*codec.Publish).Payload) != "again" {
		t.Errorf("subscriber got %v, want only the second attempt", got)
	}
	if inbound, msgs := b.st.count(t, "pub"); inbound != 1 || msgs["sub"] != 1 {
		t.Errorf("store holds %d id(s) and copies %v, want the second attempt's", inbound, msgs)
	}
}

// A copy waiting for its publish's batch goes out on the connection the client has when the
// batch is durable: a client that reconnects meanwhile gets it there once, without DUP, since
// it was never sent before [MQTT-4.4.0-1 resends only what was sent].
func TestWaitingCopyFollowsReconnect(t *testing.T) {
	b := newOnceBroker(t, "pub", "sub")
	b.subscribe(t, "sub", "t/#")
	old := len(b.conns["sub"].bytes())

	b.publishHeld(t, "pub", "t/x", "late")
	b.links["sub"].Abort() // the old connection is gone, as when a device reconnects
	conn := &recordConn{}
	link := newLink(conn, &Stats{}, 64, 16, 0)
	link.Version = codec.V5
	link.ClientID = "sub"
	b.env.System.Root.Send(b.pids["sub"], &attachRequest{clientID: "sub", expiry: 300, link: link,
		conn: b.env.System.NewLocalPID("conn-sub-2"), connack: &codec.Connack{}, receiveMax: 10, gen: 2})
	waitForBytes(t, conn, 1)
	connack := len(conn.bytes())
	time.Sleep(50 * time.Millisecond)
	if n := len(conn.bytes()); n != connack {
		t.Fatalf("the new connection was sent %d bytes before the publish was durable", n-connack)
	}
	b.st.release()
	waitForBytes(t, conn, connack+1)
	time.Sleep(50 * time.Millisecond) // time for a second copy to show
	got := decodeAll(t, conn.bytes()[connack:])
	if len(got) != 1 || string(got[0].Payload) != "late" || got[0].Dup {
		t.Errorf("new connection got %v, want the PUBLISH once, DUP 0", got)
	}
	if n := len(b.conns["sub"].bytes()); n != old {
		t.Errorf("the old connection was sent %d bytes", n-old)
	}
}

// A retransmission of a QoS 2 publish that arrives while the original's batch is being written
// is answered with the original [MQTT-4.3.3-10], and with the original's reason code: the
// message had subscribers, so neither PUBREC says No matching subscribers (0x10).
func TestRetransmissionWhileWritingGetsTheOriginalsAnswer(t *testing.T) {
	b := newOnceBroker(t, "pub", "sub")
	b.subscribe(t, "sub", "t/x")
	mark := len(b.conns["pub"].bytes())
	b.publishHeld(t, "pub", "t/x", "once")
	b.publish("pub", "t/x", "once")    // the client sends it again, same packet id
	time.Sleep(100 * time.Millisecond) // time for the retransmission to join the original
	b.st.release()
	deadline := time.Now().Add(5 * time.Second)
	var got []codec.Packet
	for len(got) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("publisher got %d packets, want two PUBRECs", len(got))
		}
		time.Sleep(time.Millisecond)
		got = b.packets(t, "pub", mark)
	}
	for i, p := range got {
		if rec, ok := p.(*codec.Pubrec); !ok || rec.PacketID != 7 || rec.ReasonCode != codec.Success {
			t.Errorf("packet %d to the publisher is %T %+v, want PUBREC id 7 Success", i, p, p)
		}
	}
}
