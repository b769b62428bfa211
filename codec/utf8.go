package codec

import (
	"bytes"
	"encoding/binary"
	"unicode/utf8"
)

// Word-at-a-time constants: lsb has the low bit of every byte set, msb the
// high bit.
const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// hasZeroByte reports whether any byte of x is zero (exact, not a
// heuristic).
func hasZeroByte(x uint64) bool { return (x-lsb)&^x&msb != 0 }

// ValidUTF8 reports whether s may be the content of an MQTT UTF-8 Encoded
// String: well-formed UTF-8, which excludes the surrogates U+D800..U+DFFF
// [MQTT-1.5.4-1], and no U+0000 [MQTT-1.5.4-2]. The other code points the
// spec discourages (controls, non-characters) are allowed, as its SHOULD NOT
// permits.
func ValidUTF8(s []byte) bool {
	i := 0
	// ASCII without NUL is by far the common case: check 8 bytes at a time.
	for ; i+8 <= len(s); i += 8 {
		x := binary.LittleEndian.Uint64(s[i:])
		if x&msb != 0 || hasZeroByte(x) {
			break
		}
	}
	for ; i < len(s); i++ {
		c := s[i]
		if c == 0 {
			return false
		}
		if c >= utf8.RuneSelf {
			rest := s[i:]
			return utf8.Valid(rest) && bytes.IndexByte(rest, 0) < 0
		}
	}
	return true
}

// scanTopicName checks a Topic Name in one pass: ok as ValidUTF8, and
// whether it holds a wildcard character, which a name must not
// [MQTT-3.3.2-2].
func scanTopicName(s []byte) (ok, wildcard bool) {
	const plus, hash = lsb * '+', lsb * '#'
	i := 0
	for ; i+8 <= len(s); i += 8 {
		x := binary.LittleEndian.Uint64(s[i:])
		if x&msb != 0 || hasZeroByte(x) || hasZeroByte(x^plus) || hasZeroByte(x^hash) {
			break
		}
	}
	for ; i < len(s); i++ {
		switch c := s[i]; {
		case c == 0:
			return false, wildcard
		case c == '+' || c == '#':
			wildcard = true
		case c >= utf8.RuneSelf:
			// '+' and '#' never occur inside a multi-byte sequence, so a
			// byte search finds exactly the wildcard characters.
			rest := s[i:]
			ok = utf8.Valid(rest) && bytes.IndexByte(rest, 0) < 0
			return ok, wildcard || bytes.IndexByte(rest, '+') >= 0 || bytes.IndexByte(rest, '#') >= 0
		}
	}
	return true, wildcard
}
