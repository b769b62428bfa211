package codec

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"
)

// malformedCase is an invalid packet and the reason code decoding must
// report. ref cites the normative statement ([MQTT-x.y.z-n], 5.0 numbering
// unless marked 3.1.1) or, where the spec states the rule without a number,
// its section.
type malformedCase struct {
	name string
	v    Version
	raw  []byte
	code ReasonCode
	ref  string
}

// A valid 5.0 CONNECT header up to and including the flags byte.
func connect5(flags byte) []byte { return cat(str("MQTT"), by(5, flags), u16b(0)) }

// A valid 3.1.1 CONNECT header up to and including the keep alive.
func connect4(flags byte) []byte { return cat(str("MQTT"), by(4, flags), u16b(0)) }

// pub5 is a 5.0 QoS 0 PUBLISH to "t" with the given property bytes.
func pub5(propBytes ...[]byte) []byte { return pkt(0x30, str("t"), props(propBytes...)) }

var malformedCases = []malformedCase{
	// Fixed header and Remaining Length.
	{"reserved packet type 0", V311, by(0x00, 0), MalformedPacket, "3.1.1 §2.2.1 Table 2.1: 0 is reserved"},
	{"AUTH in 3.1.1", V311, by(0xF0, 0), MalformedPacket, "3.1.1 §2.2.1 Table 2.1: 15 is reserved"},
	{"AUTH in 3.1", V31, by(0xF0, 0), MalformedPacket, "3.1 has no packet type 15"},
	{"PUBREL flags 0", V5, by(0x60, 2, 0, 1), MalformedPacket, "[MQTT-3.6.1-1]"},
	{"PUBREL with DUP in 3.1.1", V311, by(0x6A, 2, 0, 1), MalformedPacket, "3.1.1 [MQTT-3.6.1-1]"},
	{"SUBSCRIBE flags 0", V311, pkt(0x80, u16b(1), str("a"), by(0)), MalformedPacket, "3.1.1 [MQTT-3.8.1-1]"},
	{"UNSUBSCRIBE flags 0", V5, pkt(0xA0, u16b(1), props(), str("a")), MalformedPacket, "[MQTT-3.10.1-1]"},
	{"PINGREQ flags 1", V311, by(0xC1, 0), MalformedPacket, "3.1.1 [MQTT-2.2.2-2]"},
	{"DISCONNECT flags 2", V5, by(0xE2, 0), MalformedPacket, "[MQTT-3.14.1-1]"},
	{"AUTH flags 1", V5, by(0xF1, 0), MalformedPacket, "[MQTT-3.15.1-1]"},
	{"PUBLISH QoS 3", V5, pkt(0x36, str("t"), u16b(1), props()), MalformedPacket, "[MQTT-3.3.1-4]"},
	{"PUBLISH DUP on QoS 0", V311, pkt(0x38, str("t")), MalformedPacket, "[MQTT-3.3.1-2]"},
	{"Remaining Length of 5 bytes", V311, by(0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F), MalformedPacket, "§1.5.5: at most four bytes"},
	{"Remaining Length not minimal", V5, by(0xC0, 0x80, 0x00), MalformedPacket, "[MQTT-1.5.5-1]"},
	{"non-CONNECT before CONNECT", 0, by(0xC0, 0), ProtocolError, "[MQTT-3.1.0-1]"},

	// Remaining Length against content.
	{"PINGREQ with a body", V311, by(0xC0, 1, 0), MalformedPacket, "§3.12: no variable header or payload"},
	{"PINGRESP with a body", V5, by(0xD0, 1, 0), MalformedPacket, "§3.13: no variable header or payload"},
	{"3.1.1 DISCONNECT with a body", V311, by(0xE0, 1, 0), MalformedPacket, "3.1.1 §3.14: no variable header or payload"},
	{"3.1.1 PUBACK trailing byte", V311, by(0x40, 3, 0, 1, 0), MalformedPacket, "3.1.1 §3.4: Remaining Length 2"},
	{"3.1.1 CONNACK trailing byte", V311, by(0x20, 3, 0, 0, 0), MalformedPacket, "3.1.1 §3.2: Remaining Length 2"},
	{"3.1.1 UNSUBACK trailing byte", V311, by(0xB0, 3, 0, 1, 0), MalformedPacket, "3.1.1 §3.11: Remaining Length 2"},
	{"PUBACK shorter than its packet identifier", V311, by(0x40, 1, 0), MalformedPacket, "§3.4.2"},
	{"PUBLISH topic longer than the packet", V311, pkt(0x30, by(0, 10), []byte("abc")), MalformedPacket, "§1.5.4 length prefix"},
	{"PUBLISH QoS 1 without packet identifier", V311, pkt(0x32, str("t"), by(0)), MalformedPacket, "§3.3.2"},
	{"5.0 PUBLISH without property length", V5, pkt(0x30, str("t")), MalformedPacket, "§3.3.2.3"},
	{"5.0 PUBACK trailing bytes after properties", V5, pkt(0x40, u16b(1), by(0), props(), by(0)), MalformedPacket, "§3.4.2"},
	{"5.0 DISCONNECT trailing bytes", V5, pkt(0xE0, by(0), props(), by(0)), MalformedPacket, "§3.14.2"},
	{"5.0 CONNACK without property length", V5, by(0x20, 2, 0, 0), MalformedPacket, "§3.2.2.3"},
	{"property length beyond the packet", V5, pkt(0x30, str("t"), by(9), by(0x23), u16b(1)), MalformedPacket, "§2.2.2.1"},
	{"property value cut short", V5, pub5(by(0x02, 0, 0)), MalformedPacket, "§2.2.2.2"},
	{"CONNECT trailing bytes", V311, pkt(0x10, connect4(0x02), str("c"), by(0)), MalformedPacket, "[MQTT-3.1.4-1] (3.1.1)"},
	{"CONNECT cut inside the client id", V311, pkt(0x10, connect4(0x02), by(0, 5), []byte("ab")), MalformedPacket, "[MQTT-3.1.3-3]"},

	// UTF-8 Encoded Strings.
	{"topic not UTF-8", V311, pkt(0x30, by(0, 2, 0xC3, 0x28)), MalformedPacket, "3.1.1 [MQTT-1.5.3-1]"},
	{"topic with U+0000", V5, pkt(0x30, str("a\x00b"), props()), MalformedPacket, "[MQTT-1.5.4-2]"},
	{"topic with U+0000 after 8 ASCII bytes", V311, pkt(0x30, str("abcdefgh\x00")), MalformedPacket, "3.1.1 [MQTT-1.5.3-2]"},
	{"client id with a surrogate (ED A0 80)", V5, pkt(0x10, connect5(0x02), props(), str("a\xed\xa0\x80")), MalformedPacket, "[MQTT-1.5.4-1]"},
	{"client id with an overlong NUL (C0 80)", V311, pkt(0x10, connect4(0x02), str("\xc0\x80")), MalformedPacket, "3.1.1 [MQTT-1.5.3-1]"},
	{"user name not UTF-8", V311, pkt(0x10, connect4(0x80), str("c"), str("\xff")), MalformedPacket, "3.1.1 [MQTT-3.1.3-11]"},
	{"SUBSCRIBE filter with U+0000", V311, pkt(0x82, u16b(1), str("a\x00"), by(0)), MalformedPacket, "3.1.1 [MQTT-3.8.3-1]"},
	{"UNSUBSCRIBE filter truncated UTF-8", V5, pkt(0xA2, u16b(1), props(), str("\xe2\x82")), MalformedPacket, "[MQTT-3.10.3-1]"},
	{"user property value not UTF-8", V5, pub5(by(0x26), str("k"), str("\xed\xbf\xbf")), MalformedPacket, "[MQTT-1.5.7-1]"},
	{"reason string with U+0000", V5, pkt(0x40, u16b(1), by(0x80), props(by(0x1F), str("\x00"))), MalformedPacket, "[MQTT-1.5.4-2]"},

	// Topic Names.
	{"PUBLISH topic with +", V311, pkt(0x30, str("a/+")), TopicNameInvalid, "3.1.1 [MQTT-3.3.2-2]"},
	{"PUBLISH topic with #", V5, pkt(0x30, str("a/#"), props()), TopicNameInvalid, "[MQTT-3.3.2-2]"},
	{"PUBLISH multi-byte topic with #", V5, pkt(0x30, str("é/#"), props()), TopicNameInvalid, "[MQTT-3.3.2-2]"},
	{"PUBLISH empty topic in 3.1.1", V311, pkt(0x30, str("")), ProtocolError, "3.1.1 [MQTT-4.7.3-1]"},
	{"PUBLISH empty topic without Topic Alias", V5, pkt(0x30, str(""), props()), ProtocolError, "§3.3.2.1"},
	{"Will Topic with wildcard", V311, pkt(0x10, connect4(0x06), str("c"), str("a/#"), str("")), TopicNameInvalid, "[MQTT-4.7.0-1]"},
	{"Will Topic empty", V5, pkt(0x10, connect5(0x06), props(), str("c"), props(), str(""), str("")), TopicNameInvalid, "[MQTT-4.7.3-1]"},

	// Packet Identifiers.
	{"PUBLISH QoS 1 packet identifier 0", V311, pkt(0x32, str("t"), u16b(0)), ProtocolError, "3.1.1 [MQTT-2.3.1-1]"},
	{"PUBLISH QoS 2 packet identifier 0", V5, pkt(0x34, str("t"), u16b(0), props()), ProtocolError, "[MQTT-2.2.1-3]"},
	{"SUBSCRIBE packet identifier 0", V5, pkt(0x82, u16b(0), props(), str("a"), by(0)), ProtocolError, "[MQTT-2.2.1-3]"},
	{"UNSUBSCRIBE packet identifier 0", V311, pkt(0xA2, u16b(0), str("a")), ProtocolError, "3.1.1 [MQTT-2.3.1-1]"},
	{"PUBACK packet identifier 0", V311, by(0x40, 2, 0, 0), ProtocolError, "[MQTT-2.2.1-5]"},
	{"SUBACK packet identifier 0", V5, pkt(0x90, u16b(0), props(), by(0)), ProtocolError, "[MQTT-2.2.1-6]"},

	// Properties.
	{"duplicate Message Expiry Interval", V5, pub5(by(0x02), u32b(1), by(0x02), u32b(2)), ProtocolError, "§3.3.2.3.3"},
	{"duplicate Topic Alias", V5, pub5(by(0x23), u16b(1), by(0x23), u16b(2)), ProtocolError, "§3.3.2.3.4"},
	{"duplicate Reason String", V5, pkt(0x40, u16b(1), by(0x80), props(by(0x1F), str("a"), by(0x1F), str("b"))), ProtocolError, "§3.4.2.2.2"},
	{"two Subscription Identifiers in SUBSCRIBE", V5, pkt(0x82, u16b(1), props(by(0x0B, 1, 0x0B, 2)), str("a"), by(0)), ProtocolError, "§3.8.2.1.2"},
	{"duplicate Session Expiry Interval in CONNECT", V5, pkt(0x10, connect5(0x02), props(by(0x11), u32b(1), by(0x11), u32b(1)), str("c")), ProtocolError, "§3.1.2.11.2"},
	{"Topic Alias in CONNECT", V5, pkt(0x10, connect5(0x02), props(by(0x23), u16b(1)), str("c")), MalformedPacket, "§2.2.2.2"},
	{"Will Delay Interval in PUBLISH", V5, pub5(by(0x18), u32b(1)), MalformedPacket, "§2.2.2.2"},
	{"Session Expiry Interval in Will Properties", V5, pkt(0x10, connect5(0x06), props(), str("c"), props(by(0x11), u32b(1)), str("w"), str("")), MalformedPacket, "§2.2.2.2"},
	{"Reason String in SUBSCRIBE", V5, pkt(0x82, u16b(1), props(by(0x1F), str("x")), str("a"), by(0)), MalformedPacket, "§2.2.2.2"},
	{"Server Keep Alive in DISCONNECT", V5, pkt(0xE0, by(0), props(by(0x13), u16b(1))), MalformedPacket, "§2.2.2.2"},
	{"unknown property identifier", V5, pub5(by(0x7F, 0)), MalformedPacket, "§2.2.2.2"},
	{"two-byte property identifier", V5, pub5(by(0x80, 0x01, 0)), MalformedPacket, "§2.2.2.2"},
	{"Receive Maximum 0", V5, pkt(0x10, connect5(0x02), props(by(0x21), u16b(0)), str("c")), ProtocolError, "§3.1.2.11.3"},
	{"Maximum Packet Size 0", V5, pkt(0x10, connect5(0x02), props(by(0x27), u32b(0)), str("c")), ProtocolError, "§3.1.2.11.4"},
	{"Request Response Information 2", V5, pkt(0x10, connect5(0x02), props(by(0x19, 2)), str("c")), ProtocolError, "§3.1.2.11.6"},
	{"Request Problem Information 2", V5, pkt(0x10, connect5(0x02), props(by(0x17, 2)), str("c")), ProtocolError, "§3.1.2.11.7"},
	{"Authentication Data without Authentication Method", V5, pkt(0x10, connect5(0x02), props(by(0x16), str("x")), str("c")), ProtocolError, "§3.1.2.11.10"},
	{"Maximum QoS 2", V5, pkt(0x20, by(0, 0), props(by(0x24, 2))), ProtocolError, "§3.2.2.3.4"},
	{"Retain Available 2", V5, pkt(0x20, by(0, 0), props(by(0x25, 2))), ProtocolError, "§3.2.2.3.5"},
	{"Shared Subscription Available 2", V5, pkt(0x20, by(0, 0), props(by(0x2A, 2))), ProtocolError, "§3.2.2.3.13"},
	{"Payload Format Indicator 2", V5, pub5(by(0x01, 2)), ProtocolError, "§3.3.2.3.2"},
	{"Subscription Identifier 0", V5, pub5(by(0x0B, 0)), ProtocolError, "§3.3.2.3.8"},
	{"Subscription Identifier not minimal", V5, pub5(by(0x0B, 0x81, 0x00)), MalformedPacket, "[MQTT-1.5.5-1]"},
	{"Topic Alias 0", V5, pub5(by(0x23), u16b(0)), TopicAliasInvalid, "[MQTT-3.3.2-8]"},
	{"Response Topic with wildcard", V5, pub5(by(0x08), str("r/+")), ProtocolError, "[MQTT-3.3.2-14]"},

	// CONNECT.
	{"CONNECT reserved flag", V311, pkt(0x10, connect4(0x03), str("c")), MalformedPacket, "[MQTT-3.1.2-3]"},
	{"CONNECT reserved flag in 5.0", V5, pkt(0x10, connect5(0x01), props(), str("c")), MalformedPacket, "[MQTT-3.1.2-3]"},
	{"Will QoS without Will Flag", V5, pkt(0x10, connect5(0x0A), props(), str("c")), MalformedPacket, "[MQTT-3.1.2-11]"},
	{"Will QoS without Will Flag in 3.1.1", V311, pkt(0x10, connect4(0x12), str("c")), MalformedPacket, "3.1.1 [MQTT-3.1.2-13]"},
	{"Will Retain without Will Flag", V5, pkt(0x10, connect5(0x22), props(), str("c")), MalformedPacket, "[MQTT-3.1.2-13]"},
	{"Will Retain without Will Flag in 3.1.1", V311, pkt(0x10, connect4(0x22), str("c")), MalformedPacket, "3.1.1 [MQTT-3.1.2-15]"},
	{"Will QoS 3", V5, pkt(0x10, connect5(0x1E), props(), str("c"), props(), str("w"), str("")), MalformedPacket, "[MQTT-3.1.2-12]"},
	{"Will QoS 3 in 3.1.1", V311, pkt(0x10, connect4(0x1E), str("c"), str("w"), str("")), MalformedPacket, "3.1.1 [MQTT-3.1.2-14]"},
	{"Will Flag without will fields", V311, pkt(0x10, connect4(0x06), str("c")), MalformedPacket, "[MQTT-3.1.2-9]"},
	{"password without user name in 3.1.1", V311, pkt(0x10, connect4(0x42), str("c"), str("p")), MalformedPacket, "3.1.1 [MQTT-3.1.2-22]"},
	{"password without user name in 3.1", V31, pkt(0x10, str("MQIsdp"), by(3, 0x42), u16b(0), str("c"), str("p")), MalformedPacket, "3.1.1 [MQTT-3.1.2-22], as Mosquitto applies it to 3.1"},
	{"User Name Flag without user name", V311, pkt(0x10, connect4(0x82), str("c")), MalformedPacket, "3.1.1 [MQTT-3.1.2-19]"},
	{"Password Flag without password", V5, pkt(0x10, connect5(0x42), props(), str("c")), MalformedPacket, "[MQTT-3.1.2-19]"},
	{"unknown protocol level 6", V5, pkt(0x10, str("MQTT"), by(6, 2), u16b(0), props(), str("c")), UnsupportedProtocolVersion, "[MQTT-3.1.2-2]"},
	{"protocol name MQTT with level 3", V311, pkt(0x10, str("MQTT"), by(3, 2), u16b(0), str("c")), UnsupportedProtocolVersion, "3.1.1 [MQTT-3.1.2-2]"},
	{"protocol name MQIsdp with level 4", V311, pkt(0x10, str("MQIsdp"), by(4, 2), u16b(0), str("c")), UnsupportedProtocolVersion, "3.1.1 [MQTT-3.1.2-1]"},
	{"unknown protocol name", V5, pkt(0x10, str("MQTX"), by(5, 2), u16b(0), props(), str("c")), UnsupportedProtocolVersion, "[MQTT-3.1.2-1]"},
	{"bridge bit on the protocol level", V311, pkt(0x10, str("MQTT"), by(0x84, 2), u16b(0), str("c")), UnsupportedProtocolVersion, "3.1.1 [MQTT-3.1.2-2]"},

	// CONNACK.
	{"CONNACK reserved flags", V5, by(0x20, 3, 0x02, 0, 0), MalformedPacket, "[MQTT-3.2.2-1]"},
	{"CONNACK reserved flags in 3.1.1", V311, by(0x20, 2, 0x80, 0), MalformedPacket, "3.1.1 §3.2.2.1: bits 7-1 reserved"},
	{"CONNACK session present with refusal", V311, by(0x20, 2, 1, 4), ProtocolError, "3.1.1 [MQTT-3.2.2-4]"},
	{"CONNACK session present with failure", V5, by(0x20, 3, 1, 0x80, 0), ProtocolError, "[MQTT-3.2.2-6]"},
	{"CONNACK return code 6", V311, by(0x20, 2, 0, 6), ProtocolError, "3.1.1 §3.2.2.3 Table 3.1: 6-255 reserved"},
	{"CONNACK reason code not a CONNACK code", V5, by(0x20, 3, 0, 0x04, 0), ProtocolError, "§3.2.2.2"},

	// Reason codes of the acks, DISCONNECT and AUTH.
	{"PUBACK reason code 0x04", V5, by(0x40, 3, 0, 1, 0x04), ProtocolError, "[MQTT-3.4.2-1]"},
	{"PUBREC reason code 0x92", V5, by(0x50, 3, 0, 1, 0x92), ProtocolError, "[MQTT-3.5.2-1]"},
	{"PUBREL reason code 0x10", V5, by(0x62, 3, 0, 1, 0x10), ProtocolError, "[MQTT-3.6.2-1]"},
	{"PUBCOMP reason code 0x80", V5, by(0x70, 3, 0, 1, 0x80), ProtocolError, "[MQTT-3.7.2-1]"},
	{"DISCONNECT reason code 0x05", V5, by(0xE0, 1, 0x05), ProtocolError, "[MQTT-3.14.2-1]"},
	{"AUTH reason code 0x01", V5, by(0xF0, 1, 0x01), ProtocolError, "[MQTT-3.15.2-1]"},
	{"SUBACK code 3 in 3.1.1", V311, pkt(0x90, u16b(1), by(3)), ProtocolError, "3.1.1 [MQTT-3.9.3-2]"},
	{"SUBACK code 0x10", V5, pkt(0x90, u16b(1), props(), by(0x10)), ProtocolError, "[MQTT-3.9.3-2]"},
	{"SUBACK without codes", V311, pkt(0x90, u16b(1)), ProtocolError, "3.1.1 [MQTT-3.8.4-5]"},
	{"UNSUBACK code 0x10", V5, pkt(0xB0, u16b(1), props(), by(0x10)), ProtocolError, "§3.11.3"},
	{"UNSUBACK without codes", V5, pkt(0xB0, u16b(1), props()), ProtocolError, "[MQTT-3.11.3-1]"},

	// SUBSCRIBE and UNSUBSCRIBE.
	{"SUBSCRIBE without filters", V311, pkt(0x82, u16b(1)), ProtocolError, "3.1.1 [MQTT-3.8.3-3]"},
	{"SUBSCRIBE without filters in 5.0", V5, pkt(0x82, u16b(1), props()), ProtocolError, "[MQTT-3.8.3-2]"},
	{"UNSUBSCRIBE without filters", V311, pkt(0xA2, u16b(1)), ProtocolError, "[MQTT-3.10.3-2]"},
	{"UNSUBSCRIBE without filters in 5.0", V5, pkt(0xA2, u16b(1), props()), ProtocolError, "[MQTT-3.10.3-2]"},
	{"SUBSCRIBE filter without options", V311, pkt(0x82, u16b(1), str("a")), MalformedPacket, "§3.8.3"},
	{"SUBSCRIBE QoS 3 in 3.1.1", V311, pkt(0x82, u16b(1), str("a"), by(3)), MalformedPacket, "3.1.1 [MQTT-3.8.3-4]"},
	{"SUBSCRIBE reserved option bits in 3.1.1", V311, pkt(0x82, u16b(1), str("a"), by(0x04)), MalformedPacket, "3.1.1 [MQTT-3.8.3-4]"},
	{"SUBSCRIBE reserved option bits in 3.1", V31, pkt(0x82, u16b(1), str("a"), by(0x81)), MalformedPacket, "3.1.1 [MQTT-3.8.3-4]"},
	{"SUBSCRIBE reserved option bits", V5, pkt(0x82, u16b(1), props(), str("a"), by(0x40)), MalformedPacket, "[MQTT-3.8.3-5]"},
	{"SUBSCRIBE Maximum QoS 3", V5, pkt(0x82, u16b(1), props(), str("a"), by(0x03)), ProtocolError, "§3.8.3.1"},
	{"SUBSCRIBE Retain Handling 3", V5, pkt(0x82, u16b(1), props(), str("a"), by(0x30)), ProtocolError, "§3.8.3.1"},
	{"SUBSCRIBE No Local on a shared subscription", V5, pkt(0x82, u16b(1), props(), str("$share/g/a"), by(0x04)), ProtocolError, "[MQTT-3.8.3-4]"},
}

func TestMalformed(t *testing.T) {
	for _, c := range malformedCases {
		t.Run(c.name, func(t *testing.T) {
			if c.ref == "" {
				t.Fatal("row cites no normative statement")
			}
			p, _, err := Decode(c.raw, c.v)
			checkCode(t, "Decode", p, err, c.code, c.ref)
			// The Reader must agree, whatever version it was set to.
			r := NewReader(bufio.NewReader(bytes.NewReader(c.raw)), 0)
			r.SetVersion(c.v)
			p, err = r.ReadPacket()
			checkCode(t, "ReadPacket", p, err, c.code, c.ref)
		})
	}
}

func checkCode(t *testing.T, what string, p Packet, err error, code ReasonCode, ref string) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("%s: got packet %#v, error %v; want code %s %s", what, p, err, code, ref)
	}
	if e.Code != code {
		t.Errorf("%s: code %s (%v), want %s %s", what, e.Code, err, code, ref)
	}
	if p != nil {
		t.Errorf("%s: returned a packet with the error", what)
	}
}

// TestFixedHeaderFlags tries every flag nibble of every packet type in every
// version: only Table 2-2's values (and 3.1's DUP on resent PUBREL,
// SUBSCRIBE, UNSUBSCRIBE) pass the fixed header [MQTT-2.1.3-1]
// [MQTT-2.2.2-2 (3.1.1)].
func TestFixedHeaderFlags(t *testing.T) {
	for _, v := range []Version{V31, V311, V5} {
		for typ := TypeConnect; typ <= TypeAuth; typ++ {
			for f := byte(0); f < 16; f++ {
				var want bool
				switch typ {
				case TypePublish:
					want = f&6 != 6 && !(f&6 == 0 && f&8 != 0)
				case TypePubrel, TypeSubscribe, TypeUnsubscribe:
					want = f == 2 || (v == V31 && f == 0x0A)
				case TypeAuth:
					want = v == V5 && f == 0
				default:
					want = f == 0
				}
				_, err := checkFixedHeader(byte(typ)<<4|f, v)
				if got := err == nil; got != want {
					t.Errorf("%s %s flags 0x%X: accepted %v, want %v (%v)", v, typ, f, got, want, err)
				}
				var e *Error
				if err != nil && (!errors.As(err, &e) || e.Code != MalformedPacket) {
					t.Errorf("%s %s flags 0x%X: %v, want Malformed Packet", v, typ, f, err)
				}
			}
		}
	}
}

// TestTruncated checks that a slice ending inside a packet gives
// io.ErrUnexpectedEOF from Decode and from a Reader.
func TestTruncated(t *testing.T) {
	for _, f := range fixtures {
		for cut := 1; cut < len(f.raw); cut++ {
			raw := f.raw[:cut]
			if _, _, err := Decode(raw, f.v); err != io.ErrUnexpectedEOF {
				t.Fatalf("%s cut at %d: Decode error %v, want io.ErrUnexpectedEOF", f.name, cut, err)
			}
			r := NewReader(bufio.NewReader(bytes.NewReader(raw)), 0)
			r.SetVersion(f.v)
			if _, err := r.ReadPacket(); err != io.ErrUnexpectedEOF {
				t.Fatalf("%s cut at %d: ReadPacket error %v, want io.ErrUnexpectedEOF", f.name, cut, err)
			}
		}
	}
	if _, _, err := Decode(nil, V5); err != io.EOF {
		t.Errorf("Decode(nil) = %v, want io.EOF", err)
	}
}

func TestReaderEOF(t *testing.T) {
	r := NewReader(bufio.NewReader(bytes.NewReader(by(0xC0, 0))), 0)
	r.SetVersion(V311)
	if _, err := r.ReadPacket(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ReadPacket(); err != io.EOF {
		t.Fatalf("after the last packet: %v, want io.EOF", err)
	}
	// A failing underlying reader's error comes through unchanged.
	boom := errors.New("boom")
	r = NewReader(bufio.NewReader(io.MultiReader(bytes.NewReader(by(0x30, 5, 0)), errReader{boom})), 0)
	r.SetVersion(V311)
	if _, err := r.ReadPacket(); err != boom {
		t.Fatalf("read error: %v, want %v", err, boom)
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// TestReaderTooLarge checks that the Remaining Length is refused before the
// body is allocated: the stream claims 200 MB but has 3 bytes.
func TestReaderTooLarge(t *testing.T) {
	raw := cat(by(0x30), vbi(200<<20), by(0, 1, 't'))
	src := bytes.NewReader(raw)
	br := bufio.NewReaderSize(src, 16)
	r := NewReader(br, 1024)
	r.SetVersion(V311)
	read := func() error {
		src.Reset(raw)
		br.Reset(src)
		_, err := r.ReadPacket()
		return err
	}
	var e *Error
	if err := read(); !errors.As(err, &e) || e.Code != PacketTooLarge {
		t.Fatalf("got %v, want Packet too large", err)
	}
	if perRead := bytesPerCall(func() { _ = read() }); perRead > 1024 {
		t.Errorf("refusing an oversized packet allocated %d bytes", perRead)
	}
	// Only the error itself: its struct and message.
	if n := testing.AllocsPerRun(100, func() { _ = read() }); n > 5 {
		t.Errorf("refusing an oversized packet took %v allocations", n)
	}
}

// TestReaderMaxPacketSize checks the limit counts the whole packet.
func TestReaderMaxPacketSize(t *testing.T) {
	raw := pkt(0x30, str("t"), bytes.Repeat([]byte{'x'}, 100)) // 2 + 103 bytes
	for _, tc := range []struct {
		max int
		ok  bool
	}{{len(raw), true}, {len(raw) - 1, false}, {0, true}, {-1, true}} {
		r := NewReader(bufio.NewReader(bytes.NewReader(raw)), tc.max)
		r.SetVersion(V311)
		_, err := r.ReadPacket()
		if (err == nil) != tc.ok {
			t.Errorf("max %d: error %v, want ok=%v", tc.max, err, tc.ok)
		}
	}
}

func TestReaderVersion(t *testing.T) {
	connect5 := pkt(0x10, str("MQTT"), by(5, 2), u16b(0), props(), str("c"))
	connect4 := pkt(0x10, str("MQTT"), by(4, 2), u16b(0), str("c"))
	// A 5.0 AUTH after a 5.0 CONNECT, then a second (3.1.1) CONNECT that
	// must not switch the version.
	r := NewReader(bufio.NewReader(bytes.NewReader(cat(connect5, by(0xF0, 0), connect4, by(0xF0, 0)))), 0)
	if r.Version() != 0 {
		t.Fatalf("initial version %s", r.Version())
	}
	for i, want := range []PacketType{TypeConnect, TypeAuth, TypeConnect, TypeAuth} {
		p, err := r.ReadPacket()
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		if p.Type() != want || r.Version() != V5 {
			t.Fatalf("packet %d: %s with version %s", i, p.Type(), r.Version())
		}
	}

	// A CONNECT that fails after its level still sets the version, so the
	// connection layer can answer in the right form.
	bad := pkt(0x10, str("MQTT"), by(5, 0x03), u16b(0), props(), str("c"))
	r = NewReader(bufio.NewReader(bytes.NewReader(bad)), 0)
	if _, err := r.ReadPacket(); err == nil || r.Version() != V5 {
		t.Fatalf("bad 5.0 CONNECT: error %v, version %s", err, r.Version())
	}
	// An unknown level leaves it unknown.
	r = NewReader(bufio.NewReader(bytes.NewReader(pkt(0x10, str("MQTT"), by(9, 2), u16b(0), str("c")))), 0)
	if _, err := r.ReadPacket(); err == nil || r.Version() != 0 {
		t.Fatalf("unknown level: error %v, version %s", err, r.Version())
	}
}

// TestDecodeNeverPanicsOnPrefixes feeds every prefix and every single-byte
// corruption of every fixture to Decode in every version; the fuzz targets
// go further, this runs on every go test.
func TestDecodeCorruptions(t *testing.T) {
	for _, f := range fixtures {
		for i := range f.raw {
			for _, x := range []byte{0x00, 0x01, 0x7F, 0x80, 0xFF} {
				raw := bytes.Clone(f.raw)
				raw[i] ^= x
				for _, v := range []Version{0, V31, V311, V5} {
					p, n, err := Decode(raw, v)
					if err == nil {
						if n < 2 || n > len(raw) {
							t.Fatalf("%s byte %d ^ %#x: consumed %d", f.name, i, x, n)
						}
						roundTrip(t, fmt.Sprintf("%s byte %d ^ %#x", f.name, i, x), p, v)
					}
				}
			}
		}
	}
}
