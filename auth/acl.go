package auth

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/actormq/actormq/topics"
)

// Access is what a rule grants or denies.
type Access uint8

// Read is subscribing (and so receiving); Write is publishing.
const (
	Read Access = 1 << iota
	Write
)

// ACL is a parsed ACL file. The format, one statement per line; a line whose first non-blank
// character is # is a comment (there are no comments at the end of a line: # is a wildcard):
//
//	user NAME      the rules below apply to the client authenticated as NAME
//	user *         the rules below apply to every client (so do the rules before any user line)
//	anonymous      the rules below apply to clients without a user name
//	allow ACCESS FILTER
//	deny  ACCESS FILTER
//
// ACCESS is read, write or readwrite. FILTER is an MQTT topic filter in which %u stands for the
// user name and %c for the client id.
//
// A client may do something when an allow rule that applies to it grants it and no deny rule
// that applies to it refuses it. Deny wins whatever the order, so a file can be read rule by rule.
// With an ACL, anything not allowed is denied.
//
// Read rules are checked against the SUBSCRIBE filter: an allow rule must cover every topic the
// filter can match, and a deny rule refuses a filter that can match any topic the rule names. A
// wildcard at the first level of a rule does not reach topics starting with '$', as in MQTT
// [MQTT-4.7.2-1], so $SYS/# is readable only where a rule names it.
//
// A rule with %u does not apply to a client without a user name. An allow rule does not apply
// when the value put in would add levels or wildcards (a client id "+" or "a/b"); a deny rule
// then applies as if it matched, so a strange id can lose rights but never gain them.
type ACL struct {
	all, anonymous []rule
	users          map[string]*[]rule
}

type rule struct {
	allow  bool
	access Access
	filter string
	subst  bool // has %u or %c
}

// ParseACL reads an ACL file; name labels errors ("file:line: ...").
func ParseACL(r io.Reader, name string) (*ACL, error) {
	a := &ACL{users: make(map[string]*[]rule)}
	cur := &a.all
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), 1<<20)
	for n := 1; sc.Scan(); n++ {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		bad := func(format string, args ...any) error {
			return fmt.Errorf("%s:%d: %s", name, n, fmt.Sprintf(format, args...))
		}
		switch f[0] {
		case "user":
			if len(f) != 2 {
				return nil, bad("want: user NAME (or user *)")
			}
			if f[1] == "*" {
				cur = &a.all
				break
			}
			if a.users[f[1]] == nil {
				a.users[f[1]] = new([]rule)
			}
			cur = a.users[f[1]]
		case "anonymous":
			if len(f) != 1 {
				return nil, bad("want: anonymous (alone on its line)")
			}
			cur = &a.anonymous
		case "allow", "deny":
			if len(f) != 3 {
				return nil, bad("want: %s read|write|readwrite FILTER", f[0])
			}
			var acc Access
			switch f[1] {
			case "read":
				acc = Read
			case "write":
				acc = Write
			case "readwrite":
				acc = Read | Write
			default:
				return nil, bad("access %q: want read, write or readwrite", f[1])
			}
			filter := f[2]
			probe := strings.NewReplacer("%u", "x", "%c", "x").Replace(filter)
			if err := topics.ValidateFilter(probe, 65535, 65535); err != nil {
				return nil, bad("filter %q: %v", filter, err)
			}
			if _, _, shared, _ := topics.ParseShared(probe); shared {
				return nil, bad("filter %q: leave out $share/GROUP/ (rules apply to the filter inside)", filter)
			}
			*cur = append(*cur, rule{allow: f[0] == "allow", access: acc, filter: filter, subst: probe != filter})
		default:
			return nil, bad("unknown statement %q (want user, anonymous, allow or deny)", f[0])
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return a, nil
}

// LoadACL reads the ACL file at path.
func LoadACL(path string) (*ACL, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("ACL file: %w", err)
	}
	defer f.Close()
	return ParseACL(f, path)
}

// CanPublish says whether the client may publish to topic.
func (a *ACL) CanPublish(user, clientID, topic string) bool {
	return a.decide(user, clientID, Write, topic)
}

// CanSubscribe says whether the client may subscribe to filter (the filter inside a
// $share/GROUP/ prefix).
func (a *ACL) CanSubscribe(user, clientID, filter string) bool {
	return a.decide(user, clientID, Read, filter)
}

func (a *ACL) decide(user, clientID string, acc Access, target string) bool {
	blocks := [2][]rule{a.all, a.anonymous}
	if user != "" {
		blocks[1] = nil
		if u := a.users[user]; u != nil {
			blocks[1] = *u
		}
	}
	allowed := false
	for _, rules := range blocks {
		for i := range rules {
			r := &rules[i]
			if r.access&acc == 0 || (allowed && r.allow) {
				continue
			}
			filter, safe, applies := r.expand(user, clientID)
			if !applies {
				continue
			}
			if !r.allow {
				if !safe || hits(filter, target, acc) {
					return false
				}
				continue
			}
			if safe && grants(filter, target, acc) {
				allowed = true
			}
		}
	}
	return allowed
}

// expand puts the user name and client id into a rule's filter. safe is false when a value
// would change the filter's shape; applies is false for %u without a user name.
func (r *rule) expand(user, clientID string) (filter string, safe, applies bool) {
	if !r.subst {
		return r.filter, true, true
	}
	if user == "" && strings.Contains(r.filter, "%u") {
		return "", false, false
	}
	safe = plainLevel(user) && plainLevel(clientID)
	return strings.ReplaceAll(strings.ReplaceAll(r.filter, "%u", user), "%c", clientID), safe, true
}

func plainLevel(s string) bool { return !strings.ContainsAny(s, "/+#%\x00") }

// grants: an allow rule's filter covers target (a topic to write, a filter to read).
func grants(filter, target string, acc Access) bool {
	if acc == Write {
		return topics.Match(filter, target)
	}
	return covers(filter, target)
}

// hits: a deny rule's filter touches target.
func hits(filter, target string, acc Access) bool {
	if acc == Write {
		return topics.Match(filter, target)
	}
	return overlaps(filter, target)
}

// covers says whether every topic that sub matches is matched by rule.
func covers(rule, sub string) bool {
	r, s := strings.Split(rule, "/"), strings.Split(sub, "/")
	if isWild(r[0]) && strings.HasPrefix(s[0], "$") {
		return false
	}
	for i := 0; ; i++ {
		switch {
		case i == len(r) && i == len(s):
			return true
		case i == len(r):
			return false
		case r[i] == "#":
			return true
		case i == len(s):
			return len(r) == i+1 && r[i] == "#"
		case s[i] == "#":
			return false
		case r[i] == "+":
		case r[i] != s[i]:
			return false
		}
	}
}

// overlaps says whether some topic is matched by both filters.
func overlaps(a, b string) bool {
	x, y := strings.Split(a, "/"), strings.Split(b, "/")
	if (isWild(x[0]) && strings.HasPrefix(y[0], "$")) || (isWild(y[0]) && strings.HasPrefix(x[0], "$")) {
		return false
	}
	for i := 0; ; i++ {
		switch {
		case i == len(x) && i == len(y):
			return true
		case i < len(x) && x[i] == "#", i < len(y) && y[i] == "#":
			return true
		case i == len(x):
			return len(y) == i+1 && y[i] == "#"
		case i == len(y):
			return len(x) == i+1 && x[i] == "#"
		case x[i] == "+" || y[i] == "+":
		case x[i] != y[i]:
			return false
		}
	}
}

func isWild(level string) bool { return level == "+" || level == "#" }
