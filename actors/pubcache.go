package actors

import (
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/actormq/actormq/codec"
)

// The shared-encoding cache: a publish delivered to many subscribers is encoded once per
// variant, and every other writer copies those bytes and patches the two fields that differ
// per subscriber without changing the layout: the first byte (DUP, QoS 1 or 2, RETAIN) and the
// packet id, at a known offset. Deliveries whose bytes differ in more than that (5.0
// subscription identifiers, an outbound topic alias) are encoded in full, as before.
//
// Why a process-wide table of slots rather than a field of the publish: the cache must not
// double the memory of publishes that live long (retained messages, offline queues), and a
// field written by many writers while others copy the publish would be a data race. A slot
// holds its publish strongly (so a hit is a pointer compare, and an address cannot be reused
// while the entry exists) and at most maxSharedEncoding bytes, and a sweeper empties every
// slot one to two seconds after it was filled: the table pins at most sharedSlots publishes
// of that size, and nothing once the broker has been quiet for two seconds.
//
// Fan-in (one delivery per publish) must not pay for it: the first writer of a publish only
// marks the slot (one atomic swap) and encodes as before; the entry is built by the second.

const (
	sharedSlotBits    = 10
	sharedSlots       = 1 << sharedSlotBits
	maxSharedEncoding = 16 << 10 // larger packets are dominated by the payload copy anyway
)

// encKey is what the shared bytes depend on besides the publish itself.
type encKey struct {
	v5        bool   // 5.0 has a property block; 3.1 and 3.1.1 encode a PUBLISH alike
	hasID     bool   // QoS 1 and 2 carry a packet id; QoS 0 does not
	hasExpiry bool   // 5.0: the remaining Message Expiry Interval replaces the publisher's
	expiry    uint32 // (it differs by the second, so it is part of the key)
}

type encEntry struct {
	pub   *codec.Publish
	key   encKey
	b     []byte // encoded with DUP, RETAIN clear, QoS 1 (if hasID) and packet id 0
	idOff int    // offset of the packet id in b (hasID)
	old   atomic.Bool
}

type encSlot struct {
	seen  atomic.Uint64 // tag of the last publish and key that missed here
	entry atomic.Pointer[encEntry]
}

var (
	encSlots [sharedSlots]encSlot
	// sharedEncoding lets a benchmark compare against the full encode.
	sharedEncoding = true
)

func encTag(addr uintptr, k encKey) uint64 {
	t := uint64(addr) ^ uint64(k.expiry)<<32
	if k.v5 {
		t ^= 1 << 1
	}
	if k.hasID {
		t ^= 1 << 2
	}
	if k.hasExpiry {
		t ^= 1 << 3
	}
	return t
}

func encSlotOf(tag uint64) *encSlot {
	return &encSlots[(tag*0x9E3779B97F4A7C15)>>(64-sharedSlotBits)]
}

// sharedKey reports whether a delivery may use shared bytes, and under which key.
func (l *Link) sharedKey(it *outItem) (encKey, bool) {
	v5 := l.Version == codec.V5
	if !sharedEncoding || (v5 && (l.aliasMax > 0 || len(it.subIDs) > 0)) {
		return encKey{}, false
	}
	k := encKey{v5: v5, hasID: it.qos > 0}
	if v5 && it.hasExpiry {
		k.hasExpiry, k.expiry = true, it.expiry
	}
	return k, true
}

// lookupShared returns the shared bytes of it's publish under k, building them when this is
// the second delivery of that publish to miss; nil when the caller must encode in full.
func (l *Link) lookupShared(it *outItem, k encKey, scratch *codec.Publish) *encEntry {
	addr := uintptr(unsafe.Pointer(it.pub))
	tag := encTag(addr, k)
	s := encSlotOf(tag)
	if e := s.entry.Load(); e != nil && e.pub == it.pub && e.key == k {
		return e
	}
	if s.seen.Swap(tag) != tag {
		return nil // first delivery of this publish: encode it in full
	}
	e := buildShared(it, k, l.Version, scratch)
	if e != nil {
		s.entry.Store(e)
		startSweeper()
	}
	return e
}

// The sweeper runs while the table holds entries: each round empties the slots that were
// already full at the round before, so an entry lives one to two sweepInterval.
const sweepInterval = time.Second

var sweeping atomic.Bool

func startSweeper() {
	if !sweeping.Load() && sweeping.CompareAndSwap(false, true) {
		time.AfterFunc(sweepInterval, sweepShared)
	}
}

func sweepShared() {
	if sweepOnce() == 0 {
		sweeping.Store(false)
		// An entry stored after its slot was swept saw sweeping still set: look again.
		if sweepOnce() == 0 || !sweeping.CompareAndSwap(false, true) {
			return
		}
	}
	time.AfterFunc(sweepInterval, sweepShared)
}

// sweepOnce empties the slots marked by the previous round, marks the others and returns how
// many entries are left.
func sweepOnce() int {
	left := 0
	for i := range encSlots {
		s := &encSlots[i]
		e := s.entry.Load()
		if e == nil {
			continue
		}
		if e.old.Load() {
			s.entry.CompareAndSwap(e, nil)
			continue
		}
		e.old.Store(true)
		left++
	}
	return left
}

// buildShared encodes the subscriber-independent form of a delivery.
func buildShared(it *outItem, k encKey, v codec.Version, p *codec.Publish) *encEntry {
	*p = *it.pub
	p.Dup, p.Retain, p.PacketID, p.QoS = false, false, 0, 0
	if k.hasID {
		p.QoS, p.PacketID = 1, 1 // the id is patched per delivery
	}
	if k.v5 {
		p.Properties.SetSubscriptionIdentifiers(nil)
		if k.hasExpiry {
			p.Properties.SetMessageExpiryInterval(k.expiry)
		}
	}
	n := codec.Size(p, v)
	if n < 0 || n > maxSharedEncoding {
		*p = codec.Publish{}
		return nil
	}
	b, err := codec.Append(make([]byte, 0, n), p, v)
	*p = codec.Publish{}
	if err != nil {
		return nil
	}
	// Fixed header, Remaining Length (1-4 bytes), then the topic's 2-byte length and bytes.
	i := 1
	for b[i]&0x80 != 0 {
		i++
	}
	i++
	idOff := i + 2 + (int(b[i])<<8 | int(b[i+1]))
	return &encEntry{pub: it.pub, key: k, b: b, idOff: idOff}
}

// appendShared appends e for the delivery it: its own flags and packet id.
func appendShared(buf []byte, e *encEntry, it *outItem) []byte {
	start := len(buf)
	buf = append(buf, e.b...)
	h := byte(codec.TypePublish)<<4 | it.qos<<1
	if it.dup {
		h |= 0x08
	}
	if it.retain {
		h |= 0x01
	}
	buf[start] = h
	if e.key.hasID {
		buf[start+e.idOff] = byte(it.id >> 8)
		buf[start+e.idOff+1] = byte(it.id)
	}
	return buf
}
