package listeners

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

func mqttHeader(protocols ...string) http.Header {
	h := http.Header{}
	for _, p := range protocols {
		h.Add("Sec-WebSocket-Protocol", p)
	}
	return h
}

// dialWS connects with gorilla's Dialer, offering protocols.
func dialWS(t *testing.T, url string, protocols ...string) *websocket.Conn {
	t.Helper()
	d := websocket.Dialer{Subprotocols: protocols, HandshakeTimeout: 5 * time.Second}
	c, resp, err := d.Dial(url, nil)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial %s: %v (HTTP %d)", url, err, status)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// wsPair starts a ws listener and returns a client and the server side conn.
func wsPair(t *testing.T) (*websocket.Conn, net.Conn) {
	t.Helper()
	h := newHanded()
	l := start(t, wsConfig(), h.handler, Options{})
	client := dialWS(t, "ws://"+l.Addr().String()+"/mqtt", "mqtt")
	return client, h.next(t)
}

// writeFrame writes one raw, masked client frame, as a browser could send
// it, to exercise framing that gorilla's client does not produce.
func writeFrame(w io.Writer, opcode byte, fin bool, payload []byte) error {
	_, err := w.Write(frameHeader(opcode, fin, uint64(len(payload))))
	if err == nil {
		m := append([]byte(nil), payload...)
		maskInPlace(m, 0)
		_, err = w.Write(m)
	}
	return err
}

var testMask = [4]byte{0x12, 0x34, 0x56, 0x78}

func frameHeader(opcode byte, fin bool, n uint64) []byte {
	b0 := opcode
	if fin {
		b0 |= 0x80
	}
	h := []byte{b0}
	switch {
	case n < 126:
		h = append(h, 0x80|byte(n))
	case n <= 0xFFFF:
		h = append(h, 0x80|126)
		h = binary.BigEndian.AppendUint16(h, uint16(n))
	default:
		h = append(h, 0x80|127)
		h = binary.BigEndian.AppendUint64(h, n)
	}
	return append(h, testMask[:]...)
}

func maskInPlace(b []byte, offset int) {
	for i := range b {
		b[i] ^= testMask[(offset+i)%4]
	}
}

func TestWSSubprotocols(t *testing.T) {
	h := newHanded()
	l := start(t, wsConfig(), h.handler, Options{})
	url := "ws://" + l.Addr().String() + "/mqtt"
	for _, c := range []struct {
		offer []string
		want  string
	}{
		{[]string{"mqtt"}, "mqtt"},
		{[]string{"mqttv3.1"}, "mqttv3.1"},
		{[]string{"mqttv3.1", "mqtt"}, "mqtt"}, // the server's preference wins
		{[]string{"chat", "mqtt"}, "mqtt"},
	} {
		client := dialWS(t, url, c.offer...)
		if got := client.Subprotocol(); got != c.want {
			t.Errorf("offered %v: selected %q, want %q", c.offer, got, c.want)
		}
		ho := h.nextWith(t)
		if ho.l != l || ho.l.ProtocolLevel() != 5 || ho.l.Kind() != "ws" {
			t.Errorf("handed listener %v", ho.l)
		}
		if got, want := ho.c.RemoteAddr().String(), client.LocalAddr().String(); got != want {
			t.Errorf("RemoteAddr = %s, want the peer %s", got, want)
		}
	}
}

func TestWSWithoutMQTTSubprotocolIs400(t *testing.T) {
	h := newHanded()
	limit := NewConnLimit(10)
	l := start(t, wsConfig(), h.handler, Options{Limit: limit})
	for _, offer := range [][]string{nil, {"chat"}} {
		d := websocket.Dialer{Subprotocols: offer}
		c, resp, err := d.Dial("ws://"+l.Addr().String()+"/mqtt", nil)
		if err == nil {
			c.Close()
			t.Fatalf("offered %v: upgraded", offer)
		}
		if resp == nil || resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("offered %v: err %v, resp %+v; want HTTP 400", offer, err, resp)
		}
		body, _ := io.ReadAll(resp.Body)
		msg := strings.TrimSuffix(string(body), "\n")
		if strings.Contains(msg, "\n") || !strings.Contains(msg, `"mqtt"`) {
			t.Fatalf("400 body %q: want one line naming the subprotocol", body)
		}
	}
	h.none(t, 50*time.Millisecond)
	eventually(t, "slots released", func() bool { return limit.Count() == 0 })
}

func TestWSPaths(t *testing.T) {
	h := newHanded()
	l := start(t, wsConfig(), h.handler, Options{})
	if l.Path() != "/mqtt" {
		t.Fatalf("default path %q", l.Path())
	}
	base := "ws://" + l.Addr().String()
	for _, p := range []string{"/mqtt", "/"} {
		dialWS(t, base+p, "mqtt")
		h.next(t)
	}
	for _, p := range []string{"/other", "/mqtt/x", "/mqttx"} {
		d := websocket.Dialer{Subprotocols: []string{"mqtt"}}
		c, resp, err := d.Dial(base+p, nil)
		if err == nil {
			c.Close()
			t.Fatalf("%s upgraded", p)
		}
		if resp == nil || resp.StatusCode != http.StatusNotFound {
			t.Fatalf("%s: %v, want 404", p, err)
		}
	}
	// A plain HTTP GET is refused plainly too.
	resp, err := http.Get("http://" + l.Addr().String() + "/mqtt")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("plain GET: %d, want 400", resp.StatusCode)
	}

	cfg := wsConfig()
	cfg.Path = "ws"
	l2 := start(t, cfg, h.handler, Options{})
	dialWS(t, "ws://"+l2.Addr().String()+"/ws", "mqtt")
	h.next(t)
	if _, resp, _ := (&websocket.Dialer{Subprotocols: []string{"mqtt"}}).Dial("ws://"+l2.Addr().String()+"/mqtt", nil); resp == nil || resp.StatusCode != 404 {
		t.Fatal("/mqtt served on a listener configured for /ws")
	}
	http.DefaultClient.CloseIdleConnections()
}

func TestWSPacketsSpanFrames(t *testing.T) {
	client, server := wsPair(t)
	for _, part := range []string{"ab", "cde", "f"} {
		if err := client.WriteMessage(websocket.BinaryMessage, []byte(part)); err != nil {
			t.Fatal(err)
		}
	}
	// One message in three fragments, with a ping between them, and an
	// empty message: none of it shows in the stream.
	raw := client.NetConn()
	for _, f := range []struct {
		op      byte
		fin     bool
		payload string
	}{
		{websocket.BinaryMessage, false, "gh"},
		{websocket.PingMessage, true, ""},
		{0, false, "ij"},
		{0, true, "k"},
		{websocket.BinaryMessage, true, ""},
		{websocket.BinaryMessage, true, "l"},
	} {
		if err := writeFrame(raw, f.op, f.fin, []byte(f.payload)); err != nil {
			t.Fatal(err)
		}
	}
	got := make([]byte, 12)
	if _, err := io.ReadFull(server, got); err != nil {
		t.Fatal(err)
	}
	if string(got) != "abcdefghijkl" {
		t.Fatalf("read %q", got)
	}
}

func TestWSTwoPacketsInOneFrame(t *testing.T) {
	client, server := wsPair(t)
	pingreq := []byte{0xC0, 0x00}
	publish := []byte{0x30, 0x05, 0x00, 0x01, 'a', 'h', 'i'}
	if err := client.WriteMessage(websocket.BinaryMessage, append(append([]byte{}, pingreq...), publish...)); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(server)
	first := make([]byte, 2)
	if _, err := io.ReadFull(r, first); err != nil || !bytes.Equal(first, pingreq) {
		t.Fatalf("first packet %x, %v", first, err)
	}
	second := make([]byte, len(publish))
	if _, err := io.ReadFull(r, second); err != nil || !bytes.Equal(second, publish) {
		t.Fatalf("second packet %x, %v", second, err)
	}
}

func TestWSTextFrameIsRejected(t *testing.T) {
	client, server := wsPair(t)
	if err := client.WriteMessage(websocket.TextMessage, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	for range 3 { // the error sticks
		if _, err := server.Read(make([]byte, 16)); !errors.Is(err, ErrTextFrame) {
			t.Fatalf("Read err = %v, want ErrTextFrame", err)
		}
	}
	_ = client.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _, err := client.ReadMessage()
	if !websocket.IsCloseError(err, websocket.CloseUnsupportedData) {
		t.Fatalf("client got %v, want close 1003", err)
	}
}

func TestWSServerWriteIsOneBinaryMessage(t *testing.T) {
	client, server := wsPair(t)
	small := []byte{0x20, 0x02, 0x00, 0x00}
	big := bytes.Repeat([]byte{7}, 70000) // larger than any write buffer
	for _, p := range [][]byte{small, big} {
		if n, err := server.Write(p); err != nil || n != len(p) {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	// Read the raw frames: each Write must be exactly one final binary frame.
	raw := client.NetConn()
	_ = raw.SetReadDeadline(time.Now().Add(5 * time.Second))
	hdr := make([]byte, 2)
	if _, err := io.ReadFull(raw, hdr); err != nil || hdr[0] != 0x82 || hdr[1] != byte(len(small)) {
		t.Fatalf("small frame header %x, %v", hdr, err)
	}
	body := make([]byte, len(small))
	if _, err := io.ReadFull(raw, body); err != nil || !bytes.Equal(body, small) {
		t.Fatalf("small frame body %x, %v", body, err)
	}
	hdr = make([]byte, 10)
	if _, err := io.ReadFull(raw, hdr); err != nil || hdr[0] != 0x82 || hdr[1] != 127 ||
		binary.BigEndian.Uint64(hdr[2:]) != uint64(len(big)) {
		t.Fatalf("big frame header %x, %v", hdr, err)
	}
	body = make([]byte, len(big))
	if _, err := io.ReadFull(raw, body); err != nil || !bytes.Equal(body, big) {
		t.Fatalf("big frame body: %v", err)
	}
	if n, err := server.Write(nil); n != 0 || err != nil {
		t.Fatalf("empty Write = %d, %v", n, err)
	}
}

func TestWSCloseAndEOF(t *testing.T) {
	limit := NewConnLimit(10)
	h := newHanded()
	l := start(t, wsConfig(), h.handler, Options{Limit: limit})
	url := "ws://" + l.Addr().String() + "/"

	// Server Close sends close 1000 and frees the slot.
	client := dialWS(t, url, "mqtt")
	server := h.next(t)
	if err := server.Close(); err != nil {
		t.Fatal(err)
	}
	_ = client.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := client.ReadMessage(); !websocket.IsCloseError(err, websocket.CloseNormalClosure) {
		t.Fatalf("client got %v, want close 1000", err)
	}
	_ = server.Close()
	eventually(t, "slot released", func() bool { return limit.Count() == 0 })
	if _, err := server.Write([]byte{1}); err == nil {
		t.Fatal("Write after Close succeeded")
	}

	// A client's close frame, or a dropped TCP connection, reads as io.EOF,
	// as on a TCP socket.
	client = dialWS(t, url, "mqtt")
	server = h.next(t)
	_ = client.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye"))
	if _, err := server.Read(make([]byte, 4)); err != io.EOF {
		t.Fatalf("after client close frame: %v, want io.EOF", err)
	}
	client = dialWS(t, url, "mqtt")
	server = h.next(t)
	_ = client.NetConn().Close()
	if _, err := server.Read(make([]byte, 4)); err != io.EOF {
		t.Fatalf("after TCP drop: %v, want io.EOF", err)
	}
}

func TestWSDeadlines(t *testing.T) {
	client, server := wsPair(t)
	_ = server.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	_, err := server.Read(make([]byte, 4))
	var ne net.Error
	if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("Read past deadline: %v, want os.ErrDeadlineExceeded", err)
	}

	// A write blocked on a peer that does not read is ended by its deadline.
	_ = server.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
	chunk := make([]byte, 1<<20)
	for i := 0; ; i++ {
		if _, err = server.Write(chunk); err != nil {
			break
		}
		if i > 1000 {
			t.Fatal("1 GB written to a peer that does not read")
		}
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Write past deadline: %v", err)
	}
	_ = client
}

// TestWSHugeFrameStreams sends one 50 MB frame and checks that reading it
// never holds it in memory.
func TestWSHugeFrameStreams(t *testing.T) {
	const size = 50 << 20
	client, server := wsPair(t)
	raw := client.NetConn()
	// A 256-byte period fits both the 64 KiB chunks and the 4-byte mask, so
	// one chunk is built once and sent 800 times.
	want := make([]byte, 64<<10+256)
	for i := range want {
		want[i] = byte(i)
	}
	werr := make(chan error, 1)
	go func() {
		chunk := append([]byte(nil), want[:64<<10]...)
		maskInPlace(chunk, 0)
		if _, err := raw.Write(frameHeader(websocket.BinaryMessage, true, size)); err != nil {
			werr <- err
			return
		}
		for off := 0; off < size; off += len(chunk) {
			if _, err := raw.Write(chunk); err != nil {
				werr <- err
				return
			}
		}
		werr <- nil
	}()

	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	baseline, peak := ms.HeapAlloc, ms.HeapAlloc
	buf := make([]byte, 64<<10)
	for off, reads := 0, 0; off < size; reads++ {
		n, err := server.Read(buf)
		if err != nil {
			t.Fatalf("at %d: %v", off, err)
		}
		if !bytes.Equal(buf[:n], want[off%256:off%256+n]) {
			t.Fatalf("corrupt data at %d", off)
		}
		off += n
		if reads%64 == 0 {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapAlloc)
		}
	}
	if err := <-werr; err != nil {
		t.Fatal(err)
	}
	grew := int64(peak) - int64(baseline)
	t.Logf("heap grew by %d KiB while reading a 50 MB frame", grew>>10)
	if grew > 8<<20 {
		t.Fatalf("heap grew by %d MB reading a 50 MB frame: it is buffered, not streamed", grew>>20)
	}
	// The stream goes on after the huge message.
	if err := client.WriteMessage(websocket.BinaryMessage, []byte{0xC0, 0}); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(server, buf[:2]); err != nil || buf[0] != 0xC0 {
		t.Fatalf("after the big frame: %x, %v", buf[:2], err)
	}
}

func TestWSOverLimitIsRefused(t *testing.T) {
	limit := NewConnLimit(1)
	h := newHanded()
	l := start(t, wsConfig(), h.handler, Options{Limit: limit})
	url := "ws://" + l.Addr().String() + "/mqtt"
	dialWS(t, url, "mqtt")
	h.next(t)
	d := websocket.Dialer{Subprotocols: []string{"mqtt"}, HandshakeTimeout: 5 * time.Second}
	if c, _, err := d.Dial(url, nil); err == nil {
		c.Close()
		t.Fatal("second connection upgraded past max_connections 1")
	}
	if limit.Rejected() != 1 {
		t.Fatalf("Rejected = %d", limit.Rejected())
	}
}

// TestWSSlowHandshakeIsCut: a client that trickles its request does not
// hold a connection past HandshakeTimeout.
func TestWSSlowHandshakeIsCut(t *testing.T) {
	limit := NewConnLimit(10)
	h := newHanded()
	l := start(t, wsConfig(), h.handler, Options{Limit: limit, HandshakeTimeout: 200 * time.Millisecond})
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("GET /mqtt HTTP/1.1\r\nHost: x\r\n")); err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = io.ReadAll(c)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatal("server kept a trickling client for 5s")
	}
	if d := time.Since(begin); d > 2*time.Second {
		t.Fatalf("cut after %v", d)
	}
	eventually(t, "slot released", func() bool { return limit.Count() == 0 })
}
