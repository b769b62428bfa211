package tests

// End-to-end tests of the MQTT 5.0 core: CONNACK, sessions and their expiry, the QoS flows,
// takeover, shutdown and keep alive. Statements are cited from the OASIS MQTT Version 5.0
// standard (7 March 2019) as [MQTT-x.y.z-n]; sections without a numbered statement as §x.y.z.
//
// This file also holds the helpers of the 5.0 tests (v5_features_test.go, raw5_test.go).

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/actormq/actormq/codec"
	"github.com/actormq/actormq/config"
)

const (
	// v5Timeout bounds every wait for something that must happen.
	v5Timeout = 5 * time.Second
	// v5Quiet is how long a test waits to assert that something does not happen.
	v5Quiet = 300 * time.Millisecond
)

// ---- raw 5.0 client ----

// v5Client is a raw 5.0 client with a queue of packets read while waiting for another one,
// so that interleaved packets (a PUBLISH before a PUBACK) are neither lost nor misread.
type v5Client struct {
	*rawClient
	id      string
	pending []codec.Packet
	lastID  uint16
}

// v5Dial opens a socket to the broker's 5.0 listener without connecting.
func v5Dial(t testing.TB, b *testBroker) *v5Client {
	t.Helper()
	return &v5Client{rawClient: dialRaw(t, b.TCP5, codec.V5)}
}

// v5Connect dials and connects clientID (Clean Start 1, Keep Alive 30 unless mutated) and
// fails the test unless the CONNACK says Success.
func v5Connect(t testing.TB, b *testBroker, clientID string, mutate ...func(*codec.Connect)) (*v5Client, *codec.Connack) {
	t.Helper()
	c := v5Dial(t, b)
	c.id = clientID
	ack := c.Connect(clientID, mutate...)
	if ack.ReasonCode != codec.Success {
		reason, _ := ack.Properties.ReasonString()
		t.Fatalf("CONNACK for %q: %s (%q), want Success", clientID, ack.ReasonCode, reason)
	}
	if id, ok := ack.Properties.AssignedClientIdentifier(); ok {
		c.id = id
	}
	return c, ack
}

// v5Expiry sets the Session Expiry Interval of a CONNECT.
func v5Expiry(seconds uint32) func(*codec.Connect) {
	return func(p *codec.Connect) { p.Properties.SetSessionExpiryInterval(seconds) }
}

// v5Resume clears Clean Start.
func v5Resume(p *codec.Connect) { p.CleanStart = false }

// v5Describe names packets for failure messages.
func v5Describe(pkts []codec.Packet) string {
	if len(pkts) == 0 {
		return "nothing"
	}
	parts := make([]string, 0, len(pkts))
	for _, p := range pkts {
		switch p := p.(type) {
		case *codec.Publish:
			parts = append(parts, fmt.Sprintf("PUBLISH(topic %q qos %d id %d dup %v retain %v payload %q)",
				p.Topic, p.QoS, p.PacketID, p.Dup, p.Retain, v5Short(p.Payload)))
		case *codec.Disconnect:
			parts = append(parts, fmt.Sprintf("DISCONNECT(%s)", p.ReasonCode))
		case *codec.Puback:
			parts = append(parts, fmt.Sprintf("PUBACK(id %d %s)", p.PacketID, p.ReasonCode))
		case *codec.Pubrec:
			parts = append(parts, fmt.Sprintf("PUBREC(id %d %s)", p.PacketID, p.ReasonCode))
		case *codec.Pubrel:
			parts = append(parts, fmt.Sprintf("PUBREL(id %d %s)", p.PacketID, p.ReasonCode))
		case *codec.Pubcomp:
			parts = append(parts, fmt.Sprintf("PUBCOMP(id %d %s)", p.PacketID, p.ReasonCode))
		case *codec.Suback:
			parts = append(parts, fmt.Sprintf("SUBACK(id %d %v)", p.PacketID, p.ReasonCodes))
		default:
			parts = append(parts, p.Type().String())
		}
	}
	return strings.Join(parts, ", ")
}

func v5Short(b []byte) string {
	if len(b) > 40 {
		return string(b[:40]) + "…"
	}
	return string(b)
}

// v5Await returns the first packet of type T that match accepts (nil: any), from the queue of
// packets read earlier or from the socket; other packets are queued. It fails the test after
// v5Timeout or when the connection ends.
func v5Await[T codec.Packet](c *v5Client, what string, match func(T) bool) T {
	c.T.Helper()
	for i, p := range c.pending {
		if v, ok := p.(T); ok && (match == nil || match(v)) {
			c.pending = slices.Delete(c.pending, i, i+1)
			return v
		}
	}
	deadline := time.Now().Add(v5Timeout)
	for {
		p, err := c.ReadErr(time.Until(deadline))
		if err != nil {
			c.T.Fatalf("%s: waiting for %s: %v (received meanwhile: %s)", c.id, what, err, v5Describe(c.pending))
		}
		if v, ok := p.(T); ok && (match == nil || match(v)) {
			return v
		}
		c.pending = append(c.pending, p)
	}
}

// quiet asserts that nothing arrives within d and nothing unexpected is queued.
func (c *v5Client) quiet(d time.Duration) {
	c.T.Helper()
	if len(c.pending) > 0 {
		c.T.Fatalf("%s: unexpected %s", c.id, v5Describe(c.pending))
	}
	p, err := c.ReadErr(d)
	if err == nil {
		c.T.Fatalf("%s: unexpected %s within %v", c.id, v5Describe([]codec.Packet{p}), d)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		c.T.Fatalf("%s: connection ended while expecting silence: %v", c.id, err)
	}
}

func (c *v5Client) nextID() uint16 {
	c.lastID++
	if c.lastID == 0 {
		c.lastID = 1
	}
	return c.lastID
}

// subscribe sends one SUBSCRIBE (props may set its properties) and returns the SUBACK, which
// must carry one reason code per filter [MQTT-3.8.4-6].
func (c *v5Client) subscribe(props func(*codec.Properties), subs ...codec.Subscription) *codec.Suback {
	c.T.Helper()
	p := &codec.Subscribe{PacketID: c.nextID(), Subscriptions: subs}
	if props != nil {
		props(&p.Properties)
	}
	c.Send(p)
	ack := v5Await(c, "SUBACK", func(a *codec.Suback) bool { return a.PacketID == p.PacketID })
	if len(ack.ReasonCodes) != len(subs) {
		c.T.Fatalf("%s: SUBACK has %d reason codes for %d filters [MQTT-3.8.4-6]", c.id, len(ack.ReasonCodes), len(subs))
	}
	return ack
}

// sub subscribes to one filter and requires the requested QoS to be granted.
func (c *v5Client) sub(filter string, qos byte) {
	c.T.Helper()
	ack := c.subscribe(nil, codec.Subscription{Filter: filter, QoS: qos})
	if ack.ReasonCodes[0] != codec.ReasonCode(qos) {
		c.T.Fatalf("%s: SUBACK for %q: %s, want Granted QoS %d", c.id, filter, ack.ReasonCodes[0], qos)
	}
}

// unsubscribe sends one UNSUBSCRIBE and returns the UNSUBACK.
func (c *v5Client) unsubscribe(filters ...string) *codec.Unsuback {
	c.T.Helper()
	p := &codec.Unsubscribe{PacketID: c.nextID(), Filters: filters}
	c.Send(p)
	ack := v5Await(c, "UNSUBACK", func(a *codec.Unsuback) bool { return a.PacketID == p.PacketID })
	if len(ack.ReasonCodes) != len(filters) {
		c.T.Fatalf("%s: UNSUBACK has %d reason codes for %d filters [MQTT-3.11.3-1]", c.id, len(ack.ReasonCodes), len(filters))
	}
	return ack
}

// publish sends p, with a fresh packet id for QoS 1 and 2, and completes its exchange. It
// returns the reason code of the PUBACK (QoS 1) or PUBREC (QoS 2; the PUBREL/PUBCOMP that
// follow a successful PUBREC are done here), Success for QoS 0.
func (c *v5Client) publish(p *codec.Publish) codec.ReasonCode {
	c.T.Helper()
	if p.QoS > 0 && p.PacketID == 0 {
		p.PacketID = c.nextID()
	}
	id := p.PacketID
	c.Send(p)
	switch p.QoS {
	case 1:
		return v5Await(c, "PUBACK", func(a *codec.Puback) bool { return a.PacketID == id }).ReasonCode
	case 2:
		rec := v5Await(c, "PUBREC", func(a *codec.Pubrec) bool { return a.PacketID == id })
		if rec.ReasonCode < 0x80 {
			c.Send(&codec.Pubrel{PacketID: id})
			comp := v5Await(c, "PUBCOMP", func(a *codec.Pubcomp) bool { return a.PacketID == id })
			if comp.ReasonCode != codec.Success {
				c.T.Fatalf("%s: PUBCOMP for id %d: %s, want Success", c.id, id, comp.ReasonCode)
			}
		}
		return rec.ReasonCode
	}
	return codec.Success
}

// pub publishes a message that has subscribers: QoS 1 and 2 must be acknowledged with Success.
func (c *v5Client) pub(topic string, qos byte, payload string) {
	c.T.Helper()
	if code := c.publish(&codec.Publish{Topic: topic, QoS: qos, Payload: []byte(payload)}); code != codec.Success {
		c.T.Fatalf("%s: publish %q to %q at QoS %d: %s, want Success", c.id, payload, topic, qos, code)
	}
}

// expectPublish returns the next PUBLISH without acknowledging it.
func (c *v5Client) expectPublish() *codec.Publish {
	c.T.Helper()
	return v5Await[*codec.Publish](c, "PUBLISH", nil)
}

// ack acknowledges a received PUBLISH: PUBACK, or PUBREC, PUBREL, PUBCOMP.
func (c *v5Client) ack(p *codec.Publish) {
	c.T.Helper()
	switch p.QoS {
	case 1:
		c.Send(&codec.Puback{PacketID: p.PacketID})
	case 2:
		c.Send(&codec.Pubrec{PacketID: p.PacketID})
		rel := v5Await(c, "PUBREL", func(r *codec.Pubrel) bool { return r.PacketID == p.PacketID })
		if rel.ReasonCode != codec.Success {
			c.T.Fatalf("%s: PUBREL for id %d: %s, want Success", c.id, p.PacketID, rel.ReasonCode)
		}
		c.Send(&codec.Pubcomp{PacketID: p.PacketID})
	}
}

// receive returns the next PUBLISH and acknowledges it.
func (c *v5Client) receive() *codec.Publish {
	c.T.Helper()
	p := c.expectPublish()
	c.ack(p)
	return p
}

// receiveMsg receives the next PUBLISH and checks its topic and payload.
func (c *v5Client) receiveMsg(topic, payload string) *codec.Publish {
	c.T.Helper()
	p := c.receive()
	if p.Topic != topic || string(p.Payload) != payload {
		c.T.Fatalf("%s: received %s, want topic %q payload %q", c.id, v5Describe([]codec.Packet{p}), topic, payload)
	}
	return p
}

// disconnect sends DISCONNECT (mutated as given) and waits for the broker to close the socket,
// so that what follows sees the session detached.
func (c *v5Client) disconnect(mutate ...func(*codec.Disconnect)) {
	c.T.Helper()
	d := &codec.Disconnect{}
	for _, m := range mutate {
		m(d)
	}
	c.Send(d)
	c.ExpectClosed(v5Timeout)
}

// endSession disconnects with Session Expiry Interval 0, which ends a session that would
// otherwise outlive the test.
func (c *v5Client) endSession() {
	c.T.Helper()
	c.disconnect(func(d *codec.Disconnect) { d.Properties.SetSessionExpiryInterval(0) })
}

// drop closes the socket without DISCONNECT, as a network failure would.
func (c *v5Client) drop() {
	c.T.Helper()
	_ = c.Conn.Close()
}

// expectDisconnect asserts that the broker sends DISCONNECT with code and then closes the
// connection [MQTT-4.13.1-1] [MQTT-4.13.2-1] without sending anything after it
// [MQTT-3.14.4-1], and that the DISCONNECT carries no Session Expiry Interval [MQTT-3.14.2-2].
func (c *v5Client) expectDisconnect(code codec.ReasonCode) *codec.Disconnect {
	c.T.Helper()
	d := v5Await[*codec.Disconnect](c, "DISCONNECT "+code.String(), nil)
	if d.ReasonCode != code {
		reason, _ := d.Properties.ReasonString()
		c.T.Fatalf("%s: DISCONNECT %s (%q), want %s", c.id, d.ReasonCode, reason, code)
	}
	if d.Properties.Has(codec.PropSessionExpiryInterval) {
		c.T.Errorf("%s: the server's DISCONNECT carries a Session Expiry Interval [MQTT-3.14.2-2]", c.id)
	}
	if p := c.ExpectClosed(v5Timeout); p != nil {
		c.T.Errorf("%s: %s after DISCONNECT [MQTT-3.14.4-1]", c.id, v5Describe([]codec.Packet{p}))
	}
	return d
}

// v5Bystander is a client connected before a test provokes a protocol violation on another
// connection: it must go on publishing and receiving afterwards.
type v5Bystander struct {
	c *v5Client
	n int
}

func v5NewBystander(t testing.TB, b *testBroker) *v5Bystander {
	t.Helper()
	c, _ := v5Connect(t, b, "v5-bystander")
	c.sub("v5/bystander", 1)
	return &v5Bystander{c: c}
}

// check publishes a QoS 1 message to its own subscription and receives it.
func (y *v5Bystander) check() {
	y.c.T.Helper()
	y.n++
	payload := fmt.Sprintf("still served %d", y.n)
	y.c.pub("v5/bystander", 1, payload)
	y.c.receiveMsg("v5/bystander", payload)
}

// ---- paho client ----

// v5PahoClient is a github.com/eclipse/paho.golang client with its received messages.
type v5PahoClient struct {
	*paho.Client
	t       testing.TB
	connack *paho.Connack
	msgs    chan *paho.Publish
}

// v5Paho connects a paho client (Clean Start 1, Keep Alive 30 unless mutated) and disconnects
// it at the end of the test.
func v5Paho(t testing.TB, b *testBroker, clientID string, mutate ...func(*paho.Connect)) *v5PahoClient {
	t.Helper()
	conn, err := net.DialTimeout("tcp", b.TCP5, v5Timeout)
	if err != nil {
		t.Fatalf("dial %s: %v", b.TCP5, err)
	}
	msgs := make(chan *paho.Publish, 4096)
	c := paho.NewClient(paho.ClientConfig{
		Conn: conn,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){
			func(pr paho.PublishReceived) (bool, error) {
				select {
				case msgs <- pr.Packet:
				default: // the tests receive far fewer; a full buffer shows up as a wrong count
				}
				return true, nil
			},
		},
	})
	cp := &paho.Connect{ClientID: clientID, CleanStart: true, KeepAlive: 30}
	for _, m := range mutate {
		m(cp)
	}
	ctx, cancel := context.WithTimeout(context.Background(), v5Timeout)
	defer cancel()
	ack, err := c.Connect(ctx, cp)
	if err != nil {
		_ = conn.Close()
		t.Fatalf("paho connect %q: %v", clientID, err)
	}
	t.Cleanup(func() { _ = c.Disconnect(&paho.Disconnect{ReasonCode: 0}) })
	return &v5PahoClient{Client: c, t: t, connack: ack, msgs: msgs}
}

func (c *v5PahoClient) subscribe(filter string, qos byte) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), v5Timeout)
	defer cancel()
	ack, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: qos}}})
	if err != nil {
		c.t.Fatalf("paho subscribe %q: %v", filter, err)
	}
	if len(ack.Reasons) != 1 || ack.Reasons[0] != qos {
		c.t.Fatalf("paho subscribe %q: SUBACK %v, want [%d]", filter, ack.Reasons, qos)
	}
}

func (c *v5PahoClient) publish(topic string, qos byte, payload string) *paho.PublishResponse {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), v5Timeout)
	defer cancel()
	resp, err := c.Publish(ctx, &paho.Publish{Topic: topic, QoS: qos, Payload: []byte(payload)})
	if err != nil {
		c.t.Fatalf("paho publish to %q at QoS %d: %v", topic, qos, err)
	}
	return resp
}

// expect returns the next message the client received, failing after v5Timeout.
func (c *v5PahoClient) expect() *paho.Publish {
	c.t.Helper()
	select {
	case m := <-c.msgs:
		return m
	case <-time.After(v5Timeout):
		c.t.Fatalf("no message within %v", v5Timeout)
		return nil
	}
}

// quiet asserts that no message arrives within d.
func (c *v5PahoClient) quiet(d time.Duration) {
	c.t.Helper()
	select {
	case m := <-c.msgs:
		c.t.Fatalf("unexpected message on %q: %q", m.Topic, m.Payload)
	case <-time.After(d):
	}
}

// ---- CONNACK ----

// The CONNACK tells a 5.0 client the limits the server holds it to (§3.2.2.3): Receive
// Maximum, Maximum Packet Size, Topic Alias Maximum, Retain Available, Wildcard / Subscription
// Identifier / Shared Subscription Available, and Maximum QoS when the server does not support
// QoS 2 [MQTT-3.2.2-9].
func TestV5ConnackAdvertisesLimits(t *testing.T) {
	b := startBroker(t, func(c *config.Config) {
		c.MQTT.ReceiveMaximum = 77
		c.Limits.MaxPacketSize = 5000
		c.MQTT.TopicAliasMaximum = 9
		c.MQTT.MaxQoS = 1
		c.MQTT.RetainAvailable = false
		c.MQTT.WildcardSubscriptions = false
		c.MQTT.SubscriptionIdentifiers = false
		c.MQTT.SharedSubscriptions = false
	})
	_, ack := v5Connect(t, b, "v5-limits")
	p := &ack.Properties
	if v, ok := p.ReceiveMaximum(); !ok || v != 77 {
		t.Errorf("Receive Maximum = %d (present %v), want 77", v, ok)
	}
	if v, ok := p.MaximumPacketSize(); !ok || v != 5000 {
		t.Errorf("Maximum Packet Size = %d (present %v), want 5000", v, ok)
	}
	if v, ok := p.TopicAliasMaximum(); !ok || v != 9 {
		t.Errorf("Topic Alias Maximum = %d (present %v), want 9", v, ok)
	}
	if v, ok := p.MaximumQoS(); !ok || v != 1 {
		t.Errorf("Maximum QoS = %d (present %v), want 1 [MQTT-3.2.2-9]", v, ok)
	}
	if v, ok := p.RetainAvailable(); !ok || v {
		t.Errorf("Retain Available = %v (present %v), want present and 0", v, ok)
	}
	if v, ok := p.WildcardSubscriptionAvailable(); !ok || v {
		t.Errorf("Wildcard Subscription Available = %v (present %v), want present and 0", v, ok)
	}
	if v, ok := p.SubscriptionIdentifierAvailable(); !ok || v {
		t.Errorf("Subscription Identifier Available = %v (present %v), want present and 0", v, ok)
	}
	if v, ok := p.SharedSubscriptionAvailable(); !ok || v {
		t.Errorf("Shared Subscription Available = %v (present %v), want present and 0", v, ok)
	}
}

// With the defaults every feature is available: the availability properties are absent or 1,
// and Maximum QoS is absent, since a value of 2 is a Protocol Error (§3.2.2.3.4) and absence
// means QoS 2.
func TestV5ConnackDefaultsAdvertiseEverything(t *testing.T) {
	b := startBroker(t)
	_, ack := v5Connect(t, b, "v5-defaults")
	p := &ack.Properties
	if v, ok := p.MaximumQoS(); ok {
		t.Errorf("Maximum QoS %d sent although the server supports QoS 2", v)
	}
	if v, ok := p.ReceiveMaximum(); ok && v != uint16(b.Cfg.MQTT.ReceiveMaximum) {
		t.Errorf("Receive Maximum = %d, want %d", v, b.Cfg.MQTT.ReceiveMaximum)
	}
	for name, get := range map[string]func() (bool, bool){
		"Retain Available":                  p.RetainAvailable,
		"Wildcard Subscription Available":   p.WildcardSubscriptionAvailable,
		"Subscription Identifier Available": p.SubscriptionIdentifierAvailable,
		"Shared Subscription Available":     p.SharedSubscriptionAvailable,
	} {
		if v, ok := get(); ok && !v {
			t.Errorf("%s = 0 with the default configuration", name)
		}
	}
	if _, ok := p.AssignedClientIdentifier(); ok {
		t.Errorf("Assigned Client Identifier sent to a client that gave its own")
	}
}

// A server without QoS 1 and 2 says Maximum QoS 0 [MQTT-3.2.2-9] and still accepts a
// SUBSCRIBE requesting QoS 2, granting less [MQTT-3.2.2-10] [MQTT-3.8.4-7].
func TestV5ConnackMaximumQoSZero(t *testing.T) {
	b := startBroker(t, func(c *config.Config) { c.MQTT.MaxQoS = 0 })
	c, ack := v5Connect(t, b, "v5-qos0")
	if v, ok := ack.Properties.MaximumQoS(); !ok || v != 0 {
		t.Fatalf("Maximum QoS = %d (present %v), want 0 [MQTT-3.2.2-9]", v, ok)
	}
	sa := c.subscribe(nil, codec.Subscription{Filter: "v5/qos0/#", QoS: 2})
	if sa.ReasonCodes[0] != codec.GrantedQoS0 {
		t.Fatalf("SUBACK %s for a QoS 2 request, want Granted QoS 0 [MQTT-3.2.2-10]", sa.ReasonCodes[0])
	}
	c.pub("v5/qos0/a", 0, "hello")
	if p := c.receiveMsg("v5/qos0/a", "hello"); p.QoS != 0 {
		t.Fatalf("delivered at QoS %d, want 0", p.QoS)
	}
}

// A zero-length Client Identifier gets an Assigned Client Identifier, not used by any other
// session [MQTT-3.2.2-16], and the connection is processed as if the client had given it
// [MQTT-3.1.3-7]: a later CONNECT with that id takes the session over.
func TestV5AssignedClientIdentifier(t *testing.T) {
	b := startBroker(t)
	c1, ack1 := v5Connect(t, b, "")
	id1, ok := ack1.Properties.AssignedClientIdentifier()
	if !ok || id1 == "" {
		t.Fatalf("no Assigned Client Identifier for an empty client id [MQTT-3.2.2-16]")
	}
	_, ack2 := v5Connect(t, b, "")
	id2, ok := ack2.Properties.AssignedClientIdentifier()
	if !ok || id2 == "" || id2 == id1 {
		t.Fatalf("second Assigned Client Identifier %q (present %v), first %q: must be new [MQTT-3.2.2-16]", id2, ok, id1)
	}
	if ack1.SessionPresent {
		t.Errorf("Session Present 1 for a new assigned session with Clean Start 1 [MQTT-3.2.2-2]")
	}
	// The assigned id names c1's session: connecting with it takes c1 over.
	_, ack3 := v5Connect(t, b, id1)
	if _, ok := ack3.Properties.AssignedClientIdentifier(); ok {
		t.Errorf("Assigned Client Identifier sent to a client that gave its own")
	}
	c1.expectDisconnect(codec.SessionTakenOver)
}

// ---- sessions ----

// A session with Session Expiry Interval 0 ends with its connection (§3.1.2.11.2): a later
// CONNECT with Clean Start 0 finds none, Session Present 0 [MQTT-3.2.2-3] [MQTT-3.1.2-6],
// and its subscriptions are gone.
func TestV5SessionExpiryZeroEndsSessionAtDisconnect(t *testing.T) {
	b := startBroker(t)
	c, _ := v5Connect(t, b, "v5-zero")
	c.sub("v5/zero/t", 1)
	c.disconnect()
	waitFor(t, v5Timeout, "the session to end", func() bool { return b.Stats().Sessions.Load() == 0 })

	c2, ack := v5Connect(t, b, "v5-zero", v5Resume)
	if ack.SessionPresent {
		t.Fatalf("Session Present 1 after a session with expiry 0 ended [MQTT-3.2.2-3]")
	}
	pub, _ := v5Connect(t, b, "v5-zero-pub")
	if code := pub.publish(&codec.Publish{Topic: "v5/zero/t", QoS: 1, Payload: []byte("x")}); code != codec.NoMatchingSubscribers {
		t.Errorf("PUBACK %s after the only subscriber's session ended, want No matching subscribers", code)
	}
	c2.quiet(v5Quiet)
}

// A session with Session Expiry Interval > 0 is kept after the connection closes
// [MQTT-3.1.2-23]: a CONNECT with Clean Start 0 gets Session Present 1 [MQTT-3.2.2-3], the
// subscriptions are still there [MQTT-3.1.2-5] and the QoS 1 messages published meanwhile are
// delivered, in order [MQTT-4.6.0-6].
func TestV5SessionResumedWithSubscriptionsAndQueuedMessages(t *testing.T) {
	b := startBroker(t)
	c, _ := v5Connect(t, b, "v5-keep", v5Expiry(60))
	c.sub("v5/keep/t", 1)
	c.disconnect()

	pub, _ := v5Connect(t, b, "v5-keep-pub")
	for i := range 3 {
		pub.pub("v5/keep/t", 1, fmt.Sprintf("queued %d", i))
	}

	c2, ack := v5Connect(t, b, "v5-keep", v5Resume, v5Expiry(60))
	if !ack.SessionPresent {
		t.Fatalf("Session Present 0 for a kept session [MQTT-3.2.2-3]")
	}
	for i := range 3 {
		p := c2.receiveMsg("v5/keep/t", fmt.Sprintf("queued %d", i))
		if p.QoS != 1 {
			t.Errorf("queued message delivered at QoS %d, want 1", p.QoS)
		}
	}
	// The subscription is live again.
	pub.pub("v5/keep/t", 1, "live")
	c2.receiveMsg("v5/keep/t", "live")
	c2.quiet(v5Quiet)
	c2.endSession()
}

// When the Session Expiry Interval passes while the client is away, the server discards the
// session [MQTT-4.1.0-2]: the next CONNECT gets Session Present 0 [MQTT-3.2.2-3].
func TestV5SessionExpiresWhileDisconnected(t *testing.T) {
	b := startBroker(t)
	c, _ := v5Connect(t, b, "v5-short", v5Expiry(1))
	c.sub("v5/short/t", 1)
	c.disconnect()
	gone := time.Now()
	if b.Stats().Sessions.Load() != 1 {
		t.Fatalf("sessions = %d right after disconnect, want 1 (expiry 1 s) [MQTT-3.1.2-23]", b.Stats().Sessions.Load())
	}
	time.Sleep(time.Until(gone.Add(2 * time.Second)))

	c2, ack := v5Connect(t, b, "v5-short", v5Resume)
	if ack.SessionPresent {
		t.Fatalf("Session Present 1 two seconds after a session with expiry 1 s was left [MQTT-4.1.0-2]")
	}
	pub, _ := v5Connect(t, b, "v5-short-pub")
	pub.publish(&codec.Publish{Topic: "v5/short/t", QoS: 0, Payload: []byte("x")})
	c2.quiet(v5Quiet)
}

// A Session Expiry Interval above the configured maximum is capped, and the CONNACK says the
// value used (§3.2.2.3.2); a value below the cap is used as asked (absent, or the same value).
func TestV5SessionExpiryCappedByConfig(t *testing.T) {
	b := startBroker(t, func(c *config.Config) { c.Sessions.MaxSessionExpiry = config.Duration(10 * time.Second) })
	c, ack := v5Connect(t, b, "v5-cap", v5Expiry(3600))
	if v, ok := ack.Properties.SessionExpiryInterval(); !ok || v != 10 {
		t.Errorf("CONNACK Session Expiry Interval = %d (present %v), want 10 (the cap)", v, ok)
	}
	c.endSession()

	c2, ack2 := v5Connect(t, b, "v5-cap2", v5Expiry(5))
	if v, ok := ack2.Properties.SessionExpiryInterval(); ok && v != 5 {
		t.Errorf("CONNACK Session Expiry Interval = %d for a request of 5 below the cap", v)
	}
	c2.endSession()
}

// A Session Expiry Interval in the client's DISCONNECT replaces the one of the CONNECT
// (§3.14.2.2.2): 0 ends a session that would have been kept.
func TestV5DisconnectSessionExpiryZeroEndsSession(t *testing.T) {
	b := startBroker(t)
	c, _ := v5Connect(t, b, "v5-dz", v5Expiry(60))
	c.sub("v5/dz/t", 1)
	c.endSession()
	waitFor(t, v5Timeout, "the session to end", func() bool { return b.Stats().Sessions.Load() == 0 })
	_, ack := v5Connect(t, b, "v5-dz", v5Resume)
	if ack.SessionPresent {
		t.Fatalf("Session Present 1 after DISCONNECT with Session Expiry Interval 0")
	}
}

// ... and a longer one keeps a session that would have expired (§3.14.2.2.2).
func TestV5DisconnectSessionExpiryExtendsSession(t *testing.T) {
	b := startBroker(t)
	c, _ := v5Connect(t, b, "v5-dx", v5Expiry(1))
	c.sub("v5/dx/t", 1)
	c.disconnect(func(d *codec.Disconnect) { d.Properties.SetSessionExpiryInterval(60) })
	time.Sleep(2 * time.Second)

	pub, _ := v5Connect(t, b, "v5-dx-pub")
	pub.pub("v5/dx/t", 1, "kept")
	c2, ack := v5Connect(t, b, "v5-dx", v5Resume)
	if !ack.SessionPresent {
		t.Fatalf("Session Present 0: the DISCONNECT's Session Expiry Interval 60 was not used")
	}
	c2.receiveMsg("v5/dx/t", "kept")
	c2.endSession()
}

// With Session Expiry Interval 0 in the CONNECT, a non-zero one in the DISCONNECT is a
// Protocol Error: the server does not treat it as a valid DISCONNECT and answers DISCONNECT
// 0x82 (§3.14.2.2.2), which carries no Session Expiry Interval [MQTT-3.14.2-2]. Not being a
// valid DISCONNECT, it does not discard the will: the will is published [MQTT-3.1.2-8].
func TestV5DisconnectExpiryFromZeroIsProtocolError(t *testing.T) {
	b := startBroker(t)
	watcher, _ := v5Connect(t, b, "v5-pe-watch")
	watcher.sub("v5/pe/will", 0)
	c, _ := v5Connect(t, b, "v5-pe", func(p *codec.Connect) {
		p.Will = &codec.Will{Topic: "v5/pe/will", Payload: []byte("gone")}
	})
	c.Send(&codec.Disconnect{Properties: v5Props(func(p *codec.Properties) { p.SetSessionExpiryInterval(30) })})
	c.expectDisconnect(codec.ProtocolError)
	watcher.receiveMsg("v5/pe/will", "gone")
	waitFor(t, v5Timeout, "the session to end", func() bool { return b.Stats().Sessions.Load() == 1 })
}

// v5Props builds a property set.
func v5Props(set func(*codec.Properties)) codec.Properties {
	var p codec.Properties
	set(&p)
	return p
}

// ---- QoS ----

// Messages flow at QoS 0, 1 and 2 from a publisher through the broker to a subscriber, both
// paho clients: each QoS gets its acknowledgement [MQTT-3.3.4-1] [MQTT-4.3.2-4] [MQTT-4.3.3-8]
// [MQTT-4.3.3-11] and is delivered at min(published, granted) QoS [MQTT-3.8.4-8].
func TestV5QoSDelivery(t *testing.T) {
	cases := []struct {
		name           string
		pubQoS, subQoS byte
	}{
		{"qos0", 0, 2},
		{"qos1", 1, 2},
		{"qos2", 2, 2},
		{"qos2-granted1", 2, 1},
		{"qos1-granted0", 1, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := startBroker(t)
			sub := v5Paho(t, b, "v5-qsub")
			sub.subscribe("v5/qos/t", tc.subQoS)
			pub := v5Paho(t, b, "v5-qpub")
			resp := pub.publish("v5/qos/t", tc.pubQoS, "payload "+tc.name)
			if tc.pubQoS > 0 && resp.ReasonCode != 0 {
				t.Errorf("publish response reason 0x%02X, want Success", resp.ReasonCode)
			}
			m := sub.expect()
			want := min(tc.pubQoS, tc.subQoS)
			if m.Topic != "v5/qos/t" || string(m.Payload) != "payload "+tc.name || m.QoS != want {
				t.Fatalf("received topic %q payload %q QoS %d, want v5/qos/t %q QoS %d [MQTT-3.8.4-8]",
					m.Topic, m.Payload, m.QoS, "payload "+tc.name, want)
			}
			sub.quiet(v5Quiet)
		})
	}
}

// The broker's side of an outbound QoS 2 exchange: PUBLISH with DUP 0 [MQTT-4.3.3-2], PUBREL
// with the same packet id after PUBREC [MQTT-4.3.3-4], and no PUBLISH again after the PUBREL
// [MQTT-4.3.3-6].
func TestV5QoS2OutboundExchange(t *testing.T) {
	b := startBroker(t)
	sub, _ := v5Connect(t, b, "v5-q2sub")
	sub.sub("v5/q2/t", 2)
	pub, _ := v5Connect(t, b, "v5-q2pub")
	pub.pub("v5/q2/t", 2, "once")

	p := sub.expectPublish()
	if p.QoS != 2 || p.Dup || p.PacketID == 0 || string(p.Payload) != "once" {
		t.Fatalf("received %s, want QoS 2, DUP 0, a packet id [MQTT-4.3.3-2]", v5Describe([]codec.Packet{p}))
	}
	sub.Send(&codec.Pubrec{PacketID: p.PacketID})
	rel := v5Await(sub, "PUBREL", func(*codec.Pubrel) bool { return true })
	if rel.PacketID != p.PacketID || rel.ReasonCode != codec.Success {
		t.Fatalf("PUBREL id %d %s, want id %d Success [MQTT-4.3.3-4]", rel.PacketID, rel.ReasonCode, p.PacketID)
	}
	sub.Send(&codec.Pubcomp{PacketID: p.PacketID})
	sub.quiet(v5Quiet)
}

// A QoS 1 or 2 PUBLISH that matches no subscription is acknowledged with 0x10 No matching
// subscribers (§3.4.2.1, §3.5.2.1); with a subscriber it is 0x00.
func TestV5PubackNoMatchingSubscribers(t *testing.T) {
	b := startBroker(t)
	c, _ := v5Connect(t, b, "v5-nomatch")
	if code := c.publish(&codec.Publish{Topic: "v5/nobody", QoS: 1, Payload: []byte("x")}); code != codec.NoMatchingSubscribers {
		t.Errorf("PUBACK %s, want No matching subscribers", code)
	}
	if code := c.publish(&codec.Publish{Topic: "v5/nobody", QoS: 2, Payload: []byte("x")}); code != codec.NoMatchingSubscribers {
		t.Errorf("PUBREC %s, want No matching subscribers", code)
	}
	c.sub("v5/somebody", 1)
	if code := c.publish(&codec.Publish{Topic: "v5/somebody", QoS: 1, Payload: []byte("x")}); code != codec.Success {
		t.Errorf("PUBACK %s with a subscriber, want Success", code)
	}
	c.receive()
}

// An unacknowledged QoS 1 message is sent again when the client resumes its session, with
// its original packet id [MQTT-4.4.0-1] and DUP 1 [MQTT-3.3.1-1].
func TestV5RedeliveryOnReconnectSetsDup(t *testing.T) {
	b := startBroker(t)
	sub, _ := v5Connect(t, b, "v5-redeliver", v5Expiry(60))
	sub.sub("v5/redeliver/t", 1)
	pub, _ := v5Connect(t, b, "v5-redeliver-pub")
	pub.pub("v5/redeliver/t", 1, "again")

	first := sub.expectPublish()
	if first.Dup {
		t.Errorf("first delivery has DUP 1")
	}
	sub.drop() // no PUBACK

	sub2, ack := v5Connect(t, b, "v5-redeliver", v5Resume, v5Expiry(60))
	if !ack.SessionPresent {
		t.Fatalf("Session Present 0 for a kept session")
	}
	again := sub2.expectPublish()
	if !again.Dup || again.PacketID != first.PacketID || string(again.Payload) != "again" || again.QoS != 1 {
		t.Fatalf("redelivered %s, want DUP 1 with packet id %d [MQTT-3.3.1-1] [MQTT-4.4.0-1]",
			v5Describe([]codec.Packet{again}), first.PacketID)
	}
	sub2.ack(again)
	sub2.quiet(v5Quiet)
	sub2.endSession()
}

// A QoS 2 message whose PUBREL was sent but not completed is resumed with the PUBREL, same
// packet id [MQTT-4.4.0-1], and the PUBLISH is not sent again [MQTT-4.3.3-6].
func TestV5PubrelResentOnReconnect(t *testing.T) {
	b := startBroker(t)
	sub, _ := v5Connect(t, b, "v5-rel", v5Expiry(60))
	sub.sub("v5/rel/t", 2)
	pub, _ := v5Connect(t, b, "v5-rel-pub")
	pub.pub("v5/rel/t", 2, "exactly once")

	p := sub.expectPublish()
	sub.Send(&codec.Pubrec{PacketID: p.PacketID})
	v5Await(sub, "PUBREL", func(r *codec.Pubrel) bool { return r.PacketID == p.PacketID })
	sub.drop() // no PUBCOMP

	sub2, ack := v5Connect(t, b, "v5-rel", v5Resume, v5Expiry(60))
	if !ack.SessionPresent {
		t.Fatalf("Session Present 0 for a kept session")
	}
	pkt, err := sub2.ReadErr(v5Timeout)
	if err != nil {
		t.Fatalf("nothing resumed: %v", err)
	}
	rel, ok := pkt.(*codec.Pubrel)
	if !ok || rel.PacketID != p.PacketID {
		t.Fatalf("resumed with %s, want PUBREL id %d [MQTT-4.4.0-1] [MQTT-4.3.3-6]", v5Describe([]codec.Packet{pkt}), p.PacketID)
	}
	sub2.Send(&codec.Pubcomp{PacketID: p.PacketID})
	sub2.quiet(v5Quiet)
	sub2.endSession()
}

// A retransmitted QoS 2 PUBLISH (same packet id, before PUBREL) is acknowledged with PUBREC
// again but not delivered again [MQTT-4.3.3-10]; PUBREL gets PUBCOMP [MQTT-4.3.3-11]; after
// that the packet id starts a new message [MQTT-4.3.3-12].
func TestV5QoS2RetransmittedPublishDeliveredOnce(t *testing.T) {
	b := startBroker(t)
	sub, _ := v5Connect(t, b, "v5-eo-sub")
	sub.sub("v5/eo/t", 2)
	pub, _ := v5Connect(t, b, "v5-eo-pub")

	msg := &codec.Publish{Topic: "v5/eo/t", QoS: 2, PacketID: 7, Payload: []byte("one")}
	pub.Send(msg)
	if rec := v5Await(pub, "PUBREC", func(*codec.Pubrec) bool { return true }); rec.PacketID != 7 || rec.ReasonCode != codec.Success {
		t.Fatalf("PUBREC id %d %s, want id 7 Success [MQTT-4.3.3-8]", rec.PacketID, rec.ReasonCode)
	}
	dup := *msg
	dup.Dup = true
	pub.Send(&dup)
	if rec := v5Await(pub, "PUBREC", func(*codec.Pubrec) bool { return true }); rec.PacketID != 7 || rec.ReasonCode >= 0x80 {
		t.Fatalf("PUBREC for the retransmission: id %d %s [MQTT-4.3.3-10]", rec.PacketID, rec.ReasonCode)
	}
	sub.receiveMsg("v5/eo/t", "one")
	sub.quiet(v5Quiet) // not twice [MQTT-4.3.3-10]

	pub.Send(&codec.Pubrel{PacketID: 7})
	if comp := v5Await(pub, "PUBCOMP", func(*codec.Pubcomp) bool { return true }); comp.PacketID != 7 || comp.ReasonCode != codec.Success {
		t.Fatalf("PUBCOMP id %d %s, want id 7 Success [MQTT-4.3.3-11]", comp.PacketID, comp.ReasonCode)
	}
	// Packet id 7 is free again: a new message [MQTT-4.3.3-12].
	pub.publish(&codec.Publish{Topic: "v5/eo/t", QoS: 2, PacketID: 7, Payload: []byte("two")})
	sub.receiveMsg("v5/eo/t", "two")
	sub.quiet(v5Quiet)
}

// A PUBREL for a packet id the server holds no QoS 2 state for is answered with PUBCOMP 0x92
// Packet Identifier not found (§3.7.2.1), and the connection goes on.
func TestV5PubrelUnknownPacketID(t *testing.T) {
	b := startBroker(t)
	c, _ := v5Connect(t, b, "v5-unknown-rel")
	c.Send(&codec.Pubrel{PacketID: 99})
	comp := v5Await(c, "PUBCOMP", func(*codec.Pubcomp) bool { return true })
	if comp.PacketID != 99 || comp.ReasonCode != codec.PacketIdentifierNotFound {
		t.Fatalf("PUBCOMP id %d %s, want id 99 Packet Identifier not found", comp.PacketID, comp.ReasonCode)
	}
	c.sub("v5/unknown-rel/t", 1)
	c.pub("v5/unknown-rel/t", 1, "fine")
	c.receiveMsg("v5/unknown-rel/t", "fine")
}

// ---- connections ----

// A CONNECT with the client id of a connected client takes the session over: the old client
// gets DISCONNECT 0x8E Session taken over and its connection is closed [MQTT-3.1.4-3]; the
// new one is served.
func TestV5SessionTakeover(t *testing.T) {
	b := startBroker(t)
	old, _ := v5Connect(t, b, "v5-twin")
	old.sub("v5/twin/t", 1)
	nw, _ := v5Connect(t, b, "v5-twin", v5Resume)
	old.expectDisconnect(codec.SessionTakenOver)
	nw.sub("v5/twin/t", 1)
	nw.pub("v5/twin/t", 1, "mine now")
	nw.receiveMsg("v5/twin/t", "mine now")
}

// A broker that shuts down tells each 5.0 client with DISCONNECT 0x8B Server shutting down
// (§3.14.2.1) and closes the connection [MQTT-4.13.2-1]. The harness stops the broker again
// at cleanup; that second Stop must be harmless.
func TestV5ServerShutdownSendsDisconnect(t *testing.T) {
	b := startBroker(t)
	c, _ := v5Connect(t, b, "v5-shutdown")
	c.sub("v5/shutdown/t", 1)
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- b.Stop(ctx)
	}()
	c.expectDisconnect(codec.ServerShuttingDown)
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Stop: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("Stop did not return")
	}
}

// When the server's max keep alive is below what the client asks, the CONNACK carries Server
// Keep Alive, which the client must use [MQTT-3.2.2-21]; the server holds the client to it
// and closes a silent connection with DISCONNECT 0x8D after 1.5 times that [MQTT-3.1.2-22].
// A request within the limit gets no Server Keep Alive, or the same value [MQTT-3.2.2-22].
func TestV5ServerKeepAlive(t *testing.T) {
	b := startBroker(t, func(c *config.Config) { c.MQTT.MaxKeepAlive = 1 })
	c, ack := v5Connect(t, b, "v5-ska", func(p *codec.Connect) { p.KeepAlive = 60 })
	connected := time.Now()
	if v, ok := ack.Properties.ServerKeepAlive(); !ok || v != 1 {
		t.Fatalf("Server Keep Alive = %d (present %v), want 1 [MQTT-3.2.2-21]", v, ok)
	}
	c.expectDisconnect(codec.KeepAliveTimeout)
	if d := time.Since(connected); d > 3*time.Second {
		t.Errorf("closed after %v, want about 1.5 s (Server Keep Alive 1) [MQTT-3.1.2-22]", d)
	}

	c2, ack2 := v5Connect(t, b, "v5-ska2", func(p *codec.Connect) { p.KeepAlive = 1 })
	if v, ok := ack2.Properties.ServerKeepAlive(); ok && v != 1 {
		t.Errorf("Server Keep Alive %d for a keep alive within the limit", v)
	}
	c2.disconnect()
}

// A client that sends nothing for 1.5 times its Keep Alive is disconnected with DISCONNECT
// 0x8D Keep Alive timeout [MQTT-3.1.2-22]; one that sends PINGREQ in time gets PINGRESP
// [MQTT-3.12.4-1] and stays connected.
func TestV5KeepAliveTimeout(t *testing.T) {
	b := startBroker(t)
	pinger, _ := v5Connect(t, b, "v5-pinger", func(p *codec.Connect) { p.KeepAlive = 1 })
	silent, _ := v5Connect(t, b, "v5-silent", func(p *codec.Connect) { p.KeepAlive = 1 })
	connected := time.Now()

	closed := make(chan time.Duration, 1)
	go func() {
		// Read the silent client's socket on the side; the pinger is driven here.
		buf := make([]byte, 64)
		_ = silent.Conn.SetReadDeadline(time.Now().Add(v5Timeout))
		var got []byte
		for {
			n, err := silent.Conn.Read(buf)
			got = append(got, buf[:n]...)
			if err != nil {
				break
			}
		}
		// DISCONNECT 0x8D: type 0xE0, then at least the reason code.
		if len(got) < 3 || got[0] != 0xE0 || got[2] != byte(codec.KeepAliveTimeout) {
			closed <- -1
			return
		}
		closed <- time.Since(connected)
	}()

	for time.Since(connected) < 2500*time.Millisecond {
		pinger.Send(&codec.Pingreq{})
		v5Await(pinger, "PINGRESP", func(*codec.Pingresp) bool { return true })
		time.Sleep(500 * time.Millisecond)
	}
	select {
	case d := <-closed:
		switch {
		case d < 0:
			t.Errorf("the silent client was not sent DISCONNECT 0x8D before the close")
		case d < time.Second:
			t.Errorf("the silent client was disconnected after %v, before its keep alive of 1 s", d)
		case d > 3*time.Second:
			t.Errorf("the silent client was disconnected after %v, want about 1.5 s [MQTT-3.1.2-22]", d)
		}
	case <-time.After(v5Timeout):
		t.Fatalf("the silent client was not disconnected [MQTT-3.1.2-22]")
	}
	// The pinger, active all along, is still connected.
	pinger.sub("v5/pinger", 0)
	pinger.disconnect()
}
