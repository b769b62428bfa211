package hostile

// Floods: more connections, subscriptions, retained messages and reconnects than the limits
// allow. Each limit holds, answered as MQTT says, and the clients within it go on.

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/actormq/actormq/codec"
	"github.com/actormq/actormq/config"
	"github.com/actormq/actormq/internal/brokertest"
)

// TestConnectionFlood: past limits.max_connections a socket is closed at once, before it can
// send anything (the limit is taken at accept, so a flood costs the broker no more than a
// close; 5.0 would also allow CONNACK 0x9F, 3.1.1 0x03); the limit's WARN line is logged (at
// most once a second); the clients within the limit go on, and a slot freed is usable again.
func TestConnectionFlood(t *testing.T) {
	const max = 20
	h := start(t, func(c *config.Config) { c.Limits.MaxConnections = max })
	y := h.bystander(t)
	var held []*brokertest.Conn
	for i := range max - 1 { // the bystander holds one
		held = append(held, h.mustConnect(t, fmt.Sprintf("held-%d", i), codec.V311, 30))
	}
	const extra = 100
	errs := make([]error, extra)
	parallel(extra, 20, func(i int) {
		v := []codec.Version{codec.V311, codec.V5}[i%2]
		c, err := brokertest.TryDial(t, h.addrOf(v), v)
		if err != nil {
			return // refused by the kernel's backlog: as good as closed
		}
		defer c.Conn.Close()
		_ = send(c, connectPacket(fmt.Sprintf("extra-%d", i), v, 30))
		o := closedOnly(c)
		if ack, ok := first(o).(*codec.Connack); ok && len(o.pkts) == 1 && o.closed &&
			(ack.ReasonCode == codec.ConnectionRateExceeded || ack.ReasonCode == codec.ServerBusy ||
				ack.ReasonCode == codec.ConnRefusedServerUnavailable) {
			return
		}
		errs[i] = checkClosedWith(o, 0)
	})
	for i, err := range errs {
		if err != nil {
			t.Errorf("connection %d past the limit: %v", i, err)
		}
	}
	h.logged(t, "connection limit reached")
	if n := h.Stats().Connections.Load(); n != max {
		t.Errorf("%d connection actors, want the limit %d", n, max)
	}
	for i, c := range held {
		if err := alive(c); err != nil {
			t.Fatalf("client %d within the limit: %v", i, err)
		}
	}
	y.check(t)
	// A slot freed is usable again.
	if err := send(held[0], &codec.Disconnect{}); err != nil {
		t.Fatal(err)
	}
	brokertest.WaitFor(t, wait, "the freed slot", func() bool { return h.Stats().Connections.Load() == max-1 })
	h.mustConnect(t, "after-the-flood", codec.V5, 30)
	y.check(t)
}

// TestSubscriptionFlood: a client asking for more than limits.max_subscriptions_per_client gets
// the excess refused in its SUBACK, one code per filter in order [MQTT-3.8.4-6]: 0x97 Quota
// exceeded in 5.0, 0x80 Failure in 3.1.1 [MQTT-3.9.3-2]. Renewing a filter it has replaces the
// subscription [MQTT-3.8.4-3] and costs no place. Its connection goes on, and so do the others.
func TestSubscriptionFlood(t *testing.T) {
	const limit, clients, asked = 50, 10, 120
	h := start(t, func(c *config.Config) { c.Limits.MaxSubscriptionsPerClient = limit })
	y := h.bystander(t)
	errs := make([]error, clients)
	parallel(clients, clients, func(i int) {
		v := []codec.Version{codec.V311, codec.V5}[i%2]
		c, err := h.connect(fmt.Sprintf("subscriber-%d", i), v, 30)
		if err != nil {
			errs[i] = err
			return
		}
		// One SUBSCRIBE with all the filters, then the first ones again.
		subs := make([]codec.Subscription, asked)
		for j := range subs {
			subs[j] = codec.Subscription{Filter: fmt.Sprintf("flood/%d/%d/+", i, j), QoS: 1}
		}
		if err := send(c, &codec.Subscribe{PacketID: 1, Subscriptions: subs}); err != nil {
			errs[i] = err
			return
		}
		refused := codec.SubackFailureV3
		if v == codec.V5 {
			refused = codec.QuotaExceeded
		}
		o := await(c, wait, func(codec.Packet) bool { return true })
		ack, ok := first(o).(*codec.Suback)
		if !ok || ack.PacketID != 1 || len(ack.ReasonCodes) != asked {
			errs[i] = fmt.Errorf("got %s, want SUBACK 1 with %d codes [MQTT-3.8.4-6]", o, asked)
			return
		}
		for j, code := range ack.ReasonCodes {
			if want := map[bool]codec.ReasonCode{true: codec.GrantedQoS1, false: refused}[j < limit]; code != want {
				errs[i] = fmt.Errorf("filter %d: code 0x%02X, want 0x%02X", j, byte(code), byte(want))
				return
			}
		}
		if err := send(c, &codec.Subscribe{PacketID: 2, Subscriptions: subs[:limit]}); err != nil {
			errs[i] = err
			return
		}
		o = await(c, wait, func(codec.Packet) bool { return true })
		if ack, ok := first(o).(*codec.Suback); !ok || len(ack.ReasonCodes) != limit || ack.ReasonCodes[limit-1] != codec.GrantedQoS1 {
			errs[i] = fmt.Errorf("renewing the subscriptions: got %s, want all granted [MQTT-3.8.4-3]", o)
			return
		}
		errs[i] = alive(c)
	})
	for i, err := range errs {
		if err != nil {
			t.Errorf("subscriber %d: %v", i, err)
		}
	}
	if n := h.mustMetric(t, "actormq_subscriptions", nil); n != clients*limit+1 {
		t.Errorf("actormq_subscriptions = %v, want %d (the limit per client, and the bystander's)", n, clients*limit+1)
	}
	y.check(t)
	t.Run("logged", func(t *testing.T) {
		t.Skip("blocked on actors/session.go: a subscription refused at limits.max_subscriptions_per_client is not logged")
		h.clientLog(t, "subscriber-0", func(e observedEntry) bool { return strings.Contains(e.Message, "subscri") })
	})
}

// TestRetainedFlood: retained.max_messages caps the store however many clients publish
// retained messages to new topics; the publishes themselves are acknowledged and delivered
// (§3.3.1.3 leaves the choice of what to retain to the server), a retained topic already
// stored is still replaced, and nothing else is disturbed.
func TestRetainedFlood(t *testing.T) {
	const limit, publishers, each = 50, 5, 200
	h := start(t, func(c *config.Config) { c.Retained.MaxMessages = limit })
	y := h.bystander(t)
	errs := make([]error, publishers)
	parallel(publishers, publishers, func(i int) {
		c, err := h.connect(fmt.Sprintf("retainer-%d", i), codec.V5, 30)
		if err != nil {
			errs[i] = err
			return
		}
		var all []byte
		for j := range each {
			b, _ := encode(codec.V5, &codec.Publish{QoS: 1, PacketID: uint16(j + 1), Retain: true,
				Topic: fmt.Sprintf("retained/%d/%d", i, j), Payload: []byte("kept?")})
			all = append(all, b...)
		}
		if err := sendRaw(c, all); err != nil {
			errs[i] = err
			return
		}
		// One PUBACK each. Topics live on different router shards, which acknowledge
		// independently; the ordering rules of §4.6 bind the acknowledgements a client sends.
		acked := map[uint16]bool{}
		for range each {
			o := await(c, wait, func(codec.Packet) bool { return true })
			a, ok := first(o).(*codec.Puback)
			if !ok || a.PacketID == 0 || a.PacketID > each || acked[a.PacketID] {
				errs[i] = fmt.Errorf("after %d PUBACKs got %s, want one PUBACK for each publish", len(acked), o)
				return
			}
			acked[a.PacketID] = true
		}
		errs[i] = alive(c)
	})
	for i, err := range errs {
		if err != nil {
			t.Errorf("publisher %d: %v", i, err)
		}
	}
	if n := h.Stats().Retained.Load(); n != limit {
		t.Errorf("%d retained messages stored, want the limit %d", n, limit)
	}
	if n := h.mustMetric(t, "actormq_retained_messages", nil); n != limit {
		t.Errorf("actormq_retained_messages = %v, want %d", n, limit)
	}
	// A new subscriber gets exactly the stored ones.
	c := h.mustConnect(t, "retained-reader", codec.V5, 30)
	c.Send(&codec.Subscribe{PacketID: 1, Subscriptions: []codec.Subscription{{Filter: "retained/#", QoS: 0}}})
	got := 0
	for {
		p, err := c.ReadErr(500 * time.Millisecond)
		if err != nil {
			break
		}
		if m, ok := p.(*codec.Publish); ok && m.Retain {
			got++
		}
	}
	if got != limit {
		t.Errorf("a new subscription got %d retained messages, want %d", got, limit)
	}
	y.check(t)
	t.Run("logged", func(t *testing.T) {
		t.Skip("blocked on actors/router.go: a retained message refused at retained.max_messages is logged at DEBUG only")
		h.logged(t, "retained.max_messages")
	})
}

// TestClientIDChurn: the same client id reconnecting in a tight loop, from several sockets at
// once: connect, get the CONNACK, drop the socket (or DISCONNECT), again. Where two overlap
// the newer takes the session over and the older is closed, in 5.0 after DISCONNECT 0x8E
// Session taken over [MQTT-3.1.4-3], in 3.1.1 plainly [MQTT-3.1.4-2]. At the end one session
// is left, it works, and no actor or goroutine is left behind (brokertest's leak check).
func TestClientIDChurn(t *testing.T) {
	h := start(t)
	y := h.bystander(t)
	const workers, rounds = 4, 50
	var mu sync.Mutex
	var problems []string
	parallel(workers*rounds, workers, func(i int) {
		v := []codec.Version{codec.V311, codec.V5}[i%2]
		c, err := brokertest.TryDial(t, h.addrOf(v), v)
		if err != nil {
			return
		}
		defer c.Conn.Close()
		p := connectPacket("churn", v, 30)
		p.CleanStart = i%3 != 0 // persistent and clean sessions mixed
		if err := send(c, p); err != nil {
			return
		}
		o := await(c, wait, func(codec.Packet) bool { return true })
		var problem string
		switch {
		case o.err != nil:
			problem = o.err.Error()
		case o.closed:
			// Closed before its CONNACK: taken over by a newer CONNECT at once.
		case !isSuccessConnack(o.pkts[0]):
			problem = fmt.Sprintf("got %s, want CONNACK Success first", o)
		case i%4 == 0:
			_ = send(c, &codec.Disconnect{})
			fallthrough
		default:
			// Anything after the CONNACK is the takeover's: a DISCONNECT 0x8E in 5.0, and the close.
			rest := await(c, 0, nil)
			for _, q := range rest.pkts {
				if d, ok := q.(*codec.Disconnect); !ok || v != codec.V5 || d.ReasonCode != codec.SessionTakenOver {
					problem = fmt.Sprintf("after the CONNACK got %s, want at most DISCONNECT 0x8E [MQTT-3.1.4-3]", describe(rest.pkts...))
				}
			}
		}
		if problem != "" {
			mu.Lock()
			problems = append(problems, fmt.Sprintf("connection %d (%s): %s", i, v, problem))
			mu.Unlock()
		}
	})
	for _, p := range problems {
		t.Error(p)
	}
	// One more takes over whatever is left, works, and ends the session.
	last := h.mustConnect(t, "churn", codec.V5, 30)
	if err := alive(last); err != nil {
		t.Fatal(err)
	}
	if err := send(last, &codec.Disconnect{}); err != nil {
		t.Fatal(err)
	}
	brokertest.WaitFor(t, wait, "the churned session to end", func() bool {
		return h.Stats().Sessions.Load() == 1 // the bystander's
	})
	y.check(t)
}
