package actors

import (
	"errors"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/actormq/actormq/store"
)

// A QoS 2 publish from a stored session is written to the store in one batch: the
// publisher's packet id and every stored subscriber's copy. The id makes a retransmission
// known after a restart, so it must never be durable without the copies (the restarted broker
// would answer the resend with PUBREC and route nothing: lost), nor the copies without it (the
// resend would be routed again: delivered twice [MQTT-4.3.3-1]). Writing each in its own
// session's batch left a kill -9 between the commits able to do either.
//
// So the route carries a onceWrite. The publisher's session puts the packet id in it; each
// stored subscriber's session puts its copy in it when it has taken the copy, and gives up the
// acknowledgement share the route holds for it; the last share to go commits the batch
// (route.ackDone), and its callback answers the publisher. A session keeps a QoS 2 copy in
// its queue until the batch is durable (a copy on the wire must survive a crash, or the resend
// makes it two), and hears when it is (onceDone); the queue keeps the order.
//
// If anything fails before the commit (a shard failing half-way, a copy that reached no
// session, a session ending with writes in it), nothing of the batch is written: the
// publisher is told the message failed and sends it again, and the subscribers that took a
// QoS 2 copy drop it. A session that fails or stops and reloads does not fail it: it carries
// what the batch holds of it across the reload (carried, session_store.go).

// onceWrite is the single batch of one QoS 2 publish from a stored session.
type onceWrite struct {
	mu        sync.Mutex
	batch     store.Batch
	submitted bool           // handed to the store (or given up): a write now goes behind it
	queued    sync.WaitGroup // done once a submitted batch is in the store's queue
	writers   []*actor.PID   // sessions with a copy in it: told when it is durable or failed
	followers []*route       // retransmissions of the publish, answered with it
	state     atomic.Uint32
}

// The states of a onceWrite.
const (
	onceOpen    uint32 = iota // not durable yet
	onceDurable               // written: the copies may go out
	onceFailed                // never written: the copies are dropped, the publisher resends
)

// errOnceFailed: a share of the route failed before its batch was committed.
var errOnceFailed = errors.New("the publish failed before it was stored")

// onceDone tells a session that a batch it wrote a copy into is durable, or will never be.
type onceDone struct {
	route  *route
	failed bool
}

// How a session's copy joined the publish's batch.
type joined uint8

const (
	joinedBatch   joined = iota // its writes are in the batch; onceDone will come
	joinedLate                  // the batch has gone to the store: its writes follow it; onceDone will come
	joinedDurable               // the batch is durable: its writes follow it
	joinedFailed                // the batch will never be written: a QoS 2 copy is dropped
)

// join puts a session's writes about its copy in the batch while it is open, and has the
// session told (onceDone) how it ends unless it has ended. Writes that come late are the
// caller's to commit: the batch is queued to the store by then (commit), so they follow it.
func (o *onceWrite) join(b *store.Batch, writer *actor.PID) joined {
	o.mu.Lock()
	defer o.mu.Unlock()
	switch o.state.Load() {
	case onceDurable:
		return joinedDurable
	case onceFailed:
		return joinedFailed
	}
	if !slices.Contains(o.writers, writer) {
		o.writers = append(o.writers, writer)
	}
	if o.submitted {
		o.mu.Unlock()
		o.queued.Wait() // a moment at most: the caller's commit must come after it
		o.mu.Lock()
		return joinedLate
	}
	o.batch.Append(b)
	return joinedBatch
}

// pending reports whether r is a publish written in one batch that is not durable yet: a
// session joins it with its copy, and a QoS 2 copy goes out only once it is.
func (r *route) pending() bool {
	return r != nil && r.once != nil && r.once.state.Load() != onceDurable
}

// failedOnce reports whether r's batch will never be written.
func (r *route) failedOnce() bool {
	return r != nil && r.once != nil && r.once.state.Load() == onceFailed
}

// follow answers a retransmission of the publish together with the original, if that has not
// been answered yet (it reports onceOpen then); else it reports how the original ended.
func (o *onceWrite) follow(r *route) uint32 {
	o.mu.Lock()
	defer o.mu.Unlock()
	st := o.state.Load()
	if st == onceOpen {
		o.followers = append(o.followers, r)
	}
	return st
}

// failOpen makes the route fail if its batch has not gone to the store: a session that wrote
// into it ends, and its records must not come back after the delete (unstore).
func (r *route) failOpen() {
	o := r.once
	o.mu.Lock()
	submitted := o.submitted
	if !submitted {
		r.fail()
	}
	o.mu.Unlock()
	if submitted {
		o.queued.Wait() // so that the session's reload sees it
	}
}

// commit writes the batch once every share has been given up, or gives it up if one failed.
// A session that finds it submitted (join, failOpen) waits until it is in the store's queue:
// the session's own later commits then follow it, and a session reloading from the store sees
// it. (Not under o.mu: the memory store calls the callback inside Commit, and it takes o.mu.)
func (r *route) commit() {
	o := r.once
	o.mu.Lock()
	o.submitted = true
	if r.failed.Load() {
		o.state.Store(onceFailed) // before anyone can join it
		o.batch = store.Batch{}
		o.mu.Unlock()
		r.onceWritten(errOnceFailed)
		return
	}
	o.queued.Add(1)
	o.mu.Unlock()
	r.env.Store.Commit(&o.batch, r.onceWritten)
	o.batch = store.Batch{} // the store has it; o lives on until the publisher's PUBREL
	o.queued.Done()
}

// onceWritten answers the publisher (and its retransmissions) and tells the writers.
func (r *route) onceWritten(err error) {
	o := r.once
	if err != nil {
		r.fail()
	}
	o.mu.Lock()
	if err != nil {
		o.state.Store(onceFailed)
	} else {
		o.state.Store(onceDurable)
	}
	writers, followers := o.writers, o.followers
	o.writers, o.followers = nil, nil
	o.mu.Unlock()
	r.finish()
	for _, f := range followers {
		if err != nil {
			f.fail()
		}
		f.matched = r.matched // never routed itself: its answer is the original's
		f.ackDone()
		if err == nil {
			decUnacked(f.link) // a retransmission counted again; its exchange is the original's
		}
		f.release() // the shard's share: it was never routed
	}
	for _, pid := range writers {
		r.env.System.Root.Send(pid, &onceDone{route: r, failed: err != nil})
	}
}
