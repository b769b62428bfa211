package codec

import (
	"bufio"
	"io"
)

// Reader decodes packets from a byte stream. It is not safe for concurrent
// use: one connection has one reader goroutine.
type Reader struct {
	br      *bufio.Reader
	max     int
	version Version
	// small holds the body of packets that keep no reference to it (acks,
	// pings, short DISCONNECT/AUTH), so that they cost no body allocation.
	small [4]byte
	// ack, once ReuseAcks is called, is the one packet every PUBACK, PUBREC,
	// PUBREL and PUBCOMP is decoded into.
	ack       *Puback
	reuseAcks bool
}

// ReuseAcks makes ReadPacket decode every PUBACK, PUBREC, PUBREL and PUBCOMP
// into one packet the Reader owns, valid only until the next ReadPacket. For
// a caller that takes what it needs from an ack at once, it saves allocating
// a whole packet, properties included, for every QoS 1 and 2 message.
func (r *Reader) ReuseAcks() { r.reuseAcks = true }

// NewReader returns a Reader of r that refuses packets larger than
// maxPacketSize bytes, fixed header included; maxPacketSize <= 0 means
// MaxPacketSize.
func NewReader(r *bufio.Reader, maxPacketSize int) *Reader {
	if maxPacketSize <= 0 || maxPacketSize > MaxPacketSize {
		maxPacketSize = MaxPacketSize
	}
	return &Reader{br: r, max: maxPacketSize}
}

// Version returns the protocol version packets are decoded with: 0 until a
// CONNECT has been read or SetVersion called.
func (r *Reader) Version() Version { return r.version }

// SetVersion sets the protocol version, e.g. on a client before it reads the
// CONNACK.
func (r *Reader) SetVersion(v Version) { r.version = v }

// ReadPacket reads and decodes the next packet. It returns io.EOF only when
// the stream ends cleanly between packets and io.ErrUnexpectedEOF when it
// ends inside one; other read errors are returned as they are. A decoding
// failure is an *Error. After any error the stream position is undefined
// and the connection must be closed.
//
// While the version is unknown only a CONNECT is accepted. The first
// CONNECT sets the version, also when the rest of it fails to decode, so
// that the connection layer can answer with a CONNACK of the right form; a
// later CONNECT leaves it alone.
func (r *Reader) ReadPacket() (Packet, error) {
	b0, err := r.br.ReadByte()
	if err != nil {
		return nil, err
	}
	t, err := checkFixedHeader(b0, r.version)
	if err != nil {
		return nil, err
	}
	rem, n, err := r.readRemainingLength()
	if err != nil {
		return nil, err
	}
	// Refuse before allocating: the length is the peer's claim, not data.
	if 1+n+rem > r.max {
		return nil, errorf(PacketTooLarge, "%s of %d bytes exceeds the maximum of %d", t, 1+n+rem, r.max)
	}
	var body []byte
	if rem <= len(r.small) && bodyNotKept(t) {
		body = r.small[:rem]
		if _, err := io.ReadFull(r.br, body); err != nil {
			return nil, unexpectedEOF(err)
		}
	} else if body, err = r.readBody(rem); err != nil {
		return nil, err
	}
	if t == TypeConnect {
		c, v, err := decodeConnect(body)
		if r.version == 0 {
			r.version = v
		}
		if err != nil {
			return nil, err
		}
		return c, nil
	}
	if r.reuseAcks && isAck(t) {
		if r.ack == nil {
			r.ack = &Puback{}
		}
		*r.ack = Puback{}
		return decodeAck(r.ack, t, body, r.version)
	}
	return decodeBody(t, b0&0x0F, body, r.version)
}

func isAck(t PacketType) bool {
	return t == TypePuback || t == TypePubrec || t == TypePubrel || t == TypePubcomp
}

// bodyChunk is what a body gets before its bytes arrive; see readBody. Bodies up to it (most
// MQTT messages) are allocated once, as before; a peer claiming a larger one holds at most
// this much until it sends more.
const bodyChunk = 16 << 10

// readBody reads a body of n bytes. It allocates for the bytes that have arrived, not for
// the length the peer announced: the buffer starts at what is buffered (at least bodyChunk)
// and doubles as the bytes come, so a peer that claims a large packet and sends little of it
// holds at most twice what it sent plus bodyChunk. The last growth is to exactly n, so a kept
// body (a payload) wastes no capacity.
func (r *Reader) readBody(n int) ([]byte, error) {
	body := make([]byte, min(n, max(bodyChunk, r.br.Buffered())))
	got := 0
	for {
		m, err := io.ReadFull(r.br, body[got:])
		got += m
		if err != nil {
			return nil, unexpectedEOF(err)
		}
		if got == n {
			return body, nil
		}
		grown := make([]byte, min(n, 2*len(body)))
		copy(grown, body)
		body = grown
	}
}

// unexpectedEOF: the stream ended inside a packet.
func unexpectedEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// bodyNotKept reports whether a packet of type t of at most len(small)
// bytes can be decoded without keeping a reference to its body: within 4
// bytes these types have no room for a string, binary field or reason code
// list.
func bodyNotKept(t PacketType) bool {
	switch t {
	case TypeConnack, TypePuback, TypePubrec, TypePubrel, TypePubcomp,
		TypePingreq, TypePingresp, TypeDisconnect, TypeAuth:
		return true
	}
	return false
}

func (r *Reader) readRemainingLength() (int, int, error) {
	var v int
	for i := 0; i < 4; i++ {
		c, err := r.br.ReadByte()
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return 0, 0, err
		}
		v |= int(c&0x7F) << (7 * i)
		if c&0x80 == 0 {
			if c == 0 && i > 0 {
				return 0, 0, errVarintPadded
			}
			return v, i + 1, nil
		}
	}
	return 0, 0, errVarintLong
}
