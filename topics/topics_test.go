package topics

import (
	"errors"
	"strings"
	"testing"
)

// Statement numbers: MQTT 5.0 first; where MQTT 3.1.1 numbers the same rule
// differently, its number follows with "3.1.1:".

func TestValidateName(t *testing.T) {
	tests := []struct {
		name      string
		maxLen    int
		maxLevels int
		want      error
		ref       string
	}{
		{"sport/tennis/player1", 0, 0, nil, "4.7.1"},
		{"/", 0, 0, nil, "4.7.3: a Topic Name consisting only of '/' is valid"},
		{"/finance", 0, 0, nil, "4.7.3: leading '/' creates a distinct Topic Name"},
		{"a//b", 0, 0, nil, "4.7.1.1: adjacent separators make a zero-length level"},
		{"Accounts payable", 0, 0, nil, "4.7.3: can include the space character"},
		{"$SYS/broker/load", 0, 0, nil, "4.7.2: servers may use '$' names"},
		{"\uFEFFbom", 0, 0, nil, "[MQTT-1.5.4-3] U+FEFF is a character like any other"},
		{"", 0, 0, ErrEmpty, "[MQTT-4.7.3-1]"},
		{"a\x00b", 0, 0, ErrNullChar, "[MQTT-4.7.3-2] [MQTT-1.5.4-2] (3.1.1: [MQTT-1.5.3-2])"},
		{strings.Repeat("a", 65535), 0, 0, nil, "[MQTT-4.7.3-3] 65535 bytes is the limit"},
		{strings.Repeat("a", 65536), 0, 0, ErrTooLong, "[MQTT-4.7.3-3]"},
		{strings.Repeat("a", 65536), 100000, 0, ErrTooLong, "[MQTT-4.7.3-3] a config cannot raise the spec limit"},
		{"abcd", 3, 0, ErrTooLong, "config limit"},
		{"abc", 3, 0, nil, "config limit"},
		{"a/b/c", 0, 2, ErrTooManyLevels, "config limit"},
		{"a/b", 0, 2, nil, "config limit"},
		{"//", 0, 2, ErrTooManyLevels, "empty levels count"},
		{"sport/+", 0, 0, ErrWildcardInName, "[MQTT-3.3.2-2] [MQTT-4.7.0-1] (3.1.1: [MQTT-4.7.1-1])"},
		{"sport/#", 0, 0, ErrWildcardInName, "[MQTT-3.3.2-2] [MQTT-4.7.0-1] (3.1.1: [MQTT-4.7.1-1])"},
		{"sport+", 0, 0, ErrWildcardInName, "[MQTT-3.3.2-2] [MQTT-4.7.0-1] (3.1.1: [MQTT-4.7.1-1])"},
		{"a/\xff", 0, 0, ErrBadUTF8, "[MQTT-1.5.4-1] (3.1.1: [MQTT-1.5.3-1])"},
		{"a/\xed\xa0\x80", 0, 0, ErrBadUTF8, "[MQTT-1.5.4-1] no surrogates U+D800..U+DFFF"},
	}
	for _, tc := range tests {
		got := ValidateName(tc.name, tc.maxLen, tc.maxLevels)
		if !errors.Is(got, tc.want) || (tc.want == nil) != (got == nil) {
			t.Errorf("ValidateName(%.40q, %d, %d) = %v, want %v (%s)", tc.name, tc.maxLen, tc.maxLevels, got, tc.want, tc.ref)
		}
	}
}

func TestValidateFilter(t *testing.T) {
	const hashRule = "[MQTT-4.7.1-1] (3.1.1: [MQTT-4.7.1-2])"
	const plusRule = "[MQTT-4.7.1-2] (3.1.1: [MQTT-4.7.1-3])"
	tests := []struct {
		filter    string
		maxLen    int
		maxLevels int
		want      error
		ref       string
	}{
		// 4.7.1.2 non-normative examples.
		{"#", 0, 0, nil, hashRule + ` "#" is valid`},
		{"sport/tennis/#", 0, 0, nil, hashRule},
		{"sport/tennis#", 0, 0, ErrBadWildcard, hashRule},
		{"sport/tennis/#/ranking", 0, 0, ErrBadWildcard, hashRule},
		{"/#", 0, 0, nil, hashRule},
		{"#/", 0, 0, ErrBadWildcard, hashRule + " '#' must be the last character"},
		{"##", 0, 0, ErrBadWildcard, hashRule},
		{"a/#b", 0, 0, ErrBadWildcard, hashRule},
		// 4.7.1.3 non-normative examples.
		{"+", 0, 0, nil, plusRule},
		{"+/tennis/#", 0, 0, nil, plusRule},
		{"sport+", 0, 0, ErrBadWildcard, plusRule},
		{"sport/+/player1", 0, 0, nil, plusRule},
		{"+/+", 0, 0, nil, plusRule},
		{"/+", 0, 0, nil, plusRule},
		{"+/", 0, 0, nil, plusRule},
		{"++", 0, 0, ErrBadWildcard, plusRule},
		{"a/+b/c", 0, 0, ErrBadWildcard, plusRule},
		{"a/b+/c", 0, 0, ErrBadWildcard, plusRule},
		{"+#", 0, 0, ErrBadWildcard, plusRule},
		{"+/#", 0, 0, nil, plusRule},
		// 4.7.3.
		{"", 0, 0, ErrEmpty, "[MQTT-4.7.3-1]"},
		{"/", 0, 0, nil, "4.7.3: a Topic Filter consisting only of '/' is valid"},
		{"a/\x00", 0, 0, ErrNullChar, "[MQTT-4.7.3-2]"},
		{strings.Repeat("a", 65536), 0, 0, ErrTooLong, "[MQTT-4.7.3-3]"},
		{"a/\xff", 0, 0, ErrBadUTF8, "[MQTT-1.5.4-1]"},
		{"a/b/c", 0, 2, ErrTooManyLevels, "config limit"},
		{"a/+", 0, 2, nil, "config limit"},
		{"abcd", 3, 0, ErrTooLong, "config limit"},
		// 4.8.2 shared subscriptions.
		{"$share/consumer1/sport/tennis/+", 0, 0, nil, "[MQTT-4.8.2-1]"},
		{"$share/consumer1//finance", 0, 0, nil, "4.8.2 example"},
		{"$share/g/#", 0, 0, nil, "[MQTT-4.8.2-2]"},
		{"$share//a", 0, 0, ErrBadShare, "[MQTT-4.8.2-1] ShareName at least one character"},
		{"$share/", 0, 0, ErrBadShare, "[MQTT-4.8.2-1]"},
		{"$share/g", 0, 0, ErrBadShare, "[MQTT-4.8.2-2] ShareName must be followed by '/'"},
		{"$share/g/", 0, 0, ErrBadShare, "[MQTT-4.8.2-2] '/' must be followed by a Topic Filter"},
		{"$share/g+/a", 0, 0, ErrBadShare, "[MQTT-4.8.2-2] no '+' in ShareName"},
		{"$share/#/a", 0, 0, ErrBadShare, "[MQTT-4.8.2-2] no '#' in ShareName"},
		{"$share/g/a#", 0, 0, ErrBadWildcard, "[MQTT-4.8.2-2] inner filter as in 4.7"},
		{"$share/g/a/b/c", 0, 2, ErrTooManyLevels, "levels of the inner filter"},
		{"$share/g/a/b", 0, 2, nil, "levels of the inner filter"},
		{"$share/g\x00/a", 0, 0, ErrNullChar, "[MQTT-4.7.3-2]"},
		{"$share", 0, 0, nil, "no '/': an ordinary filter"},
		{"$SHARE//a", 0, 0, nil, "$share is a literal string: case matters"},
	}
	for _, tc := range tests {
		got := ValidateFilter(tc.filter, tc.maxLen, tc.maxLevels)
		if !errors.Is(got, tc.want) || (tc.want == nil) != (got == nil) {
			t.Errorf("ValidateFilter(%.40q, %d, %d) = %v, want %v (%s)", tc.filter, tc.maxLen, tc.maxLevels, got, tc.want, tc.ref)
		}
	}
}

func TestParseShared(t *testing.T) {
	tests := []struct {
		filter       string
		group, inner string
		ok           bool
		err          error
		ref          string
	}{
		{"$share/consumer1/sport/tennis/+", "consumer1", "sport/tennis/+", true, nil, "[MQTT-4.8.2-1]"},
		{"$share/consumer1//finance", "consumer1", "/finance", true, nil, "4.8.2 example"},
		{"$share/g/$SYS/#", "g", "$SYS/#", true, nil, "[MQTT-4.8.2-2]"},
		{"sport/tennis/+", "", "sport/tennis/+", false, nil, "not shared"},
		{"$share", "", "$share", false, nil, "not shared: no '/'"},
		{"$SYS/#", "", "$SYS/#", false, nil, "not shared"},
		{"$share//a", "", "", true, ErrBadShare, "[MQTT-4.8.2-1]"},
		{"$share/g", "", "", true, ErrBadShare, "[MQTT-4.8.2-2]"},
		{"$share/g/", "", "", true, ErrBadShare, "[MQTT-4.8.2-2]"},
		{"$share/a+b/x", "", "", true, ErrBadShare, "[MQTT-4.8.2-2]"},
		{"$share/a#/x", "", "", true, ErrBadShare, "[MQTT-4.8.2-2]"},
		{"$share/g/x/#/y", "", "", true, ErrBadWildcard, "[MQTT-4.8.2-2] with [MQTT-4.7.1-1]"},
		{"$share/g/x+", "", "", true, ErrBadWildcard, "[MQTT-4.8.2-2] with [MQTT-4.7.1-2]"},
	}
	for _, tc := range tests {
		group, inner, ok, err := ParseShared(tc.filter)
		if group != tc.group || inner != tc.inner || ok != tc.ok || !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
			t.Errorf("ParseShared(%q) = %q, %q, %v, %v; want %q, %q, %v, %v (%s)",
				tc.filter, group, inner, ok, err, tc.group, tc.inner, tc.ok, tc.err, tc.ref)
		}
	}
}

// matchCases are the spec's own examples and the edge cases around them;
// Tree and Index tests run the same table.
var matchCases = []struct {
	filter, name string
	want         bool
	ref          string
}{
	// 4.7.1.2 multi-level wildcard, [MQTT-4.7.1-1] (3.1.1: [MQTT-4.7.1-2]).
	{"sport/tennis/player1/#", "sport/tennis/player1", true, "4.7.1.2 '#' includes the parent"},
	{"sport/tennis/player1/#", "sport/tennis/player1/ranking", true, "4.7.1.2"},
	{"sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true, "4.7.1.2"},
	{"sport/tennis/player1/#", "sport/tennis/player2", false, "4.7.1.2"},
	{"sport/tennis/player1/#", "sport/tennis", false, "4.7.1.2 only one parent level"},
	{"sport/#", "sport", true, "4.7.1.2 sport/# also matches the singular sport"},
	{"#", "sport/tennis", true, "4.7.1.2 '#' receives every message"},
	{"#", "/", true, "4.7.1.2"},
	{"#", "a", true, "4.7.1.2"},
	{"sport/#", "sports", false, "levels, not prefixes"},
	{"sport/#", "sport/", true, "'#' matches an empty level"},
	// 4.7.1.3 single-level wildcard, [MQTT-4.7.1-2] (3.1.1: [MQTT-4.7.1-3]).
	{"sport/tennis/+", "sport/tennis/player1", true, "4.7.1.3"},
	{"sport/tennis/+", "sport/tennis/player2", true, "4.7.1.3"},
	{"sport/tennis/+", "sport/tennis/player1/ranking", false, "4.7.1.3"},
	{"sport/+", "sport", false, "4.7.1.3 sport/+ does not match sport"},
	{"sport/+", "sport/", true, "4.7.1.3 but it does match sport/"},
	{"+", "/finance", false, "4.7.1.3 /finance does not match +"},
	{"+/+", "/finance", true, "4.7.1.3 /finance matches +/+"},
	{"/+", "/finance", true, "4.7.1.3 /finance matches /+"},
	{"+", "finance", true, "4.7.1.3"},
	{"sport/+/player1", "sport/tennis/player1", true, "4.7.1.3"},
	{"+/tennis/#", "sport/tennis", true, "4.7.1.3 '+' with '#'"},
	{"+/tennis/#", "sport/tennis/player1/ranking", true, "4.7.1.3"},
	{"+/+", "a//b", false, "4.7.1.1 empty levels are levels"},
	{"+/+/+", "a//b", true, "4.7.1.1 empty levels are levels"},
	{"a//b", "a//b", true, "4.7.1.1"},
	{"a/+/b", "a//b", true, "4.7.1.1 '+' matches a zero-length level"},
	{"+/#", "a", true, "'+' then '#' as parent"},
	// 4.7.2 topics beginning with $, [MQTT-4.7.2-1].
	{"#", "$SYS/monitor/Clients", false, "[MQTT-4.7.2-1] # does not receive $ topics"},
	{"+/monitor/Clients", "$SYS/monitor/Clients", false, "[MQTT-4.7.2-1]"},
	{"$SYS/#", "$SYS/monitor/Clients", true, "[MQTT-4.7.2-1] $SYS/# receives $SYS/ topics"},
	{"$SYS/monitor/+", "$SYS/monitor/Clients", true, "[MQTT-4.7.2-1] $SYS/monitor/+"},
	{"$SYS/#", "$SYS", true, "'#' includes the parent"},
	{"+", "$", false, "[MQTT-4.7.2-1]"},
	{"+/#", "$SYS/x", false, "[MQTT-4.7.2-1]"},
	{"$SYS/monitor/Clients", "$SYS/monitor/Clients", true, "4.7.2 literal"},
	{"a/+", "a/$b", true, "the rule is about the first character only"},
	{"a/#", "a/$b", true, "the rule is about the first character only"},
	// 4.7.3, [MQTT-4.7.3-4]: no normalization, case sensitive.
	{"ACCOUNTS", "Accounts", false, "[MQTT-4.7.3-4] 4.7.3 case sensitive"},
	{"/finance", "finance", false, "4.7.3 /finance is different from finance"},
	{"finance/", "finance", false, "4.7.3 trailing '/' is distinct"},
	{"Accounts payable", "Accounts payable", true, "4.7.3 space"},
	{"caf\u00e9", "cafe\u0301", false, "[MQTT-4.7.3-4] no Unicode normalization"},
	// Invalid filters: defined, conservative results.
	{"a/#/b", "a/x/b", false, "'#' not last matches nothing"},
	{"a/#/b", "a", false, "'#' not last matches nothing"},
	{"a+", "a+", true, "compared as text"},
}

func TestMatch(t *testing.T) {
	for _, tc := range matchCases {
		if got := Match(tc.filter, tc.name); got != tc.want {
			t.Errorf("Match(%q, %q) = %v, want %v (%s)", tc.filter, tc.name, got, tc.want, tc.ref)
		}
	}
}

func TestSharedInnerMatches(t *testing.T) {
	// 4.8.2: "$share/consumer1//finance" matches the same topics as /finance,
	// and the $share and ShareName parts are not used for matching.
	_, inner, ok, err := ParseShared("$share/consumer1//finance")
	if !ok || err != nil {
		t.Fatalf("ParseShared: ok=%v err=%v", ok, err)
	}
	if !Match(inner, "/finance") || Match(inner, "finance") {
		t.Errorf("inner %q: want match /finance only", inner)
	}
}

func TestIsSys(t *testing.T) {
	for name, want := range map[string]bool{"$SYS/a": true, "$": true, "a/$": false, "": false, "sys": false} {
		if got := IsSys(name); got != want {
			t.Errorf("IsSys(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestHotPathDoesNotAllocate(t *testing.T) {
	name := "sport/tennis/player1/score/wimbledon"
	if n := testing.AllocsPerRun(100, func() {
		_ = Match("sport/+/player1/#", name)
		_ = ValidateName(name, 0, 0)
	}); n != 0 {
		t.Errorf("Match+ValidateName allocate %v times per call", n)
	}
}
