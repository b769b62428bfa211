package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	"go.uber.org/zap"
)

// disk is the pebble store. Callers encode their batch into a pebble batch on their own
// goroutine (so encoding runs in parallel across actors) and queue it; one committer goroutine
// writes what is queued and calls the callbacks in queue order.
type disk struct {
	dir  string
	mode SyncMode
	db   *pebble.DB
	log  *zap.Logger

	// mu guards closed against Commit: Commit holds it shared while it queues, so Close
	// (exclusive) knows no send is under way when it closes the queue.
	mu     sync.RWMutex
	closed bool
	queue  chan pending
	exited chan struct{}

	commits, writes, errs atomic.Uint64
}

type pending struct {
	b    *pebble.Batch // nil when err is set
	err  error
	done func(error)
}

// Open opens the store in dir, creating dir and the store on first run (dir missing or empty).
// An existing store of another format version, a directory that holds something else, or a
// damaged store is an error naming dir; Open never starts over silently.
func Open(dir string, mode SyncMode, log *zap.Logger) (Store, error) {
	if !mode.Valid() {
		return nil, fmt.Errorf("store %s: unknown sync mode %q (batch, always or none)", dir, mode)
	}
	if log == nil {
		log = zap.NewNop()
	}
	fresh, err := isFresh(dir)
	if err != nil {
		return nil, fmt.Errorf("store %s: %w", dir, err)
	}
	opts := &pebble.Options{
		ErrorIfNotExists: !fresh,
		Logger:           pebbleLogger{log.Sugar()},
		// Small, bounded memory: the broker's records are small and read once at start.
		CacheSize:                   8 << 20,
		MemTableSize:                4 << 20,
		MemTableStopWritesThreshold: 4,
		// Defaults spelled out: L0 compacts early, and writes stall well before L0 grows
		// without bound, so the deletes of acknowledged messages are compacted away.
		L0CompactionThreshold: 4,
		L0StopWritesThreshold: 12,
		MaxOpenFiles:          256,
		EventListener:         events(dir, log),
	}
	db, err := openPebble(dir, opts)
	if err != nil {
		return nil, fmt.Errorf("store %s: cannot open (damaged, or not an actormq store): %w", dir, err)
	}
	if err := checkVersion(db, dir); err != nil {
		_ = db.Close()
		return nil, err
	}
	d := &disk{
		dir:    dir,
		mode:   mode,
		db:     db,
		log:    log,
		queue:  make(chan pending, QueueSize),
		exited: make(chan struct{}),
	}
	go d.committer()
	return d, nil
}

// events reports pebble's errors. Pebble's default for a checksum mismatch is Fatalf; the
// read that found it fails anyway, so an error is logged and returned instead (Load names
// the directory), and the broker decides.
func events(dir string, log *zap.Logger) *pebble.EventListener {
	return &pebble.EventListener{
		DataCorruption: func(info pebble.DataCorruptionInfo) {
			log.Error("store: data corruption", zap.String("dir", dir), zap.String("file", info.Path), zap.Error(info.Details))
		},
		BackgroundError: func(err error) {
			log.Error("store: background error", zap.String("dir", dir), zap.Error(err))
		},
	}
}

// isFresh reports whether dir has no store yet, creating dir if it does not exist.
func isFresh(dir string) (bool, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return true, os.MkdirAll(dir, 0o755)
	}
	if err != nil {
		return false, err
	}
	return len(entries) == 0, nil
}

// openPebble turns a panic of pebble on damaged files into an error: a broker must say
// which directory is bad, not crash with a stack trace.
func openPebble(dir string, opts *pebble.Options) (db *pebble.DB, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("pebble: %v", r)
		}
	}()
	return pebble.Open(dir, opts)
}

// checkVersion writes the version key into a new store and checks it in an existing one.
func checkVersion(db *pebble.DB, dir string) error {
	v, closer, err := db.Get(versionKey)
	if errors.Is(err, pebble.ErrNotFound) {
		// No version: a brand-new store, or one whose creation stopped before the version was
		// written. Only an empty one may be adopted.
		it, err := db.NewIter(nil)
		if err != nil {
			return fmt.Errorf("store %s: %w", dir, err)
		}
		empty := !it.First()
		err = errors.Join(it.Error(), it.Close())
		if err != nil {
			return fmt.Errorf("store %s: unreadable: %w", dir, err)
		}
		if !empty {
			return fmt.Errorf("store %s: no version key: not an actormq store, or damaged", dir)
		}
		if err := db.Set(versionKey, binary.BigEndian.AppendUint32(nil, formatVersion), pebble.Sync); err != nil {
			return fmt.Errorf("store %s: writing the version: %w", dir, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("store %s: unreadable (damaged?): %w", dir, err)
	}
	defer closer.Close()
	if len(v) != 4 {
		return fmt.Errorf("store %s: malformed version key (%d bytes)", dir, len(v))
	}
	if got := binary.BigEndian.Uint32(v); got != formatVersion {
		return fmt.Errorf("store %s is format version %d; this actormq reads version %d", dir, got, formatVersion)
	}
	return nil
}

func (d *disk) Commit(b *Batch, done func(error)) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.closed {
		if done != nil {
			go done(ErrClosed) // a store goroutine, as for every other callback
		}
		return
	}
	pb, err := d.encode(b)
	d.queue <- pending{b: pb, err: err, done: done}
}

// encode builds the pebble batch of b.
func (d *disk) encode(b *Batch) (*pebble.Batch, error) {
	pb := d.db.NewBatch()
	var key, val []byte
	var err error
	for i := range b.ops {
		o := &b.ops[i]
		if o.kind != opPutRetained && o.kind != opDeleteRetained && len(o.key) > maxID {
			err = fmt.Errorf("client id of %d bytes is too long", len(o.key))
			break
		}
		key, val = key[:0], val[:0]
		switch o.kind {
		case opPutSession:
			key = sessionKey(key, o.key)
			if val, err = appendSession(val, o.sess); err == nil {
				err = pb.Set(key, val, nil)
			}
		case opDeleteSession:
			lo, hi := clientRange(o.key)
			err = pb.DeleteRange(lo, hi, nil)
		case opPutMessage:
			key = messageKey(key, o.key, o.seq)
			if val, err = appendMessage(val, o.msg); err == nil {
				err = pb.Set(key, val, nil)
			}
		case opDeleteMessage:
			err = pb.Delete(messageKey(key, o.key, o.seq), nil)
		case opPutInbound:
			err = pb.Set(inboundKey(key, o.key, o.id), nil, nil)
		case opDeleteInbound:
			err = pb.Delete(inboundKey(key, o.key, o.id), nil)
		case opPutRetained:
			key = retainedKey(key, o.key)
			if val, err = appendMessage(val, o.msg); err == nil {
				err = pb.Set(key, val, nil)
			}
		case opDeleteRetained:
			err = pb.Delete(retainedKey(key, o.key), nil)
		}
		if err != nil {
			break
		}
	}
	if err != nil {
		_ = pb.Close()
		return nil, fmt.Errorf("store: batch not committed: %w", err)
	}
	return pb, nil
}

// committer writes the queue until Close closes it.
func (d *disk) committer() {
	defer close(d.exited)
	group := make([]pending, 0, maxGroup)
	for first := range d.queue {
		group = append(group[:0], first)
		if d.mode != SyncAlways {
		drain:
			for len(group) < maxGroup {
				select {
				case p, ok := <-d.queue:
					if !ok {
						break drain
					}
					group = append(group, p)
				default:
					break drain
				}
			}
		}
		d.write(group)
		clear(group) // let the batches and callbacks go
	}
}

// write commits a group as one pebble batch (one fsync in batch mode), then calls the
// callbacks in order. A batch that failed to encode fails alone, in its place.
func (d *disk) write(group []pending) {
	opt := pebble.Sync
	if d.mode == SyncNone {
		opt = pebble.NoSync
	}
	var all *pebble.Batch
	var err error
	for _, p := range group {
		if p.b == nil {
			continue
		}
		if all == nil {
			all = p.b
			continue
		}
		if err == nil {
			err = all.Apply(p.b, nil)
		}
		_ = p.b.Close()
	}
	if all != nil {
		if err == nil {
			err = all.Commit(opt)
		}
		_ = all.Close()
		d.writes.Add(1)
		if err != nil {
			d.log.Error("store write failed", zap.String("dir", d.dir), zap.Int("batches", len(group)), zap.Error(err))
			err = fmt.Errorf("store %s: %w", d.dir, err)
		}
	}
	for _, p := range group {
		if p.b == nil && p.err == nil {
			d.call(p.done, nil) // a flush: everything before it is written
			continue
		}
		e := p.err
		if e == nil {
			e = err
		}
		if e != nil {
			d.errs.Add(1)
		} else {
			d.commits.Add(1)
		}
		if p.done != nil {
			d.call(p.done, e)
		}
	}
}

// call runs a callback so that a panic in it is logged instead of killing the committer,
// which would leave every later commit waiting forever.
func (d *disk) call(done func(error), err error) {
	defer func() {
		if r := recover(); r != nil {
			d.log.Error("store: commit callback panicked", zap.Any("panic", r), zap.Stack("stack"))
		}
	}()
	done(err)
}

func (d *disk) Load(v Visitor) error {
	lower, upper := []byte{kindClient}, []byte{kindRetained + 1}
	if v.Session == nil && v.Message == nil && v.Inbound == nil {
		lower = []byte{kindRetained} // only the retained messages: skip every client's records
	}
	if v.Retained == nil {
		upper = []byte{kindRetained}
	}
	return d.scan(lower, upper, v)
}

func (d *disk) LoadClient(clientID string, v Visitor) error {
	if len(clientID) > maxID {
		return nil // no key can hold it, so nothing was stored
	}
	lo, hi := clientRange(clientID)
	return d.scan(lo, hi, v)
}

// flush waits until every commit queued before it has been written and called back.
func (d *disk) flush() error {
	d.mu.RLock()
	if d.closed {
		d.mu.RUnlock()
		return ErrClosed
	}
	errc := make(chan error, 1)
	d.queue <- pending{done: func(err error) { errc <- err }} // no batch: a place in the queue
	d.mu.RUnlock()
	return <-errc
}

// scan visits the keys in [lower, upper) after the commits queued before it.
func (d *disk) scan(lower, upper []byte, v Visitor) (err error) {
	if err := d.flush(); err != nil {
		return fmt.Errorf("store %s: %w", d.dir, err)
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("store %s: unreadable: pebble: %v", d.dir, r)
		}
	}()
	it, err := d.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return fmt.Errorf("store %s: %w", d.dir, err)
	}
	defer func() {
		if cerr := it.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("store %s: unreadable: %w", d.dir, cerr)
		}
	}()
	for ok := it.First(); ok; ok = it.Next() {
		k, err := parseKey(it.Key())
		if err != nil {
			return fmt.Errorf("store %s: damaged: key %q: %w", d.dir, it.Key(), err)
		}
		raw, err := it.ValueAndErr()
		if err != nil {
			return fmt.Errorf("store %s: unreadable: %w", d.dir, err)
		}
		// The decoded records alias their bytes, and pebble reuses its buffer on Next.
		val := append([]byte(nil), raw...)
		if err := visit(k, val, v); err != nil {
			var damaged *damagedError
			if errors.As(err, &damaged) {
				return fmt.Errorf("store %s: damaged record %q: %w", d.dir, it.Key(), damaged.err)
			}
			return err
		}
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("store %s: unreadable: %w", d.dir, err)
	}
	return nil
}

// damagedError is a value that does not decode, as opposed to an error of a visitor.
type damagedError struct{ err error }

func (e *damagedError) Error() string { return e.err.Error() }

// visit decodes one record and hands it to its visitor function.
func visit(k parsedKey, val []byte, v Visitor) error {
	switch {
	case k.kind == kindMeta:
	case k.kind == kindRetained:
		if v.Retained != nil {
			r, err := decodeMessage(val)
			if err != nil {
				return &damagedError{err}
			}
			return v.Retained(k.id, r)
		}
	case k.sub == subSession:
		if v.Session != nil {
			r, err := decodeSession(k.id, val)
			if err != nil {
				return &damagedError{err}
			}
			return v.Session(r)
		}
	case k.sub == subMessage:
		if v.Message != nil {
			r, err := decodeMessage(val)
			if err != nil {
				return &damagedError{err}
			}
			return v.Message(k.id, k.seq, r)
		}
	case k.sub == subInbound:
		if v.Inbound != nil {
			return v.Inbound(k.id, k.packetID)
		}
	}
	return nil
}

// Stats counts keys with a scan of the store: fine for a console that polls every few
// seconds, not for a hot path.
func (d *disk) Stats() Stats {
	s := Stats{
		Commits:    d.commits.Load(),
		Writes:     d.writes.Load(),
		Errors:     d.errs.Load(),
		QueueDepth: len(d.queue),
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.closed {
		return s
	}
	s.Bytes = d.db.Metrics().DiskSpaceUsage()
	if it, err := d.db.NewIter(&pebble.IterOptions{LowerBound: []byte{kindClient}}); err == nil {
		for ok := it.First(); ok; ok = it.Next() {
			s.Keys++
		}
		_ = it.Close()
	}
	return s
}

func (d *disk) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	close(d.queue)
	d.mu.Unlock()
	<-d.exited // every queued commit written and called back
	if err := d.db.Close(); err != nil {
		return fmt.Errorf("store %s: close: %w", d.dir, err)
	}
	return nil
}

// pebbleLogger routes pebble's log into zap. Pebble's chatter (flushes, compactions) goes to
// DEBUG.
type pebbleLogger struct{ s *zap.SugaredLogger }

func (l pebbleLogger) Infof(format string, args ...any)  { l.s.Debugf("pebble: "+format, args...) }
func (l pebbleLogger) Errorf(format string, args ...any) { l.s.Errorf("pebble: "+format, args...) }

// Fatalf must not return (pebble's contract). It logs, then panics rather than exits: on the
// goroutine of Open or Load the panic becomes an error naming the directory; anywhere else the
// engine cannot go on, and a crash is better than acknowledging messages it cannot keep.
func (l pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf("pebble: "+format, args...)
	l.s.Error(msg)
	panic(msg)
}
