package codec

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"reflect"
	"testing"
	"unicode/utf8"
)

// roundTrip checks that a decoded packet encodes, that Size agrees, and that
// the encoding decodes to an equal packet.
func roundTrip(t testing.TB, what string, p Packet, v Version) {
	t.Helper()
	if c, ok := p.(*Connect); ok {
		v = c.Version // a CONNECT carries its version
	}
	out, err := Append(nil, p, v)
	if err != nil {
		t.Fatalf("%s: decoded %s packet does not encode: %v\n%#v", what, v, err, p)
	}
	if n := Size(p, v); n != len(out) {
		t.Fatalf("%s: Size %d, Append wrote %d", what, n, len(out))
	}
	q, n, err := Decode(out, v)
	if err != nil {
		t.Fatalf("%s: re-encoded packet %s does not decode: %v", what, hexOf(out), err)
	}
	if n != len(out) {
		t.Fatalf("%s: re-encoded packet: consumed %d of %d", what, n, len(out))
	}
	if !reflect.DeepEqual(p, q) {
		t.Fatalf("%s: round trip changed the packet:\n first  %#v\n second %#v", what, p, q)
	}
}

func addSeeds(f *testing.F) {
	for _, fx := range append(fixtures[:len(fixtures):len(fixtures)], variants...) {
		f.Add(fx.raw)
	}
	for _, c := range malformedCases {
		f.Add(c.raw)
	}
}

// FuzzDecode: whatever decodes in any version re-encodes to bytes that
// decode to an equal packet; nothing panics.
func FuzzDecode(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, v := range []Version{0, V31, V311, V5} {
			p, n, err := Decode(data, v)
			if err != nil {
				var e *Error
				if !errors.As(err, &e) && err != io.EOF && err != io.ErrUnexpectedEOF {
					t.Fatalf("%s: unexpected error type %T: %v", v, err, err)
				}
				continue
			}
			if n < 2 || n > len(data) {
				t.Fatalf("%s: consumed %d of %d", v, n, len(data))
			}
			roundTrip(t, v.String(), p, v)
		}
	})
}

// FuzzReadPacket: a Reader over the same bytes agrees with Decode packet by
// packet, with a small maximum packet size in play.
func FuzzReadPacket(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, v := range []Version{0, V31, V311, V5} {
			r := NewReader(bufio.NewReaderSize(bytes.NewReader(data), 16), 256)
			r.SetVersion(v)
			rest := data
			for {
				want, n, derr := Decode(rest, r.Version())
				got, err := r.ReadPacket()
				if err != nil {
					var e *Error
					if errors.As(err, &e) && e.Code == PacketTooLarge {
						if derr == nil && n <= 256 {
							t.Fatalf("%s: Reader refused a %d-byte packet as too large", v, n)
						}
						break
					}
					if derr == nil {
						t.Fatalf("%s: Decode ok, ReadPacket: %v", v, err)
					}
					if (derr == io.EOF) != (err == io.EOF) {
						t.Fatalf("%s: Decode %v, ReadPacket %v", v, derr, err)
					}
					break
				}
				if derr != nil {
					t.Fatalf("%s: ReadPacket ok, Decode: %v", v, derr)
				}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("%s: ReadPacket %#v, Decode %#v", v, got, want)
				}
				rest = rest[n:]
			}
		}
	})
}

// FuzzValidUTF8 compares the word-at-a-time scanners with the plain
// definitions.
func FuzzValidUTF8(f *testing.F) {
	for _, s := range []string{"", "a/b", "abcdefgh\x00", "é/+", "\xed\xa0\x80", "abcdefgh#abcdefgh", "\xf4\x90\x80\x80"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, s []byte) {
		want := utf8.Valid(s) && bytes.IndexByte(s, 0) < 0
		if got := ValidUTF8(s); got != want {
			t.Fatalf("ValidUTF8(%q) = %v, want %v", s, got, want)
		}
		ok, wild := scanTopicName(s)
		if ok != want {
			t.Fatalf("scanTopicName(%q) ok = %v, want %v", s, ok, want)
		}
		if want && wild != bytes.ContainsAny(s, "+#") {
			t.Fatalf("scanTopicName(%q) wildcard = %v", s, wild)
		}
	})
}
