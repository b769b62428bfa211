package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/actormq/actormq/codec"
)

// Key layout. The first byte is the kind:
//
//	0x01 "version"                                  the store format version (uint32, big-endian)
//	0x02 len(id):u16 id 0x01                        session of client id
//	0x02 len(id):u16 id 0x02 seq:u64                message seq of client id
//	0x02 len(id):u16 id 0x03 packetID:u16           inbound QoS 2 id of client id
//	0x03 topic                                      retained message of topic
//
// A client's keys share the prefix 0x02 len id, and the fixed-width length comes before the id,
// so no id's range can contain another id's keys, whatever bytes the ids hold: DeleteSession is
// one DeleteRange. Integers are big-endian so that byte order is numeric order (messages come
// back in seq order). The topic runs to the end of its key: nothing follows it, so no escaping
// is needed.
const (
	kindMeta     byte = 0x01
	kindClient   byte = 0x02
	kindRetained byte = 0x03

	subSession byte = 0x01
	subMessage byte = 0x02
	subInbound byte = 0x03
	subEnd     byte = 0xFF // exclusive end of a client's range
)

// formatVersion is the version of the key and value layout. Bump it when either changes, and
// teach Open to upgrade from the older one.
const formatVersion uint32 = 1

var versionKey = []byte{kindMeta, 'v', 'e', 'r', 's', 'i', 'o', 'n'}

// maxID is the longest client id a key can hold: MQTT strings are at most 65535 bytes anyway.
const maxID = math.MaxUint16

func clientPrefix(dst []byte, id string) []byte {
	dst = append(dst, kindClient)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(id)))
	return append(dst, id...)
}

// clientRange is the key range [lo, hi) of every record of client id.
func clientRange(id string) (lo, hi []byte) {
	lo = clientPrefix(nil, id)
	return lo, append(lo[:len(lo):len(lo)], subEnd)
}

func sessionKey(dst []byte, id string) []byte {
	return append(clientPrefix(dst, id), subSession)
}

func messageKey(dst []byte, id string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(append(clientPrefix(dst, id), subMessage), seq)
}

func inboundKey(dst []byte, id string, packetID uint16) []byte {
	return binary.BigEndian.AppendUint16(append(clientPrefix(dst, id), subInbound), packetID)
}

func retainedKey(dst []byte, topic string) []byte {
	return append(append(dst, kindRetained), topic...)
}

// parsedKey is a decoded key.
type parsedKey struct {
	kind, sub byte
	id        string // client id or topic
	seq       uint64
	packetID  uint16
}

var errBadKey = errors.New("malformed key")

func parseKey(k []byte) (parsedKey, error) {
	var p parsedKey
	if len(k) == 0 {
		return p, errBadKey
	}
	p.kind = k[0]
	switch p.kind {
	case kindMeta:
		return p, nil
	case kindRetained:
		p.id = string(k[1:])
		return p, nil
	case kindClient:
		if len(k) < 4 {
			return p, errBadKey
		}
		n := int(binary.BigEndian.Uint16(k[1:]))
		if len(k) < 3+n+1 {
			return p, errBadKey
		}
		p.id = string(k[3 : 3+n])
		p.sub = k[3+n]
		rest := k[3+n+1:]
		switch {
		case p.sub == subSession && len(rest) == 0:
		case p.sub == subMessage && len(rest) == 8:
			p.seq = binary.BigEndian.Uint64(rest)
		case p.sub == subInbound && len(rest) == 2:
			p.packetID = binary.BigEndian.Uint16(rest)
		default:
			return p, errBadKey
		}
		return p, nil
	}
	return p, errBadKey
}

// ---- values

// noTime stands for the zero time.Time, whose UnixNano is not defined.
const noTime = math.MinInt64

func appendTime(dst []byte, t time.Time) []byte {
	n := int64(noTime)
	if !t.IsZero() {
		n = t.UnixNano()
	}
	return binary.BigEndian.AppendUint64(dst, uint64(n))
}

func appendBytes(dst, b []byte) []byte {
	return append(binary.AppendUvarint(dst, uint64(len(b))), b...)
}

// appendSession writes r (its client id is in the key):
//
//	version:u8 expiry:u32 disconnectedAt:i64 willDelay:u32 will:bytes user:bytes nsubs:uvarint subs...
//	sub: filter:bytes qos:u8 flags:u8 (noLocal, retainAsPublished<<1, retainHandling<<2) id:uvarint
//
// The will is a 5.0 CONNECT carrying it, empty when there is none: the codec already knows how
// to write and check a will with its properties.
func appendSession(dst []byte, r *SessionRecord) ([]byte, error) {
	dst = append(dst, r.Version)
	dst = binary.BigEndian.AppendUint32(dst, r.Expiry)
	dst = appendTime(dst, r.DisconnectedAt)
	dst = binary.BigEndian.AppendUint32(dst, r.WillDelay)
	if r.Will != nil {
		w, err := codec.Append(nil, &codec.Connect{Will: r.Will}, codec.V5)
		if err != nil {
			return dst, fmt.Errorf("will of %q: %w", r.ClientID, err)
		}
		dst = appendBytes(dst, w)
	} else {
		dst = appendBytes(dst, nil)
	}
	dst = appendBytes(dst, []byte(r.User))
	dst = binary.AppendUvarint(dst, uint64(len(r.Subscriptions)))
	for i := range r.Subscriptions {
		s := &r.Subscriptions[i]
		dst = appendBytes(dst, []byte(s.Filter))
		var flags byte
		if s.NoLocal {
			flags |= 1
		}
		if s.RetainAsPublished {
			flags |= 2
		}
		flags |= s.RetainHandling << 2
		dst = append(dst, s.QoS, flags)
		dst = binary.AppendUvarint(dst, uint64(s.SubscriptionID))
	}
	return dst, nil
}

// appendMessage writes r:
//
//	qos:u8 retain:u8 state:u8 packetID:u16 received:i64 nsubids:uvarint subids:uvarint... publish
//
// The publish is a 5.0 PUBLISH as the codec writes it, to the end of the value.
func appendMessage(dst []byte, r *MessageRecord) ([]byte, error) {
	if r.Pub == nil {
		return dst, errors.New("message without a publish")
	}
	var retain byte
	if r.Retain {
		retain = 1
	}
	dst = append(dst, r.QoS, retain, byte(r.State))
	dst = binary.BigEndian.AppendUint16(dst, r.PacketID)
	dst = appendTime(dst, r.Received)
	dst = binary.AppendUvarint(dst, uint64(len(r.SubIDs)))
	for _, id := range r.SubIDs {
		dst = binary.AppendUvarint(dst, uint64(id))
	}
	// A copy, for the per-hop fields: a QoS 1/2 PUBLISH needs some packet id to be written.
	p := *r.Pub
	p.Dup = false
	p.PacketID = 0
	if p.QoS > 0 {
		p.PacketID = 1
	}
	p.Properties.Remove(codec.PropTopicAlias) // an alias means nothing after a restart
	out, err := codec.Append(dst, &p, codec.V5)
	if err != nil {
		return dst, fmt.Errorf("publish to %q: %w", r.Pub.Topic, err)
	}
	return out, nil
}

// reader walks a value; the first failure sticks, so callers check err once at the end.
type reader struct {
	b   []byte
	err error
}

var errShort = errors.New("value too short")

func (r *reader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || len(r.b) < n {
		r.err = errShort
		return nil
	}
	b := r.b[:n:n]
	r.b = r.b[n:]
	return b
}

func (r *reader) u8() byte {
	if b := r.take(1); b != nil {
		return b[0]
	}
	return 0
}

func (r *reader) u16() uint16 {
	if b := r.take(2); b != nil {
		return binary.BigEndian.Uint16(b)
	}
	return 0
}

func (r *reader) u32() uint32 {
	if b := r.take(4); b != nil {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}

func (r *reader) time() time.Time {
	b := r.take(8)
	if b == nil {
		return time.Time{}
	}
	n := int64(binary.BigEndian.Uint64(b))
	if n == noTime {
		return time.Time{}
	}
	return time.Unix(0, n)
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errors.New("bad varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) uvarint32() uint32 {
	v := r.uvarint()
	if v > math.MaxUint32 {
		r.err = errors.New("varint out of range")
	}
	return uint32(v)
}

func (r *reader) bytes() []byte {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		if r.err == nil {
			r.err = errShort
		}
		return nil
	}
	return r.take(int(n))
}

// count reads a list length and rejects one that the rest of the value cannot hold (each
// element takes at least min bytes), so a damaged value cannot make us allocate wildly.
func (r *reader) count(min int) int {
	n := r.uvarint()
	if r.err == nil && n > uint64(len(r.b)/min) {
		r.err = errors.New("list length exceeds value")
		return 0
	}
	return int(n)
}

// decodeSession decodes a session value. b must not be reused: the result aliases it.
func decodeSession(id string, b []byte) (*SessionRecord, error) {
	r := reader{b: b}
	s := &SessionRecord{ClientID: id}
	s.Version = r.u8()
	s.Expiry = r.u32()
	s.DisconnectedAt = r.time()
	s.WillDelay = r.u32()
	if w := r.bytes(); r.err == nil && len(w) > 0 {
		p, n, err := codec.Decode(w, codec.V5)
		if err != nil {
			return nil, fmt.Errorf("will: %w", err)
		}
		c, ok := p.(*codec.Connect)
		if !ok || n != len(w) || c.Will == nil {
			return nil, errors.New("will: not a CONNECT with a will")
		}
		s.Will = c.Will
	}
	s.User = string(r.bytes())
	n := r.count(4)
	if n > 0 {
		s.Subscriptions = make([]SubscriptionRecord, n)
	}
	for i := 0; i < n && r.err == nil; i++ {
		sub := &s.Subscriptions[i]
		sub.Filter = string(r.bytes())
		sub.QoS = r.u8()
		flags := r.u8()
		sub.NoLocal = flags&1 != 0
		sub.RetainAsPublished = flags&2 != 0
		sub.RetainHandling = flags >> 2 & 3
		sub.SubscriptionID = r.uvarint32()
	}
	if r.err == nil && len(r.b) != 0 {
		r.err = errors.New("trailing bytes")
	}
	if r.err != nil {
		return nil, r.err
	}
	return s, nil
}

// decodeMessage decodes a message value. b must not be reused: the publish aliases it.
func decodeMessage(b []byte) (*MessageRecord, error) {
	r := reader{b: b}
	m := &MessageRecord{}
	m.QoS = r.u8()
	m.Retain = r.u8() != 0
	m.State = MessageState(r.u8())
	m.PacketID = r.u16()
	m.Received = r.time()
	if n := r.count(1); n > 0 {
		m.SubIDs = make([]uint32, n)
		for i := range m.SubIDs {
			m.SubIDs[i] = r.uvarint32()
		}
	}
	if r.err != nil {
		return nil, r.err
	}
	if m.QoS > 2 || m.State > Released {
		return nil, fmt.Errorf("QoS %d, state %d out of range", m.QoS, m.State)
	}
	p, n, err := codec.Decode(r.b, codec.V5)
	if err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	pub, ok := p.(*codec.Publish)
	if !ok || n != len(r.b) {
		return nil, errors.New("publish: not a PUBLISH")
	}
	pub.PacketID = 0
	m.Pub = pub
	return m, nil
}
