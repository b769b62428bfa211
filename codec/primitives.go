package codec

import (
	"encoding/binary"
	"io"
	"unsafe"
)

// cursor reads the data types of §1.5 from a packet body. Strings and byte
// slices it returns alias the body (see the package comment).
type cursor struct {
	b []byte
	i int
}

func (c *cursor) left() int { return len(c.b) - c.i }

func (c *cursor) u8() (byte, error) {
	if c.i >= len(c.b) {
		return 0, errShort
	}
	v := c.b[c.i]
	c.i++
	return v, nil
}

func (c *cursor) u16() (uint16, error) {
	if c.left() < 2 {
		return 0, errShort
	}
	v := binary.BigEndian.Uint16(c.b[c.i:])
	c.i += 2
	return v, nil
}

func (c *cursor) u32() (uint32, error) {
	if c.left() < 4 {
		return 0, errShort
	}
	v := binary.BigEndian.Uint32(c.b[c.i:])
	c.i += 4
	return v, nil
}

func (c *cursor) varint() (uint32, error) {
	v, n, err := parseVarint(c.b[c.i:])
	if err == io.ErrUnexpectedEOF {
		return 0, errShort
	}
	c.i += n
	return v, err
}

// prefixed reads a two-byte length and that many bytes, capped so that an
// append to the result can never write into the rest of the body.
func (c *cursor) prefixed() ([]byte, error) {
	if c.left() < 2 {
		return nil, errShort
	}
	n := int(binary.BigEndian.Uint16(c.b[c.i:]))
	start := c.i + 2
	end := start + n
	if end > len(c.b) {
		return nil, errShort
	}
	c.i = end
	return c.b[start:end:end], nil
}

// binary reads Binary Data (§1.5.6); empty data decodes as nil.
func (c *cursor) binary() ([]byte, error) {
	b, err := c.prefixed()
	if len(b) == 0 {
		return nil, err
	}
	return b, err
}

// str reads a UTF-8 Encoded String (§1.5.4) and checks its content.
func (c *cursor) str() (string, error) {
	b, err := c.prefixed()
	if err != nil {
		return "", err
	}
	if !ValidUTF8(b) {
		return "", errBadUTF8
	}
	return view(b), nil
}

// skipPrefixed moves past a length-prefixed field without checking it.
func (c *cursor) skipPrefixed() error {
	_, err := c.prefixed()
	return err
}

// rest returns the unread bytes, nil when there are none.
func (c *cursor) rest() []byte {
	if c.i >= len(c.b) {
		return nil
	}
	r := c.b[c.i:len(c.b):len(c.b)]
	c.i = len(c.b)
	return r
}

// props reads a Property Length and the properties it covers into p.
func (c *cursor) props(p *Properties, ctx uint8) error {
	n, err := c.varint()
	if err != nil {
		return err
	}
	if int(n) > c.left() {
		return malformed("property length %d exceeds the %d bytes left in the packet", n, c.left())
	}
	end := c.i + int(n)
	block := c.b[c.i:end:end]
	c.i = end
	return p.decode(block, ctx)
}

// view returns b as a string without copying. The caller guarantees that b
// is never modified afterwards: decoded packet bodies are immutable.
func view(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// ParseRemainingLength decodes the Remaining Length at the start of b (the bytes after a fixed
// header's first): the length, and how many bytes encode it. It returns io.ErrUnexpectedEOF
// when b ends inside it, so that a caller framing packets from a byte stream can wait for more.
func ParseRemainingLength(b []byte) (n, size int, err error) {
	v, size, err := parseVarint(b)
	return int(v), size, err
}

// parseVarint decodes a Variable Byte Integer (§1.5.5) from the start of b.
// It returns io.ErrUnexpectedEOF when b ends inside the integer.
func parseVarint(b []byte) (uint32, int, error) {
	var v uint32
	for i := 0; i < 4; i++ {
		if i >= len(b) {
			return 0, 0, io.ErrUnexpectedEOF
		}
		c := b[i]
		v |= uint32(c&0x7F) << (7 * i)
		if c&0x80 == 0 {
			// A zero last byte means a shorter encoding existed.
			if c == 0 && i > 0 {
				return 0, 0, errVarintPadded
			}
			return v, i + 1, nil
		}
	}
	return 0, 0, errVarintLong
}

// varintLen is the encoded size of v, which must be <= MaxRemainingLength.
func varintLen(v int) int {
	switch {
	case v < 1<<7:
		return 1
	case v < 1<<14:
		return 2
	case v < 1<<21:
		return 3
	}
	return 4
}

func appendVarint(dst []byte, v int) []byte {
	for v >= 0x80 {
		dst = append(dst, byte(v)|0x80)
		v >>= 7
	}
	return append(dst, byte(v))
}

func appendU16(dst []byte, v uint16) []byte { return append(dst, byte(v>>8), byte(v)) }

func appendU32(dst []byte, v uint32) []byte {
	return append(dst, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}

// appendString writes a two-byte length and s; callers have checked that
// len(s) <= 65535.
func appendString(dst []byte, s string) []byte {
	dst = appendU16(dst, uint16(len(s)))
	return append(dst, s...)
}

func appendBinary(dst []byte, b []byte) []byte {
	dst = appendU16(dst, uint16(len(b)))
	return append(dst, b...)
}

// maxField is the longest string or binary field (two-byte length).
const maxField = 65535

func fieldTooLong(what string, n int) error {
	return malformed("%s is %d bytes, more than the %d a length prefix can express", what, n, maxField)
}
