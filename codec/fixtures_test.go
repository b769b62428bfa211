package codec

import (
	"bufio"
	"bytes"
	"io"
	"math/bits"
	"testing"
)

// fixture is one packet in one version: Decode(raw) must give pkt and
// Append(pkt) must give raw.
type fixture struct {
	name string
	v    Version
	raw  []byte
	pkt  Packet
}

// fixtures is the catalogue: every packet type in every version that has
// it, with and without properties, and every property at least once
// (TestFixturesCoverEveryProperty checks the last two claims).
var fixtures = []fixture{
	// ---- MQTT 3.1
	{"3.1 CONNECT minimal", V31,
		pkt(0x10, str("MQIsdp"), by(3, 0x02), u16b(60), str("c31")),
		&Connect{ProtocolName: "MQIsdp", Version: V31, CleanStart: true, KeepAlive: 60, ClientID: "c31"}},
	{"3.1 CONNECT will, user name, password", V31,
		pkt(0x10, str("MQIsdp"), by(3, 0xEC), u16b(10), str("id"), str("will/t"), str("bye"), str("user"), str("pw")),
		&Connect{ProtocolName: "MQIsdp", Version: V31, KeepAlive: 10, ClientID: "id",
			Will:     &Will{Topic: "will/t", Payload: []byte("bye"), QoS: 1, Retain: true},
			Username: "user", HasUsername: true, Password: []byte("pw"), HasPassword: true}},
	{"3.1 CONNACK accepted", V31, by(0x20, 2, 0, 0), &Connack{}},
	{"3.1 CONNACK identifier rejected", V31, by(0x20, 2, 0, 2), &Connack{ReasonCode: ConnRefusedIdentifierRejected}},
	{"3.1 PUBLISH QoS 0", V31, pkt(0x30, str("a/b"), []byte("hi")), &Publish{Topic: "a/b", Payload: []byte("hi")}},
	{"3.1 PUBLISH QoS 1 DUP RETAIN", V31, pkt(0x3B, str("a"), u16b(7), by(1, 2, 3)),
		&Publish{Dup: true, QoS: 1, Retain: true, Topic: "a", PacketID: 7, Payload: []byte{1, 2, 3}}},
	{"3.1 PUBLISH QoS 2 empty payload", V31, pkt(0x34, str("x"), u16b(0xFFFF)), &Publish{QoS: 2, Topic: "x", PacketID: 0xFFFF}},
	{"3.1 PUBACK", V31, by(0x40, 2, 0, 1), &Puback{PacketID: 1}},
	{"3.1 PUBREC", V31, by(0x50, 2, 0, 2), &Pubrec{PacketID: 2}},
	{"3.1 PUBREL", V31, by(0x62, 2, 0, 3), &Pubrel{PacketID: 3}},
	{"3.1 PUBCOMP", V31, by(0x70, 2, 0, 4), &Pubcomp{PacketID: 4}},
	{"3.1 SUBSCRIBE", V31, pkt(0x82, u16b(10), str("a/+"), by(1), str("#"), by(2)),
		&Subscribe{PacketID: 10, Subscriptions: []Subscription{{Filter: "a/+", QoS: 1}, {Filter: "#", QoS: 2}}}},
	{"3.1 SUBACK", V31, pkt(0x90, u16b(10), by(0, 1, 2, 0x80)),
		&Suback{PacketID: 10, ReasonCodes: []ReasonCode{0, 1, 2, 0x80}}},
	{"3.1 UNSUBSCRIBE", V31, pkt(0xA2, u16b(11), str("a/+"), str("#")), &Unsubscribe{PacketID: 11, Filters: []string{"a/+", "#"}}},
	{"3.1 UNSUBACK", V31, by(0xB0, 2, 0, 11), &Unsuback{PacketID: 11}},
	{"3.1 PINGREQ", V31, by(0xC0, 0), &Pingreq{}},
	{"3.1 PINGRESP", V31, by(0xD0, 0), &Pingresp{}},
	{"3.1 DISCONNECT", V31, by(0xE0, 0), &Disconnect{}},

	// ---- MQTT 3.1.1
	{"3.1.1 CONNECT (spec example bytes)", V311,
		by(0x10, 0x0F, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 0x3C, 0, 3, 'a', 'b', 'c'),
		&Connect{ProtocolName: "MQTT", Version: V311, CleanStart: true, KeepAlive: 60, ClientID: "abc"}},
	{"3.1.1 CONNECT empty client id, will QoS 2, user name only", V311,
		pkt(0x10, str("MQTT"), by(4, 0x96), u16b(0), str(""), str("w"), str(""), str("üser")),
		&Connect{ProtocolName: "MQTT", Version: V311, CleanStart: true,
			Will:     &Will{Topic: "w", QoS: 2},
			Username: "üser", HasUsername: true}},
	{"3.1.1 CONNECT empty password", V311,
		pkt(0x10, str("MQTT"), by(4, 0xC0), u16b(5), str("c"), str("u"), str("")),
		&Connect{ProtocolName: "MQTT", Version: V311, KeepAlive: 5, ClientID: "c",
			Username: "u", HasUsername: true, HasPassword: true}},
	{"3.1.1 CONNACK session present", V311, by(0x20, 2, 1, 0), &Connack{SessionPresent: true}},
	{"3.1.1 CONNACK not authorized", V311, by(0x20, 2, 0, 5), &Connack{ReasonCode: ConnRefusedNotAuthorized}},
	{"3.1.1 PUBLISH QoS 0", V311, pkt(0x30, str("sensors/1/temp"), []byte("21.5")),
		&Publish{Topic: "sensors/1/temp", Payload: []byte("21.5")}},
	{"3.1.1 PUBLISH QoS 1 RETAIN multi-byte topic", V311, pkt(0x33, str("家/温度"), u16b(300), []byte("x")),
		&Publish{QoS: 1, Retain: true, Topic: "家/温度", PacketID: 300, Payload: []byte("x")}},
	{"3.1.1 PUBLISH QoS 2 DUP empty payload", V311, pkt(0x3C, str("t"), u16b(9)),
		&Publish{Dup: true, QoS: 2, Topic: "t", PacketID: 9}},
	{"3.1.1 PUBLISH 200-byte payload (2-byte length)", V311, pkt(0x30, str("big"), bytes.Repeat([]byte{'z'}, 200)),
		&Publish{Topic: "big", Payload: bytes.Repeat([]byte{'z'}, 200)}},
	{"3.1.1 PUBACK", V311, by(0x40, 2, 0x12, 0x34), &Puback{PacketID: 0x1234}},
	{"3.1.1 PUBREC", V311, by(0x50, 2, 0, 2), &Pubrec{PacketID: 2}},
	{"3.1.1 PUBREL", V311, by(0x62, 2, 0, 3), &Pubrel{PacketID: 3}},
	{"3.1.1 PUBCOMP", V311, by(0x70, 2, 0, 4), &Pubcomp{PacketID: 4}},
	{"3.1.1 SUBSCRIBE", V311, pkt(0x82, u16b(1), str("a/b"), by(0), str("$SYS/#"), by(1), str("+/x"), by(2)),
		&Subscribe{PacketID: 1, Subscriptions: []Subscription{{Filter: "a/b"}, {Filter: "$SYS/#", QoS: 1}, {Filter: "+/x", QoS: 2}}}},
	{"3.1.1 SUBACK", V311, pkt(0x90, u16b(1), by(0, 0x80, 2)), &Suback{PacketID: 1, ReasonCodes: []ReasonCode{0, 0x80, 2}}},
	{"3.1.1 UNSUBSCRIBE", V311, pkt(0xA2, u16b(2), str("a/b")), &Unsubscribe{PacketID: 2, Filters: []string{"a/b"}}},
	{"3.1.1 UNSUBACK", V311, by(0xB0, 2, 0, 2), &Unsuback{PacketID: 2}},
	{"3.1.1 PINGREQ", V311, by(0xC0, 0), &Pingreq{}},
	{"3.1.1 PINGRESP", V311, by(0xD0, 0), &Pingresp{}},
	{"3.1.1 DISCONNECT", V311, by(0xE0, 0), &Disconnect{}},

	// ---- MQTT 5.0
	{"5.0 CONNECT minimal", V5, pkt(0x10, str("MQTT"), by(5, 0x02), u16b(30), props(), str("c5")),
		&Connect{ProtocolName: "MQTT", Version: V5, CleanStart: true, KeepAlive: 30, ClientID: "c5"}},
	{"5.0 CONNECT every CONNECT and will property", V5,
		pkt(0x10, str("MQTT"), by(5, 0xF6), u16b(600),
			props(
				by(0x11), u32b(3600),
				by(0x15), str("SCRAM-SHA-1"),
				by(0x16), str("\x01\x02"),
				by(0x17, 0),
				by(0x19, 1),
				by(0x21), u16b(20),
				by(0x22), u16b(10),
				by(0x26), str("k1"), str("v1"),
				by(0x26), str("k1"), str("v2"),
				by(0x27), u32b(1<<20)),
			str("client-5"),
			props(
				by(0x01, 1),
				by(0x02), u32b(60),
				by(0x03), str("text/plain"),
				by(0x08), str("resp/t"),
				by(0x09), str("\x09\x09"),
				by(0x18), u32b(5),
				by(0x26), str("wk"), str("wv")),
			str("will/5"), str("gone"), str("u"), str("p")),
		&Connect{ProtocolName: "MQTT", Version: V5, CleanStart: true, KeepAlive: 600,
			Properties: pr(func(p *Properties) {
				p.SetSessionExpiryInterval(3600)
				p.SetAuthenticationMethod("SCRAM-SHA-1")
				p.SetAuthenticationData([]byte{1, 2})
				p.SetRequestProblemInformation(false)
				p.SetRequestResponseInformation(true)
				p.SetReceiveMaximum(20)
				p.SetTopicAliasMaximum(10)
				p.AddUserProperty("k1", "v1")
				p.AddUserProperty("k1", "v2")
				p.SetMaximumPacketSize(1 << 20)
			}),
			ClientID: "client-5",
			Will: &Will{Topic: "will/5", Payload: []byte("gone"), QoS: 2, Retain: true,
				Properties: pr(func(p *Properties) {
					p.SetPayloadFormatIndicator(1)
					p.SetMessageExpiryInterval(60)
					p.SetContentType("text/plain")
					p.SetResponseTopic("resp/t")
					p.SetCorrelationData([]byte{9, 9})
					p.SetWillDelayInterval(5)
					p.AddUserProperty("wk", "wv")
				})},
			Username: "u", HasUsername: true, Password: []byte("p"), HasPassword: true}},
	{"5.0 CONNECT password without user name", V5,
		pkt(0x10, str("MQTT"), by(5, 0x42), u16b(0), props(), str(""), str("token")),
		&Connect{ProtocolName: "MQTT", Version: V5, CleanStart: true, Password: []byte("token"), HasPassword: true}},
	{"5.0 CONNACK minimal", V5, by(0x20, 3, 0, 0, 0), &Connack{}},
	{"5.0 CONNACK every CONNACK property", V5,
		pkt(0x20, by(1, 0), props(
			by(0x11), u32b(0xFFFFFFFF),
			by(0x12), str("auto-1"),
			by(0x13), u16b(120),
			by(0x15), str("SCRAM-SHA-1"),
			by(0x16), str("\x03"),
			by(0x1A), str("resp/"),
			by(0x1C), str("other:1883"),
			by(0x1F), str("welcome"),
			by(0x21), u16b(100),
			by(0x22), u16b(5),
			by(0x24, 1),
			by(0x25, 0),
			by(0x26), str("s"), str("1"),
			by(0x27), u32b(65536),
			by(0x28, 1),
			by(0x29, 0),
			by(0x2A, 1))),
		&Connack{SessionPresent: true, Properties: pr(func(p *Properties) {
			p.SetSessionExpiryInterval(0xFFFFFFFF)
			p.SetAssignedClientIdentifier("auto-1")
			p.SetServerKeepAlive(120)
			p.SetAuthenticationMethod("SCRAM-SHA-1")
			p.SetAuthenticationData([]byte{3})
			p.SetResponseInformation("resp/")
			p.SetServerReference("other:1883")
			p.SetReasonString("welcome")
			p.SetReceiveMaximum(100)
			p.SetTopicAliasMaximum(5)
			p.SetMaximumQoS(1)
			p.SetRetainAvailable(false)
			p.AddUserProperty("s", "1")
			p.SetMaximumPacketSize(65536)
			p.SetWildcardSubscriptionAvailable(true)
			p.SetSubscriptionIdentifierAvailable(false)
			p.SetSharedSubscriptionAvailable(true)
		})}},
	{"5.0 CONNACK not authorized with reason string", V5, pkt(0x20, by(0, 0x87), props(by(0x1F), str("no"))),
		&Connack{ReasonCode: NotAuthorized, Properties: pr(func(p *Properties) { p.SetReasonString("no") })}},
	{"5.0 PUBLISH QoS 0 RETAIN no properties", V5, pkt(0x31, str("t"), props(), []byte("x")),
		&Publish{Retain: true, Topic: "t", Payload: []byte("x")}},
	{"5.0 PUBLISH QoS 1 every PUBLISH property", V5,
		pkt(0x32, str("req/1"), u16b(5), props(
			by(0x01, 1),
			by(0x02), u32b(30),
			by(0x03), str("application/json"),
			by(0x08), str("resp/1"),
			by(0x09), str("\xca\xfe"),
			by(0x0B), vbi(1),
			by(0x0B), vbi(MaxSubscriptionIdentifier),
			by(0x23), u16b(3),
			by(0x26), str("a"), str("b")),
			[]byte("{}")),
		&Publish{QoS: 1, Topic: "req/1", PacketID: 5, Payload: []byte("{}"),
			Properties: pr(func(p *Properties) {
				p.SetPayloadFormatIndicator(1)
				p.SetMessageExpiryInterval(30)
				p.SetContentType("application/json")
				p.SetResponseTopic("resp/1")
				p.SetCorrelationData([]byte{0xCA, 0xFE})
				p.SetSubscriptionIdentifiers([]uint32{1, MaxSubscriptionIdentifier})
				p.SetTopicAlias(3)
				p.AddUserProperty("a", "b")
			})}},
	{"5.0 PUBLISH empty topic with Topic Alias", V5, pkt(0x30, str(""), props(by(0x23), u16b(3)), []byte("p")),
		&Publish{Payload: []byte("p"), Properties: pr(func(p *Properties) { p.SetTopicAlias(3) })}},
	{"5.0 PUBACK success, short form", V5, by(0x40, 2, 0, 1), &Puback{PacketID: 1}},
	{"5.0 PUBACK reason code only", V5, by(0x40, 3, 0, 2, 0x10), &Puback{PacketID: 2, ReasonCode: NoMatchingSubscribers}},
	{"5.0 PUBACK with properties", V5, pkt(0x40, u16b(3), by(0x87), props(by(0x1F), str("nope"), by(0x26), str("k"), str("v"))),
		&Puback{PacketID: 3, ReasonCode: NotAuthorized, Properties: pr(func(p *Properties) {
			p.SetReasonString("nope")
			p.AddUserProperty("k", "v")
		})}},
	{"5.0 PUBREC with reason string", V5, pkt(0x50, u16b(4), by(0x91), props(by(0x1F), str("in use"))),
		&Pubrec{PacketID: 4, ReasonCode: PacketIdentifierInUse, Properties: pr(func(p *Properties) { p.SetReasonString("in use") })}},
	{"5.0 PUBREL not found", V5, by(0x62, 3, 0, 5, 0x92), &Pubrel{PacketID: 5, ReasonCode: PacketIdentifierNotFound}},
	{"5.0 PUBCOMP success", V5, by(0x70, 2, 0, 6), &Pubcomp{PacketID: 6}},
	{"5.0 SUBSCRIBE with options and properties", V5,
		pkt(0x82, u16b(20), props(by(0x0B), vbi(200), by(0x26), str("k"), str("v")),
			str("a/#"), by(0x1D), str("$share/g/x"), by(0x22)),
		&Subscribe{PacketID: 20,
			Properties: pr(func(p *Properties) {
				p.SetSubscriptionIdentifier(200)
				p.AddUserProperty("k", "v")
			}),
			Subscriptions: []Subscription{
				{Filter: "a/#", QoS: 1, NoLocal: true, RetainAsPublished: true, RetainHandling: 1},
				{Filter: "$share/g/x", QoS: 2, RetainHandling: 2},
			}}},
	{"5.0 SUBACK", V5, pkt(0x90, u16b(20), props(by(0x1F), str("ok")), by(0x01, 0x02, 0x8F, 0xA2)),
		&Suback{PacketID: 20, Properties: pr(func(p *Properties) { p.SetReasonString("ok") }),
			ReasonCodes: []ReasonCode{GrantedQoS1, GrantedQoS2, TopicFilterInvalid, WildcardSubscriptionsNotSupported}}},
	{"5.0 UNSUBSCRIBE", V5, pkt(0xA2, u16b(21), props(by(0x26), str("k"), str("v")), str("a/#"), str("b")),
		&Unsubscribe{PacketID: 21, Properties: pr(func(p *Properties) { p.AddUserProperty("k", "v") }), Filters: []string{"a/#", "b"}}},
	{"5.0 UNSUBACK", V5, pkt(0xB0, u16b(21), props(), by(0x00, 0x11)),
		&Unsuback{PacketID: 21, ReasonCodes: []ReasonCode{Success, NoSubscriptionExisted}}},
	{"5.0 PINGREQ", V5, by(0xC0, 0), &Pingreq{}},
	{"5.0 PINGRESP", V5, by(0xD0, 0), &Pingresp{}},
	{"5.0 DISCONNECT normal, short form", V5, by(0xE0, 0), &Disconnect{}},
	{"5.0 DISCONNECT with will, reason code only", V5, by(0xE0, 1, 0x04), &Disconnect{ReasonCode: DisconnectWithWill}},
	{"5.0 DISCONNECT with properties", V5,
		pkt(0xE0, by(0x9C), props(by(0x11), u32b(0), by(0x1C), str("srv2"), by(0x1F), str("bye"), by(0x26), str("k"), str("v"))),
		&Disconnect{ReasonCode: UseAnotherServer, Properties: pr(func(p *Properties) {
			p.SetSessionExpiryInterval(0)
			p.SetServerReference("srv2")
			p.SetReasonString("bye")
			p.AddUserProperty("k", "v")
		})}},
	{"5.0 AUTH success, short form", V5, by(0xF0, 0), &Auth{}},
	{"5.0 AUTH continue", V5,
		pkt(0xF0, by(0x18), props(by(0x15), str("SCRAM-SHA-1"), by(0x16), str("\x01\x02\x03"), by(0x1F), str("more"), by(0x26), str("k"), str("v"))),
		&Auth{ReasonCode: ContinueAuthentication, Properties: pr(func(p *Properties) {
			p.SetAuthenticationMethod("SCRAM-SHA-1")
			p.SetAuthenticationData([]byte{1, 2, 3})
			p.SetReasonString("more")
			p.AddUserProperty("k", "v")
		})}},
}

// variants are valid non-canonical forms: they decode to pkt, but Append
// writes the canonical form instead.
var variants = []fixture{
	{"5.0 PUBACK success with explicit reason code and empty properties", V5, by(0x40, 4, 0, 1, 0, 0), &Puback{PacketID: 1}},
	{"5.0 PUBACK success with explicit reason code", V5, by(0x40, 3, 0, 1, 0), &Puback{PacketID: 1}},
	{"5.0 DISCONNECT normal with empty properties", V5, by(0xE0, 2, 0, 0), &Disconnect{}},
	{"5.0 AUTH success reason code only", V5, by(0xF0, 1, 0), &Auth{}},
	{"5.0 properties out of identifier order", V5, pkt(0x30, str("t"), props(by(0x23), u16b(3), by(0x01, 0))),
		&Publish{Topic: "t", Properties: pr(func(p *Properties) {
			p.SetPayloadFormatIndicator(0)
			p.SetTopicAlias(3)
		})}},
	{"3.1 PUBREL resent with DUP", V31, by(0x6A, 2, 0, 3), &Pubrel{PacketID: 3}},
	{"3.1 SUBSCRIBE resent with DUP", V31, pkt(0x8A, u16b(1), str("a"), by(0)), &Subscribe{PacketID: 1, Subscriptions: []Subscription{{Filter: "a"}}}},
	{"3.1 CONNECT flags name fields that are missing", V31, pkt(0x10, str("MQIsdp"), by(3, 0xC2), u16b(0), str("x")),
		&Connect{ProtocolName: "MQIsdp", Version: V31, CleanStart: true, ClientID: "x"}},
	{"3.1 CONNACK reserved byte set", V31, by(0x20, 2, 1, 0), &Connack{}},
	{"3.1.1 CONNECT decoded with a 5.0 reader", V5, by(0x10, 0x0F, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 0x3C, 0, 3, 'a', 'b', 'c'),
		&Connect{ProtocolName: "MQTT", Version: V311, CleanStart: true, KeepAlive: 60, ClientID: "abc"}},
}

func TestFixturesDecode(t *testing.T) {
	for _, f := range append(fixtures[:len(fixtures):len(fixtures)], variants...) {
		t.Run(f.name, func(t *testing.T) {
			p, n, err := Decode(f.raw, f.v)
			if err != nil {
				t.Fatalf("Decode(%s): %v", hexOf(f.raw), err)
			}
			if n != len(f.raw) {
				t.Errorf("consumed %d of %d bytes", n, len(f.raw))
			}
			samePacket(t, "Decode", p, f.pkt)
		})
	}
}

func TestFixturesEncode(t *testing.T) {
	for _, f := range fixtures {
		t.Run(f.name, func(t *testing.T) {
			got, err := Append(nil, f.pkt, f.v)
			if err != nil {
				t.Fatalf("Append: %v", err)
			}
			if !bytes.Equal(got, f.raw) {
				t.Errorf("Append:\n got  %s\n want %s", hexOf(got), hexOf(f.raw))
			}
			if n := Size(f.pkt, f.v); n != len(f.raw) {
				t.Errorf("Size = %d, want %d", n, len(f.raw))
			}
			// Append extends dst rather than overwriting it.
			prefix := []byte("prefix")
			got, _ = Append(prefix, f.pkt, f.v)
			if !bytes.Equal(got[:len(prefix)], prefix) || !bytes.Equal(got[len(prefix):], f.raw) {
				t.Errorf("Append to a non-empty slice: %s", hexOf(got))
			}
		})
	}
}

// TestFixturesCover checks the catalogue's claims: every packet type in
// every version, and every property.
func TestFixturesCover(t *testing.T) {
	seen := map[Version]uint32{}
	var propsSeen uint64
	for _, f := range fixtures {
		seen[f.v] |= 1 << f.pkt.Type()
		for _, p := range propertySets(f.pkt) {
			propsSeen |= p.present
		}
	}
	for _, v := range []Version{V31, V311, V5} {
		for typ := TypeConnect; typ <= TypeAuth; typ++ {
			if typ == TypeAuth && v != V5 {
				continue
			}
			if seen[v]&(1<<typ) == 0 {
				t.Errorf("no %s fixture for %s", typ, v)
			}
		}
	}
	var all uint64
	for id, info := range propTable {
		if info.kind != kindNone {
			all |= 1 << id
		}
	}
	if bits.OnesCount64(all) != 27 {
		t.Fatalf("property table has %d properties, want 27", bits.OnesCount64(all))
	}
	for m := all &^ propsSeen; m != 0; m &= m - 1 {
		t.Errorf("no fixture carries %s", PropertyID(bits.TrailingZeros64(m)))
	}
}

// propertySets returns the property sets of a packet, will included.
func propertySets(p Packet) []*Properties {
	switch p := p.(type) {
	case *Connect:
		if p.Will != nil {
			return []*Properties{&p.Properties, &p.Will.Properties}
		}
		return []*Properties{&p.Properties}
	case *Connack:
		return []*Properties{&p.Properties}
	case *Publish:
		return []*Properties{&p.Properties}
	case *Puback:
		return []*Properties{&p.Properties}
	case *Pubrec:
		return []*Properties{&p.Properties}
	case *Pubrel:
		return []*Properties{&p.Properties}
	case *Pubcomp:
		return []*Properties{&p.Properties}
	case *Subscribe:
		return []*Properties{&p.Properties}
	case *Suback:
		return []*Properties{&p.Properties}
	case *Unsubscribe:
		return []*Properties{&p.Properties}
	case *Unsuback:
		return []*Properties{&p.Properties}
	case *Disconnect:
		return []*Properties{&p.Properties}
	case *Auth:
		return []*Properties{&p.Properties}
	}
	return nil
}

// TestReadPacketStream reads each version's fixtures back to back from one
// stream, and compares only after reading them all, which would catch a
// packet that still pointed into a reused buffer.
func TestReadPacketStream(t *testing.T) {
	for _, v := range []Version{V31, V311, V5} {
		var stream []byte
		var want []Packet
		for _, f := range append(fixtures[:len(fixtures):len(fixtures)], variants...) {
			if f.v == v {
				stream = append(stream, f.raw...)
				want = append(want, f.pkt)
			}
		}
		// A tiny bufio buffer makes packets straddle refills.
		r := NewReader(bufio.NewReaderSize(bytes.NewReader(stream), 16), 0)
		r.SetVersion(v)
		var got []Packet
		for {
			p, err := r.ReadPacket()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("%s: packet %d: %v", v, len(got), err)
			}
			got = append(got, p)
		}
		if len(got) != len(want) {
			t.Fatalf("%s: read %d packets, want %d", v, len(got), len(want))
		}
		for i := range got {
			samePacket(t, v.String()+" packet "+want[i].Type().String(), got[i], want[i])
		}
		if r.Version() != v {
			t.Errorf("version changed to %s by a later CONNECT", r.Version())
		}
	}
}
