package topics

// Index maps topic names to values (a shard's retained messages) and answers
// "which names match this filter" by walking a trie of name levels, so a
// filter with a literal prefix only visits that branch.
//
// The zero value is an empty Index. Not safe for concurrent use. Callbacks
// must not modify the Index.
type Index[V any] struct {
	root  inode[V]
	n     int // stored names
	nodes int // nodes below root, for tests of pruning
}

type inode[V any] struct {
	children kids[inode[V]]
	name     string // full name, set while has is true
	v        V
	has      bool
}

// NewIndex returns an empty Index.
func NewIndex[V any]() *Index[V] { return &Index[V]{} }

// Len returns the number of stored names.
func (x *Index[V]) Len() int { return x.n }

// nodeCount returns the number of nodes below the root.
func (x *Index[V]) nodeCount() int { return x.nodes }

func (n *inode[V]) empty() bool { return !n.has && n.children.len() == 0 }

// Set stores v under name, replacing (replaced = true) any value there. The
// name is taken literally, wildcard characters included, and kept as given:
// the retained message holds the same string anyway.
func (x *Index[V]) Set(name string, v V) (replaced bool) {
	n := &x.root
	for i := 0; i >= 0; {
		var lvl string
		lvl, i = level(name, i)
		c := n.children.get(lvl)
		if c == nil {
			c = &inode[V]{}
			n.children.put(lvl, c)
			x.nodes++
		}
		n = c
	}
	replaced = n.has
	if !replaced {
		n.name, n.has = name, true
		x.n++
	}
	n.v = v
	return replaced
}

// Get returns the value stored under name.
func (x *Index[V]) Get(name string) (V, bool) {
	n := &x.root
	for i := 0; i >= 0; {
		var lvl string
		lvl, i = level(name, i)
		if n = n.children.get(lvl); n == nil {
			var zero V
			return zero, false
		}
	}
	return n.v, n.has
}

// Delete removes name and prunes nodes left empty. It reports whether name
// was stored.
func (x *Index[V]) Delete(name string) bool {
	return x.delete(&x.root, name, 0)
}

func (x *Index[V]) delete(n *inode[V], name string, i int) bool {
	if i < 0 {
		if !n.has {
			return false
		}
		var zero V
		n.v, n.name, n.has = zero, "", false
		x.n--
		return true
	}
	lvl, next := level(name, i)
	c := n.children.get(lvl)
	if c == nil || !x.delete(c, name, next) {
		return false
	}
	if c.empty() {
		n.children.del(lvl)
		x.nodes--
	}
	return true
}

// Match calls fn for every stored name that filter matches, until fn
// returns false. A filter whose first level is a wildcard skips names
// starting with '$' [MQTT-4.7.2-1]. Results agree with the Match function
// for any filter, valid or not. It does not allocate.
func (x *Index[V]) Match(filter string, fn func(name string, v V) bool) {
	x.root.match(filter, 0, true, fn)
}

// match matches the filter level starting at i against n's children. root
// is true for the first level, where the '$' rule applies.
func (n *inode[V]) match(filter string, i int, root bool, fn func(name string, v V) bool) bool {
	lvl, next := level(filter, i)
	switch lvl {
	case "#":
		if next >= 0 {
			return true // '#' not last matches nothing, as in Match
		}
		// "a/#" matches "a" too: n itself holds the parent (never at root).
		if n.has && !fn(n.name, n.v) {
			return false
		}
		return n.children.all(func(k string, c *inode[V]) bool {
			return (root && IsSys(k)) || c.walk(fn)
		})
	case "+":
		return n.children.all(func(k string, c *inode[V]) bool {
			return (root && IsSys(k)) || c.step(filter, next, fn)
		})
	}
	if c := n.children.get(lvl); c != nil {
		return c.step(filter, next, fn)
	}
	return true
}

// step is called on the node a filter level led to: report it if the filter
// ends here, else go on with the next level.
func (n *inode[V]) step(filter string, next int, fn func(name string, v V) bool) bool {
	if next < 0 {
		if n.has {
			return fn(n.name, n.v)
		}
		return true
	}
	return n.match(filter, next, false, fn)
}

// Walk calls fn for every stored name, '$' names included, in no particular
// order, until fn returns false.
func (x *Index[V]) Walk(fn func(name string, v V) bool) {
	x.root.walk(fn)
}

func (n *inode[V]) walk(fn func(name string, v V) bool) bool {
	if n.has && !fn(n.name, n.v) {
		return false
	}
	return n.children.all(func(_ string, c *inode[V]) bool { return c.walk(fn) })
}
