package codec

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestValidUTF8(t *testing.T) {
	for _, tc := range []struct {
		s    string
		want bool
		ref  string
	}{
		{"", true, ""},
		{"sensors/1/temperature", true, ""},
		{"añb/日本/🙂", true, "4-byte sequences are fine"},
		{"\uFEFFbom", true, "[MQTT-1.5.4-3]: U+FEFF is kept, not rejected"},
		{"\uFFFF\u0001\u007F", true, "non-characters and controls: SHOULD NOT, not MUST NOT"},
		{"\x00", false, "[MQTT-1.5.4-2]"},
		{"abcdefgh\x00", false, "[MQTT-1.5.4-2] after a full word"},
		{"abcdefghijklmno\x00p", false, "[MQTT-1.5.4-2] at the end of the second word"},
		{"日本\x00", false, "[MQTT-1.5.4-2] after multi-byte characters"},
		{"\xed\xa0\x80", false, "[MQTT-1.5.4-1] surrogate U+D800"},
		{"abcdefgh\xed\xbf\xbf", false, "[MQTT-1.5.4-1] surrogate U+DFFF"},
		{"\xc0\x80", false, "[MQTT-1.5.4-1] overlong NUL"},
		{"\xe2\x82", false, "[MQTT-1.5.4-1] truncated sequence"},
		{"\xf4\x90\x80\x80", false, "[MQTT-1.5.4-1] beyond U+10FFFF"},
		{"\x80", false, "[MQTT-1.5.4-1] lone continuation byte"},
	} {
		if got := ValidUTF8([]byte(tc.s)); got != tc.want {
			t.Errorf("ValidUTF8(%q) = %v, want %v %s", tc.s, got, tc.want, tc.ref)
		}
	}
}

// TestScannersRandom compares the word-at-a-time scanners with the plain
// definitions on random mixes of the bytes that matter.
func TestScannersRandom(t *testing.T) {
	alphabet := []byte("ab/+#\x00\x80\xc3\xa9\xed\xa0\xe6\x97\xa5\xf0\x9f\x99\x82")
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		s := make([]byte, rng.IntN(40))
		for i := range s {
			if rng.IntN(4) == 0 {
				s[i] = alphabet[rng.IntN(len(alphabet))]
			} else {
				s[i] = 'a' + byte(rng.IntN(26))
			}
		}
		want := utf8.Valid(s) && bytes.IndexByte(s, 0) < 0
		if got := ValidUTF8(s); got != want {
			t.Fatalf("ValidUTF8(%q) = %v", s, got)
		}
		ok, wild := scanTopicName(s)
		if ok != want || (want && wild != bytes.ContainsAny(s, "+#")) {
			t.Fatalf("scanTopicName(%q) = %v, %v", s, ok, wild)
		}
	}
	long := []byte(strings.Repeat("abcdefgh", 100) + "+")
	if ok, wild := scanTopicName(long); !ok || !wild {
		t.Errorf("wildcard at the end of a long name: %v %v", ok, wild)
	}
}
