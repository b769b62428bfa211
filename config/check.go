package config

import (
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/pelletier/go-toml/v2/unstable"
)

// This file walks the TOML syntax tree against the shape of Config before
// anything is decoded. It exists for the messages: go-toml stops at the first
// wrong type and names Go types ("of type int"), and it silently stores an
// integer in a Duration (10 becomes 10ns). The walk reports every unknown key
// and wrong type with its line, and records the line of every key so that
// validation problems can point at the file too.

// checked is what the walk found.
type checked struct {
	problems     []positioned
	lines        map[string]int // id ("limits.max_qos", "listeners[0].name", "listeners[0]") -> line
	sawListeners bool           // the file defines listeners, replacing the defaults
	listeners    int            // listener tables seen so far, to number them
	lineStarts   []int          // offset of each line's first byte, to turn offsets into lines
}

// lineAt is the 1-based line of a byte offset. Precomputed starts keep a
// large file linear: the parser's own Shape rescans from the top each time.
func (c *checked) lineAt(offset int) int {
	return sort.Search(len(c.lineStarts), func(i int) bool { return c.lineStarts[i] > offset })
}

type positioned struct {
	line, col int
	text      string
}

// table is the table that key-values are currently being read into.
type table struct {
	t       reflect.Type // a struct type
	display string       // dotted path as written, for messages ("limits")
	id      string       // dotted path with listener indexes, for lines ("listeners[1]")
}

// shape classifies Go field types into what a TOML user writes for them.
type shape int

const (
	shapeOther shape = iota
	shapeInt
	shapeBool
	shapeString
	shapeDuration
	shapeTable  // a struct: [section]
	shapeTables // a slice of structs: [[section]]
)

var durationType = reflect.TypeOf(Duration(0))

func shapeOf(t reflect.Type) shape {
	if t == durationType {
		return shapeDuration
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int64, reflect.Int32:
		return shapeInt
	case reflect.Bool:
		return shapeBool
	case reflect.String:
		return shapeString
	case reflect.Struct:
		return shapeTable
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Struct {
			return shapeTables
		}
	}
	return shapeOther
}

// expected says in words what a value of shape s looks like.
func expected(s shape, key string) string {
	switch s {
	case shapeInt:
		return "an integer"
	case shapeBool:
		return "true or false"
	case shapeString:
		return "a string"
	case shapeDuration:
		return "a duration string such as \"10s\""
	case shapeTable:
		return "a table [" + key + "]"
	case shapeTables:
		return "[[" + key + "]] tables"
	}
	return "another kind of value"
}

// describe says in words what the user wrote.
func describe(n *unstable.Node) string {
	switch n.Kind {
	case unstable.String:
		return "string " + strconv.Quote(short(string(n.Data)))
	case unstable.Integer:
		return "integer " + string(n.Data)
	case unstable.Float:
		return "float " + string(n.Data)
	case unstable.Bool:
		return string(n.Data)
	case unstable.Array:
		return "an array"
	case unstable.InlineTable:
		return "a table"
	case unstable.LocalDate, unstable.LocalTime, unstable.LocalDateTime, unstable.DateTime:
		return "date/time " + string(n.Data)
	}
	return "a " + strings.ToLower(n.Kind.String())
}

// field is one TOML key of a struct.
type field struct {
	name string
	typ  reflect.Type
}

func fieldsOf(t reflect.Type) []field {
	var fs []field
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if !f.IsExported() || name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		fs = append(fs, field{name, f.Type})
	}
	return fs
}

// lookup finds a key exactly. go-toml would also match other spellings of
// the case; the walk reports those as unknown, with the right spelling as the
// suggestion, so the file stays in one style.
func lookup(t reflect.Type, name string) (field, bool) {
	for _, f := range fieldsOf(t) {
		if f.name == name {
			return f, true
		}
	}
	return field{}, false
}

func join(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

// check walks data. A syntax error ends the walk, as the rest of the file
// cannot be read reliably.
func check(data []byte) *checked {
	c := &checked{lines: map[string]int{}, lineStarts: []int{0}}
	for i, b := range data {
		if b == '\n' {
			c.lineStarts = append(c.lineStarts, i+1)
		}
	}
	var p unstable.Parser
	p.Reset(data)
	root := &table{t: reflect.TypeOf(Config{})}
	cur := root
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			cur = c.enterTable(root, e)
		case unstable.KeyValue:
			if cur != nil { // nil: inside a table already reported as unknown
				c.keyValue(cur, e)
			}
		}
	}
	if err := p.Error(); err != nil {
		c.syntax(data, err)
	}
	return c
}

func (c *checked) add(line, col int, format string, args ...any) {
	c.problems = append(c.problems, positioned{line, col, fmt.Sprintf(format, args...)})
}

func (c *checked) syntax(data []byte, err error) {
	line, col := 0, 0
	msg := err.Error()
	if pe, ok := err.(*unstable.ParserError); ok {
		msg = pe.Message
		// The highlight is a subslice of data; its distance from the end of
		// the shared backing array gives its offset.
		if off := cap(data) - cap(pe.Highlight); off >= 0 && off <= len(data) {
			line = c.lineAt(off)
			col = off - c.lineStarts[line-1] + 1
		}
	}
	c.add(line, col, "syntax error: %s", msg)
}

// keyParts returns the parts of a dotted key and the line it starts on.
func (c *checked) keyParts(n *unstable.Node) (parts []string, line int) {
	it := n.Key()
	for it.Next() {
		k := it.Node()
		if line == 0 {
			line = c.lineAt(int(k.Raw.Offset))
		}
		parts = append(parts, string(k.Data))
	}
	return parts, line
}

// enterTable resolves a [table] or [[array]] header. It returns nil when the
// header is wrong, after reporting it; the keys under it are then skipped.
func (c *checked) enterTable(root *table, e *unstable.Node) *table {
	array := e.Kind == unstable.ArrayTable
	parts, line := c.keyParts(e)
	cur := *root
	for i, part := range parts {
		f, ok := lookup(cur.t, part)
		written := join(cur.display, part)
		if !ok {
			c.add(line, 0, "unknown table [%s]%s", short(strings.Join(parts, ".")), suggest(cur.t, cur.display, part, true))
			return nil
		}
		cur.display = written
		cur.id = join(cur.id, f.name)
		last := i == len(parts)-1
		switch shapeOf(f.typ) {
		case shapeTable:
			if last && array {
				c.add(line, 0, "[[%s]] is not a list: write [%s]", written, written)
				return nil
			}
			cur.t = f.typ
		case shapeTables:
			n := c.listeners - 1 // a dotted header below [[x]] continues its last element
			if last {
				if !array {
					c.add(line, 0, "%s is a list of tables: write [[%s]], not [%s]", written, written, written)
					return nil
				}
				c.sawListeners = true
				n = c.listeners
				c.listeners++
			}
			if n < 0 {
				c.add(line, 0, "[%s] comes before any [[%s]]", short(strings.Join(parts, ".")), written)
				return nil
			}
			cur.t = f.typ.Elem()
			cur.id = fmt.Sprintf("%s[%d]", cur.id, n)
		default:
			c.add(line, 0, "key %q is a single value, not a table", written)
			return nil
		}
	}
	c.lines[cur.id] = line
	return &cur
}

// keyValue checks one key = value, possibly with a dotted key, in tbl.
func (c *checked) keyValue(tbl *table, e *unstable.Node) {
	parts, line := c.keyParts(e)
	cur := *tbl
	for i, part := range parts {
		f, ok := lookup(cur.t, part)
		if !ok {
			c.add(line, 0, "unknown key %q%s", short(join(cur.display, strings.Join(parts[i:], "."))), suggest(cur.t, cur.display, part, false))
			return
		}
		display, id := join(cur.display, f.name), join(cur.id, f.name)
		c.lines[id] = line
		if i == len(parts)-1 {
			c.value(f.typ, display, id, e.Value(), line)
			return
		}
		// An inner part of a dotted key (limits.max_qos = 1) opens a table.
		if shapeOf(f.typ) != shapeTable {
			c.add(line, 0, "key %q: expected %s, got a table", display, expected(shapeOf(f.typ), display))
			return
		}
		cur = table{t: f.typ, display: display, id: id}
	}
}

// value checks that v suits a field of type t.
func (c *checked) value(t reflect.Type, display, id string, v *unstable.Node, line int) {
	s := shapeOf(t)
	mismatch := func() {
		c.add(line, 0, "key %q: expected %s, got %s", display, expected(s, display), describe(v))
	}
	switch s {
	case shapeInt:
		if v.Kind != unstable.Integer {
			mismatch()
		} else if _, err := strconv.ParseInt(string(v.Data), 0, 64); err != nil {
			// Base 0 reads TOML's 0x, 0o, 0b and underscores too.
			c.add(line, 0, "key %q: %s is too large", display, short(string(v.Data)))
		}
	case shapeBool:
		if v.Kind != unstable.Bool {
			mismatch()
		}
	case shapeString:
		if v.Kind != unstable.String {
			mismatch()
		}
	case shapeDuration:
		if v.Kind != unstable.String {
			mismatch()
		} else if _, err := parseDuration(string(v.Data)); err != nil {
			c.add(line, 0, "key %q: %v", display, err)
		}
	case shapeTable:
		if v.Kind != unstable.InlineTable {
			mismatch()
			return
		}
		c.inline(&table{t: t, display: display, id: id}, v)
	case shapeTables:
		if v.Kind != unstable.Array {
			mismatch()
			return
		}
		c.sawListeners = true
		it := v.Children()
		for it.Next() {
			el := it.Node()
			if el.Kind == unstable.Comment {
				continue
			}
			if el.Kind != unstable.InlineTable {
				c.add(line, 0, "key %q: expected tables like { name = \"x\", ... } in the list, got %s", display, describe(el))
				continue
			}
			elID := fmt.Sprintf("%s[%d]", id, c.listeners)
			c.listeners++
			c.lines[elID] = line
			c.inline(&table{t: t.Elem(), display: display, id: elID}, el)
		}
	default:
		mismatch()
	}
}

func (c *checked) inline(tbl *table, v *unstable.Node) {
	it := v.Children()
	for it.Next() {
		if kv := it.Node(); kv.Kind == unstable.KeyValue {
			c.keyValue(tbl, kv)
		}
	}
}

// suggest returns ` (did you mean "x"?)` for a key that is close to one
// valid in t, or that belongs to another section, or "".
func suggest(t reflect.Type, display, name string, isTable bool) string {
	best, bestDist := "", 3
	for _, f := range fieldsOf(t) {
		if isTable && shapeOf(f.typ) != shapeTable && shapeOf(f.typ) != shapeTables {
			continue
		}
		if d := distance(strings.ToLower(name), f.name); d < bestDist && d <= len(f.name)/2 {
			best, bestDist = f.name, d
		}
	}
	if best != "" {
		if isTable {
			return fmt.Sprintf(" (did you mean [%s]?)", join(display, best))
		}
		return fmt.Sprintf(" (did you mean %q?)", best)
	}
	// A known key in the wrong section is a likelier mistake than a typo.
	if !isTable {
		for _, sec := range fieldsOf(reflect.TypeOf(Config{})) {
			if shapeOf(sec.typ) != shapeTable || sec.typ == t {
				continue
			}
			if f, ok := lookup(sec.typ, strings.ToLower(name)); ok {
				return fmt.Sprintf(" (did you mean %q? it belongs in [%s])", sec.name+"."+f.name, sec.name)
			}
		}
	}
	return ""
}

// distance is the Levenshtein edit distance between a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// lineOf finds the line of a validation problem's key: the key itself, or
// failing that the [[listeners]] table it belongs to; 0 when the value came
// from the defaults.
func (c *checked) lineOf(id string) int {
	for id != "" {
		if l, ok := c.lines[id]; ok {
			return l
		}
		i := strings.LastIndexByte(id, '.')
		if i < 0 || !strings.HasPrefix(id, "listeners[") {
			return 0
		}
		id = id[:i]
	}
	return 0
}

func (c *checked) errorFor(filename string) error {
	// In file order; problems with no line (values from the defaults) last.
	order := func(p positioned) int {
		if p.line == 0 {
			return int(^uint(0) >> 1)
		}
		return p.line
	}
	sort.SliceStable(c.problems, func(i, j int) bool { return order(c.problems[i]) < order(c.problems[j]) })
	e := &ValidationError{File: filename}
	for i, p := range c.problems {
		if i == maxProblems {
			// A file that is not a configuration at all would otherwise print
			// megabytes; the first ones are enough to see what went wrong.
			e.Omitted = len(c.problems) - i
			break
		}
		e.Problems = append(e.Problems, at(filename, p.line, p.col)+p.text)
	}
	return e
}

const maxProblems = 50

// short cuts a user-supplied string that is too long to be useful in a
// message.
func short(s string) string {
	const max = 60
	if len(s) <= max {
		return s
	}
	cut := max - 3
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}
