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
	// The store is capped, at exactly the limit, however the shards race for its last places.
	stored := h.Stats().Retained.Load()
	if n := h.mustMetric(t, "actormq_retained_messages", nil); n != float64(stored) {
		t.Errorf("actormq_retained_messages = %v, want %d", n, stored)
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
	if got != int(stored) {
		t.Errorf("a new subscription got %d retained messages, want the %d stored", got, stored)
	}
	y.check(t)
	t.Run("exactly the limit", func(t *testing.T) {
		if stored != limit {
			t.Errorf("%d retained messages stored, want the limit %d", stored, limit)
		}
	})
	t.Run("logged", func(t *testing.T) {
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
	t.Run("takeovers", func(t *testing.T) {
		// Persistent sessions: each connection takes over the one session.
		churn(t, h, func(int) bool { return false })
		// And one takeover for certain: the older connection gets DISCONNECT 0x8E
		// [MQTT-3.1.4-3], and the broker logs it.
		older := h.mustConnect(t, "churn", codec.V5, 30)
		h.mustConnect(t, "churn", codec.V5, 30)
		expectClosedWith(t, older, codec.SessionTakenOver)
		h.expectEndLog(t, older, reasonIs(codec.SessionTakenOver))
	})
	t.Run("sessions ending as the id comes back", func(t *testing.T) {
		churn(t, h, func(i int) bool { return i%3 != 0 })
	})
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

// churn runs the reconnect loop; clean says which connections ask for a clean session.
func churn(t *testing.T, h *harness, clean func(i int) bool) {
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
		p.CleanStart = clean(i)
		if v == codec.V5 && !p.CleanStart {
			p.Properties.SetSessionExpiryInterval(60)
		}
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
}

// TestQoS2Flood: QoS 2 publishes that are never released.
//   - 5.0: past the Receive Maximum of unacknowledged QoS 1/2 publishes [MQTT-3.3.4-7] the
//     broker sends DISCONNECT 0x93 Receive Maximum exceeded (§3.3.4) and closes.
//   - 3.1.1 has no such limit: the ids are 16-bit, so at most 65535 wait for their PUBREL.
//     Each PUBLISH, first or resent, gets its PUBREC, and a resent one is not delivered again
//     [MQTT-4.3.3-2]; once released (PUBREL, PUBCOMP) an id is free for a new message.
func TestQoS2Flood(t *testing.T) {
	const receiveMax = 100
	h := start(t, func(c *config.Config) { c.MQTT.ReceiveMaximum = receiveMax })
	y := h.bystander(t)
	sub := h.mustConnect(t, "qos2-sink", codec.V311, 30)
	subscribe(t, sub, "qos2/#", 0)

	t.Run("5.0 past the Receive Maximum", func(t *testing.T) {
		c := h.mustConnect(t, "qos2-flood-5", codec.V5, 30)
		var all []byte
		for i := range receiveMax + 50 {
			b, _ := encode(codec.V5, &codec.Publish{QoS: 2, PacketID: uint16(i + 1), Topic: "qos2/five", Payload: []byte("x")})
			all = append(all, b...)
		}
		_ = sendRaw(c, all) // the broker may close while we write
		o := closedOnly(c)
		if !o.closed {
			t.Fatalf("got %s, want DISCONNECT 0x93 and the close", o)
		}
		last, _ := o.pkts[len(o.pkts)-1].(*codec.Disconnect)
		if last == nil || last.ReasonCode != codec.ReceiveMaximumExceeded {
			t.Fatalf("got %s, want DISCONNECT 0x93 last [MQTT-3.3.4-7]", o)
		}
		for _, p := range o.pkts[:len(o.pkts)-1] {
			if _, ok := p.(*codec.Pubrec); !ok {
				t.Fatalf("got %s, want only PUBRECs before the DISCONNECT", o)
			}
		}
		if n := len(o.pkts) - 1; n > receiveMax {
			t.Errorf("%d PUBRECs: more publishes taken than the Receive Maximum %d", n, receiveMax)
		}
		h.expectEndLog(t, c, reasonIs(codec.ReceiveMaximumExceeded))
		y.check(t)
	})

	t.Run("3.1.1 resent and never released", func(t *testing.T) {
		// Drain what the first case delivered.
		for {
			if _, err := sub.ReadErr(300 * time.Millisecond); err != nil {
				break
			}
		}
		const ids, resends = 1000, 9
		c := h.mustConnect(t, "qos2-flood-311", codec.V311, 30)
		pubs := func(dup bool, tag string) []byte {
			var all []byte
			for id := 1; id <= ids; id++ {
				b, _ := encode(codec.V311, &codec.Publish{QoS: 2, Dup: dup, PacketID: uint16(id), Topic: "qos2/three",
					Payload: []byte(fmt.Sprintf("%s%d", tag, id))})
				all = append(all, b...)
			}
			return all
		}
		expectAcks := func(what string, want codec.PacketType) {
			t.Helper()
			for n := 0; n < ids; n++ {
				p, err := c.ReadErr(wait)
				if err != nil || p.Type() != want {
					t.Fatalf("%s: after %d answers got %s (%v), want %v for each", what, n, describe(p), err, want)
				}
			}
		}
		first := pubs(false, "m")
		go func() { _ = sendRaw(c, first) }()
		expectAcks("first sends", codec.TypePubrec)
		for range resends {
			resent := pubs(true, "m")
			go func() { _ = sendRaw(c, resent) }()
			expectAcks("resends", codec.TypePubrec) // [MQTT-4.3.3-2]
		}
		// Every message arrived once, none again for its resends.
		seen := map[string]int{}
		for {
			p, err := sub.ReadErr(500 * time.Millisecond)
			if err != nil {
				break
			}
			if m, ok := p.(*codec.Publish); ok {
				seen[string(m.Payload)]++
			}
		}
		if len(seen) != ids {
			t.Errorf("%d distinct messages delivered, want %d", len(seen), ids)
		}
		for payload, n := range seen {
			if n != 1 {
				t.Errorf("%q delivered %d times, want once [MQTT-4.3.3-2]", payload, n)
				break
			}
		}
		// Released, the ids are free for new messages.
		var rel []byte
		for id := 1; id <= ids; id++ {
			b, _ := encode(codec.V311, &codec.Pubrel{PacketID: uint16(id)})
			rel = append(rel, b...)
		}
		go func() { _ = sendRaw(c, rel) }()
		expectAcks("PUBREL", codec.TypePubcomp)
		if err := send(c, &codec.Publish{QoS: 2, PacketID: 1, Topic: "qos2/three", Payload: []byte("new")}); err != nil {
			t.Fatal(err)
		}
		if p, err := sub.ReadErr(wait); err != nil || !isPayload(p, "new") {
			t.Fatalf("a new message on a released id: got %s, %v", describe(p), err)
		}
		y.check(t)
	})
}

func isPayload(p codec.Packet, payload string) bool {
	m, ok := p.(*codec.Publish)
	return ok && string(m.Payload) == payload
}
