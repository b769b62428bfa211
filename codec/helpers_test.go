package codec

import (
	"bytes"
	"encoding/hex"
	"reflect"
	"runtime"
	"testing"
)

// Builders for raw packets. They are deliberately independent of the
// package's encoder so that fixtures do not share its bugs.

// cat concatenates byte slices.
func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// by spells out bytes.
func by(b ...byte) []byte { return b }

// str is a length-prefixed string (UTF-8 Encoded String or Binary Data).
func str(s string) []byte { return cat(by(byte(len(s)>>8), byte(len(s))), []byte(s)) }

func u16b(v uint16) []byte { return by(byte(v>>8), byte(v)) }

func u32b(v uint32) []byte { return by(byte(v>>24), byte(v>>16), byte(v>>8), byte(v)) }

// vbi is a Variable Byte Integer, written out the way §1.5.5 describes it.
func vbi(x int) []byte {
	var out []byte
	for {
		b := byte(x % 128)
		x /= 128
		if x > 0 {
			b |= 128
		}
		out = append(out, b)
		if x == 0 {
			return out
		}
	}
}

// pkt is a packet: first byte, Remaining Length, body.
func pkt(b0 byte, parts ...[]byte) []byte {
	body := cat(parts...)
	return cat(by(b0), vbi(len(body)), body)
}

// props is a property block: Property Length and properties.
func props(parts ...[]byte) []byte {
	body := cat(parts...)
	return cat(vbi(len(body)), body)
}

// pr builds a Properties value with setters.
func pr(set func(p *Properties)) Properties {
	var p Properties
	set(&p)
	return p
}

// samePacket compares packets field by field (reflect.DeepEqual follows the
// pointers and compares the unexported property fields too).
func samePacket(t *testing.T, what string, got, want Packet) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got  %#v\n want %#v", what, got, want)
	}
}

func hexOf(b []byte) string { return hex.EncodeToString(b) }

// bytesPerCall is what one call of f allocates, averaged over 100 calls: the least of three
// tries, as TotalAlloc counts the whole process and a runtime or testing goroutine may
// allocate during one of them.
func bytesPerCall(f func()) uint64 {
	least := ^uint64(0)
	for range 3 {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for range 100 {
			f()
		}
		runtime.ReadMemStats(&after)
		least = min(least, (after.TotalAlloc-before.TotalAlloc)/100)
	}
	return least
}
