package hostile

// WebSocket garbage: frames written byte by byte (RFC 6455 §5), so that they can break the
// framing rules a WebSocket library would not let a client break.

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/actormq/actormq/codec"
	"github.com/actormq/actormq/config"
	"github.com/actormq/actormq/internal/brokertest"
)

const (
	opText   = 0x1
	opBinary = 0x2
	opClose  = 0x8
	opPing   = 0x9
)

// wsClient is a WebSocket client on a plain socket: it writes frames as told and reads the
// server's binary messages as the MQTT byte stream.
type wsClient struct {
	conn      net.Conn
	br        *bufio.Reader
	closeCode int // the code of the server's close frame, once read
}

// wsDial opens a WebSocket to the broker's ws listener with the subprotocol "mqtt"
// [MQTT-6.0.0-3].
func wsDial(t testing.TB, h *harness) *wsClient {
	t.Helper()
	conn, err := net.DialTimeout("tcp", h.WS, wait)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	key := make([]byte, 16)
	_, _ = rand.Read(key)
	req := "GET /mqtt HTTP/1.1\r\nHost: broker\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + base64.StdEncoding.EncodeToString(key) + "\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n"
	_ = conn.SetDeadline(time.Now().Add(wait))
	if _, err := conn.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	status, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(status, "HTTP/1.1 101") {
		t.Fatalf("WebSocket handshake: %q %v", status, err)
	}
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if line == "\r\n" {
			break
		}
	}
	_ = conn.SetDeadline(time.Time{})
	return &wsClient{conn: conn, br: br}
}

// frame is one WebSocket frame (§5.2): FIN, the RSV bits given, the opcode, the payload
// length as declared (which may lie; -1: the true length), masked unless unmasked.
func frame(fin bool, rsv, opcode byte, payload []byte, declared int64, unmasked bool) []byte {
	b0 := opcode | rsv<<4
	if fin {
		b0 |= 0x80
	}
	n := declared
	if n < 0 {
		n = int64(len(payload))
	}
	var mask byte = 0x80
	if unmasked {
		mask = 0
	}
	out := []byte{b0}
	switch {
	case n < 126:
		out = append(out, mask|byte(n))
	case n < 1<<16:
		out = append(out, mask|126, byte(n>>8), byte(n))
	default:
		out = append(out, mask|127)
		out = binary.BigEndian.AppendUint64(out, uint64(n))
	}
	if unmasked {
		return append(out, payload...)
	}
	key := []byte{0x37, 0xFA, 0x21, 0x3D}
	out = append(out, key...)
	for i, c := range payload {
		out = append(out, c^key[i%4])
	}
	return out
}

// topBit sets the most significant bit of a frame's 64-bit payload length, which §5.2 says
// MUST be 0.
func topBit(f []byte) []byte {
	f[2] |= 0x80
	return f
}

func (w *wsClient) write(b []byte) error {
	_ = w.conn.SetWriteDeadline(time.Now().Add(wait))
	_, err := w.conn.Write(b)
	return err
}

// binary sends MQTT bytes in one binary frame.
func (w *wsClient) binary(b []byte) error { return w.write(frame(true, 0, opBinary, b, -1, false)) }

// mqtt is the MQTT side of the WebSocket, for await and the checks of the harness: it reads
// the payloads of the server's binary frames; a close frame ends the stream.
func (w *wsClient) mqtt(v codec.Version) *brokertest.Conn {
	r := codec.NewReader(bufio.NewReader(&wsStream{w: w}), 0)
	r.SetVersion(v)
	return &brokertest.Conn{Conn: w.conn, R: r, Version: v}
}

type wsStream struct {
	w   *wsClient
	cur io.Reader
}

func (s *wsStream) Read(p []byte) (int, error) {
	for s.cur == nil {
		var h [2]byte
		if _, err := io.ReadFull(s.w.br, h[:]); err != nil {
			return 0, err
		}
		n := int64(h[1] & 0x7F)
		switch n {
		case 126:
			var l [2]byte
			if _, err := io.ReadFull(s.w.br, l[:]); err != nil {
				return 0, err
			}
			n = int64(binary.BigEndian.Uint16(l[:]))
		case 127:
			var l [8]byte
			if _, err := io.ReadFull(s.w.br, l[:]); err != nil {
				return 0, err
			}
			n = int64(binary.BigEndian.Uint64(l[:]))
		}
		body := io.LimitReader(s.w.br, n)
		switch h[0] & 0x0F {
		case opBinary, 0x0:
			s.cur = body
		case opClose:
			var code [2]byte
			if _, err := io.ReadFull(body, code[:]); err == nil {
				s.w.closeCode = int(binary.BigEndian.Uint16(code[:]))
			}
			return 0, io.EOF
		default: // ping, pong: not MQTT
			_, _ = io.Copy(io.Discard, body)
		}
	}
	n, err := s.cur.Read(p)
	if err == io.EOF {
		s.cur, err = nil, nil
	}
	return n, err
}

// wsConnect connects an MQTT client of version v over the WebSocket.
func wsConnect(t testing.TB, h *harness, id string, v codec.Version) (*wsClient, *brokertest.Conn) {
	t.Helper()
	w := wsDial(t, h)
	c := w.mqtt(v)
	b, _ := encode(v, connectPacket(id, v, 30))
	if err := w.binary(b); err != nil {
		t.Fatal(err)
	}
	if o := await(c, wait, func(codec.Packet) bool { return true }); len(o.pkts) != 1 || !isSuccessConnack(o.pkts[0]) {
		t.Fatalf("CONNECT over WebSocket: got %s", o)
	}
	return w, c
}

// TestWebSocketGarbage: after the upgrade, whatever breaks MQTT or WebSocket framing closes
// that connection, and only it:
//   - MQTT garbage in binary frames is judged as on TCP: closed before CONNECT
//     [MQTT-3.1.0-1], a DISCONNECT with the reason code after (5.0 [MQTT-4.13.1-1]);
//   - a text frame: "MQTT Control Packets MUST be sent in WebSocket binary data frames. If any
//     other type of data frame is received the recipient MUST close the Network Connection"
//     [MQTT-6.0.0-1];
//   - frames RFC 6455 forbids: unmasked from a client (§5.1: "a server MUST close the
//     connection upon receiving a frame that is not masked"), RSV bits without an extension,
//     a reserved opcode (§5.2: "MUST _Fail the WebSocket Connection_"), a control frame longer
//     than 125 bytes or fragmented (§5.5), a 64-bit length with its top bit set (§5.2).
func TestWebSocketGarbage(t *testing.T) {
	h := start(t)
	y := h.bystander(t)
	junk := make([]byte, 300)
	_, _ = rand.Read(junk)
	junk[0] = 0x00 // packet type 0: never valid, whatever follows

	type wsCase struct {
		name    string
		connect bool // after a 5.0 CONNECT
		frames  []byte
		code    codec.ReasonCode // the DISCONNECT expected (5.0, after CONNECT); 0 for a plain close
	}
	pub3, _ := encode(codec.V5, &codec.Publish{Topic: "a", Payload: []byte("x")})
	pub3[0] |= 0x06 // QoS 3
	cases := []wsCase{
		{"random bytes before CONNECT", false, frame(true, 0, opBinary, junk, -1, false), 0},
		{"random bytes after CONNECT", true, frame(true, 0, opBinary, junk, -1, false), codec.MalformedPacket},
		{"QoS 3 PUBLISH after CONNECT", true, frame(true, 0, opBinary, pub3, -1, false), codec.MalformedPacket},
		{"text frame before CONNECT", false, frame(true, 0, opText, []byte("hello"), -1, false), 0},
		{"text frame after CONNECT", true, frame(true, 0, opText, []byte(`{"mqtt":"json?"}`), -1, false), 0},
		{"unmasked frame", true, frame(true, 0, opBinary, []byte{0xC0, 0x00}, -1, true), 0},
		{"RSV1 set", true, frame(true, 4, opBinary, []byte{0xC0, 0x00}, -1, false), 0},
		{"reserved opcode 3", true, frame(true, 0, 0x3, []byte{0xC0, 0x00}, -1, false), 0},
		{"control frame of 126 bytes", true, frame(true, 0, opPing, make([]byte, 126), -1, false), 0},
		{"fragmented control frame", true, frame(false, 0, opPing, []byte("x"), -1, false), 0},
		{"length with the top bit set", true, topBit(frame(true, 0, opBinary, []byte{0xC0, 0x00}, 1<<16, false)), 0},
		{"continuation without a start", true, frame(true, 0, 0x0, []byte{0xC0, 0x00}, -1, false), 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var w *wsClient
			var c *brokertest.Conn
			if tc.connect {
				w, c = wsConnect(t, h, "ws-garbage", codec.V5)
			} else {
				w = wsDial(t, h)
				c = w.mqtt(codec.V5)
			}
			_ = w.write(tc.frames) // the broker may close while we write
			o := closedOnly(c)
			if err := checkClosedWith(o, tc.code); err != nil {
				t.Fatal(err)
			}
			h.expectEndLog(t, c, nil)
			y.check(t)
		})
	}
}

// TestWebSocketOversizedFrames: a frame's declared length is the peer's claim, not data. A
// frame that claims 1 TiB and carries a PUBLISH past limits.max_packet_size is answered at the
// MQTT level without waiting for the rest: DISCONNECT 0x95 Packet too large (5.0 §3.2.2.3.6).
// A frame that claims 1 TiB and then trickles costs the broker its read buffer only, and the
// keep alive ends it [MQTT-3.1.2-22]. Many tiny frames make one packet [MQTT-6.0.0-2].
func TestWebSocketOversizedFrames(t *testing.T) {
	h := start(t, func(c *config.Config) { c.Limits.MaxPacketSize = 64 << 10 })
	y := h.bystander(t)
	t.Run("packet past the maximum in a huge frame", func(t *testing.T) {
		w, c := wsConnect(t, h, "ws-huge", codec.V5)
		head := append([]byte{0x30}, varint(1<<20)...) // a PUBLISH of 1 MiB
		_ = w.write(frame(true, 0, opBinary, append(head, make([]byte, 1000)...), 1<<40, false))
		if err := checkClosedWith(closedOnly(c), codec.PacketTooLarge); err != nil {
			t.Fatal(err)
		}
		h.expectEndLog(t, c, reasonIs(codec.PacketTooLarge))
		y.check(t)
	})
	t.Run("huge frame, then silence", func(t *testing.T) {
		w := wsDial(t, h)
		c := w.mqtt(codec.V5)
		b, _ := encode(codec.V5, connectPacket("ws-silent", codec.V5, 1))
		_ = w.write(frame(true, 0, opBinary, b, 1<<40, false)) // the CONNECT, in a frame that never ends
		o := await(c, wait, func(codec.Packet) bool { return true })
		if len(o.pkts) != 1 || !isSuccessConnack(o.pkts[0]) {
			t.Fatalf("got %s, want CONNACK: a frame need not end for its packets to count [MQTT-6.0.0-2]", o)
		}
		if err := checkClosedWith(closedOnly(c), codec.KeepAliveTimeout); err != nil {
			t.Fatalf("%v [MQTT-3.1.2-22]", err)
		}
		h.expectEndLog(t, c, reasonIs(codec.KeepAliveTimeout))
		y.check(t)
	})
	t.Run("a packet in one-byte frames", func(t *testing.T) {
		w, c := wsConnect(t, h, "ws-tiny", codec.V5)
		sub, _ := encode(codec.V5, &codec.Subscribe{PacketID: 7, Subscriptions: []codec.Subscription{{Filter: "ws/tiny/#", QoS: 1}}})
		var frames []byte
		for _, b := range sub {
			frames = append(frames, frame(true, 0, opBinary, []byte{b}, -1, false)...)
		}
		if err := w.write(frames); err != nil {
			t.Fatal(err)
		}
		if o := await(c, wait, func(codec.Packet) bool { return true }); len(o.pkts) != 1 || o.pkts[0].Type() != codec.TypeSuback {
			t.Fatalf("got %s, want SUBACK [MQTT-6.0.0-2]", o)
		}
		y.check(t)
	})
}

// TestWebSocketHandshakeGarbage: bytes that are not an HTTP request, and requests that are no
// MQTT WebSocket upgrade, get an HTTP error or a close, never a WebSocket. (They never reach
// MQTT, and the HTTP server keeps them out of the log: a port scanner would fill it.)
func TestWebSocketHandshakeGarbage(t *testing.T) {
	h := start(t, func(c *config.Config) { c.Limits.ConnectTimeout = config.Duration(time.Second) })
	y := h.bystander(t)
	for name, req := range map[string]string{
		"random bytes":          "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n",
		"no upgrade":            "GET /mqtt HTTP/1.1\r\nHost: x\r\n\r\n",
		"no mqtt subprotocol":   "GET /mqtt HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
		"wrong path":            "GET /nope HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n",
		"oversized header":      "GET /mqtt HTTP/1.1\r\nHost: x\r\nX-Junk: " + strings.Repeat("j", 64<<10) + "\r\n\r\n",
		"unsupported version 8": "GET /mqtt HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel() // each may wait out the idle timeout
			conn, err := net.DialTimeout("tcp", h.WS, wait)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.SetWriteDeadline(time.Now().Add(wait))
			_, _ = conn.Write([]byte(req))
			status, err := httpStatus(conn)
			if err == nil && (status < 400 || status > 499) {
				t.Fatalf("HTTP status %d, want a 4xx refusal", status)
			}
			// Either way the socket does not stay open: closed now, or once idle for the
			// handshake timeout (an HTTP connection may wait for another request).
			_ = conn.SetReadDeadline(time.Now().Add(wait))
			_, err = io.Copy(io.Discard, conn)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("socket still open after %v", wait)
			}
			y.check(t)
		})
	}
}
