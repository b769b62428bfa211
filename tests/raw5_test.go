package tests

// MQTT 5.0 protocol violations, written as raw packets: the broker answers each with
// DISCONNECT (or CONNACK) carrying the reason code the specification gives and closes the
// connection [MQTT-4.13.1-1] [MQTT-4.13.2-1]; a bystander client on the same broker is not
// affected (§4.13.1: "There are no consequences for other Sessions"). Helpers are in
// v5_test.go.

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/actormq/actormq/codec"
	"github.com/actormq/actormq/config"
)

// v5Patched encodes p and lets patch change the bytes, for packets the codec refuses to write.
func v5Patched(t testing.TB, p codec.Packet, patch func([]byte)) []byte {
	t.Helper()
	b := v5Encode(t, p)
	patch(b)
	return b
}

// v5Replace replaces the first occurrence of old in b with repl (same length).
func v5Replace(t testing.TB, b, old, repl []byte) {
	t.Helper()
	i := bytes.Index(b, old)
	if i < 0 || len(old) != len(repl) {
		t.Fatalf("bytes % X not found in the encoded packet", old)
	}
	copy(b[i:], repl)
}

// A Topic Alias of 0 is not permitted [MQTT-3.3.2-8]: DISCONNECT 0x94 Topic Alias invalid
// (§3.3.4).
func TestV5RawTopicAliasZero(t *testing.T) {
	b := startBroker(t)
	y := v5NewBystander(t, b)
	c, _ := v5Connect(t, b, "v5-raw-alias0")
	p := &codec.Publish{Topic: "v5/raw/alias", Payload: []byte("x")}
	p.Properties.SetTopicAlias(0x5A5A)
	c.SendBytes(v5Patched(t, p, func(b []byte) { v5Replace(t, b, []byte{0x23, 0x5A, 0x5A}, []byte{0x23, 0, 0}) }))
	c.expectDisconnect(codec.TopicAliasInvalid)
	y.check()
}

// A client must not send a Topic Alias above the Topic Alias Maximum of the CONNACK
// [MQTT-3.3.2-9] [MQTT-3.2.2-17], nor any when it is 0 [MQTT-3.2.2-18]: DISCONNECT 0x94 Topic
// Alias invalid (§3.3.4).
func TestV5RawTopicAliasAboveMaximum(t *testing.T) {
	for _, max := range []int{3, 0} {
		t.Run(fmt.Sprintf("maximum-%d", max), func(t *testing.T) {
			b := startBroker(t, func(c *config.Config) { c.MQTT.TopicAliasMaximum = max })
			y := v5NewBystander(t, b)
			c, ack := v5Connect(t, b, "v5-raw-alias-max")
			if v, ok := ack.Properties.TopicAliasMaximum(); ok && int(v) != max || !ok && max != 0 {
				t.Fatalf("Topic Alias Maximum %d (present %v), want %d", v, ok, max)
			}
			p := &codec.Publish{Topic: "v5/raw/alias", Payload: []byte("x")}
			p.Properties.SetTopicAlias(uint16(max + 1))
			c.Send(p)
			c.expectDisconnect(codec.TopicAliasInvalid)
			y.check()
		})
	}
}

// A PUBLISH with an empty topic and a Topic Alias that has no mapping yet is a Protocol
// Error: DISCONNECT 0x82 (§3.3.4, 3a).
func TestV5RawUnknownTopicAlias(t *testing.T) {
	b := startBroker(t)
	y := v5NewBystander(t, b)
	c, _ := v5Connect(t, b, "v5-raw-alias-unknown")
	p := &codec.Publish{Topic: "", Payload: []byte("x")}
	p.Properties.SetTopicAlias(2)
	c.Send(p)
	c.expectDisconnect(codec.ProtocolError)
	y.check()
}

// More unacknowledged QoS 1/2 PUBLISH packets than the server's Receive Maximum
// [MQTT-3.3.4-7]: DISCONNECT 0x93 Receive Maximum exceeded (§3.3.4). Three QoS 2 publishes
// without PUBREL stay unacknowledged (no PUBCOMP) against a Receive Maximum of 2.
func TestV5RawReceiveMaximumExceeded(t *testing.T) {
	b := startBroker(t, func(c *config.Config) { c.MQTT.ReceiveMaximum = 2 })
	y := v5NewBystander(t, b)
	c, ack := v5Connect(t, b, "v5-raw-rm")
	if v, ok := ack.Properties.ReceiveMaximum(); !ok || v != 2 {
		t.Fatalf("Receive Maximum %d (present %v), want 2", v, ok)
	}
	for id := uint16(1); id <= 3; id++ {
		c.Send(&codec.Publish{Topic: "v5/raw/rm", QoS: 2, PacketID: id, Payload: []byte("x")})
	}
	c.expectDisconnect(codec.ReceiveMaximumExceeded)
	y.check()
}

// A PUBLISH above the Maximum QoS of the CONNACK [MQTT-3.2.2-11]: DISCONNECT 0x9B QoS not
// supported (§3.2.2.3.4, §3.3.1.2).
func TestV5RawQoSNotSupported(t *testing.T) {
	b := startBroker(t, func(c *config.Config) { c.MQTT.MaxQoS = 1 })
	y := v5NewBystander(t, b)
	c, ack := v5Connect(t, b, "v5-raw-qos")
	if v, ok := ack.Properties.MaximumQoS(); !ok || v != 1 {
		t.Fatalf("Maximum QoS %d (present %v), want 1 [MQTT-3.2.2-9]", v, ok)
	}
	c.Send(&codec.Publish{Topic: "v5/raw/qos", QoS: 2, PacketID: 1, Payload: []byte("x")})
	c.expectDisconnect(codec.QoSNotSupported)
	y.check()
}

// A PUBLISH with RETAIN 1 when the CONNACK said Retain Available 0 [MQTT-3.2.2-14]: DISCONNECT
// 0x9A Retain not supported (§3.2.2.3.5, §3.3.1.3).
func TestV5RawRetainNotSupported(t *testing.T) {
	b := startBroker(t, func(c *config.Config) { c.MQTT.RetainAvailable = false })
	y := v5NewBystander(t, b)
	c, _ := v5Connect(t, b, "v5-raw-retain")
	c.Send(&codec.Publish{Topic: "v5/raw/retain", Retain: true, Payload: []byte("x")})
	c.expectDisconnect(codec.RetainNotSupported)
	y.check()
}

// A client that gave no Authentication Method must not send AUTH [MQTT-4.12.0-7]; it is a
// Protocol Error (§3.15): DISCONNECT 0x82.
func TestV5RawAuthWithoutMethod(t *testing.T) {
	b := startBroker(t)
	y := v5NewBystander(t, b)
	c, _ := v5Connect(t, b, "v5-raw-auth")
	a := &codec.Auth{ReasonCode: codec.ContinueAuthentication}
	a.Properties.SetAuthenticationMethod("SCRAM-SHA-1")
	c.Send(a)
	c.expectDisconnect(codec.ProtocolError)
	y.check()
}

// A server without enhanced authentication refuses a CONNECT with an Authentication Method
// with CONNACK 0x8C Bad authentication method and closes the connection [MQTT-4.12.0-1],
// with Session Present 0 [MQTT-3.2.2-6] and no DISCONNECT [MQTT-3.14.0-1].
func TestV5RawConnectWithAuthenticationMethod(t *testing.T) {
	b := startBroker(t)
	y := v5NewBystander(t, b)
	c := v5Dial(t, b)
	ack := c.Connect("v5-raw-authm", func(p *codec.Connect) {
		p.Properties.SetAuthenticationMethod("SCRAM-SHA-1")
		p.Properties.SetAuthenticationData([]byte("client-first"))
	})
	if ack.ReasonCode != codec.BadAuthenticationMethod {
		t.Fatalf("CONNACK %s, want Bad authentication method [MQTT-4.12.0-1]", ack.ReasonCode)
	}
	if ack.SessionPresent {
		t.Errorf("Session Present 1 on a refusal [MQTT-3.2.2-6]")
	}
	if _, ok := ack.Properties.AuthenticationMethod(); ok {
		t.Errorf("Authentication Method in the refusing CONNACK")
	}
	if p := c.ExpectClosed(v5Timeout); p != nil {
		t.Errorf("%s after the refusing CONNACK [MQTT-3.14.0-1]", v5Describe([]codec.Packet{p}))
	}
	y.check()
}

// A packet larger than the server's Maximum Packet Size [MQTT-3.2.2-15]: DISCONNECT 0x95
// Packet too large (§3.2.2.3.6). A packet of exactly that size is accepted.
func TestV5RawPacketTooLarge(t *testing.T) {
	b := startBroker(t, func(c *config.Config) { c.Limits.MaxPacketSize = 1024 })
	y := v5NewBystander(t, b)
	c, ack := v5Connect(t, b, "v5-raw-big")
	if v, ok := ack.Properties.MaximumPacketSize(); !ok || v != 1024 {
		t.Fatalf("Maximum Packet Size %d (present %v), want 1024", v, ok)
	}
	c.sub("v5/raw/big", 0)
	// Exactly 1024 bytes: accepted.
	var fits *codec.Publish
	for n := 900; n < 1100; n++ {
		p := &codec.Publish{Topic: "v5/raw/big", Payload: []byte(strings.Repeat("f", n))}
		if len(v5Encode(t, p)) == 1024 {
			fits = p
			break
		}
	}
	if fits == nil {
		t.Fatalf("no payload size gives a packet of 1024 bytes")
	}
	c.publish(fits)
	if got := c.receive(); len(got.Payload) != len(fits.Payload) {
		t.Fatalf("received %d bytes of payload, want %d", len(got.Payload), len(fits.Payload))
	}
	c.Send(&codec.Publish{Topic: "v5/raw/big", Payload: []byte(strings.Repeat("x", 1500))})
	c.expectDisconnect(codec.PacketTooLarge)
	y.check()
}

// A CONNECT with a Protocol Version the server does not accept: CONNACK 0x84 Unsupported
// Protocol Version, then the connection is closed [MQTT-3.1.2-2].
func TestV5RawUnsupportedProtocolVersion(t *testing.T) {
	b := startBroker(t)
	y := v5NewBystander(t, b)
	c := v5Dial(t, b)
	connect := &codec.Connect{ProtocolName: "MQTT", Version: codec.V5, CleanStart: true, KeepAlive: 30, ClientID: "v5-raw-v6"}
	c.SendBytes(v5Patched(t, connect, func(b []byte) {
		v5Replace(t, b, []byte{0, 4, 'M', 'Q', 'T', 'T', 5}, []byte{0, 4, 'M', 'Q', 'T', 'T', 6})
	}))
	p, err := c.ReadErr(v5Timeout)
	if err != nil {
		t.Fatalf("no CONNACK: %v", err)
	}
	ack, ok := p.(*codec.Connack)
	if !ok || ack.ReasonCode != codec.UnsupportedProtocolVersion {
		t.Fatalf("answer %s, want CONNACK Unsupported Protocol Version [MQTT-3.1.2-2]", v5Describe([]codec.Packet{p}))
	}
	if p := c.ExpectClosed(v5Timeout); p != nil {
		t.Errorf("%s after the refusing CONNACK", v5Describe([]codec.Packet{p}))
	}
	y.check()
}

// A SUBSCRIBE with a Subscription Identifier when the server does not support them: DISCONNECT
// 0xA1 Subscription Identifiers not supported (§3.2.2.3.12).
func TestV5RawSubscriptionIdentifierDisabled(t *testing.T) {
	b := startBroker(t, func(c *config.Config) { c.MQTT.SubscriptionIdentifiers = false })
	y := v5NewBystander(t, b)
	c, ack := v5Connect(t, b, "v5-raw-sid")
	if v, ok := ack.Properties.SubscriptionIdentifierAvailable(); !ok || v {
		t.Fatalf("Subscription Identifier Available %v (present %v), want 0", v, ok)
	}
	s := &codec.Subscribe{PacketID: 1, Subscriptions: []codec.Subscription{{Filter: "v5/raw/sid", QoS: 1}}}
	s.Properties.SetSubscriptionIdentifier(5)
	c.Send(s)
	c.expectDisconnect(codec.SubscriptionIdentifiersNotSupported)
	y.check()
}

// No Local on a shared subscription is a Protocol Error [MQTT-3.8.3-4]: DISCONNECT 0x82.
func TestV5RawNoLocalOnSharedSubscription(t *testing.T) {
	b := startBroker(t)
	y := v5NewBystander(t, b)
	c, _ := v5Connect(t, b, "v5-raw-nlshare")
	s := &codec.Subscribe{PacketID: 1, Subscriptions: []codec.Subscription{{Filter: "$share/g/v5/raw/nl", QoS: 1}}}
	c.SendBytes(v5Patched(t, s, func(b []byte) { b[len(b)-1] |= 0x04 })) // the options byte of the only filter
	c.expectDisconnect(codec.ProtocolError)
	y.check()
}

// A PUBLISH from a client must not carry a Subscription Identifier [MQTT-3.3.4-6]; it is a
// Protocol Error: DISCONNECT 0x82.
func TestV5RawSubscriptionIdentifierInPublish(t *testing.T) {
	b := startBroker(t)
	y := v5NewBystander(t, b)
	c, _ := v5Connect(t, b, "v5-raw-pubsid")
	p := &codec.Publish{Topic: "v5/raw/pubsid", Payload: []byte("x")}
	p.Properties.SetSubscriptionIdentifier(3)
	c.Send(p)
	c.expectDisconnect(codec.ProtocolError)
	y.check()
}

// A second CONNECT on a connection is a Protocol Error [MQTT-3.1.0-2]: DISCONNECT 0x82.
func TestV5RawSecondConnect(t *testing.T) {
	b := startBroker(t)
	y := v5NewBystander(t, b)
	c, _ := v5Connect(t, b, "v5-raw-twice")
	c.Send(&codec.Connect{ProtocolName: "MQTT", Version: codec.V5, CleanStart: true, KeepAlive: 30, ClientID: "v5-raw-twice"})
	c.expectDisconnect(codec.ProtocolError)
	y.check()
}
