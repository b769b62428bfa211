package tests

// MQTT 3.1.1 over WebSocket (§6 of the spec): a library client on both served paths, a raw
// client that does not align packets on frames, and delivery across transports.

import (
	"bufio"
	"io"
	"net/http"
	"sort"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/actormq/actormq/codec"
)

// websocketRaw is an MQTT client over a raw WebSocket: it writes chosen bytes as chosen binary
// frames and decodes what comes back with the project's codec.
type websocketRaw struct {
	t  testing.TB
	ws *websocket.Conn
	r  *codec.Reader
}

// websocketDialRaw opens a WebSocket to url offering the subprotocol "mqtt" and checks that
// the server selected it [MQTT-6.0.0-4].
func websocketDialRaw(t testing.TB, url string) *websocketRaw {
	t.Helper()
	d := websocket.Dialer{Subprotocols: []string{"mqtt"}, HandshakeTimeout: v3Wait}
	ws, resp, err := d.Dial(url, nil)
	if err != nil {
		t.Fatalf("websocket dial %s: %v", url, err)
	}
	_ = resp.Body.Close()
	t.Cleanup(func() { _ = ws.Close() })
	if resp.StatusCode != http.StatusSwitchingProtocols || ws.Subprotocol() != "mqtt" {
		t.Fatalf("handshake: status %d, subprotocol %q, want 101 and \"mqtt\"", resp.StatusCode, ws.Subprotocol())
	}
	r := codec.NewReader(bufio.NewReader(&websocketStream{ws: ws}), 0)
	r.SetVersion(codec.V311)
	return &websocketRaw{t: t, ws: ws, r: r}
}

// websocketEncode encodes packets back to back in their 3.1.1 form.
func websocketEncode(t testing.TB, pkts ...codec.Packet) []byte {
	t.Helper()
	var b []byte
	for _, p := range pkts {
		var err error
		if b, err = codec.Append(b, p, codec.V311); err != nil {
			t.Fatalf("encode %T: %v", p, err)
		}
	}
	return b
}

// frames sends each chunk as one binary WebSocket frame.
func (c *websocketRaw) frames(chunks ...[]byte) {
	c.t.Helper()
	for _, ch := range chunks {
		if err := c.ws.WriteMessage(websocket.BinaryMessage, ch); err != nil {
			c.t.Fatalf("websocket write: %v", err)
		}
	}
}

// read returns the next packet, failing the test after v3Wait.
func (c *websocketRaw) read() codec.Packet {
	c.t.Helper()
	_ = c.ws.SetReadDeadline(time.Now().Add(v3Wait))
	p, err := c.r.ReadPacket()
	if err != nil {
		c.t.Fatalf("websocket read: %v", err)
	}
	return p
}

// websocketStream is the byte stream of the binary messages of a WebSocket.
type websocketStream struct {
	ws  *websocket.Conn
	cur io.Reader
}

func (s *websocketStream) Read(p []byte) (int, error) {
	for {
		if s.cur == nil {
			typ, r, err := s.ws.NextReader()
			if err != nil {
				return 0, err
			}
			if typ != websocket.BinaryMessage {
				return 0, io.ErrUnexpectedEOF // MQTT travels in binary frames only [MQTT-6.0.0-1]
			}
			s.cur = r
		}
		n, err := s.cur.Read(p)
		if err == io.EOF {
			s.cur = nil
			if n == 0 {
				continue
			}
			err = nil
		}
		return n, err
	}
}

// websocketPubSub subscribes and publishes with one Paho client at url and checks the round
// trip at QoS 1.
func websocketPubSub(t *testing.T, url, id string) {
	t.Helper()
	c := v3Connect(t, url, id)
	if g := c.sub("ws/"+id, 1); g != 1 {
		t.Fatalf("granted QoS %d, want 1", g)
	}
	c.pub("ws/"+id, 1, false, "over websocket")
	if m := c.next(); m.Topic != "ws/"+id || m.Payload != "over websocket" || m.QoS != 1 {
		t.Fatalf("got %+v", m)
	}
}

// [MQTT-6.0.0-3, -4] A 3.1.1 client offering the "mqtt" subprotocol on the configured path
// (/mqtt) connects, subscribes and publishes.
func TestWebSocketPahoPublishSubscribe(t *testing.T) {
	b := startBroker(t)
	websocketPubSub(t, "ws://"+b.WS+"/mqtt", "ws-paho")
}

// The WebSocket listener also serves the root path "/".
func TestWebSocketRootPath(t *testing.T) {
	b := startBroker(t)
	websocketPubSub(t, "ws://"+b.WS+"/", "ws-root")
}

// [MQTT-6.0.0-2] A single WebSocket data frame can contain multiple or partial MQTT Control
// Packets; the receiver MUST NOT assume that packets are aligned on frame boundaries.
func TestWebSocketPacketsNotAlignedOnFrames(t *testing.T) {
	b := startBroker(t)
	c := websocketDialRaw(t, "ws://"+b.WS+"/mqtt")

	// One CONNECT split across three frames.
	conn := websocketEncode(t, &codec.Connect{ProtocolName: "MQTT", Version: codec.V311, CleanStart: true, KeepAlive: 30, ClientID: "ws-frames"})
	third := len(conn) / 3
	c.frames(conn[:third], conn[third:2*third], conn[2*third:])
	if ack, ok := c.read().(*codec.Connack); !ok || ack.ReasonCode != codec.ConnAccepted {
		t.Fatalf("got %+v, want CONNACK accepted", ack)
	}

	// Two packets in one frame.
	c.frames(websocketEncode(t,
		&codec.Subscribe{PacketID: 11, Subscriptions: []codec.Subscription{{Filter: "ws/frames", QoS: 1}}},
		&codec.Pingreq{}))
	var got []string
	for range 2 {
		switch p := c.read().(type) {
		case *codec.Suback:
			if p.PacketID != 11 || len(p.ReasonCodes) != 1 || p.ReasonCodes[0] != codec.GrantedQoS1 {
				t.Fatalf("SUBACK %+v, want packet id 11 granting QoS 1", p)
			}
			got = append(got, "SUBACK")
		case *codec.Pingresp:
			got = append(got, "PINGRESP")
		default:
			t.Fatalf("unexpected %T", p)
		}
	}
	sort.Strings(got)
	if len(got) != 2 || got[0] != "PINGRESP" || got[1] != "SUBACK" {
		t.Fatalf("answers %v, want PINGRESP and SUBACK", got)
	}

	// A PUBLISH whose head is in one frame and whose tail shares a frame with a PINGREQ.
	pub := websocketEncode(t, &codec.Publish{QoS: 1, Topic: "ws/frames", PacketID: 12, Payload: []byte("split publish")})
	ping := websocketEncode(t, &codec.Pingreq{})
	c.frames(pub[:5], append(append([]byte{}, pub[5:]...), ping...))
	seen := map[codec.PacketType]codec.Packet{}
	for range 3 {
		p := c.read()
		seen[p.Type()] = p
	}
	if ack, ok := seen[codec.TypePuback].(*codec.Puback); !ok || ack.PacketID != 12 {
		t.Fatalf("answers %v, want PUBACK 12 among them", seen)
	}
	if _, ok := seen[codec.TypePingresp]; !ok {
		t.Fatalf("answers %v, want PINGRESP among them", seen)
	}
	m, ok := seen[codec.TypePublish].(*codec.Publish)
	if !ok || m.Topic != "ws/frames" || string(m.Payload) != "split publish" {
		t.Fatalf("answers %v, want our own PUBLISH back", seen)
	}
	c.frames(websocketEncode(t, &codec.Puback{PacketID: m.PacketID}, &codec.Disconnect{}))
}

// A WebSocket subscriber receives what a TCP publisher sends, and the reverse: transports share
// one router.
func TestWebSocketCrossTransport(t *testing.T) {
	b := startBroker(t)
	wsSub := v3Connect(t, "ws://"+b.WS+"/mqtt", "ws-sub")
	wsSub.sub("cross/ws", 1)
	tcpSub := v3Connect(t, "tcp://"+b.TCP311, "tcp-sub")
	tcpSub.sub("cross/tcp", 1)

	tcpPub := v3Connect(t, "tcp://"+b.TCP311, "tcp-pub")
	tcpPub.pub("cross/ws", 1, false, "tcp to ws")
	if m := wsSub.next(); m.Payload != "tcp to ws" || m.QoS != 1 {
		t.Fatalf("WebSocket subscriber got %+v", m)
	}
	wsPub := v3Connect(t, "ws://"+b.WS+"/mqtt", "ws-pub")
	wsPub.pub("cross/tcp", 1, false, "ws to tcp")
	if m := tcpSub.next(); m.Payload != "ws to tcp" || m.QoS != 1 {
		t.Fatalf("TCP subscriber got %+v", m)
	}
}
