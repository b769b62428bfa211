package topics

import "strings"

// Tree indexes subscriptions: filter -> (key -> value). A key is a subscriber
// identity chosen by the caller (a client id, "group\x00client" for a share).
// Filters are taken literally: add the inner filter of a shared subscription.
// The Tree keeps key and v as given and its own copy of filter text.
//
// The zero value is an empty Tree. Not safe for concurrent use. Callbacks
// must not modify the Tree.
type Tree[V any] struct {
	root    node[V]
	subs    int // (filter, key) pairs
	filters int // nodes with at least one subscription
	nodes   int // nodes below root, for tests of pruning
}

// node is one filter level. Wildcard children get their own pointers so that
// matching never hashes "+" or "#".
type node[V any] struct {
	children kids[node[V]] // literal levels
	plus     *node[V]
	hash     *node[V]
	filter   string   // full filter, set while subs is non-empty
	subs     []sub[V] // scanned in order by Match
	index    map[string]int
}

type sub[V any] struct {
	key string
	v   V
}

// Past indexMin subscribers on one filter, a key -> position map keeps Add
// and Remove O(1); below indexDrop it is dropped again (the gap avoids
// rebuilding on every add/remove at the boundary).
const (
	indexMin  = 16
	indexDrop = 8
)

// NewTree returns an empty Tree.
func NewTree[V any]() *Tree[V] { return &Tree[V]{} }

// Len returns the number of subscriptions ((filter, key) pairs).
func (t *Tree[V]) Len() int { return t.subs }

// Filters returns the number of distinct filters with a subscription.
func (t *Tree[V]) Filters() int { return t.filters }

// nodeCount returns the number of nodes below the root; tests use it to
// show that Remove gives memory back.
func (t *Tree[V]) nodeCount() int { return t.nodes }

func (n *node[V]) empty() bool {
	return len(n.subs) == 0 && n.children.len() == 0 && n.plus == nil && n.hash == nil
}

func (n *node[V]) child(lvl string) *node[V] {
	switch lvl {
	case "+":
		return n.plus
	case "#":
		return n.hash
	}
	return n.children.get(lvl)
}

func (n *node[V]) find(key string) int {
	if n.index != nil {
		if i, ok := n.index[key]; ok {
			return i
		}
		return -1
	}
	for i := range n.subs {
		if n.subs[i].key == key {
			return i
		}
	}
	return -1
}

// Add subscribes key to filter with value v. When (filter, key) exists its
// value is replaced and replaced is true.
func (t *Tree[V]) Add(filter, key string, v V) (replaced bool) {
	n := &t.root
	for i := 0; i >= 0; {
		var lvl string
		lvl, i = level(filter, i)
		c := n.child(lvl)
		if c == nil {
			c = &node[V]{}
			switch lvl {
			case "+":
				n.plus = c
			case "#":
				n.hash = c
			default:
				n.children.put(lvl, c)
			}
			t.nodes++
		}
		n = c
	}
	if i := n.find(key); i >= 0 {
		n.subs[i].v = v
		return true
	}
	if len(n.subs) == 0 {
		n.filter = strings.Clone(filter)
		t.filters++
	}
	n.subs = append(n.subs, sub[V]{key: key, v: v})
	if n.index != nil {
		n.index[key] = len(n.subs) - 1
	} else if len(n.subs) > indexMin {
		n.index = make(map[string]int, len(n.subs))
		for i := range n.subs {
			n.index[n.subs[i].key] = i
		}
	}
	t.subs++
	return false
}

// Remove unsubscribes key from filter and prunes nodes left empty, so memory
// returns. It reports whether the subscription existed.
func (t *Tree[V]) Remove(filter, key string) (removed bool) {
	return t.remove(&t.root, filter, 0, key)
}

// remove works recursively rather than with parent pointers: Remove is not on
// the hot path, and parent pointers would cost every node 24 bytes.
func (t *Tree[V]) remove(n *node[V], filter string, i int, key string) bool {
	if i < 0 {
		return t.removeSub(n, key)
	}
	lvl, next := level(filter, i)
	c := n.child(lvl)
	if c == nil || !t.remove(c, filter, next, key) {
		return false
	}
	if c.empty() {
		switch lvl {
		case "+":
			n.plus = nil
		case "#":
			n.hash = nil
		default:
			n.children.del(lvl)
		}
		t.nodes--
	}
	return true
}

func (t *Tree[V]) removeSub(n *node[V], key string) bool {
	i := n.find(key)
	if i < 0 {
		return false
	}
	last := len(n.subs) - 1
	if i != last {
		n.subs[i] = n.subs[last]
		if n.index != nil {
			n.index[n.subs[i].key] = i
		}
	}
	n.subs[last] = sub[V]{} // drop references held by the backing array
	n.subs = n.subs[:last]
	if n.index != nil {
		delete(n.index, key)
		if len(n.subs) < indexDrop {
			n.index = nil
		}
	}
	switch {
	case len(n.subs) == 0:
		n.subs, n.filter = nil, ""
		t.filters--
	case cap(n.subs) > 64 && len(n.subs) < cap(n.subs)/4:
		n.subs = append([]sub[V](nil), n.subs...)
	}
	t.subs--
	return true
}

// Match calls fn for every subscription whose filter matches name, each
// once, in no particular order. Filters starting with a wildcard are skipped
// for names starting with '$' [MQTT-4.7.2-1]. It does not allocate.
func (t *Tree[V]) Match(name string, fn func(filter, key string, v V)) {
	t.root.match(name, 0, !IsSys(name), fn)
}

// match visits n's part of the trie for the level of name starting at i
// (i < 0: every level has been consumed and n is the filter's end). wild
// says whether wildcard children may match this level.
func (n *node[V]) match(name string, i int, wild bool, fn func(filter, key string, v V)) {
	if i < 0 {
		n.emit(fn)
		// "a/#" matches "a": '#' includes the parent level.
		if n.hash != nil {
			n.hash.emit(fn)
		}
		return
	}
	lvl, next := level(name, i)
	if wild {
		if n.hash != nil {
			n.hash.emit(fn)
		}
		if n.plus != nil {
			n.plus.match(name, next, true, fn)
		}
	}
	if c := n.children.get(lvl); c != nil {
		c.match(name, next, true, fn)
	}
}

func (n *node[V]) emit(fn func(filter, key string, v V)) {
	for i := range n.subs {
		fn(n.filter, n.subs[i].key, n.subs[i].v)
	}
}

// Walk calls fn for every subscription, in no particular order, until fn
// returns false. It is meant for listings, not the publish path.
func (t *Tree[V]) Walk(fn func(filter, key string, v V) bool) {
	t.root.walk(fn)
}

func (n *node[V]) walk(fn func(filter, key string, v V) bool) bool {
	for i := range n.subs {
		if !fn(n.filter, n.subs[i].key, n.subs[i].v) {
			return false
		}
	}
	if n.plus != nil && !n.plus.walk(fn) {
		return false
	}
	if n.hash != nil && !n.hash.walk(fn) {
		return false
	}
	return n.children.all(func(_ string, c *node[V]) bool { return c.walk(fn) })
}
