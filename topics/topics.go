// Package topics holds the MQTT rules for topic names and topic filters
// (validation, matching) and the two index structures a router shard uses:
// Tree (subscriptions: filter -> subscribers, queried by a topic name) and
// Index (retained messages: topic name -> value, queried by a filter).
//
// Rules follow MQTT 3.1.1 section 4.7 and MQTT 5.0 sections 4.7 and 4.8.2.
// The two versions number the same statements differently; comments here use
// the 5.0 numbers unless they say otherwise.
//
// Nothing in this package is safe for concurrent use: each router shard actor
// owns its own structures, so locks would only cost time on the publish path.
package topics

import (
	"errors"
	"strings"
	"unicode/utf8"
)

// Sentinel errors returned by the validators; compare with errors.Is.
var (
	ErrEmpty          = errors.New("topic is empty")
	ErrTooLong        = errors.New("topic is too long")
	ErrTooManyLevels  = errors.New("topic has too many levels")
	ErrWildcardInName = errors.New("topic name contains a wildcard character (+ or #)")
	ErrBadWildcard    = errors.New("topic filter wildcard must fill a whole level, and # must be the last level")
	ErrBadShare       = errors.New("shared subscription filter must be $share/{ShareName}/{filter} with a non-empty ShareName without /, + or #")
	ErrNullChar       = errors.New("topic contains the null character U+0000")
	ErrBadUTF8        = errors.New("topic is not well-formed UTF-8")
)

// MaxLen is the longest topic the spec allows: a UTF-8 Encoded String has a
// two-byte length prefix [MQTT-4.7.3-3].
const MaxLen = 65535

// SharePrefix starts every shared subscription filter [MQTT-4.8.2-1].
const SharePrefix = "$share/"

func lenLimit(maxLen int) int {
	if maxLen <= 0 || maxLen > MaxLen {
		return MaxLen
	}
	return maxLen
}

// ValidateName checks a PUBLISH topic name. maxLen is in bytes, maxLevels
// counts levels ("a/b" has 2); a value <= 0 means no limit beyond the spec's
// 65535 bytes. It does not allocate: it runs once per publish.
func ValidateName(name string, maxLen, maxLevels int) error {
	if name == "" {
		return ErrEmpty
	}
	if len(name) > lenLimit(maxLen) {
		return ErrTooLong
	}
	levels := 1
	for i := 0; i < len(name); i++ {
		switch name[i] {
		case 0:
			return ErrNullChar
		case '+', '#':
			return ErrWildcardInName
		case '/':
			levels++
		}
	}
	if maxLevels > 0 && levels > maxLevels {
		return ErrTooManyLevels
	}
	if !utf8.ValidString(name) {
		return ErrBadUTF8
	}
	return nil
}

// ValidateFilter checks a SUBSCRIBE/UNSUBSCRIBE topic filter, including the
// $share/{ShareName}/ part of a shared one. maxLen applies to the whole
// string as sent; maxLevels counts the levels that are matched, so for a
// shared filter only those of its inner filter.
func ValidateFilter(filter string, maxLen, maxLevels int) error {
	if filter == "" {
		return ErrEmpty
	}
	if len(filter) > lenLimit(maxLen) {
		return ErrTooLong
	}
	if strings.HasPrefix(filter, SharePrefix) {
		_, inner, err := splitShare(filter)
		if err != nil {
			return err
		}
		filter = inner
	}
	return validateFilter(filter, maxLevels)
}

// validateFilter checks the syntax of a non-shared filter (length excluded).
func validateFilter(filter string, maxLevels int) error {
	if filter == "" {
		return ErrEmpty
	}
	levels := 1
	start := 0 // first byte of the current level
	for i := 0; i < len(filter); i++ {
		switch filter[i] {
		case 0:
			return ErrNullChar
		case '/':
			levels++
			start = i + 1
		case '+':
			// Alone in its level: preceded by start of level, followed by '/' or end.
			if i != start || (i+1 < len(filter) && filter[i+1] != '/') {
				return ErrBadWildcard
			}
		case '#':
			// Alone in its level and that level is the last one.
			if i != start || i+1 != len(filter) {
				return ErrBadWildcard
			}
		}
	}
	if maxLevels > 0 && levels > maxLevels {
		return ErrTooManyLevels
	}
	if !utf8.ValidString(filter) {
		return ErrBadUTF8
	}
	return nil
}

// splitShare splits a filter known to start with SharePrefix and checks the
// ShareName; it does not check the inner filter beyond being non-empty.
func splitShare(filter string) (group, inner string, err error) {
	rest := filter[len(SharePrefix):]
	slash := strings.IndexByte(rest, '/')
	if slash < 0 {
		// No "/" after the ShareName, so no filter [MQTT-4.8.2-2].
		return "", "", ErrBadShare
	}
	group, inner = rest[:slash], rest[slash+1:]
	if group == "" || strings.ContainsAny(group, "+#") || inner == "" {
		return "", "", ErrBadShare
	}
	if strings.IndexByte(group, 0) >= 0 {
		return "", "", ErrNullChar
	}
	if !utf8.ValidString(group) {
		return "", "", ErrBadUTF8
	}
	return group, inner, nil
}

// ParseShared splits "$share/{ShareName}/{filter}". ok reports whether filter
// has the shared form (starts with "$share/", case-sensitive); err reports
// whether that form is valid, inner filter included. For a non-shared filter
// ok is false, err is nil, and inner is filter itself, so a caller can always
// index by inner. "$share" alone is not shared: it lacks the "/".
func ParseShared(filter string) (group, inner string, ok bool, err error) {
	if !strings.HasPrefix(filter, SharePrefix) {
		return "", filter, false, nil
	}
	group, inner, err = splitShare(filter)
	if err != nil {
		return "", "", true, err
	}
	if err := validateFilter(inner, 0); err != nil {
		return "", "", true, err
	}
	return group, inner, true, nil
}

// IsSys reports whether name starts with '$' ($SYS/... and the like), which
// filters starting with a wildcard never match [MQTT-4.7.2-1].
func IsSys(name string) bool {
	return len(name) > 0 && name[0] == '$'
}

// level returns the level of s that starts at i and the start of the next
// one, or next = -1 when it is the last. Index scanning, not strings.Split,
// so that matching does not allocate.
func level(s string, i int) (lvl string, next int) {
	if j := strings.IndexByte(s[i:], '/'); j >= 0 {
		return s[i : i+j], i + j + 1
	}
	return s[i:], -1
}

// startsWild reports whether the first level of filter is a wildcard, the
// filters that [MQTT-4.7.2-1] keeps away from '$' names.
func startsWild(filter string) bool {
	l, _ := level(filter, 0)
	return l == "+" || l == "#"
}

// Match reports whether filter matches topic name. '+' matches exactly one
// level, '#' this level and every level below, including the parent ("a/#"
// matches "a"); empty levels are levels. A filter whose first level is a
// wildcard does not match a name starting with '$'. Match is literal: pass
// the inner filter of a shared subscription. For an invalid filter the
// result is false wherever the filter breaks the rules ('#' not last never
// matches; "a+" is compared as text), never a panic. It does not allocate.
func Match(filter, name string) bool {
	if IsSys(name) && startsWild(filter) {
		return false
	}
	fi, ni := 0, 0
	for {
		fl, fnext := level(filter, fi)
		if fl == "#" {
			return fnext < 0
		}
		nl, nnext := level(name, ni)
		if fl != "+" && fl != nl {
			return false
		}
		switch {
		case fnext < 0:
			return nnext < 0
		case nnext < 0:
			// Name used up: only a final "#" can still match, as the parent.
			return filter[fnext:] == "#"
		}
		fi, ni = fnext, nnext
	}
}

// kids holds the literal children of a trie node. Most nodes of real topic
// trees have one child (chains like site/7/dev/3/temp), and a one-entry Go
// map costs hundreds of bytes, so a lone child is kept inline and a map is
// made from the second child on.
type kids[N any] struct {
	key  string // level of one, while m is nil
	one  *N
	m    map[string]*N
	peak uint32 // largest len(m) since m was built
}

// shrinkMin is the map size below which a map is never rebuilt: Go maps do
// not give memory back on delete, so a big fan-out map is rebuilt when it
// has shrunk to a quarter of its peak.
const shrinkMin = 64

func (k *kids[N]) get(lvl string) *N {
	if k.m != nil {
		return k.m[lvl]
	}
	if k.one != nil && k.key == lvl {
		return k.one
	}
	return nil
}

func (k *kids[N]) len() int {
	if k.m != nil {
		return len(k.m)
	}
	if k.one != nil {
		return 1
	}
	return 0
}

// put adds a child that get(lvl) does not have.
func (k *kids[N]) put(lvl string, c *N) {
	// Clone so the level does not pin the caller's whole string after the
	// entry that brought it is gone.
	lvl = strings.Clone(lvl)
	switch {
	case k.m != nil:
		k.m[lvl] = c
	case k.one == nil:
		k.key, k.one = lvl, c
		return
	default:
		k.m = map[string]*N{k.key: k.one, lvl: c}
		k.key, k.one = "", nil
	}
	if l := uint32(len(k.m)); l > k.peak {
		k.peak = l
	}
}

func (k *kids[N]) del(lvl string) {
	if k.m == nil {
		if k.one != nil && k.key == lvl {
			k.key, k.one = "", nil
		}
		return
	}
	delete(k.m, lvl)
	switch {
	case len(k.m) == 1:
		for key, c := range k.m {
			k.key, k.one = key, c
		}
		k.m, k.peak = nil, 0
	case k.peak >= shrinkMin && uint32(len(k.m)) <= k.peak/4:
		m := make(map[string]*N, len(k.m))
		for key, c := range k.m {
			m[key] = c
		}
		k.m, k.peak = m, uint32(len(m))
	}
}

// all yields every child, stopping when yield returns false.
func (k *kids[N]) all(yield func(string, *N) bool) bool {
	if k.m == nil {
		return k.one == nil || yield(k.key, k.one)
	}
	for key, c := range k.m {
		if !yield(key, c) {
			return false
		}
	}
	return true
}
