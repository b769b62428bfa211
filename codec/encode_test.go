package codec

import (
	"bufio"
	"bytes"
	"errors"
	"strings"
	"testing"
)

// TestEncodeV3Forms checks what the 3.x forms drop and map.
func TestEncodeV3Forms(t *testing.T) {
	withProps := pr(func(p *Properties) { p.SetReasonString("x") })
	for _, tc := range []struct {
		name string
		v    Version
		p    Packet
		want []byte
	}{
		{"PUBACK drops reason code and properties", V311,
			&Puback{PacketID: 1, ReasonCode: NoMatchingSubscribers, Properties: withProps}, by(0x40, 2, 0, 1)},
		{"PUBREL keeps its flags", V31, &Pubrel{PacketID: 1, ReasonCode: PacketIdentifierNotFound}, by(0x62, 2, 0, 1)},
		{"DISCONNECT drops reason code and properties", V311,
			&Disconnect{ReasonCode: DisconnectWithWill, Properties: withProps}, by(0xE0, 0)},
		{"UNSUBACK drops reason codes", V311, &Unsuback{PacketID: 2, ReasonCodes: []ReasonCode{NoSubscriptionExisted}}, by(0xB0, 2, 0, 2)},
		{"CONNACK maps a 5.0 refusal", V311, &Connack{ReasonCode: BadUserNameOrPassword}, by(0x20, 2, 0, 4)},
		{"CONNACK maps Banned", V311, &Connack{ReasonCode: Banned}, by(0x20, 2, 0, 5)},
		{"CONNACK keeps a 3.x code", V311, &Connack{ReasonCode: ConnRefusedServerUnavailable}, by(0x20, 2, 0, 3)},
		{"3.1 CONNACK has no Session Present", V31, &Connack{SessionPresent: true}, by(0x20, 2, 0, 0)},
		{"SUBACK maps 5.0 failures to 0x80", V311,
			&Suback{PacketID: 3, ReasonCodes: []ReasonCode{GrantedQoS1, TopicFilterInvalid, QuotaExceeded}}, pkt(0x90, u16b(3), by(1, 0x80, 0x80))},
		{"SUBSCRIBE drops 5.0 options", V311,
			&Subscribe{PacketID: 4, Subscriptions: []Subscription{{Filter: "a", QoS: 1, NoLocal: true, RetainAsPublished: true, RetainHandling: 2}}},
			pkt(0x82, u16b(4), str("a"), by(1))},
		{"PUBLISH drops properties", V311,
			&Publish{Topic: "t", Properties: pr(func(p *Properties) { p.SetMessageExpiryInterval(5) })}, pkt(0x30, str("t"))},
		{"CONNECT drops properties", V311,
			&Connect{ClientID: "c", Properties: pr(func(p *Properties) { p.SetSessionExpiryInterval(5) })},
			pkt(0x10, str("MQTT"), by(4, 0), u16b(0), str("c"))},
		{"CONNECT fills in name and level", V31, &Connect{ClientID: "c"}, pkt(0x10, str("MQIsdp"), by(3, 0), u16b(0), str("c"))},
		{"5.0 PUBACK failure without properties is 3 bytes", V5, &Puback{PacketID: 1, ReasonCode: QuotaExceeded}, by(0x40, 3, 0, 1, 0x97)},
		{"5.0 DISCONNECT normal without properties is 2 bytes", V5, &Disconnect{}, by(0xE0, 0)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Append(nil, tc.p, tc.v)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tc.want) {
				t.Errorf("got %s, want %s", hexOf(got), hexOf(tc.want))
			}
			if Size(tc.p, tc.v) != len(tc.want) {
				t.Errorf("Size %d, want %d", Size(tc.p, tc.v), len(tc.want))
			}
		})
	}
}

// TestEncodeErrors checks that Append refuses what the decoder would
// refuse, leaves dst alone, and that Size reports -1.
func TestEncodeErrors(t *testing.T) {
	long := strings.Repeat("x", maxField+1)
	for _, tc := range []struct {
		name string
		v    Version
		p    Packet
		code ReasonCode
	}{
		{"unknown version", 6, &Pingreq{}, UnsupportedProtocolVersion},
		{"nil packet", V5, (*Publish)(nil), ImplementationSpecificError},
		{"nil interface", V5, nil, ImplementationSpecificError},
		{"foreign packet type", V5, foreignPacket{}, ImplementationSpecificError},
		{"AUTH in 3.1.1", V311, &Auth{}, ProtocolError},
		{"PUBLISH QoS 3", V311, &Publish{Topic: "t", QoS: 3, PacketID: 1}, MalformedPacket},
		{"PUBLISH DUP on QoS 0", V5, &Publish{Topic: "t", Dup: true}, MalformedPacket},
		{"PUBLISH packet identifier 0", V5, &Publish{Topic: "t", QoS: 1}, ProtocolError},
		{"PUBLISH empty topic in 3.1.1", V311, &Publish{}, ProtocolError},
		{"PUBLISH empty topic without alias", V5, &Publish{}, ProtocolError},
		{"PUBLISH topic too long", V5, &Publish{Topic: long}, MalformedPacket},
		{"PUBLISH Topic Alias 0", V5, &Publish{Topic: "t", Properties: pr(func(p *Properties) { p.SetTopicAlias(0) })}, TopicAliasInvalid},
		{"PUBLISH Payload Format Indicator 2", V5, &Publish{Topic: "t", Properties: pr(func(p *Properties) { p.SetPayloadFormatIndicator(2) })}, ProtocolError},
		{"PUBLISH Subscription Identifier 0", V5, &Publish{Topic: "t", Properties: pr(func(p *Properties) { p.SetSubscriptionIdentifier(0) })}, ProtocolError},
		{"PUBLISH Subscription Identifier too big", V5, &Publish{Topic: "t", Properties: pr(func(p *Properties) { p.SetSubscriptionIdentifier(MaxSubscriptionIdentifier + 1) })}, ProtocolError},
		{"PUBLISH with Session Expiry Interval", V5, &Publish{Topic: "t", Properties: pr(func(p *Properties) { p.SetSessionExpiryInterval(1) })}, MalformedPacket},
		{"PUBLISH user property too long", V5, &Publish{Topic: "t", Properties: pr(func(p *Properties) { p.AddUserProperty(long, "") })}, MalformedPacket},
		{"CONNECT with Topic Alias", V5, &Connect{Properties: pr(func(p *Properties) { p.SetTopicAlias(1) })}, MalformedPacket},
		{"CONNECT Receive Maximum 0", V5, &Connect{Properties: pr(func(p *Properties) { p.SetReceiveMaximum(0) })}, ProtocolError},
		{"CONNECT Maximum Packet Size 0", V5, &Connect{Properties: pr(func(p *Properties) { p.SetMaximumPacketSize(0) })}, ProtocolError},
		{"CONNECT Authentication Data without method", V5, &Connect{Properties: pr(func(p *Properties) { p.SetAuthenticationData([]byte{1}) })}, ProtocolError},
		{"CONNECT version mismatch", V5, &Connect{Version: V311}, UnsupportedProtocolVersion},
		{"CONNECT name mismatch", V31, &Connect{ProtocolName: "MQTT"}, UnsupportedProtocolVersion},
		{"CONNECT password without user name in 3.1.1", V311, &Connect{Password: []byte("p"), HasPassword: true}, MalformedPacket},
		{"CONNECT user name without flag", V5, &Connect{Username: "u"}, MalformedPacket},
		{"CONNECT password without flag", V5, &Connect{Password: []byte("p")}, MalformedPacket},
		{"CONNECT will QoS 3", V5, &Connect{Will: &Will{Topic: "w", QoS: 3}}, MalformedPacket},
		{"CONNECT empty will topic", V5, &Connect{Will: &Will{}}, TopicNameInvalid},
		{"CONNECT will with Topic Alias", V5, &Connect{Will: &Will{Topic: "w", Properties: pr(func(p *Properties) { p.SetTopicAlias(1) })}}, MalformedPacket},
		{"CONNECT client id too long", V311, &Connect{ClientID: long}, MalformedPacket},
		{"CONNACK 5.0 code in 5.0 with session present", V5, &Connack{SessionPresent: true, ReasonCode: NotAuthorized}, ProtocolError},
		{"CONNACK 3.x code in 5.0", V5, &Connack{ReasonCode: ConnRefusedServerUnavailable}, ProtocolError},
		{"CONNACK success-range code in 3.1.1", V311, &Connack{ReasonCode: NoMatchingSubscribers}, ProtocolError},
		{"CONNACK Maximum QoS 2", V5, &Connack{Properties: pr(func(p *Properties) { p.SetMaximumQoS(2) })}, ProtocolError},
		{"PUBACK packet identifier 0", V311, &Puback{}, ProtocolError},
		{"PUBACK bad reason code", V5, &Puback{PacketID: 1, ReasonCode: PacketIdentifierNotFound}, ProtocolError},
		{"PUBREL bad reason code", V5, &Pubrel{PacketID: 1, ReasonCode: QuotaExceeded}, ProtocolError},
		{"PUBCOMP with Topic Alias", V5, &Pubcomp{PacketID: 1, Properties: pr(func(p *Properties) { p.SetTopicAlias(1) })}, MalformedPacket},
		{"SUBSCRIBE without filters", V5, &Subscribe{PacketID: 1}, ProtocolError},
		{"SUBSCRIBE packet identifier 0", V5, &Subscribe{Subscriptions: []Subscription{{Filter: "a"}}}, ProtocolError},
		{"SUBSCRIBE QoS 3", V311, &Subscribe{PacketID: 1, Subscriptions: []Subscription{{Filter: "a", QoS: 3}}}, MalformedPacket},
		{"SUBSCRIBE Retain Handling 3", V5, &Subscribe{PacketID: 1, Subscriptions: []Subscription{{Filter: "a", RetainHandling: 3}}}, ProtocolError},
		{"SUBSCRIBE No Local shared", V5, &Subscribe{PacketID: 1, Subscriptions: []Subscription{{Filter: "$share/g/a", NoLocal: true}}}, ProtocolError},
		{"SUBSCRIBE two Subscription Identifiers", V5, &Subscribe{PacketID: 1, Subscriptions: []Subscription{{Filter: "a"}},
			Properties: pr(func(p *Properties) { p.SetSubscriptionIdentifiers([]uint32{1, 2}) })}, ProtocolError},
		{"SUBSCRIBE filter too long", V5, &Subscribe{PacketID: 1, Subscriptions: []Subscription{{Filter: long}}}, MalformedPacket},
		{"SUBACK without codes", V5, &Suback{PacketID: 1}, ProtocolError},
		{"SUBACK bad code in 5.0", V5, &Suback{PacketID: 1, ReasonCodes: []ReasonCode{NoMatchingSubscribers}}, ProtocolError},
		{"SUBACK bad code in 3.1.1", V311, &Suback{PacketID: 1, ReasonCodes: []ReasonCode{3}}, ProtocolError},
		{"UNSUBSCRIBE without filters", V311, &Unsubscribe{PacketID: 1}, ProtocolError},
		{"UNSUBACK without codes in 5.0", V5, &Unsuback{PacketID: 1}, ProtocolError},
		{"UNSUBACK bad code", V5, &Unsuback{PacketID: 1, ReasonCodes: []ReasonCode{GrantedQoS1}}, ProtocolError},
		{"DISCONNECT bad code", V5, &Disconnect{ReasonCode: ContinueAuthentication}, ProtocolError},
		{"DISCONNECT with Assigned Client Identifier", V5, &Disconnect{Properties: pr(func(p *Properties) { p.SetAssignedClientIdentifier("x") })}, MalformedPacket},
		{"AUTH bad code", V5, &Auth{ReasonCode: NotAuthorized}, ProtocolError},
		{"SUBSCRIBE larger than the protocol allows", V311, hugeSubscribe(), PacketTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := []byte("keep")
			out, err := Append(dst, tc.p, tc.v)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Append: %v, want an *Error", err)
			}
			if e.Code != tc.code {
				t.Errorf("code %s (%v), want %s", e.Code, err, tc.code)
			}
			if string(out) != "keep" {
				t.Errorf("dst changed to %q", out)
			}
			if n := Size(tc.p, tc.v); n != -1 {
				t.Errorf("Size = %d, want -1", n)
			}
		})
	}
}

// hugeSubscribe measures more than MaxRemainingLength while its filters
// share one 64 KiB string.
func hugeSubscribe() *Subscribe {
	filter := strings.Repeat("x", maxField)
	subs := make([]Subscription, MaxRemainingLength/(maxField+3)+1)
	for i := range subs {
		subs[i].Filter = filter
	}
	return &Subscribe{PacketID: 1, Subscriptions: subs}
}

type foreignPacket struct{}

func (foreignPacket) Type() PacketType { return TypePingreq }

// TestEncodeAllocs: encoding into a buffer with room allocates nothing.
func TestEncodeAllocs(t *testing.T) {
	payload := make([]byte, 16<<10)
	pub5 := &Publish{QoS: 1, Topic: "sensors/1/temp", PacketID: 7, Payload: payload,
		Properties: pr(func(p *Properties) {
			p.SetMessageExpiryInterval(60)
			p.SetContentType("application/json")
			p.SetSubscriptionIdentifiers([]uint32{1, 2})
			p.AddUserProperty("k", "v")
		})}
	buf := make([]byte, 0, 32<<10)
	for _, tc := range []struct {
		name string
		p    Packet
		v    Version
	}{
		{"PUBLISH 3.1.1", &Publish{QoS: 1, Topic: "sensors/1/temp", PacketID: 7, Payload: payload}, V311},
		{"PUBLISH 5.0 with properties", pub5, V5},
		{"PUBACK 5.0", &Puback{PacketID: 7, ReasonCode: NoMatchingSubscribers}, V5},
		{"PINGRESP", &Pingresp{}, V311},
		{"SUBACK", &Suback{PacketID: 1, ReasonCodes: []ReasonCode{1}}, V5},
		{"CONNACK", &Connack{Properties: pr(func(p *Properties) { p.SetTopicAliasMaximum(10) })}, V5},
	} {
		if n := testing.AllocsPerRun(100, func() {
			if _, err := Append(buf[:0], tc.p, tc.v); err != nil {
				t.Fatal(err)
			}
		}); n != 0 {
			t.Errorf("%s: %v allocations", tc.name, n)
		}
	}
}

// TestDecodeAllocs: the allocation budget of the Reader: a PUBLISH costs its
// body and the *Publish, an ack only the *Puback, a PINGREQ nothing.
func TestDecodeAllocs(t *testing.T) {
	for _, tc := range []struct {
		name string
		raw  []byte
		v    Version
		max  float64
	}{
		{"PUBLISH 3.1.1 QoS 1", pkt(0x32, str("sensors/1/temp"), u16b(7), bytes.Repeat([]byte{'x'}, 64)), V311, 2},
		{"PUBLISH 5.0 QoS 1 with message expiry", pkt(0x32, str("sensors/1/temp"), u16b(7), props(by(0x02), u32b(9)), []byte("x")), V5, 2},
		{"PUBACK 5.0", by(0x40, 3, 0, 1, 0x10), V5, 1},
		{"PINGREQ", by(0xC0, 0), V311, 0},
		{"DISCONNECT 5.0", by(0xE0, 1, 0x04), V5, 1},
	} {
		src := bytes.NewReader(nil)
		br := bufio.NewReader(src)
		r := NewReader(br, 0)
		r.SetVersion(tc.v)
		n := testing.AllocsPerRun(100, func() {
			src.Reset(tc.raw)
			br.Reset(src)
			if _, err := r.ReadPacket(); err != nil {
				t.Fatal(err)
			}
		})
		if n > tc.max {
			t.Errorf("%s: %v allocations, want <= %v", tc.name, n, tc.max)
		}
	}
}
