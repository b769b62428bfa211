package actors

import (
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/actormq/actormq/codec"
	"github.com/actormq/actormq/config"
	"github.com/actormq/actormq/store"
)

// A stored session sends a QoS 2 message to its client only once the record of the packet id
// it is sent under is durable. Sent earlier, a crash before the commit would leave it queued
// in the store, and the restarted session would send it again under a new packet id, which
// the client must take for a new message: delivered twice, against QoS 2's exactly once
// [MQTT-4.3.3-1]. QoS 1 and the CONNACK are not held; the PUBREL is, until the release is
// durable.
func TestStoredQoS2WaitsForItsRecord(t *testing.T) {
	sys := quietSystem()
	defer sys.Shutdown()
	st := &queuedStore{Store: store.NewMemory()}
	env := NewEnv(sys, config.Default(), zap.NewNop(), st)
	ref := &sessionRef{clientID: "held"}
	pid, err := sys.Root.SpawnNamed(env.sessionProps("held", ref, nil, false), "held")
	if err != nil {
		t.Fatal(err)
	}
	ref.pid = pid
	conn := &recordConn{}
	link := newLink(conn, &Stats{}, 16, 16, 0)
	link.Version = codec.V5
	link.ClientID = "held"
	sys.Root.Send(pid, &attachRequest{clientID: "held", expiry: 300, link: link, conn: sys.NewLocalPID("conn"),
		connack: &codec.Connack{}, receiveMax: 10, gen: 1})
	waitForBytes(t, conn, 1)
	connack := len(conn.bytes())
	st.hold()

	sys.Root.Send(pid, &Deliver{Pub: &codec.Publish{Topic: "t/2", QoS: 2, Payload: []byte("two")}, QoS: 2})
	sys.Root.Send(pid, &Deliver{Pub: &codec.Publish{Topic: "t/1", QoS: 1, Payload: []byte("one")}, QoS: 1})
	waitForBytes(t, conn, connack+1)
	time.Sleep(100 * time.Millisecond) // time for a wrongly sent QoS 2 PUBLISH to show
	got := decodeAll(t, conn.bytes()[connack:])
	if len(got) != 1 || got[0].QoS != 1 {
		t.Fatalf("before the commit: %d PUBLISHes (%v), want only the QoS 1 one", len(got), got)
	}

	before := len(conn.bytes()) // before the release: what it lets go may be written at once
	st.release()
	waitForBytes(t, conn, before+1)
	got = decodeAll(t, conn.bytes()[connack:])
	if len(got) != 2 || got[1].QoS != 2 || got[1].Topic != "t/2" || got[1].PacketID == 0 || got[1].Dup {
		t.Fatalf("after the commit: %v, want the QoS 2 PUBLISH second, with a packet id, DUP 0", got)
	}
	if got[1].PacketID == got[0].PacketID {
		t.Errorf("QoS 1 and QoS 2 messages in flight share packet id %d", got[0].PacketID)
	}

	// The PUBREL waits for the record that the message is released: sent before it, a crash
	// would make the restarted session send the PUBLISH again to a client that has already
	// released its id, and that takes it for a new message.
	st.hold()
	before = len(conn.bytes())
	sys.Root.Send(pid, newClientAck(1, &codec.Pubrec{PacketID: got[1].PacketID}))
	time.Sleep(100 * time.Millisecond)
	if n := len(conn.bytes()); n != before {
		t.Fatalf("%d bytes sent before the release was durable (% x), want none", n-before, conn.bytes()[before:])
	}
	st.release()
	waitForBytes(t, conn, before+1)
	p, _, err := codec.Decode(conn.bytes()[before:], codec.V5)
	if rel, ok := p.(*codec.Pubrel); err != nil || !ok || rel.PacketID != got[1].PacketID {
		t.Errorf("after the commit: %v %v, want PUBREL %d", p, err, got[1].PacketID)
	}
}

func decodeAll(t *testing.T, b []byte) []*codec.Publish {
	t.Helper()
	var out []*codec.Publish
	for len(b) > 0 {
		p, n, err := codec.Decode(b, codec.V5)
		if err != nil {
			t.Fatalf("decode % x: %v", b, err)
		}
		pub, ok := p.(*codec.Publish)
		if !ok {
			t.Fatalf("got %v, want only PUBLISH packets", p.Type())
		}
		out = append(out, pub)
		b = b[n:]
	}
	return out
}

// A stored session's SUBACK waits for the session record that holds the new subscription, as
// it waits for the shards: sent before it, a crash in between would leave the client told it
// is subscribed [MQTT-3.8.4-1] by a broker that restarts without the subscription. The same
// for UNSUBACK and a subscription removed.
func TestSubackWaitsForTheSubscriptionRecord(t *testing.T) {
	b := newOnceBroker(t, "sub")
	subscribed := func() bool {
		found := false
		err := b.st.Store.Load(store.Visitor{Session: func(r *store.SessionRecord) error {
			found = found || r.ClientID == "sub" && len(r.Subscriptions) == 1 && r.Subscriptions[0].Filter == "t/#"
			return nil
		}})
		if err != nil {
			t.Fatal(err)
		}
		return found
	}
	for _, pkt := range []codec.Packet{
		&codec.Subscribe{PacketID: 1, Subscriptions: []codec.Subscription{{Filter: "t/#", QoS: 1}}},
		&codec.Unsubscribe{PacketID: 2, Filters: []string{"t/#"}},
	} {
		before := len(b.conns["sub"].bytes())
		b.st.hold()
		b.env.System.Root.Send(b.pids["sub"], &clientPacket{gen: 1, pkt: pkt})
		for deadline := time.Now().Add(5 * time.Second); b.st.queued() == 0; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%v: nothing was committed within 5 s", pkt.Type())
			}
		}
		time.Sleep(50 * time.Millisecond) // time for an early answer to show
		if n := len(b.conns["sub"].bytes()); n != before {
			t.Fatalf("%v answered (%d bytes) before its record was durable", pkt.Type(), n-before)
		}
		b.st.release()
		waitForBytes(t, b.conns["sub"], before+1)
		_, isSub := pkt.(*codec.Subscribe)
		if subscribed() != isSub {
			t.Errorf("after the %v's answer, the store has the subscription: %v", pkt.Type(), !isSub)
		}
	}
}
