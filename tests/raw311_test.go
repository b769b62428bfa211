package tests

// MQTT 3.1.1 and 3.1 cases a client library will not produce: protocol violations, exact byte
// sequences, and version interworking, spoken with the project's codec over plain sockets.

import (
	"strings"
	"testing"
	"time"

	"github.com/actormq/actormq/codec"
	"github.com/actormq/actormq/config"
)

// raw311Connect builds a CONNECT by hand, so that the protocol name, level and flags can be
// what the codec would refuse to write: keep alive 60, the given client id, nothing else.
func raw311Connect(protocol string, level, flags byte, clientID string) []byte {
	var body []byte
	body = append(body, byte(len(protocol)>>8), byte(len(protocol)))
	body = append(body, protocol...)
	body = append(body, level, flags, 0, 60)
	body = append(body, byte(len(clientID)>>8), byte(len(clientID)))
	body = append(body, clientID...)
	return append([]byte{0x10, byte(len(body))}, body...) // short packets: one length byte
}

// raw311ExpectConnack reads a CONNACK and checks its return code, and that Session Present is
// 0 on a refusal [MQTT-3.2.2-4].
func raw311ExpectConnack(rc *rawClient, code codec.ReasonCode) {
	rc.T.Helper()
	p := rc.Read()
	ack, ok := p.(*codec.Connack)
	if !ok {
		rc.T.Fatalf("got %T %+v, want CONNACK", p, p)
	}
	if ack.ReasonCode != code {
		rc.T.Fatalf("CONNACK return code 0x%02X, want 0x%02X", byte(ack.ReasonCode), byte(code))
	}
	if code != codec.ConnAccepted && ack.SessionPresent {
		rc.T.Fatal("refusing CONNACK with Session Present 1 [MQTT-3.2.2-4]")
	}
}

// raw311ExpectClosedSilently asserts the broker closes the connection without sending anything.
func raw311ExpectClosedSilently(rc *rawClient) {
	rc.T.Helper()
	if p := rc.ExpectClosed(v3Wait); p != nil {
		rc.T.Fatalf("got %T %+v before the close, want nothing", p, p)
	}
}

// raw311Ping asserts the connection is alive: PINGREQ gets PINGRESP.
func raw311Ping(rc *rawClient) {
	rc.T.Helper()
	rc.Send(&codec.Pingreq{})
	if p := rc.Read(); p.Type() != codec.TypePingresp {
		rc.T.Fatalf("got %T, want PINGRESP", p)
	}
}

// [MQTT-3.1.0-1] After a Network Connection is established the first Packet sent from the Client
// to the Server MUST be a CONNECT Packet; anything else closes the connection, unanswered.
func TestRaw311FirstPacketNotConnect(t *testing.T) {
	b := startBroker(t)
	cases := map[string][]byte{
		"PINGREQ":   {0xC0, 0x00},
		"PUBLISH":   {0x30, 0x05, 0x00, 0x01, 'a', 'h', 'i'},
		"SUBSCRIBE": {0x82, 0x06, 0x00, 0x01, 0x00, 0x01, 'a', 0x00},
	}
	for name, pkt := range cases {
		t.Run(name, func(t *testing.T) {
			rc := dialRaw(t, b.TCP311, codec.V311)
			rc.SendBytes(pkt)
			raw311ExpectClosedSilently(rc)
		})
	}
}

// [MQTT-3.1.0-2] The Server MUST process a second CONNECT Packet sent from a Client as a
// protocol violation and disconnect the Client.
func TestRaw311SecondConnect(t *testing.T) {
	b := startBroker(t)
	rc, _ := v3RawConnect(t, b.TCP311, "twice")
	rc.Send(&codec.Connect{ProtocolName: "MQTT", Version: codec.V311, CleanStart: true, KeepAlive: 30, ClientID: "twice"})
	raw311ExpectClosedSilently(rc)
}

// [MQTT-3.1.2-2] The Server MUST respond to the CONNECT Packet with a CONNACK return code 0x01
// (unacceptable protocol level) and then disconnect the Client if the Protocol Level is not
// supported by the Server.
func TestRaw311UnsupportedProtocolLevel(t *testing.T) {
	b := startBroker(t)
	rc := dialRaw(t, b.TCP311, codec.V311)
	rc.SendBytes(raw311Connect("MQTT", 6, 0x02, "level6"))
	raw311ExpectConnack(rc, codec.ConnRefusedProtocolVersion)
	raw311ExpectClosedSilently(rc)
}

// [MQTT-3.1.2-3] The Server MUST validate that the reserved flag in the CONNECT Control Packet
// is set to zero and disconnect the Client if it is not zero; [MQTT-3.1.4-1] without a CONNACK.
func TestRaw311ReservedConnectFlag(t *testing.T) {
	b := startBroker(t)
	rc := dialRaw(t, b.TCP311, codec.V311)
	rc.SendBytes(raw311Connect("MQTT", 4, 0x03, "reserved")) // clean session + reserved bit
	raw311ExpectClosedSilently(rc)
}

// [MQTT-3.1.3-8] If the Client supplies a zero-byte ClientId with CleanSession set to 0, the
// Server MUST respond with a CONNACK return code 0x02 (Identifier rejected) and then close the
// Network Connection.
func TestRaw311EmptyClientIDWithoutCleanSession(t *testing.T) {
	b := startBroker(t)
	rc := dialRaw(t, b.TCP311, codec.V311)
	ack := rc.Connect("", v3NotClean)
	if ack.ReasonCode != codec.ConnRefusedIdentifierRejected || ack.SessionPresent {
		t.Fatalf("CONNACK %+v, want return code 0x02 and Session Present 0", ack)
	}
	raw311ExpectClosedSilently(rc)
}

// [MQTT-3.1.3-6] A Server that allows a zero-byte ClientId MUST assign a unique ClientId to that
// Client: two such clients are two sessions, and the second does not take over the first.
func TestRaw311EmptyClientIDWithCleanSession(t *testing.T) {
	b := startBroker(t)
	first := dialRaw(t, b.TCP311, codec.V311)
	if ack := first.Connect(""); ack.ReasonCode != codec.ConnAccepted || ack.SessionPresent {
		t.Fatalf("CONNACK %+v, want accepted with Session Present 0", ack)
	}
	second := dialRaw(t, b.TCP311, codec.V311)
	if ack := second.Connect(""); ack.ReasonCode != codec.ConnAccepted {
		t.Fatalf("second CONNACK %+v, want accepted", ack)
	}
	raw311Ping(first)
	raw311Ping(second)
	if n := b.Stats().Sessions.Load(); n != 2 {
		t.Fatalf("Stats().Sessions = %d, want 2 (one unique id each)", n)
	}
}

// [MQTT-3.1.3-5] The Server MUST allow ClientIds of 1 to 23 bytes; [MQTT-3.1.3-9] if it rejects
// a ClientId (here: longer than limits.max_client_id_length) it MUST respond with CONNACK 0x02
// and close the connection.
func TestRaw311ClientIDTooLong(t *testing.T) {
	b := startBroker(t, func(c *config.Config) { c.Limits.MaxClientIDLength = 23 })
	ok := dialRaw(t, b.TCP311, codec.V311)
	if ack := ok.Connect(strings.Repeat("a", 23)); ack.ReasonCode != codec.ConnAccepted {
		t.Fatalf("23-byte client id refused with 0x%02X", byte(ack.ReasonCode))
	}
	long := dialRaw(t, b.TCP311, codec.V311)
	ack := long.Connect(strings.Repeat("b", 24))
	if ack.ReasonCode != codec.ConnRefusedIdentifierRejected || ack.SessionPresent {
		t.Fatalf("24-byte client id: CONNACK %+v, want return code 0x02", ack)
	}
	raw311ExpectClosedSilently(long)
}

// A connection that sends no CONNECT within limits.connect_timeout is closed (the spec lets a
// Server close a connection that does not send CONNECT in a reasonable time, §3.1.4).
func TestRaw311ConnectTimeout(t *testing.T) {
	b := startBroker(t, func(c *config.Config) { c.Limits.ConnectTimeout = config.Duration(200 * time.Millisecond) })
	rc := dialRaw(t, b.TCP311, codec.V311)
	start := time.Now()
	if p := rc.ExpectClosed(2 * time.Second); p != nil {
		t.Fatalf("got %T before the close", p)
	}
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Fatalf("closed after %v, before the 200ms connect timeout", d)
	}
}

// MQTT 3.1 (protocol name "MQIsdp", level 3) is accepted on every listener: CONNECT, SUBSCRIBE,
// PUBLISH at QoS 1 and delivery work as in 3.1.1.
func TestRaw311MQTT31PublishSubscribe(t *testing.T) {
	b := startBroker(t)
	for name, addr := range map[string]string{"mqtt": b.TCP311, "mqtt5": b.TCP5} {
		t.Run(name, func(t *testing.T) {
			sub := dialRaw(t, addr, codec.V31)
			if ack := sub.Connect("v31sub-" + name); ack.ReasonCode != codec.ConnAccepted {
				t.Fatalf("3.1 CONNECT refused: 0x%02X", byte(ack.ReasonCode))
			}
			v3Subscribe(sub, 3, "v31/"+name, 1)
			pub := dialRaw(t, addr, codec.V31)
			if ack := pub.Connect("v31pub-" + name); ack.ReasonCode != codec.ConnAccepted {
				t.Fatalf("3.1 CONNECT refused: 0x%02X", byte(ack.ReasonCode))
			}
			pub.Send(&codec.Publish{QoS: 1, Topic: "v31/" + name, PacketID: 9, Payload: []byte("old school")})
			if p, ok := pub.Read().(*codec.Puback); !ok || p.PacketID != 9 {
				t.Fatalf("got %+v, want PUBACK 9", p)
			}
			got := v3ReadPublish(sub)
			if got.Topic != "v31/"+name || string(got.Payload) != "old school" || got.QoS != 1 {
				t.Fatalf("got %+v", got)
			}
			sub.Send(&codec.Puback{PacketID: got.PacketID})
		})
	}
}

// Versions interwork: a 3.1.1 subscriber receives what a 5.0 client publishes, with the 5.0
// properties left out of the 3.1.1 packet.
func TestRaw311SubscriberReceivesV5Publish(t *testing.T) {
	b := startBroker(t)
	sub, _ := v3RawConnect(t, b.TCP311, "cross-sub311")
	v3Subscribe(sub, 1, "cross/five", 1)

	pub := dialRaw(t, b.TCP5, codec.V5)
	if ack := pub.Connect("cross-pub5"); ack.ReasonCode != codec.Success {
		t.Fatalf("5.0 CONNECT refused: %v", ack.ReasonCode)
	}
	p := &codec.Publish{QoS: 1, Topic: "cross/five", PacketID: 5, Payload: []byte("from 5.0")}
	p.Properties.SetContentType("text/plain")
	p.Properties.AddUserProperty("k", "v")
	pub.Send(p)
	if ack, ok := pub.Read().(*codec.Puback); !ok || ack.PacketID != 5 || ack.ReasonCode != codec.Success {
		t.Fatalf("got %+v, want PUBACK 5 Success", ack)
	}
	got := v3ReadPublish(sub)
	if got.Topic != "cross/five" || string(got.Payload) != "from 5.0" || got.QoS != 1 {
		t.Fatalf("3.1.1 subscriber got %+v", got)
	}
	sub.Send(&codec.Puback{PacketID: got.PacketID})
}

// The reverse: a 5.0 subscriber receives what a 3.1.1 client publishes.
func TestRaw311PublishReceivedByV5Subscriber(t *testing.T) {
	b := startBroker(t)
	sub := dialRaw(t, b.TCP5, codec.V5)
	if ack := sub.Connect("cross-sub5"); ack.ReasonCode != codec.Success {
		t.Fatalf("5.0 CONNECT refused: %v", ack.ReasonCode)
	}
	sub.Send(&codec.Subscribe{PacketID: 1, Subscriptions: []codec.Subscription{{Filter: "cross/three", QoS: 1}}})
	if ack, ok := sub.Read().(*codec.Suback); !ok || len(ack.ReasonCodes) != 1 || ack.ReasonCodes[0] != codec.GrantedQoS1 {
		t.Fatalf("got %+v, want SUBACK granting QoS 1", ack)
	}

	pub, _ := v3RawConnect(t, b.TCP311, "cross-pub311")
	pub.Send(&codec.Publish{QoS: 1, Topic: "cross/three", PacketID: 3, Payload: []byte("from 3.1.1")})
	if ack, ok := pub.Read().(*codec.Puback); !ok || ack.PacketID != 3 {
		t.Fatalf("got %+v, want PUBACK 3", ack)
	}
	got := v3ReadPublish(sub)
	if got.Topic != "cross/three" || string(got.Payload) != "from 3.1.1" || got.QoS != 1 {
		t.Fatalf("5.0 subscriber got %+v", got)
	}
	sub.Send(&codec.Puback{PacketID: got.PacketID})
}

// [MQTT-3.3.1-4] A PUBLISH Packet MUST NOT have both QoS bits set to 1. If a Server receives a
// PUBLISH Packet which has both QoS bits set to 1 it MUST close the Network Connection.
func TestRaw311QoS3PublishClosed(t *testing.T) {
	b := startBroker(t)
	rc, _ := v3RawConnect(t, b.TCP311, "qos3")
	// PUBLISH, QoS bits 11: topic "a", packet id 1, payload "x".
	rc.SendBytes([]byte{0x36, 0x06, 0x00, 0x01, 'a', 0x00, 0x01, 'x'})
	raw311ExpectClosedSilently(rc)
}

// A Remaining Length longer than four bytes is malformed (§2.2.3): the Server closes that
// connection [MQTT-4.8.0-1], and only that one: a bystander keeps working.
func TestRaw311MalformedRemainingLengthClosesOnlyThatConnection(t *testing.T) {
	b := startBroker(t)
	url := "tcp://" + b.TCP311
	bystander := v3Connect(t, url, "bystander")
	bystander.sub("bystander/t", 1)

	rc, _ := v3RawConnect(t, b.TCP311, "malformed")
	rc.SendBytes([]byte{0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01, 0x00})
	raw311ExpectClosedSilently(rc)

	bystander.pub("bystander/t", 1, false, "still here")
	if m := bystander.next(); m.Payload != "still here" {
		t.Fatalf("bystander got %+v", m)
	}
	fresh := v3Connect(t, url, "after-malformed")
	fresh.pub("bystander/t", 0, false, "new client too")
	if m := bystander.next(); m.Payload != "new client too" {
		t.Fatalf("bystander got %+v", m)
	}
}
