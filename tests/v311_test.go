package tests

// End-to-end tests of MQTT 3.1.1 against a real broker, driven by the Eclipse Paho client and,
// where a library cannot express the case, by raw packets. Each test cites the normative
// statement of the OASIS MQTT 3.1.1 specification it checks.

import (
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/actormq/actormq/codec"
	"github.com/actormq/actormq/config"
)

// v3Wait bounds every wait on the broker; v3Quiet is how long a test waits to conclude that
// something does NOT arrive.
const (
	v3Wait  = 5 * time.Second
	v3Quiet = 250 * time.Millisecond
)

// v3Msg is one message a Paho client received.
type v3Msg struct {
	Topic    string
	Payload  string
	QoS      byte
	Retained bool
	Dup      bool
}

// v3Client is a Paho client whose every received message, whatever subscription it matched
// (also those of a resumed session, which have no handler in a new client), lands in msgs.
type v3Client struct {
	mqtt.Client
	t              testing.TB
	id             string
	msgs           chan v3Msg
	sessionPresent bool
}

// v3Options are the options every test client starts from: MQTT 3.1.1, no automatic
// reconnect or retry, short timeouts.
func v3Options(url, clientID string) *mqtt.ClientOptions {
	return mqtt.NewClientOptions().
		AddBroker(url).
		SetClientID(clientID).
		SetProtocolVersion(4).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetConnectTimeout(3 * time.Second).
		SetWriteTimeout(3 * time.Second).
		SetKeepAlive(30 * time.Second).
		SetOrderMatters(true)
}

// v3Connect connects a Paho client (clean session unless mutate says otherwise) to url
// ("tcp://host:port" or "ws://host:port/path") and disconnects it when the test ends. Call
// it after startBroker, so that its cleanup runs before the broker's leak check.
func v3Connect(t testing.TB, url, clientID string, mutate ...func(*mqtt.ClientOptions)) *v3Client {
	t.Helper()
	c, err := v3TryConnect(t, url, clientID, mutate...)
	if err != nil {
		t.Fatalf("connect %q to %s: %v", clientID, url, err)
	}
	return c
}

func v3TryConnect(t testing.TB, url, clientID string, mutate ...func(*mqtt.ClientOptions)) (*v3Client, error) {
	t.Helper()
	c := &v3Client{t: t, id: clientID, msgs: make(chan v3Msg, 4096)}
	opts := v3Options(url, clientID).SetCleanSession(true)
	opts.SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) {
		msg := v3Msg{Topic: m.Topic(), Payload: string(m.Payload()), QoS: m.Qos(), Retained: m.Retained(), Dup: m.Duplicate()}
		select {
		case c.msgs <- msg:
		default:
			t.Errorf("client %q: message buffer full, dropping %+v", clientID, msg)
		}
	})
	for _, m := range mutate {
		m(opts)
	}
	c.Client = mqtt.NewClient(opts)
	tok := c.Connect()
	if !tok.WaitTimeout(v3Wait) {
		c.Disconnect(0)
		return nil, errors.New("CONNACK timeout")
	}
	if err := tok.Error(); err != nil {
		return nil, err
	}
	c.sessionPresent = tok.(*mqtt.ConnectToken).SessionPresent()
	t.Cleanup(func() { c.Disconnect(100) })
	return c, nil
}

// v3Persistent connects with clean session 0.
func v3Persistent(o *mqtt.ClientOptions) { o.SetCleanSession(false) }

// sub subscribes to one filter and returns the granted QoS.
func (c *v3Client) sub(filter string, qos byte) byte {
	c.t.Helper()
	tok := c.Subscribe(filter, qos, nil)
	if !tok.WaitTimeout(v3Wait) {
		c.t.Fatalf("client %q: no SUBACK for %q within %v", c.id, filter, v3Wait)
	}
	if err := tok.Error(); err != nil {
		c.t.Fatalf("client %q: subscribe %q: %v", c.id, filter, err)
	}
	granted, ok := tok.(*mqtt.SubscribeToken).Result()[filter]
	if !ok {
		c.t.Fatalf("client %q: SUBACK without a code for %q", c.id, filter)
	}
	return granted
}

// pub publishes and waits for the exchange of its QoS to complete.
func (c *v3Client) pub(topic string, qos byte, retain bool, payload string) {
	c.t.Helper()
	tok := c.Publish(topic, qos, retain, payload)
	if !tok.WaitTimeout(v3Wait) {
		c.t.Fatalf("client %q: publish to %q (QoS %d) not acknowledged within %v", c.id, topic, qos, v3Wait)
	}
	if err := tok.Error(); err != nil {
		c.t.Fatalf("client %q: publish to %q: %v", c.id, topic, err)
	}
}

// next returns the next message, failing the test after v3Wait.
func (c *v3Client) next() v3Msg {
	c.t.Helper()
	select {
	case m := <-c.msgs:
		return m
	case <-time.After(v3Wait):
		c.t.Fatalf("client %q: no message within %v", c.id, v3Wait)
		return v3Msg{}
	}
}

// none asserts that no message arrives within d.
func (c *v3Client) none(d time.Duration) {
	c.t.Helper()
	select {
	case m := <-c.msgs:
		c.t.Fatalf("client %q: unexpected message %+v", c.id, m)
	case <-time.After(d):
	}
}

// collect returns the messages that arrive until none has come for quiet (at most v3Wait).
func (c *v3Client) collect(quiet time.Duration) []v3Msg {
	var out []v3Msg
	deadline := time.After(v3Wait)
	for {
		select {
		case m := <-c.msgs:
			out = append(out, m)
		case <-time.After(quiet):
			return out
		case <-deadline:
			return out
		}
	}
}

// ---- raw client helpers ----

// v3RawConnect dials addr and connects clientID as 3.1.1, failing unless accepted.
func v3RawConnect(t testing.TB, addr, clientID string, mutate ...func(*codec.Connect)) (*rawClient, *codec.Connack) {
	t.Helper()
	rc := dialRaw(t, addr, codec.V311)
	ack := rc.Connect(clientID, mutate...)
	if ack.ReasonCode != codec.ConnAccepted {
		t.Fatalf("client %q refused: CONNACK 0x%02X", clientID, byte(ack.ReasonCode))
	}
	return rc, ack
}

func v3NotClean(c *codec.Connect) { c.CleanStart = false }

// v3Subscribe sends a SUBSCRIBE for one filter and checks the SUBACK.
func v3Subscribe(rc *rawClient, id uint16, filter string, qos byte) {
	rc.T.Helper()
	rc.Send(&codec.Subscribe{PacketID: id, Subscriptions: []codec.Subscription{{Filter: filter, QoS: qos}}})
	ack, ok := rc.Read().(*codec.Suback)
	if !ok {
		rc.T.Fatalf("expected SUBACK")
	}
	if ack.PacketID != id || len(ack.ReasonCodes) != 1 || ack.ReasonCodes[0] != codec.ReasonCode(qos) {
		rc.T.Fatalf("SUBACK = %+v, want packet id %d granting QoS %d", ack, id, qos)
	}
}

// v3ReadPublish reads the next packet and fails unless it is a PUBLISH.
func v3ReadPublish(rc *rawClient) *codec.Publish {
	rc.T.Helper()
	p := rc.Read()
	pub, ok := p.(*codec.Publish)
	if !ok {
		rc.T.Fatalf("expected PUBLISH, got %T %+v", p, p)
	}
	return pub
}

// v3ExpectSilence asserts that nothing arrives on rc within d and the connection stays open.
func v3ExpectSilence(rc *rawClient, d time.Duration) {
	rc.T.Helper()
	p, err := rc.ReadErr(d)
	var ne net.Error
	switch {
	case err == nil:
		rc.T.Fatalf("unexpected %T %+v", p, p)
	case !errors.As(err, &ne) || !ne.Timeout():
		rc.T.Fatalf("connection ended while waiting: %v", err)
	}
}

// v3Disconnect sends DISCONNECT and waits for the broker to close the socket, so that the
// session has seen the end of the connection before the test goes on.
func v3Disconnect(rc *rawClient) {
	rc.T.Helper()
	rc.Send(&codec.Disconnect{})
	if p := rc.ExpectClosed(v3Wait); p != nil {
		rc.T.Fatalf("unexpected %T before close", p)
	}
}

// ---- connection and session ----

// [MQTT-3.1.4-4] If CONNECT validation is successful the Server MUST acknowledge the CONNECT
// Packet with a CONNACK Packet containing a zero return code.
func TestV311ConnectAccepted(t *testing.T) {
	b := startBroker(t)
	rc := dialRaw(t, b.TCP311, codec.V311)
	ack := rc.Connect("accepted")
	if ack.ReasonCode != codec.ConnAccepted {
		t.Fatalf("CONNACK return code 0x%02X, want 0", byte(ack.ReasonCode))
	}
	c := v3Connect(t, "tcp://"+b.TCP311, "accepted-paho")
	if !c.IsConnectionOpen() {
		t.Fatal("paho client not connected after CONNACK")
	}
	waitFor(t, v3Wait, "two connected clients", func() bool { return b.Stats().Connected.Load() == 2 })
}

// [MQTT-3.2.2-1] If the Server accepts a connection with CleanSession set to 1, the Server MUST
// set Session Present to 0 in the CONNACK packet, even when it held a session for the client.
// [MQTT-3.1.2-6] the previous session is discarded: its subscription no longer delivers.
func TestV311CleanSessionSessionPresentZero(t *testing.T) {
	b := startBroker(t)
	old, _ := v3RawConnect(t, b.TCP311, "clean", v3NotClean)
	v3Subscribe(old, 1, "clean/t", 1)
	v3Disconnect(old)

	rc, ack := v3RawConnect(t, b.TCP311, "clean") // clean session 1
	if ack.SessionPresent {
		t.Fatal("CONNACK Session Present = 1 for clean session 1, want 0")
	}
	pub := v3Connect(t, "tcp://"+b.TCP311, "clean-pub")
	pub.pub("clean/t", 1, false, "stale subscription")
	v3ExpectSilence(rc, v3Quiet)
}

// [MQTT-3.2.2-2] If the Server accepts a connection with CleanSession set to 0 and has stored
// Session state, it MUST set Session Present to 1 ([MQTT-3.2.2-3] 0 when it has none), and
// [MQTT-3.1.2-4] resume the session: its subscriptions still deliver.
func TestV311PersistentSessionPresentAndSubscriptionsKept(t *testing.T) {
	b := startBroker(t)
	url := "tcp://" + b.TCP311
	first := v3Connect(t, url, "keeper", v3Persistent)
	if first.sessionPresent {
		t.Fatal("first connect: Session Present = 1 without a stored session, want 0")
	}
	first.sub("keep/+", 1)
	first.Disconnect(250)
	waitFor(t, v3Wait, "the first connection to end", func() bool { return b.Stats().Connected.Load() == 0 })

	again := v3Connect(t, url, "keeper", v3Persistent)
	if !again.sessionPresent {
		t.Fatal("reconnect with clean session 0: Session Present = 0, want 1")
	}
	pub := v3Connect(t, url, "keeper-pub")
	pub.pub("keep/a", 1, false, "still subscribed")
	if m := again.next(); m.Topic != "keep/a" || m.Payload != "still subscribed" {
		t.Fatalf("got %+v, want the message on keep/a", m)
	}
}

// [MQTT-3.8.4-6] The QoS of Payload Messages sent in response to a Subscription MUST be the
// minimum of the QoS of the originally published message and the maximum QoS granted.
// Every pair of publish QoS and granted QoS, so both the client→broker and the broker→client
// flows of QoS 0, 1 and 2 run.
func TestV311DeliveredQoSIsMinOfPublishAndGranted(t *testing.T) {
	b := startBroker(t)
	url := "tcp://" + b.TCP311
	subs := make([]*v3Client, 3)
	for g := range subs {
		subs[g] = v3Connect(t, url, fmt.Sprintf("qos-sub-%d", g))
		if got := subs[g].sub(fmt.Sprintf("qos/g%d", g), byte(g)); got != byte(g) {
			t.Fatalf("SUBACK granted QoS %d, want %d", got, g)
		}
	}
	pub := v3Connect(t, url, "qos-pub")
	for p := 0; p <= 2; p++ {
		for g := 0; g <= 2; g++ {
			pub.pub(fmt.Sprintf("qos/g%d", g), byte(p), false, fmt.Sprintf("p%d", p))
		}
	}
	for g, s := range subs {
		seen := map[string]byte{}
		for range 3 {
			m := s.next()
			seen[m.Payload] = m.QoS
		}
		for p := 0; p <= 2; p++ {
			got, ok := seen[fmt.Sprintf("p%d", p)]
			if !ok {
				t.Errorf("granted QoS %d: the QoS %d publish did not arrive (got %v)", g, p, seen)
				continue
			}
			if want := byte(min(p, g)); got != want {
				t.Errorf("publish QoS %d, granted QoS %d: delivered at QoS %d, want %d", p, g, got, want)
			}
		}
		s.none(v3Quiet)
	}
}

// [MQTT-4.6.0-6] The Server MUST send PUBLISH packets to consumers (for the same Topic and QoS)
// in the order that they were received from any given Client.
func TestV311QoS1InOrderDelivery(t *testing.T) {
	b := startBroker(t)
	url := "tcp://" + b.TCP311
	sub := v3Connect(t, url, "order-sub")
	sub.sub("order/t", 1)
	pub := v3Connect(t, url, "order-pub")

	const n = 200
	toks := make([]mqtt.Token, n)
	for i := range n {
		toks[i] = pub.Publish("order/t", 1, false, strconv.Itoa(i))
	}
	for i, tok := range toks {
		if !tok.WaitTimeout(v3Wait) || tok.Error() != nil {
			t.Fatalf("publish %d not acknowledged: %v", i, tok.Error())
		}
	}
	for i := range n {
		m := sub.next()
		if m.Payload != strconv.Itoa(i) || m.QoS != 1 {
			t.Fatalf("message %d: got payload %q QoS %d, want %q QoS 1", i, m.Payload, m.QoS, strconv.Itoa(i))
		}
	}
	sub.none(v3Quiet)
}

// [MQTT-4.4.0-1] When a Client reconnects with CleanSession set to 0, the Server MUST re-send
// any unacknowledged PUBLISH Packets (where QoS > 0) using their original Packet Identifiers,
// and [MQTT-3.3.1-1] with the DUP flag set to 1.
func TestV311RedeliveryOfUnackedQoS1WithDup(t *testing.T) {
	b := startBroker(t)
	sub, _ := v3RawConnect(t, b.TCP311, "redeliver", v3NotClean)
	v3Subscribe(sub, 1, "redeliver/t", 1)
	pub := v3Connect(t, "tcp://"+b.TCP311, "redeliver-pub")
	pub.pub("redeliver/t", 1, false, "ack me")

	first := v3ReadPublish(sub)
	if first.QoS != 1 || first.Dup || string(first.Payload) != "ack me" {
		t.Fatalf("first delivery %+v, want QoS 1, DUP 0, payload %q", first, "ack me")
	}
	_ = sub.Conn.Close() // gone without PUBACK

	again, ack := v3RawConnect(t, b.TCP311, "redeliver", v3NotClean)
	if !ack.SessionPresent {
		t.Fatal("Session Present = 0 on reconnect, want 1")
	}
	re := v3ReadPublish(again)
	if re.PacketID != first.PacketID || !re.Dup || re.QoS != 1 || string(re.Payload) != "ack me" || re.Topic != "redeliver/t" {
		t.Fatalf("redelivery %+v, want packet id %d with DUP 1, QoS 1, same topic and payload", re, first.PacketID)
	}
	again.Send(&codec.Puback{PacketID: re.PacketID})
	v3ExpectSilence(again, v3Quiet) // acknowledged: not sent a third time
}

// [MQTT-3.1.2-5] After the disconnection of a Session that had CleanSession set to 0, the Server
// MUST store further QoS 1 and QoS 2 messages that match its subscriptions, and deliver them
// when the client comes back.
func TestV311OfflineQueueDeliveredOnReconnect(t *testing.T) {
	b := startBroker(t)
	url := "tcp://" + b.TCP311
	sub := v3Connect(t, url, "offline", v3Persistent)
	sub.sub("offline/t", 1)
	sub.Disconnect(250)
	waitFor(t, v3Wait, "the subscriber to be gone", func() bool { return b.Stats().Connected.Load() == 0 })

	pub := v3Connect(t, url, "offline-pub")
	for i := range 5 {
		pub.pub("offline/t", 1, false, fmt.Sprintf("queued %d", i))
	}
	back := v3Connect(t, url, "offline", v3Persistent)
	if !back.sessionPresent {
		t.Fatal("Session Present = 0 on reconnect, want 1")
	}
	for i := range 5 {
		if m := back.next(); m.Payload != fmt.Sprintf("queued %d", i) || m.QoS != 1 {
			t.Fatalf("queued message %d: got %+v", i, m)
		}
	}
	back.none(v3Quiet)
}

// [MQTT-4.3.3-2] The QoS 2 Receiver, until it has received the PUBREL, MUST acknowledge any
// subsequent PUBLISH with the same Packet Identifier by sending a PUBREC and MUST NOT cause
// duplicate messages to be delivered to any onward recipients; after it has sent PUBCOMP it
// MUST treat a PUBLISH with that Packet Identifier as a new publication.
func TestV311QoS2ExactlyOnce(t *testing.T) {
	b := startBroker(t)
	sub := v3Connect(t, "tcp://"+b.TCP311, "once-sub")
	sub.sub("once/t", 2)
	pub, _ := v3RawConnect(t, b.TCP311, "once-pub")

	expectAck := func(want codec.PacketType) {
		t.Helper()
		p := pub.Read()
		var id uint16
		switch a := p.(type) {
		case *codec.Pubrec:
			id = a.PacketID
		case *codec.Pubcomp:
			id = a.PacketID
		}
		if p.Type() != want || id != 7 {
			t.Fatalf("got %T %+v, want %v for packet id 7", p, p, want)
		}
	}
	pub.Send(&codec.Publish{QoS: 2, Topic: "once/t", PacketID: 7, Payload: []byte("once")})
	expectAck(codec.TypePubrec)
	pub.Send(&codec.Publish{QoS: 2, Dup: true, Topic: "once/t", PacketID: 7, Payload: []byte("once")})
	expectAck(codec.TypePubrec)
	pub.Send(&codec.Pubrel{PacketID: 7})
	expectAck(codec.TypePubcomp)

	if m := sub.next(); m.Payload != "once" || m.QoS != 2 {
		t.Fatalf("got %+v, want %q at QoS 2", m, "once")
	}
	sub.none(v3Quiet)

	// The exchange is complete: packet id 7 now starts a new message.
	pub.Send(&codec.Publish{QoS: 2, Topic: "once/t", PacketID: 7, Payload: []byte("twice")})
	expectAck(codec.TypePubrec)
	pub.Send(&codec.Pubrel{PacketID: 7})
	expectAck(codec.TypePubcomp)
	if m := sub.next(); m.Payload != "twice" {
		t.Fatalf("got %+v, want the new message %q", m, "twice")
	}
}

// ---- retained messages ----

// [MQTT-3.3.1-5] A PUBLISH with RETAIN 1 is stored for future subscribers; a later one on the
// same topic replaces it; [MQTT-3.3.1-10] one with a zero-byte payload removes it and
// [MQTT-3.3.1-11] is not itself stored.
func TestV311RetainedStoredReplacedDeleted(t *testing.T) {
	b := startBroker(t)
	url := "tcp://" + b.TCP311
	pub := v3Connect(t, url, "ret-pub")

	pub.pub("ret/t", 1, true, "one")
	s1 := v3Connect(t, url, "ret-s1")
	s1.sub("ret/t", 1)
	if m := s1.next(); m.Payload != "one" || !m.Retained {
		t.Fatalf("got %+v, want retained %q", m, "one")
	}

	pub.pub("ret/t", 1, true, "two")
	s2 := v3Connect(t, url, "ret-s2")
	s2.sub("ret/t", 1)
	if m := s2.next(); m.Payload != "two" || !m.Retained {
		t.Fatalf("got %+v, want retained %q (the replacement)", m, "two")
	}
	s2.none(v3Quiet)
	if n := b.Stats().Retained.Load(); n != 1 {
		t.Fatalf("Stats().Retained = %d after a replacement, want 1", n)
	}

	pub.pub("ret/t", 1, true, "")
	s3 := v3Connect(t, url, "ret-s3")
	s3.sub("ret/t", 1)
	s3.none(v3Quiet)
	if n := b.Stats().Retained.Load(); n != 0 {
		t.Fatalf("Stats().Retained = %d after an empty retained publish, want 0", n)
	}
}

// [MQTT-3.3.1-8] When sending a PUBLISH to a Client the Server MUST set the RETAIN flag to 1 if
// a message is sent as a result of a new subscription being made by a Client.
func TestV311RetainedDeliveredOnSubscribeWithRetainFlag(t *testing.T) {
	b := startBroker(t)
	url := "tcp://" + b.TCP311
	pub := v3Connect(t, url, "retflag-pub")
	pub.pub("retflag/a", 1, true, "kept a")
	pub.pub("retflag/b", 0, true, "kept b")
	pub.pub("retflag/c", 1, false, "not kept")
	waitFor(t, v3Wait, "two retained messages", func() bool { return b.Stats().Retained.Load() == 2 })

	sub := v3Connect(t, url, "retflag-sub")
	sub.sub("retflag/#", 1)
	got := sub.collect(v3Quiet)
	sort.Slice(got, func(i, j int) bool { return got[i].Topic < got[j].Topic })
	if len(got) != 2 || got[0].Payload != "kept a" || got[1].Payload != "kept b" {
		t.Fatalf("got %+v, want the retained messages of retflag/a and retflag/b", got)
	}
	for _, m := range got {
		if !m.Retained {
			t.Errorf("%s: RETAIN 0 on a delivery made because of a new subscription, want 1", m.Topic)
		}
	}
	if got[0].QoS != 1 || got[1].QoS != 0 {
		t.Errorf("retained QoS %d and %d, want 1 and 0 (stored with the message)", got[0].QoS, got[1].QoS)
	}
}

// [MQTT-3.3.1-9] The Server MUST set the RETAIN flag to 0 when a PUBLISH is sent to a Client
// because it matches an established subscription, regardless of how the flag was set.
func TestV311LiveDeliveryHasRetainZero(t *testing.T) {
	b := startBroker(t)
	url := "tcp://" + b.TCP311
	sub := v3Connect(t, url, "live-sub")
	sub.sub("live/t", 1)
	pub := v3Connect(t, url, "live-pub")
	pub.pub("live/t", 1, true, "retained but live")
	m := sub.next()
	if m.Payload != "retained but live" {
		t.Fatalf("got %+v", m)
	}
	if m.Retained {
		t.Fatal("RETAIN 1 on a delivery to an established subscription, want 0")
	}
}

// ---- topic matching ----

// [MQTT-4.7.1-2] '#' matches any number of levels, including the parent level;
// [MQTT-4.7.1-3] '+' matches exactly one level.
func TestV311Wildcards(t *testing.T) {
	b := startBroker(t)
	url := "tcp://" + b.TCP311
	hash := v3Connect(t, url, "wild-hash")
	hash.sub("sport/#", 1)
	plus := v3Connect(t, url, "wild-plus")
	plus.sub("sport/+/player1", 1)
	pub := v3Connect(t, url, "wild-pub")
	for _, topic := range []string{"sport", "sport/tennis", "sport/tennis/player1", "sport/tennis/x/player1", "sports/tennis/player1"} {
		pub.pub(topic, 1, false, topic)
	}
	check := func(c *v3Client, want ...string) {
		t.Helper()
		got := c.collect(v3Quiet)
		var topics []string
		for _, m := range got {
			topics = append(topics, m.Topic)
		}
		sort.Strings(topics)
		sort.Strings(want)
		if fmt.Sprint(topics) != fmt.Sprint(want) {
			t.Errorf("client %q got %v, want %v", c.id, topics, want)
		}
	}
	check(hash, "sport", "sport/tennis", "sport/tennis/player1", "sport/tennis/x/player1")
	check(plus, "sport/tennis/player1")
}

// [MQTT-4.7.2-1] The Server MUST NOT match Topic Filters starting with a wildcard character
// (# or +) with Topic Names beginning with a $ character.
func TestV311DollarTopicsNotMatchedByLeadingWildcards(t *testing.T) {
	b := startBroker(t)
	url := "tcp://" + b.TCP311
	all := v3Connect(t, url, "dollar-all")
	all.sub("#", 1)
	plus := v3Connect(t, url, "dollar-plus")
	plus.sub("+/x", 1)
	explicit := v3Connect(t, url, "dollar-explicit")
	explicit.sub("$test/#", 1)

	pub := v3Connect(t, url, "dollar-pub")
	pub.pub("$test/x", 1, false, "dollar")
	if m := explicit.next(); m.Topic != "$test/x" {
		t.Fatalf("the explicit $test/# subscription got %+v", m)
	}
	all.none(v3Quiet)
	plus.none(v3Quiet)

	// The same wildcards do match an ordinary topic.
	pub.pub("plain/x", 1, false, "plain")
	if m := all.next(); m.Topic != "plain/x" {
		t.Fatalf("# got %+v", m)
	}
	if m := plus.next(); m.Topic != "plain/x" {
		t.Fatalf("+/x got %+v", m)
	}
}

// [MQTT-3.3.5-1] When a message matches several subscriptions of one client the Server MUST
// deliver it respecting the maximum QoS of all the matching subscriptions. This broker sends
// one copy (3.1.1 allows more; its design sends exactly one).
func TestV311OverlappingSubscriptionsOneCopyAtMaxQoS(t *testing.T) {
	b := startBroker(t)
	url := "tcp://" + b.TCP311
	sub := v3Connect(t, url, "overlap-sub")
	tok := sub.SubscribeMultiple(map[string]byte{"ov/#": 0, "ov/+": 1, "ov/a": 2}, nil)
	if !tok.WaitTimeout(v3Wait) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	pub := v3Connect(t, url, "overlap-pub")
	pub.pub("ov/a", 2, false, "overlap")
	if m := sub.next(); m.Payload != "overlap" || m.QoS != 2 {
		t.Fatalf("got %+v, want one copy at QoS 2", m)
	}
	sub.none(v3Quiet)
}

// [MQTT-3.8.4-3] A SUBSCRIBE with a Topic Filter identical to an existing subscription's
// completely replaces that subscription: the new maximum QoS applies and there is still one
// subscription.
func TestV311ResubscribeReplacesQoS(t *testing.T) {
	b := startBroker(t)
	url := "tcp://" + b.TCP311
	sub := v3Connect(t, url, "resub-sub")
	pub := v3Connect(t, url, "resub-pub")

	sub.sub("resub/t", 0)
	pub.pub("resub/t", 2, false, "first")
	if m := sub.next(); m.QoS != 0 {
		t.Fatalf("got QoS %d under a QoS 0 subscription, want 0", m.QoS)
	}
	if g := sub.sub("resub/t", 2); g != 2 {
		t.Fatalf("re-subscribe granted QoS %d, want 2", g)
	}
	if n := b.Stats().Subscriptions.Load(); n != 1 {
		t.Fatalf("Stats().Subscriptions = %d after re-subscribing, want 1", n)
	}
	pub.pub("resub/t", 2, false, "second")
	if m := sub.next(); m.Payload != "second" || m.QoS != 2 {
		t.Fatalf("got %+v, want %q at QoS 2", m, "second")
	}
	sub.none(v3Quiet)
}

// [MQTT-3.10.4-4] The Server MUST respond to UNSUBSCRIBE with an UNSUBACK carrying the same
// Packet Identifier, and [MQTT-3.10.4-2] MUST stop adding new messages for delivery.
func TestV311UnsubscribeStopsDelivery(t *testing.T) {
	b := startBroker(t)
	rc, _ := v3RawConnect(t, b.TCP311, "unsub")
	v3Subscribe(rc, 1, "unsub/t", 1)
	pub := v3Connect(t, "tcp://"+b.TCP311, "unsub-pub")
	pub.pub("unsub/t", 0, false, "before")
	if p := v3ReadPublish(rc); string(p.Payload) != "before" {
		t.Fatalf("got %q before unsubscribing", p.Payload)
	}

	rc.Send(&codec.Unsubscribe{PacketID: 0x1234, Filters: []string{"unsub/t"}})
	p := rc.Read()
	ack, ok := p.(*codec.Unsuback)
	if !ok || ack.PacketID != 0x1234 {
		t.Fatalf("got %T %+v, want UNSUBACK with packet id 0x1234", p, p)
	}
	pub.pub("unsub/t", 1, false, "after")
	v3ExpectSilence(rc, v3Quiet)
}

// ---- will ----

// [MQTT-3.1.2-8] The Will Message MUST be published when the Network Connection is closed
// without a DISCONNECT.
func TestV311WillPublishedOnAbnormalClose(t *testing.T) {
	b := startBroker(t)
	sub := v3Connect(t, "tcp://"+b.TCP311, "will-sub")
	sub.sub("will/t", 1)
	rc, _ := v3RawConnect(t, b.TCP311, "will-owner", func(c *codec.Connect) {
		c.Will = &codec.Will{Topic: "will/t", Payload: []byte("gone"), QoS: 1}
	})
	sub.none(v3Quiet) // nothing while the owner is connected
	_ = rc.Conn.Close()
	m := sub.next()
	if m.Topic != "will/t" || m.Payload != "gone" || m.QoS != 1 || m.Retained {
		t.Fatalf("got %+v, want the will %q at QoS 1, RETAIN 0 [MQTT-3.1.2-16]", m, "gone")
	}
}

// Publishing a will must not disturb the broker's other state: [MQTT-3.1.2-4] the
// subscriptions of other sessions stay in force and [MQTT-3.3.1-5] retained messages stay
// stored after a will (QoS 0 here) has gone out.
func TestV311StateSurvivesWillPublication(t *testing.T) {
	b := startBroker(t)
	url := "tcp://" + b.TCP311
	pub := v3Connect(t, url, "survive-pub")
	pub.pub("survive/retained", 1, true, "kept")
	sub := v3Connect(t, url, "survive-sub")
	sub.sub("survive/#", 1)
	if m := sub.next(); m.Payload != "kept" {
		t.Fatalf("got %+v, want the retained message", m)
	}

	rc, _ := v3RawConnect(t, b.TCP311, "survive-owner", func(c *codec.Connect) {
		c.Will = &codec.Will{Topic: "survive/will", Payload: []byte("bye")}
	})
	_ = rc.Conn.Close()
	if m := sub.next(); m.Payload != "bye" {
		t.Fatalf("got %+v, want the will", m)
	}

	pub.pub("survive/will", 1, false, "after the will")
	if m := sub.next(); m.Payload != "after the will" {
		t.Fatalf("got %+v, want the message published after the will", m)
	}
	late := v3Connect(t, url, "survive-late")
	late.sub("survive/retained", 1)
	if m := late.next(); m.Payload != "kept" || !m.Retained {
		t.Fatalf("got %+v, want the retained message still stored", m)
	}
}

// [MQTT-3.1.2-10] The Will Message MUST be removed once the Server has received a DISCONNECT;
// [MQTT-3.14.4-3] it is discarded without being published.
func TestV311WillNotPublishedOnDisconnect(t *testing.T) {
	b := startBroker(t)
	sub := v3Connect(t, "tcp://"+b.TCP311, "nowill-sub")
	sub.sub("nowill/t", 1)
	rc, _ := v3RawConnect(t, b.TCP311, "nowill-owner", func(c *codec.Connect) {
		c.Will = &codec.Will{Topic: "nowill/t", Payload: []byte("must not appear"), QoS: 1}
	})
	v3Disconnect(rc)
	sub.none(300 * time.Millisecond)
}

// [MQTT-3.1.2-17] If Will Retain is set to 1, the Server MUST publish the Will Message as a
// retained message.
func TestV311WillRetain(t *testing.T) {
	b := startBroker(t)
	rc, _ := v3RawConnect(t, b.TCP311, "willret-owner", func(c *codec.Connect) {
		c.Will = &codec.Will{Topic: "willret/t", Payload: []byte("last words"), QoS: 1, Retain: true}
	})
	_ = rc.Conn.Close()
	waitFor(t, v3Wait, "the will to be retained", func() bool { return b.Stats().Retained.Load() == 1 })
	sub := v3Connect(t, "tcp://"+b.TCP311, "willret-sub")
	sub.sub("willret/t", 1)
	if m := sub.next(); m.Payload != "last words" || !m.Retained {
		t.Fatalf("got %+v, want the retained will", m)
	}
}

// ---- keep alive ----

// [MQTT-3.1.2-24] If the Server does not receive a Control Packet from the Client within one
// and a half times the Keep Alive time period, it MUST disconnect the Network Connection as if
// the network had failed, so the will is published.
func TestV311KeepAliveTimeoutPublishesWill(t *testing.T) {
	b := startBroker(t)
	sub := v3Connect(t, "tcp://"+b.TCP311, "ka-sub")
	sub.sub("ka/will", 1)
	rc, _ := v3RawConnect(t, b.TCP311, "ka-silent", func(c *codec.Connect) {
		c.KeepAlive = 1
		c.Will = &codec.Will{Topic: "ka/will", Payload: []byte("timed out")}
	})
	start := time.Now()
	if p := rc.ExpectClosed(3 * time.Second); p != nil {
		t.Fatalf("unexpected %T before close", p)
	}
	if d := time.Since(start); d < time.Second {
		t.Fatalf("closed after %v: before even one keep alive period (1 s) had passed", d)
	}
	if m := sub.next(); m.Payload != "timed out" {
		t.Fatalf("got %+v, want the will of the timed-out client", m)
	}
}

// [MQTT-3.12.4-1] The Server MUST send a PINGRESP Packet in response to a PINGREQ packet, and
// a client that pings within its keep alive stays connected past 1.5 × keep alive.
func TestV311PingreqPingresp(t *testing.T) {
	b := startBroker(t)
	rc, _ := v3RawConnect(t, b.TCP311, "pinger", func(c *codec.Connect) { c.KeepAlive = 1 })
	end := time.Now().Add(2500 * time.Millisecond)
	for n := 0; time.Now().Before(end); n++ {
		rc.Send(&codec.Pingreq{})
		p, err := rc.ReadErr(time.Second)
		if err != nil {
			t.Fatalf("ping %d: %v", n, err)
		}
		if _, ok := p.(*codec.Pingresp); !ok {
			t.Fatalf("ping %d: got %T, want PINGRESP", n, p)
		}
		v3ExpectSilence(rc, 400*time.Millisecond)
	}
}

// ---- takeover, expiry, limits ----

// [MQTT-3.1.4-2] If the ClientId represents a Client already connected to the Server then the
// Server MUST disconnect the existing Client; the new connection continues the session.
func TestV311SessionTakeover(t *testing.T) {
	b := startBroker(t)
	first, _ := v3RawConnect(t, b.TCP311, "taken", v3NotClean)
	v3Subscribe(first, 1, "taken/t", 1)

	second, ack := v3RawConnect(t, b.TCP311, "taken", v3NotClean)
	if !ack.SessionPresent {
		t.Fatal("takeover: Session Present = 0, want 1")
	}
	if p := first.ExpectClosed(v3Wait); p != nil {
		t.Fatalf("first connection got %T before being closed", p)
	}
	pub := v3Connect(t, "tcp://"+b.TCP311, "taken-pub")
	pub.pub("taken/t", 1, false, "to the new owner")
	p := v3ReadPublish(second)
	if string(p.Payload) != "to the new owner" {
		t.Fatalf("got %q", p.Payload)
	}
	second.Send(&codec.Puback{PacketID: p.PacketID})
	// The second connection is undisturbed.
	second.Send(&codec.Pingreq{})
	if _, ok := second.Read().(*codec.Pingresp); !ok {
		t.Fatal("expected PINGRESP on the new connection")
	}
}

// A 3.1.1 persistent session lives for sessions.max_session_expiry after its connection ends
// (the broker's bound on [MQTT-3.1.2-4]'s "store the Session after disconnect"): a reconnect
// inside it finds the session (Session Present 1), one after it does not [MQTT-3.2.2-3].
func TestV311SessionExpiry(t *testing.T) {
	for _, expiry := range []time.Duration{time.Second, 300 * time.Millisecond} {
		t.Run(expiry.String(), func(t *testing.T) {
			b := startBroker(t, func(c *config.Config) { c.Sessions.MaxSessionExpiry = config.Duration(expiry) })
			rc, ack := v3RawConnect(t, b.TCP311, "expiring", v3NotClean)
			if ack.SessionPresent {
				t.Fatal("first connect: Session Present = 1")
			}
			v3Subscribe(rc, 1, "expiring/t", 1)
			v3Disconnect(rc)

			rc, ack = v3RawConnect(t, b.TCP311, "expiring", v3NotClean)
			if !ack.SessionPresent {
				t.Fatalf("reconnect at once, inside max_session_expiry = %v: Session Present = 0, want 1", expiry)
			}
			v3Disconnect(rc)
			gone := time.Now()
			waitFor(t, expiry+3*time.Second, "the session to expire", func() bool { return b.Stats().Sessions.Load() == 0 })
			if d := time.Since(gone); d < expiry*9/10 {
				t.Fatalf("session ended %v after the disconnect, before max_session_expiry = %v", d, expiry)
			}
			rc, ack = v3RawConnect(t, b.TCP311, "expiring", v3NotClean)
			if ack.SessionPresent {
				t.Fatal("reconnect after expiry: Session Present = 1, want 0")
			}
			v3Disconnect(rc)
		})
	}
}

// A slow consumer: a persistent session holds at most sessions.max_queued_messages messages
// while its client is away; past that the oldest go (queue_drop_policy = drop_oldest, the
// default) and each drop is counted.
func TestV311SlowConsumerQueueLimit(t *testing.T) {
	const limit, sent = 5, 20
	b := startBroker(t, func(c *config.Config) { c.Sessions.MaxQueuedMessages = limit })
	rc, _ := v3RawConnect(t, b.TCP311, "slow", v3NotClean)
	v3Subscribe(rc, 1, "slow/t", 1)
	v3Disconnect(rc)

	pub := v3Connect(t, "tcp://"+b.TCP311, "slow-pub")
	for i := range sent {
		pub.pub("slow/t", 1, false, strconv.Itoa(i))
	}
	// Every delivery reached the session before its PUBACK, so before the reconnect below.
	rc, ack := v3RawConnect(t, b.TCP311, "slow", v3NotClean)
	if !ack.SessionPresent {
		t.Fatal("Session Present = 0 on reconnect, want 1")
	}
	var got []string
	for {
		p, err := rc.ReadErr(v3Quiet)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				break
			}
			t.Fatalf("read: %v", err)
		}
		pp, ok := p.(*codec.Publish)
		if !ok {
			t.Fatalf("got %T, want PUBLISH", p)
		}
		got = append(got, string(pp.Payload))
		rc.Send(&codec.Puback{PacketID: pp.PacketID})
	}
	if len(got) != limit {
		t.Fatalf("received %d queued messages %v, want max_queued_messages = %d", len(got), got, limit)
	}
	for i, p := range got {
		if want := strconv.Itoa(sent - limit + i); p != want {
			t.Errorf("queued message %d = %q, want %q (drop_oldest keeps the newest)", i, p, want)
		}
	}
	if d := b.Stats().DroppedQueue.Load(); d != sent-limit {
		t.Errorf("Stats().DroppedQueue = %d, want %d (one per message dropped from the full queue)", d, sent-limit)
	}
}
