package hostile

// Malformed and out-of-order packets, each written byte by byte: the broker answers as the
// specification says and only the offending connection is affected.

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/actormq/actormq/codec"
	"github.com/actormq/actormq/config"
	"github.com/actormq/actormq/internal/brokertest"
)

// Byte builders, after §1.5 and §2.1 of the specification.

// packet is a first byte, the Remaining Length of the body, and the body.
func packet(b0 byte, parts ...[]byte) []byte {
	var body []byte
	for _, p := range parts {
		body = append(body, p...)
	}
	return append(append([]byte{b0}, varint(len(body))...), body...)
}

// mqttStr is a UTF-8 Encoded String: two bytes of length, then the bytes as they are (valid or
// not: that is the point).
func mqttStr(s string) []byte { return append([]byte{byte(len(s) >> 8), byte(len(s))}, s...) }

func u16(v uint16) []byte { return []byte{byte(v >> 8), byte(v)} }

// connectBytes is a CONNECT of version v with the given flags (clean start 0x02 unless
// changed) and client id, and what the flags ask to follow.
func connectBytes(v codec.Version, flags byte, clientID string, rest ...[]byte) []byte {
	name := "MQTT"
	if v == codec.V31 {
		name = "MQIsdp"
	}
	parts := [][]byte{mqttStr(name), {byte(v), flags}, u16(30)}
	if v == codec.V5 {
		parts = append(parts, []byte{0}) // no properties
	}
	parts = append(parts, mqttStr(clientID))
	return packet(0x10, append(parts, rest...)...)
}

// publishBytes is a PUBLISH with the given first byte and topic; in 5.0 with an empty property
// block. QoS 1 and 2 get packet id 1.
func publishBytes(v codec.Version, b0 byte, topic string, payload string) []byte {
	parts := [][]byte{mqttStr(topic)}
	if b0&0x06 != 0 {
		parts = append(parts, u16(1))
	}
	if v == codec.V5 {
		parts = append(parts, []byte{0})
	}
	return packet(b0, append(parts, []byte(payload))...)
}

// subscribeBytes is a SUBSCRIBE of one filter with the given options byte.
func subscribeBytes(v codec.Version, filter string, options byte) []byte {
	parts := [][]byte{u16(1)}
	if v == codec.V5 {
		parts = append(parts, []byte{0})
	}
	return packet(0x82, append(parts, mqttStr(filter), []byte{options})...)
}

// badCase is input that must close the connection: in 5.0 after DISCONNECT with code, in 3.1.1
// without a word [MQTT-4.8.0-1].
type badCase struct {
	name string
	raw  func(v codec.Version) []byte
	code codec.ReasonCode // 5.0
	rule string
}

// runBad sends each case on a fresh connection of each version, checks the close, its log line
// with the reason, and that the bystander goes on.
func runBad(t *testing.T, h *harness, y *bystander, cases []badCase) {
	t.Helper()
	for _, bc := range cases {
		for _, v := range []codec.Version{codec.V311, codec.V5} {
			t.Run(fmt.Sprintf("%s/%s", bc.name, v), func(t *testing.T) {
				c := h.mustConnect(t, "bad-"+strings.ReplaceAll(bc.name, " ", "-"), v, 30)
				if err := sendRaw(c, bc.raw(v)); err != nil {
					t.Fatal(err)
				}
				want := bc.code
				if v != codec.V5 {
					want = 0
				}
				if err := checkClosedWith(closedOnly(c), want); err != nil {
					t.Fatalf("%v %s", err, bc.rule)
				}
				// 3.1.1 sends no code but logs one: the codec's, where the two versions differ.
				logged := bc.code
				var ce *codec.Error
				if _, _, err := codec.Decode(bc.raw(v), v); errors.As(err, &ce) {
					logged = ce.Code
				}
				h.expectEndLog(t, c, reasonIs(logged))
				y.check(t)
			})
		}
	}
}

// TestMalformedAfterConnect: packets that break the format rules, sent by a connected client.
func TestMalformedAfterConnect(t *testing.T) {
	h := start(t, func(c *config.Config) { c.Limits.MaxPacketSize = 4096 })
	y := h.bystander(t)
	runBad(t, h, y, []badCase{
		// The Remaining Length.
		{"remaining length of 5 bytes", func(codec.Version) []byte { return []byte{0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F} },
			codec.MalformedPacket, "(§1.5.5: at most 4 bytes)"},
		{"remaining length not minimal", func(codec.Version) []byte { return []byte{0xC0, 0x80, 0x00} },
			codec.MalformedPacket, "[MQTT-1.5.5-1]"},
		{"remaining length shorter than the topic", func(codec.Version) []byte { return []byte{0x30, 0x03, 0x00, 0x05, 'a'} },
			codec.MalformedPacket, "(§1.5.4: the string runs past the packet)"},
		{"remaining length of 0 on PUBLISH", func(codec.Version) []byte { return []byte{0x30, 0x00} },
			codec.MalformedPacket, "(§3.3.2: a PUBLISH has a Topic Name)"},
		{"remaining length above the maximum packet size", func(codec.Version) []byte { return []byte{0x30, 0xFF, 0xFF, 0xFF, 0x7F} },
			codec.PacketTooLarge, "(5.0 §3.2.2.3.6, [MQTT-3.2.2-15]: 0x95, before the body is read)"},
		{"packet larger than the maximum packet size", func(v codec.Version) []byte {
			return publishBytes(v, 0x30, "big", strings.Repeat("x", 5000))
		}, codec.PacketTooLarge, "(5.0 §3.2.2.3.6, [MQTT-3.2.2-15])"},
		// Variable byte integers inside a 5.0 packet: a 5-byte Property Length.
		{"property length of 5 bytes", func(v codec.Version) []byte {
			if v != codec.V5 {
				return []byte{0x30, 0x80, 0x80, 0x80, 0x80, 0x01}
			}
			return packet(0x30, mqttStr("t"), []byte{0xFF, 0xFF, 0xFF, 0xFF, 0x01})
		}, codec.MalformedPacket, "(§1.5.5, §2.2.2.1)"},

		// QoS, reserved flags, packet types.
		{"PUBLISH QoS 3", func(v codec.Version) []byte { return publishBytes(v, 0x36, "t", "x") },
			codec.MalformedPacket, "[MQTT-3.3.1-4]"},
		{"PUBLISH DUP with QoS 0", func(v codec.Version) []byte { return publishBytes(v, 0x38, "t", "x") },
			codec.MalformedPacket, "[MQTT-3.3.1-2]"},
		{"PUBACK reserved flags", func(codec.Version) []byte { return []byte{0x41, 0x02, 0x00, 0x01} },
			codec.MalformedPacket, "(3.1.1 [MQTT-2.2.2-2]; 5.0 [MQTT-2.1.3-1])"},
		{"PUBREL flags 0", func(codec.Version) []byte { return []byte{0x60, 0x02, 0x00, 0x01} },
			codec.MalformedPacket, "(3.1.1 [MQTT-3.6.1-1]; 5.0 [MQTT-3.6.1-1])"},
		{"SUBSCRIBE flags 0", func(v codec.Version) []byte { b := subscribeBytes(v, "a", 0); b[0] = 0x80; return b },
			codec.MalformedPacket, "(3.1.1 [MQTT-3.8.1-1]; 5.0 [MQTT-3.8.1-1])"},
		{"UNSUBSCRIBE flags 0", func(v codec.Version) []byte {
			if v == codec.V5 {
				return packet(0xA0, u16(1), []byte{0}, mqttStr("a"))
			}
			return packet(0xA0, u16(1), mqttStr("a"))
		}, codec.MalformedPacket, "[MQTT-3.10.1-1]"},
		{"PINGREQ flags 1", func(codec.Version) []byte { return []byte{0xC1, 0x00} },
			codec.MalformedPacket, "(3.1.1 [MQTT-2.2.2-2]; 5.0 [MQTT-2.1.3-1])"},
		{"DISCONNECT flags 2", func(codec.Version) []byte { return []byte{0xE2, 0x00} },
			codec.MalformedPacket, "(3.1.1 [MQTT-2.2.2-2]; 5.0 [MQTT-3.14.1-1])"},
		{"SUBSCRIBE reserved option bits", func(v codec.Version) []byte { return subscribeBytes(v, "a", 0xC0) },
			codec.MalformedPacket, "(3.1.1 [MQTT-3.8.3-4]; 5.0 [MQTT-3.8.3-5])"},
		{"packet type 0", func(codec.Version) []byte { return []byte{0x00, 0x00} },
			codec.MalformedPacket, "(Table 2.1: 0 is reserved)"},

		// Strings: invalid UTF-8, U+0000, wildcards where a topic name is due.
		{"topic not UTF-8", func(v codec.Version) []byte { return publishBytes(v, 0x30, "a\xC3\x28", "x") },
			codec.MalformedPacket, "(3.1.1 [MQTT-1.5.3-1]; 5.0 [MQTT-1.5.4-1])"},
		{"topic with a UTF-16 surrogate", func(v codec.Version) []byte { return publishBytes(v, 0x30, "a\xED\xA0\x80", "x") },
			codec.MalformedPacket, "(3.1.1 [MQTT-1.5.3-1]; 5.0 [MQTT-1.5.4-1])"},
		{"topic with an overlong encoding", func(v codec.Version) []byte { return publishBytes(v, 0x30, "a\xC0\xAF", "x") },
			codec.MalformedPacket, "(3.1.1 [MQTT-1.5.3-1]; 5.0 [MQTT-1.5.4-1])"},
		{"topic with U+0000", func(v codec.Version) []byte { return publishBytes(v, 0x30, "a/\x00/b", "x") },
			codec.MalformedPacket, "(3.1.1 [MQTT-1.5.3-2]; 5.0 [MQTT-1.5.4-2])"},
		{"QoS 1 topic with U+0000", func(v codec.Version) []byte { return publishBytes(v, 0x32, "\x00", "x") },
			codec.MalformedPacket, "(3.1.1 [MQTT-1.5.3-2]; 5.0 [MQTT-1.5.4-2])"},
		{"filter with U+0000", func(v codec.Version) []byte { return subscribeBytes(v, "a/\x00", 0) },
			codec.MalformedPacket, "(3.1.1 [MQTT-1.5.3-2]; 5.0 [MQTT-1.5.4-2])"},
		{"filter not UTF-8", func(v codec.Version) []byte { return subscribeBytes(v, "\xFF/#", 0) },
			codec.MalformedPacket, "(3.1.1 [MQTT-1.5.3-1]; 5.0 [MQTT-1.5.4-1])"},
		{"topic with +", func(v codec.Version) []byte { return publishBytes(v, 0x30, "a/+/b", "x") },
			codec.TopicNameInvalid, "[MQTT-3.3.2-2]"},
		{"topic with #", func(v codec.Version) []byte { return publishBytes(v, 0x32, "a/#", "x") },
			codec.TopicNameInvalid, "[MQTT-3.3.2-2]"},
		{"topic #", func(v codec.Version) []byte { return publishBytes(v, 0x31, "#", "x") },
			codec.TopicNameInvalid, "[MQTT-3.3.2-2]"},
		{"topic +", func(v codec.Version) []byte { return publishBytes(v, 0x34, "+", "x") },
			codec.TopicNameInvalid, "[MQTT-3.3.2-2]"},

		// Packet identifiers and requested QoS.
		{"QoS 1 packet identifier 0", func(v codec.Version) []byte {
			b := publishBytes(v, 0x32, "t", "x")
			b[5], b[6] = 0, 0 // the id follows the 3-byte topic
			return b
		}, codec.ProtocolError, "(3.1.1 [MQTT-2.3.1-1]; 5.0 [MQTT-2.2.1-3])"},
		{"SUBSCRIBE QoS 3", func(v codec.Version) []byte { return subscribeBytes(v, "a", 0x03) },
			codec.ProtocolError, "(3.1.1 [MQTT-3.8.3-4]; 5.0 §3.8.3.1)"},
	})
}

// TestBeforeConnect: anything but a valid CONNECT first is closed, unanswered [MQTT-3.1.0-1]
// [MQTT-3.1.4-1]; the broker logs why.
func TestBeforeConnect(t *testing.T) {
	h := start(t)
	y := h.bystander(t)
	cases := map[string][]byte{
		"PUBLISH":                            publishBytes(codec.V311, 0x30, "t", "x"),
		"PUBLISH QoS 1":                      publishBytes(codec.V311, 0x32, "t", "x"),
		"SUBSCRIBE":                          subscribeBytes(codec.V311, "#", 0),
		"UNSUBSCRIBE":                        packet(0xA2, u16(1), mqttStr("#")),
		"PINGREQ":                            {0xC0, 0x00},
		"PUBREL":                             {0x62, 0x02, 0x00, 0x01},
		"PUBACK":                             {0x40, 0x02, 0x00, 0x01},
		"DISCONNECT":                         {0xE0, 0x00},
		"AUTH":                               {0xF0, 0x00},
		"CONNACK":                            {0x20, 0x02, 0x00, 0x00},
		"packet type 0":                      {0x00, 0x00},
		"not MQTT at all":                    []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
		"TLS client hello":                   {0x16, 0x03, 0x01, 0x00, 0xA5, 0x01, 0x00, 0x00, 0xA1, 0x03, 0x03},
		"remaining length 5 B":               {0x10, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F},
		"CONNECT too large":                  {0x10, 0xFF, 0xFF, 0xFF, 0x7F},
		"CONNECT reserved flag":              connectBytes(codec.V311, 0x03, "reserved"),
		"CONNECT client id not UTF-8":        connectBytes(codec.V311, 0x02, "id\xC3\x28"),
		"CONNECT client id with U+0000":      connectBytes(codec.V311, 0x02, "id\x00"),
		"5.0 CONNECT client id with U+0000":  connectBytes(codec.V5, 0x02, "id\x00"),
		"5.0 CONNECT client id surrogate":    connectBytes(codec.V5, 0x02, "\xED\xB0\x80"),
		"CONNECT will QoS 3":                 connectBytes(codec.V311, 0x1E, "wq3", mqttStr("w"), mqttStr("")),
		"5.0 CONNECT will QoS 3":             connectBytes(codec.V5, 0x1E, "wq3", []byte{0}, mqttStr("w"), mqttStr("")),
		"CONNECT will topic with +":          connectBytes(codec.V311, 0x06, "wt", mqttStr("w/+"), mqttStr("")),
		"CONNECT will topic not UTF-8":       connectBytes(codec.V311, 0x06, "wt", mqttStr("w\xFE"), mqttStr("")),
		"CONNECT will flag without will":     connectBytes(codec.V311, 0x06, "wf"),
		"CONNECT user name with U+0000":      connectBytes(codec.V311, 0x82, "un", mqttStr("u\x00")),
		"CONNECT password without user name": connectBytes(codec.V311, 0x42, "pw", mqttStr("p")),
	}
	for name, raw := range cases {
		t.Run(name, func(t *testing.T) {
			c := h.dial(t, codec.V311)
			_ = sendRaw(c, raw) // the broker may close on the first bad byte while we write
			o := closedOnly(c)
			if ack, ok := first(o).(*codec.Connack); ok && len(o.pkts) == 1 && o.closed && ack.ReasonCode != 0 && strings.HasPrefix(name, "5.0") {
				// 5.0 §3.1.4: the Server MAY send a refusing CONNACK before it closes.
			} else if err := checkClosedWith(o, 0); err != nil {
				t.Fatalf("%v [MQTT-3.1.0-1] [MQTT-3.1.4-1]", err)
			}
			h.expectEndLog(t, c, nil)
			y.check(t)
		})
	}
	// The connection that sent the bystander's id in a malformed CONNECT took nothing over.
	c := h.dial(t, codec.V5)
	_ = sendRaw(c, connectBytes(codec.V5, 0x03, "bystander"))
	if err := checkClosedWith(closedOnly(c), 0); err != nil {
		t.Fatal(err)
	}
	y.check(t)
}

// TestTruncatedPacket: a packet that stops in the middle. When the client goes silent the
// broker cannot tell a slow client from a dead one; the keep alive decides: no complete packet
// within one and a half times it closes the connection (3.1.1 [MQTT-3.1.2-24], 5.0
// [MQTT-3.1.2-22] with DISCONNECT 0x8D). When the client closes its side, the broker closes too
// and says so in its log.
func TestTruncatedPacket(t *testing.T) {
	h := start(t, func(c *config.Config) { c.Limits.ConnectTimeout = config.Duration(time.Second) })
	y := h.bystander(t)
	// The cases wait on the broker's timers: they run side by side.
	type truncCase struct {
		name      string
		c         *brokertest.Conn
		raw       []byte
		hangUp    bool
		code      codec.ReasonCode // DISCONNECT expected (5.0 silent only)
		logReason codec.ReasonCode // the reason logged, if one is
	}
	var cases []truncCase
	for _, v := range []codec.Version{codec.V311, codec.V5} {
		code := codec.ReasonCode(0)
		if v == codec.V5 {
			code = codec.KeepAliveTimeout
		}
		pub := publishBytes(v, 0x32, "a/b", "payload")
		cases = append(cases, truncCase{"PUBLISH, silent, " + v.String(), h.mustConnect(t, "truncated-silent-"+v.String(), v, 1),
			pub[:len(pub)-3], false, code, codec.KeepAliveTimeout})
		sub := subscribeBytes(v, "a/b", 1)
		cases = append(cases, truncCase{"SUBSCRIBE, client hangs up, " + v.String(), h.mustConnect(t, "truncated-eof-"+v.String(), v, 30),
			sub[:len(sub)-2], true, 0, 0})
	}
	connect := connectBytes(codec.V311, 0x02, "cut")
	cases = append(cases,
		truncCase{"CONNECT, silent", h.dial(t, codec.V311), connect[:len(connect)-2], false, 0, 0},
		truncCase{"CONNECT, client hangs up", h.dial(t, codec.V311), connect[:len(connect)-2], true, 0, 0})
	parallel(len(cases), len(cases), func(i int) {
		tc := cases[i]
		if err := sendRaw(tc.c, tc.raw); err != nil {
			t.Errorf("%s: %v", tc.name, err)
			return
		}
		if tc.hangUp {
			_ = tc.c.Conn.(interface{ CloseWrite() error }).CloseWrite()
		}
		if err := checkClosedWith(closedOnly(tc.c), tc.code); err != nil {
			t.Errorf("%s: %v (3.1.1 [MQTT-3.1.2-24]; 5.0 [MQTT-3.1.2-22]; limits.connect_timeout)", tc.name, err)
			return
		}
		var match func(observedEntry) bool
		if tc.logReason != 0 {
			match = reasonIs(tc.logReason)
		}
		if _, err := h.endLog(tc.c.Conn.LocalAddr(), match); err != nil {
			t.Errorf("%s: %v", tc.name, err)
		}
	})
	y.check(t)
}

// TestLyingRemainingLength: a Remaining Length longer than the packet makes the broker read
// the next packets as its body. Here a SUBSCRIBE claims 40 bytes more than it has and PINGREQs
// follow: its second "filter" is then 0xC000 bytes long, past the end of the packet, so the
// packet is malformed (§1.5.4, §3.8.3): 0x81 in 5.0, a close in 3.1.1 [MQTT-4.8.0-1]. The
// PINGREQs swallowed by the body get no PINGRESP.
func TestLyingRemainingLength(t *testing.T) {
	h := start(t)
	y := h.bystander(t)
	for _, v := range []codec.Version{codec.V311, codec.V5} {
		t.Run(v.String(), func(t *testing.T) {
			c := h.mustConnect(t, "lying", v, 30)
			sub := subscribeBytes(v, "a", 0)
			body := sub[2:]
			raw := append([]byte{0x82, byte(len(body) + 40)}, body...)
			for range 20 {
				raw = append(raw, 0xC0, 0x00)
			}
			if err := sendRaw(c, raw); err != nil {
				t.Fatal(err)
			}
			expectClosedWith(t, c, codec.MalformedPacket)
			h.expectEndLog(t, c, reasonIs(codec.MalformedPacket))
			y.check(t)
		})
	}
}

// TestSecondConnect: a second CONNECT is a protocol violation that closes the connection
// [MQTT-3.1.0-2] (5.0: DISCONNECT 0x82). It is not processed: naming the bystander's client
// id, it does not take the bystander's session over.
func TestSecondConnect(t *testing.T) {
	h := start(t)
	y := h.bystander(t)
	for _, v := range []codec.Version{codec.V31, codec.V311, codec.V5} {
		t.Run(v.String(), func(t *testing.T) {
			c := h.mustConnect(t, "twice", v, 30)
			if err := send(c, connectPacket("bystander", v, 30)); err != nil {
				t.Fatal(err)
			}
			expectClosedWith(t, c, codec.ProtocolError)
			h.expectEndLog(t, c, reasonIs(codec.ProtocolError))
			y.check(t)
		})
	}
}

// TestPubrelUnknownID: PUBREL for a packet id the broker never received is answered with
// PUBCOMP and the same id (3.1.1 [MQTT-3.6.4-1]), in 5.0 with 0x92 Packet Identifier not found
// (§3.7.2.1); the connection goes on.
func TestPubrelUnknownID(t *testing.T) {
	h := start(t)
	y := h.bystander(t)
	for _, v := range []codec.Version{codec.V31, codec.V311, codec.V5} {
		t.Run(v.String(), func(t *testing.T) {
			c := h.mustConnect(t, "pubrel", v, 30)
			want := codec.Success
			if v == codec.V5 {
				want = codec.PacketIdentifierNotFound
			}
			for _, id := range []uint16{1, 77, 65535} {
				if err := send(c, &codec.Pubrel{PacketID: id}); err != nil {
					t.Fatal(err)
				}
				p, err := c.ReadErr(wait)
				if comp, ok := p.(*codec.Pubcomp); err != nil || !ok || comp.PacketID != id || comp.ReasonCode != want {
					t.Fatalf("PUBREL %d: got %s (%v), want PUBCOMP %d %s", id, describe(p), err, id, want)
				}
			}
			if err := alive(c); err != nil {
				t.Fatal(err)
			}
			y.check(t)
		})
	}
}
