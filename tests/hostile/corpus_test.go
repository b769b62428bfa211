package hostile

// The codec's fuzz corpora and random bytes, replayed over real sockets: as the first bytes of
// a connection, and after a CONNECT in every version.

import (
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/actormq/actormq/codec"
	"github.com/actormq/actormq/config"
	"github.com/actormq/actormq/internal/brokertest"
)

var pingreq = []byte{0xC0, 0x00} // the same in every version

// isConnect reports whether raw starts with a CONNECT fixed header.
func isConnect(raw []byte) bool { return len(raw) > 0 && raw[0]>>4 == byte(codec.TypeConnect) }

// parallel runs f(i) for i in [0, n) on a few goroutines: the broker sees many hostile
// connections at once, as it would in the wild, and the suite stays fast.
func parallel(n, workers int, f func(i int)) {
	var wg sync.WaitGroup
	next := make(chan int)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				f(i)
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}

// TestCodecSeedsAfterConnect replays every seed of FuzzDecode and FuzzReadPacket that is not a
// CONNECT on a connection of the seed's version, followed by a PINGREQ, and checks the
// broker's answer against what the specification asks for that packet:
//   - a seed the codec refuses: the connection is closed, in 5.0 after a DISCONNECT with the
//     codec's reason code (5.0 [MQTT-4.13.1-1], §4.13.1: "SHOULD send a DISCONNECT packet
//     containing the Reason Code"), in 3.1.1 without a word ([MQTT-4.8.0-1]);
//   - a valid packet a client may send: its answer (PUBACK, PUBREC, PUBCOMP, SUBACK, UNSUBACK,
//     PINGRESP) and the connection goes on;
//   - a packet only a server sends (CONNACK, SUBACK, UNSUBACK, PINGRESP): a Protocol Error,
//     "an unexpected or out of order packet" (5.0 §2.4, 0x82), which closes the connection
//     (3.1.1 [MQTT-4.8.0-1]).
func TestCodecSeedsAfterConnect(t *testing.T) {
	h := start(t)
	y := h.bystander(t)
	var seeds []seed
	for _, s := range codecSeeds(t) {
		if s.v != 0 && !isConnect(s.raw) {
			seeds = append(seeds, s)
		}
	}
	if len(seeds) < 100 {
		t.Fatalf("only %d seeds after CONNECT: is the corpus read right?", len(seeds))
	}
	parallel(len(seeds), 16, func(i int) {
		s := seeds[i]
		if err := h.replayAfterConnect(fmt.Sprintf("seed-%d", i), s); err != nil {
			t.Errorf("%s (%s, % x): %v", s.name, s.v, s.raw, err)
		}
	})
	y.check(t)
}

func (h *harness) replayAfterConnect(id string, s seed) error {
	p, _, derr := codec.Decode(s.raw, s.v)
	e, err := expectAfterConnect(s.v, p, derr)
	if err != nil {
		return err
	}
	c, err := h.connect(id, s.v, 30)
	if err != nil {
		return err
	}
	defer c.Conn.Close()
	if err := sendRaw(c, s.raw); err != nil {
		return err
	}
	if !e.close {
		// The answers, then the connection still works. (A PINGREQ sent with the seed would
		// not do as a marker: the broker answers it at once, possibly before the answer to the
		// seed, and nothing in the specification orders the two.)
		var o outcome
		for i, want := range e.answers {
			more := await(c, wait, func(codec.Packet) bool { return true })
			o.pkts, o.closed, o.err = append(o.pkts, more.pkts...), more.closed, more.err
			if o.closed || o.err != nil || len(o.pkts) != i+1 || !want(o.pkts[i]) {
				return fmt.Errorf("got %s, want %d answer(s) %s", o, len(e.answers), e.rule)
			}
		}
		if err := alive(c); err != nil {
			return fmt.Errorf("after %s: %w %s", o, err, e.rule)
		}
		return send(c, &codec.Disconnect{})
	}
	want := e.code
	if s.v != codec.V5 {
		want = 0
	}
	if err := checkClosedWith(closedOnly(c), want); err != nil {
		return fmt.Errorf("%w %s", err, e.rule)
	}
	// Every close the broker decides on is logged at INFO or WARN, with the reason.
	var match func(e observedEntry) bool
	if e.code != 0 {
		match = reasonIs(e.code)
	}
	_, err = h.endLog(c.Conn.LocalAddr(), match)
	return err
}

// expectation is what the broker must do with one packet: answer it with packets that match
// answers, in order, and go on; or close the connection, in 5.0 after a DISCONNECT with code
// (0: nothing sent).
type expectation struct {
	close   bool
	code    codec.ReasonCode
	answers []func(codec.Packet) bool
	rule    string // the rule, for the failure message
}

// expectAfterConnect is the expectation for a packet p (or the decoding error derr) sent in
// version v on a connected session.
func expectAfterConnect(v codec.Version, p codec.Packet, derr error) (expectation, error) {
	v5 := v == codec.V5
	closeWith := func(code codec.ReasonCode, rule string) (expectation, error) {
		return expectation{close: true, code: code, rule: rule}, nil
	}
	answer := func(rule string, want ...func(codec.Packet) bool) (expectation, error) {
		return expectation{answers: want, rule: rule}, nil
	}
	if derr != nil {
		var ce *codec.Error
		if !errors.As(derr, &ce) {
			return expectation{}, fmt.Errorf("the seed neither decodes nor fails to: %v", derr)
		}
		return closeWith(ce.Code, "(5.0 [MQTT-4.13.1-1]; 3.1.1 [MQTT-4.8.0-1])")
	}
	routed := func(c codec.ReasonCode) bool { return c == codec.Success || c == codec.NoMatchingSubscribers }
	switch p := p.(type) {
	case *codec.Publish:
		if v5 && len(p.Properties.SubscriptionIdentifiers()) > 0 {
			return closeWith(codec.ProtocolError, "[MQTT-3.3.4-6]")
		}
		if a, ok := p.Properties.TopicAlias(); v5 && ok {
			if a == 0 || int(a) > config.Default().MQTT.TopicAliasMaximum {
				return closeWith(codec.TopicAliasInvalid, "[MQTT-3.3.2-8] [MQTT-3.3.2-9]")
			}
			if p.Topic == "" {
				return closeWith(codec.ProtocolError, "(§3.3.4: an alias with no mapping)")
			}
		}
		switch p.QoS {
		case 1:
			return answer("[MQTT-4.3.2-4]", func(q codec.Packet) bool {
				a, ok := q.(*codec.Puback)
				return ok && a.PacketID == p.PacketID && routed(a.ReasonCode)
			})
		case 2:
			return answer("[MQTT-4.3.3-8]", func(q codec.Packet) bool {
				a, ok := q.(*codec.Pubrec)
				return ok && a.PacketID == p.PacketID && routed(a.ReasonCode)
			})
		}
		return answer("(QoS 0 is not acknowledged)")
	case *codec.Pubrel:
		// An id the broker never saw: PUBCOMP all the same (3.1.1 [MQTT-3.6.4-1]), in 5.0
		// with 0x92 Packet Identifier not found (§3.7.2.1).
		want := codec.Success
		if v5 {
			want = codec.PacketIdentifierNotFound
		}
		return answer("(3.1.1 [MQTT-3.6.4-1]; 5.0 §3.7.2.1)", func(q codec.Packet) bool {
			a, ok := q.(*codec.Pubcomp)
			return ok && a.PacketID == p.PacketID && a.ReasonCode == want
		})
	case *codec.Pubrec:
		if v5 { // an unknown id: PUBREL 0x92 Packet Identifier not found (§3.6.2.1)
			return answer("(§3.6.2.1)", func(q codec.Packet) bool {
				a, ok := q.(*codec.Pubrel)
				return ok && a.PacketID == p.PacketID && a.ReasonCode == codec.PacketIdentifierNotFound
			})
		}
		return answer("(an unknown id is ignored)")
	case *codec.Puback, *codec.Pubcomp:
		return answer("(an unknown id is ignored)")
	case *codec.Subscribe:
		return answer("[MQTT-3.8.4-1] [MQTT-3.8.4-5]", func(q codec.Packet) bool {
			a, ok := q.(*codec.Suback)
			return ok && a.PacketID == p.PacketID && len(a.ReasonCodes) == len(p.Subscriptions)
		})
	case *codec.Unsubscribe:
		return answer("[MQTT-3.10.4-4] [MQTT-3.11.3-1]", func(q codec.Packet) bool {
			a, ok := q.(*codec.Unsuback)
			return ok && a.PacketID == p.PacketID && (!v5 || len(a.ReasonCodes) == len(p.Filters))
		})
	case *codec.Pingreq:
		return answer("[MQTT-3.12.4-1]", isPingresp)
	case *codec.Disconnect:
		// The server closes and sends nothing after the client's DISCONNECT [MQTT-3.14.4-1]
		// (3.1.1 [MQTT-3.14.4-2]); the reason is logged, not a code of ours.
		return expectation{close: true, rule: "[MQTT-3.14.4-1]"}, nil
	case *codec.Auth:
		// No Authentication Method in the CONNECT: the client must not send AUTH
		// [MQTT-4.12.0-7], a Protocol Error.
		return closeWith(codec.ProtocolError, "[MQTT-4.12.0-7]")
	case *codec.Connack, *codec.Suback, *codec.Unsuback, *codec.Pingresp:
		return closeWith(codec.ProtocolError, "(a packet only a server sends: 5.0 §2.1.2, 0x82; 3.1.1 [MQTT-4.8.0-1])")
	}
	return expectation{}, fmt.Errorf("no expectation for %T", p)
}

// TestCodecSeedsAsFirstPacket replays the CONNECT seeds, and those about the state before
// CONNECT, as the first bytes of a connection (one at a time: they share client ids):
//   - anything but a CONNECT first is closed without an answer [MQTT-3.1.0-1];
//   - a CONNECT of a protocol the broker does not speak gets CONNACK 0x84 (5.0) or 0x01 (3.1.1)
//     and the close [MQTT-3.1.2-2];
//   - a malformed CONNECT is closed [MQTT-3.1.4-1], in 5.0 at most after a refusing CONNACK
//     (§3.1.4: "MAY send a CONNACK"), in 3.1.1 "without sending a CONNACK";
//   - a valid CONNECT gets a CONNACK first [MQTT-3.2.0-1]: Success and the session works, or a
//     refusal and the close (3.1.1 [MQTT-3.2.2-5], 5.0 [MQTT-3.2.2-7]).
func TestCodecSeedsAsFirstPacket(t *testing.T) {
	h := start(t)
	y := h.bystander(t)
	n := 0
	for _, s := range codecSeeds(t) {
		if s.v != 0 && !isConnect(s.raw) {
			continue
		}
		n++
		if err := h.replayFirst(t, s); err != nil {
			t.Errorf("%s (%s, % x): %v", s.name, s.v, s.raw, err)
		}
	}
	if n < 30 {
		t.Fatalf("only %d CONNECT seeds: is the corpus read right?", n)
	}
	y.check(t)
}

func (h *harness) replayFirst(t testing.TB, s seed) error {
	listener := codec.V311
	if s.v == codec.V5 {
		listener = codec.V5
	}
	c, err := brokertest.TryDial(t, h.addrOf(listener), listener)
	if err != nil {
		return err
	}
	defer c.Conn.Close()
	p, _, derr := codec.Decode(s.raw, s.v)
	if connect, ok := p.(*codec.Connect); ok {
		c.R.SetVersion(connect.Version) // the CONNACK is in the CONNECT's version
	}
	if err := sendRaw(c, append(append([]byte(nil), s.raw...), pingreq...)); err != nil {
		return err
	}
	o := await(c, wait, isPingresp)
	var ce *codec.Error
	errors.As(derr, &ce)
	switch {
	case !isConnect(s.raw):
		if err := checkClosedWith(o, 0); err != nil {
			return fmt.Errorf("%w [MQTT-3.1.0-1]", err)
		}
	case ce != nil && ce.Code == codec.UnsupportedProtocolVersion:
		want := codec.UnsupportedProtocolVersion
		if listener != codec.V5 {
			want = codec.ConnRefusedProtocolVersion
		}
		if ack, ok := first(o).(*codec.Connack); !o.closed || len(o.pkts) != 1 || !ok || ack.ReasonCode != want {
			return fmt.Errorf("got %s, want CONNACK 0x%02X and the close [MQTT-3.1.2-2]", o, byte(want))
		}
	case derr != nil:
		ack, isAck := first(o).(*codec.Connack)
		refusal := len(o.pkts) == 1 && isAck && listener == codec.V5 && ack.ReasonCode >= 0x80
		if !o.closed || len(o.pkts) > 0 && !refusal {
			return fmt.Errorf("got %s, want the close (%v) [MQTT-3.1.4-1]", o, derr)
		}
	default:
		ack, ok := first(o).(*codec.Connack)
		if !ok {
			return fmt.Errorf("got %s, want CONNACK first [MQTT-3.2.0-1]", o)
		}
		if ack.ReasonCode == codec.Success {
			if o.closed || len(o.pkts) != 2 || !isPingresp(o.pkts[1]) {
				return fmt.Errorf("got %s, want CONNACK and PINGRESP", o)
			}
			if err := send(c, &codec.Disconnect{}); err != nil {
				return err
			}
			return checkClosedWith(closedOnly(c), 0)
		}
		if !o.closed || len(o.pkts) != 1 {
			return fmt.Errorf("got %s, want the refusing CONNACK and the close (3.1.1 [MQTT-3.2.2-5], 5.0 [MQTT-3.2.2-7])", o)
		}
	}
	_, err = h.endLog(c.Conn.LocalAddr(), nil)
	return err
}

func first(o outcome) codec.Packet {
	if len(o.pkts) == 0 {
		return nil
	}
	return o.pkts[0]
}

// hostileKeepAlive is the keep alive of the clients of the fuzz tests: a connection left
// inside an incomplete packet is closed at one and a half times it (5.0 [MQTT-3.1.2-22], 3.1.1
// [MQTT-3.1.2-24]), so no case waits long.
const hostileKeepAlive = 1

// fuzzConfig: a short connect timeout, and mqtt.max_keep_alive low enough that a mutated
// CONNECT cannot ask for a long keep alive either (a 5.0 client is told the server's, a 3.x
// client asking more is refused).
func fuzzConfig(c *config.Config) {
	c.Limits.ConnectTimeout = config.Duration(time.Second)
	c.MQTT.MaxKeepAlive = 2
}

// fuzzWait: the longest a case may take to be answered or closed: the keep alive of a mutated
// CONNECT, and the slack.
const fuzzWait = 3*time.Second + wait

// judgeAny is what any input may lead to: the broker went on (the PINGREQ that followed got its
// PINGRESP) or closed the connection, having sent before it only valid packets; a DISCONNECT
// (5.0) carries an error code [MQTT-4.13.1-1] and is the last thing sent [MQTT-3.14.4-1]; a
// CONNACK comes first if at all [MQTT-3.2.0-1].
func judgeAny(o outcome) error {
	if o.err != nil {
		return fmt.Errorf("%v (got %s)", o.err, o)
	}
	for i, p := range o.pkts {
		switch p := p.(type) {
		case *codec.Disconnect:
			if p.ReasonCode < 0x80 || i != len(o.pkts)-1 || !o.closed {
				return fmt.Errorf("got %s: a DISCONNECT must carry an error code and be the last packet", o)
			}
		case *codec.Connack:
			if i != 0 {
				return fmt.Errorf("got %s: CONNACK after another packet", o)
			}
		}
	}
	return nil
}

// replayAny sends raw, then a PINGREQ, on a fresh connection: as its first bytes when v is 0,
// else after a CONNECT of version v. It checks judgeAny and that a close is logged.
func (h *harness) replayAny(t testing.TB, id string, v codec.Version, raw []byte) error {
	var c *brokertest.Conn
	var err error
	if v == 0 {
		c, err = brokertest.TryDial(t, h.TCP311, codec.V311)
		if connect, ok := decodeFirst(raw).(*codec.Connect); ok && err == nil {
			c.R.SetVersion(connect.Version) // the CONNACK is in the CONNECT's version
		}
	} else {
		c, err = h.connect(id, v, hostileKeepAlive)
	}
	if err != nil {
		return err
	}
	defer c.Conn.Close()
	if err := sendRaw(c, append(append([]byte(nil), raw...), pingreq...)); err != nil && v != 0 {
		return err // before CONNECT the broker may close on the first bad byte while we write
	}
	o := await(c, fuzzWait, isPingresp)
	if err := judgeAny(o); err != nil {
		return err
	}
	if o.closed {
		if _, err := h.endLog(c.Conn.LocalAddr(), nil); err != nil {
			return err
		}
	}
	return nil
}

var versions = []codec.Version{0, codec.V31, codec.V311, codec.V5}

// when names the moment an input is sent: before CONNECT (0) or after a CONNECT of a version.
func when(v codec.Version) string {
	if v == 0 {
		return "before CONNECT"
	}
	return "after a " + v.String() + " CONNECT"
}

// decodeFirst is the first packet of raw, if it decodes as the first packet of a connection.
func decodeFirst(raw []byte) codec.Packet {
	p, _, err := codec.Decode(raw, 0)
	if err != nil {
		return nil
	}
	return p
}

// TestFuzzCorpusFiles replays the inputs under codec/testdata/fuzz in every version, and as the
// first bytes of a connection: whatever they are, judgeAny.
func TestFuzzCorpusFiles(t *testing.T) {
	h := start(t, fuzzConfig)
	y := h.bystander(t)
	files := fuzzFiles(t)
	parallel(len(files)*len(versions), 16, func(i int) {
		s, v := files[i/len(versions)], versions[i%len(versions)]
		if err := h.replayAny(t, fmt.Sprintf("fuzz-%d", i), v, s.raw); err != nil {
			t.Errorf("%s %s (% x): %v", s.name, when(v), s.raw, err)
		}
	})
	y.check(t)
}

// TestRandomBytes throws random input at the broker: bytes, packets with a random type, flags
// and Remaining Length, and the codec's seeds with bytes flipped, cut, repeated or inserted,
// before and after CONNECT. Set HOSTILE_SEED to replay a run.
func TestRandomBytes(t *testing.T) {
	seedVal := uint64(time.Now().UnixNano())
	if s := os.Getenv("HOSTILE_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("HOSTILE_SEED: %v", err)
		}
		seedVal = v
	}
	t.Logf("HOSTILE_SEED=%d", seedVal)
	rng := rand.New(rand.NewPCG(seedVal, 0x686f7374696c65))
	corpus := codecSeeds(t)
	const n = 240
	inputs := make([][]byte, n)
	vs := make([]codec.Version, n)
	for i := range inputs {
		vs[i] = versions[rng.IntN(len(versions))]
		switch i % 3 {
		case 0:
			inputs[i] = randomBytes(rng, 1+rng.IntN(200))
		case 1:
			inputs[i] = randomPacket(rng)
		default:
			inputs[i] = mutate(rng, corpus[rng.IntN(len(corpus))].raw)
		}
	}
	h := start(t, fuzzConfig)
	y := h.bystander(t)
	parallel(n, 24, func(i int) {
		if err := h.replayAny(t, fmt.Sprintf("random-%d", i), vs[i], inputs[i]); err != nil {
			t.Errorf("input %d %s (%s): %v", i, when(vs[i]), hex.EncodeToString(inputs[i]), err)
		}
	})
	y.check(t)
}

func randomBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// randomPacket is a fixed header of any type and flags, a Remaining Length that may lie about
// the body, and a random body.
func randomPacket(rng *rand.Rand) []byte {
	body := randomBytes(rng, rng.IntN(120))
	claim := len(body)
	switch rng.IntN(4) {
	case 0:
		claim += 1 + rng.IntN(50) // longer than what follows
	case 1:
		claim = rng.IntN(len(body) + 1) // shorter
	}
	return append(append([]byte{byte(rng.Uint32())}, varint(claim)...), body...)
}

// mutate changes a seed the way a fuzzer would.
func mutate(rng *rand.Rand, raw []byte) []byte {
	b := append([]byte(nil), raw...)
	for range 1 + rng.IntN(3) {
		if len(b) == 0 {
			return []byte{byte(rng.Uint32())}
		}
		i := rng.IntN(len(b))
		switch rng.IntN(4) {
		case 0:
			b[i] ^= 1 << rng.IntN(8)
		case 1:
			b = b[:i]
		case 2:
			b = append(b[:i:i], append([]byte{byte(rng.Uint32())}, b[i:]...)...)
		case 3:
			b = append(b, b[i:]...)
		}
	}
	return b
}
