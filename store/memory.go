package store

import (
	"cmp"
	"maps"
	"slices"
	"sync"
)

// memory is the store of `persistence = false`: it keeps records by pointer in maps, so that a
// restarted actor finds its state, and nothing across a process restart.
type memory struct {
	mu       sync.Mutex
	clients  map[string]*memClient
	retained map[string]*MessageRecord
	commits  uint64
	closed   bool
}

type memClient struct {
	session *SessionRecord
	msgs    map[uint64]*MessageRecord
	inbound map[uint16]struct{}
}

// NewMemory returns a store that keeps everything in memory. Commit applies the batch and
// calls done before it returns, on the caller's goroutine: there is nothing to wait for.
func NewMemory() Store {
	return &memory{clients: make(map[string]*memClient), retained: make(map[string]*MessageRecord)}
}

func (m *memory) client(id string) *memClient {
	c := m.clients[id]
	if c == nil {
		c = &memClient{msgs: make(map[uint64]*MessageRecord), inbound: make(map[uint16]struct{})}
		m.clients[id] = c
	}
	return c
}

// gc drops a client entry that holds nothing, so that ended sessions leave no trace.
func (m *memory) gc(id string, c *memClient) {
	if c.session == nil && len(c.msgs) == 0 && len(c.inbound) == 0 {
		delete(m.clients, id)
	}
}

func (m *memory) Commit(b *Batch, done func(error)) {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		if done != nil {
			done(ErrClosed)
		}
		return
	}
	for i := range b.ops {
		o := &b.ops[i]
		switch o.kind {
		case opPutSession:
			m.client(o.key).session = o.sess
		case opDeleteSession:
			delete(m.clients, o.key)
		case opPutMessage:
			m.client(o.key).msgs[o.seq] = o.msg
		case opDeleteMessage:
			if c := m.clients[o.key]; c != nil {
				delete(c.msgs, o.seq)
				m.gc(o.key, c)
			}
		case opPutInbound:
			m.client(o.key).inbound[o.id] = struct{}{}
		case opDeleteInbound:
			if c := m.clients[o.key]; c != nil {
				delete(c.inbound, o.id)
				m.gc(o.key, c)
			}
		case opPutRetained:
			m.retained[o.key] = o.msg
		case opDeleteRetained:
			delete(m.retained, o.key)
		}
	}
	m.commits++
	m.mu.Unlock()
	if done != nil {
		done(nil)
	}
}

// Load visits a snapshot taken under the lock, so that visitors may commit while it runs.
func (m *memory) Load(v Visitor) error {
	m.mu.Lock()
	var clients []clientSnap
	if v.Session != nil || v.Message != nil || v.Inbound != nil {
		clients = make([]clientSnap, 0, len(m.clients))
		for id, c := range m.clients {
			clients = append(clients, snapshot(id, c))
		}
	}
	var retained map[string]*MessageRecord
	if v.Retained != nil {
		retained = maps.Clone(m.retained)
	}
	m.mu.Unlock()

	// Same order as the on-disk store: ids by length, then bytes (its keys are length-prefixed).
	slices.SortFunc(clients, func(a, b clientSnap) int {
		return cmp.Or(cmp.Compare(len(a.id), len(b.id)), cmp.Compare(a.id, b.id))
	})
	for i := range clients {
		if err := clients[i].visit(v); err != nil {
			return err
		}
	}
	if v.Retained != nil {
		for _, t := range slices.Sorted(maps.Keys(retained)) {
			if err := v.Retained(t, retained[t]); err != nil {
				return err
			}
		}
	}
	return nil
}

func (m *memory) LoadClient(clientID string, v Visitor) error {
	m.mu.Lock()
	c := m.clients[clientID]
	if c == nil {
		m.mu.Unlock()
		return nil
	}
	snap := snapshot(clientID, c)
	m.mu.Unlock()
	return snap.visit(v)
}

// clientSnap is one client's records, copied out of the maps under the lock.
type clientSnap struct {
	id string
	c  memClient
}

func snapshot(id string, c *memClient) clientSnap {
	return clientSnap{id: id, c: memClient{session: c.session, msgs: maps.Clone(c.msgs), inbound: maps.Clone(c.inbound)}}
}

func (s *clientSnap) visit(v Visitor) error {
	if s.c.session != nil && v.Session != nil {
		if err := v.Session(s.c.session); err != nil {
			return err
		}
	}
	if v.Message != nil {
		for _, seq := range slices.Sorted(maps.Keys(s.c.msgs)) {
			if err := v.Message(s.id, seq, s.c.msgs[seq]); err != nil {
				return err
			}
		}
	}
	if v.Inbound != nil {
		for _, id := range slices.Sorted(maps.Keys(s.c.inbound)) {
			if err := v.Inbound(s.id, id); err != nil {
				return err
			}
		}
	}
	return nil
}

func (m *memory) Stats() Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	keys := uint64(len(m.retained))
	for _, c := range m.clients {
		if c.session != nil {
			keys++
		}
		keys += uint64(len(c.msgs) + len(c.inbound))
	}
	return Stats{Keys: keys, Commits: m.commits, Writes: m.commits}
}

func (m *memory) Close() error {
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
	return nil
}
