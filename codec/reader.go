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
}

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
	} else {
		body = make([]byte, rem)
	}
	if _, err := io.ReadFull(r.br, body); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
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
	return decodeBody(t, b0&0x0F, body, r.version)
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
