package actors

import (
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Workers runs the broker's short turns: an actor's turn at its mailbox (it is every actor's
// dispatcher), a reader's turn at its socket and a writer's turn at its queue. Each message
// on the publish path takes about five such turns and each connect about seven. Started as
// new goroutines, most turns grew their stack from the starting size by copying it, and the
// goroutine's start and end cost as much again (docs/BENCHMARKS.md). A turn here runs on a
// parked worker when there is one, which keeps the stack it grew.
//
// At most maxIdleWorkers park, the last parked first to run (its stack is the warmest), and a
// worker left parked through a whole trim interval ends, so an idle broker keeps none. The
// parked workers are split into one stack per P (rounded up to a power of two), each under a
// lock of its own, so that turns on many cores do not all take one lock.
//
// Race builds park none (workersParked): the pool's locks, taken at the end of one turn and
// the start of the next, would tell the race detector that unrelated turns are ordered and
// hide their races. The pool's own tests use pools of their own.
var Workers = newWorkerPool(workersParked, runtime.GOMAXPROCS(0), time.Second)

// maxIdleWorkers bounds the parked workers: enough for the turns of a few hundred busy
// connections at once (a fan-out to 100 subscribers has 300), and at most a few MB of stacks
// for the second or two they are kept. It bounds memory, not anything a client controls: a
// turn finding no parked worker starts a goroutine, as without the pool. So no turn ever waits
// for a worker, and a turn that blocks cannot hold up another (a fixed-size pool could
// deadlock actors that wait on each other, PROTOACTOR.md).
const maxIdleWorkers = 1024

// dispatcherThroughput is the messages an actor handles in one turn before it yields, as
// protoactor's default dispatcher has it.
const dispatcherThroughput = 300

type workerPool struct {
	shards   []workerShard
	mask     uint32
	tick     atomic.Uint64 // trim intervals begun
	armed    atomic.Bool   // trim runs after the interval
	trim     *time.Timer
	interval time.Duration
}

// workerShard is one stack of parked workers, the bottom parked first.
type workerShard struct {
	mu      sync.Mutex
	idle    []*worker
	max     int
	alive   int      // workers of this shard, parked or running a turn
	started int      // goroutines started, for tests
	_       [64]byte // a shard's lock on a cache line of its own
}

type worker struct {
	next  chan func() // buffered, so Go never waits for the worker to reach its receive
	shard *workerShard
	tick  uint64 // the interval it parked in
}

// newWorkerPool makes a pool that parks at most max workers in about as many shards as
// procs; a max of 0 parks none.
func newWorkerPool(max, procs int, interval time.Duration) *workerPool {
	n := 1
	for n < procs && n < 64 && max/(2*n) >= 16 {
		n *= 2
	}
	p := &workerPool{shards: make([]workerShard, n), mask: uint32(n - 1), interval: interval}
	for i := range p.shards {
		p.shards[i].max = max / n
		// Made whole at once: grown by append, the shards' small arrays could share a cache line.
		p.shards[i].idle = make([]*worker, 0, max/n)
	}
	p.trim = time.AfterFunc(time.Hour, p.trimIdle)
	p.trim.Stop()
	return p
}

// Go runs fn on a parked worker of a shard picked at random or of the next one, or on a new
// goroutine when neither has one. A pool that parks none starts a goroutine and touches
// nothing shared.
func (p *workerPool) Go(fn func()) {
	if p.shards[0].max == 0 {
		go fn()
		return
	}
	i := rand.Uint32()
	for k := range min(2, uint32(len(p.shards))) {
		if w := p.shards[(i+k)&p.mask].pop(); w != nil {
			w.next <- fn
			return
		}
	}
	sh := &p.shards[i&p.mask]
	sh.mu.Lock()
	sh.started++
	sh.alive++
	sh.mu.Unlock()
	go p.work(fn, sh)
}

// pop takes the worker parked last, or nil.
func (sh *workerShard) pop() *worker {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	n := len(sh.idle)
	if n == 0 {
		return nil
	}
	w := sh.idle[n-1]
	sh.idle[n-1] = nil
	sh.idle = sh.idle[:n-1]
	return w
}

// Schedule and Throughput make the pool a protoactor dispatcher.
func (p *workerPool) Schedule(fn func()) { p.Go(fn) }
func (p *workerPool) Throughput() int    { return dispatcherThroughput }

func (p *workerPool) work(fn func(), sh *workerShard) {
	w := &worker{next: make(chan func(), 1), shard: sh}
	for fn != nil {
		fn()
		fn = nil // a parked worker keeps nothing of its last turn alive
		if !p.park(w) {
			return
		}
		fn = <-w.next // nil from trimIdle ends the worker
	}
}

// park lists w as idle in its shard, unless the shard's max are already.
func (p *workerPool) park(w *worker) bool {
	sh := w.shard
	sh.mu.Lock()
	if len(sh.idle) >= sh.max {
		sh.alive--
		sh.mu.Unlock()
		return false
	}
	w.tick = p.tick.Load()
	sh.idle = append(sh.idle, w)
	sh.mu.Unlock()
	if !p.armed.Load() && p.armed.CompareAndSwap(false, true) {
		p.trim.Reset(p.interval)
	}
	return true
}

// trimIdle begins an interval and ends the workers parked before the last one began: they
// have been idle for a whole interval. They are at the bottom of their stacks, since a
// worker that runs parks again on top. It disarms itself first, so a worker parking while it
// runs arms it again; it re-arms itself while any worker stays parked.
func (p *workerPool) trimIdle() {
	p.armed.Store(false)
	tick := p.tick.Add(1)
	parked := 0
	for i := range p.shards {
		sh := &p.shards[i]
		sh.mu.Lock()
		n := 0
		for n < len(sh.idle) && sh.idle[n].tick+1 < tick {
			sh.idle[n].next <- nil // its channel is empty: nothing is sent to a parked worker but by Go
			n++
		}
		sh.alive -= n
		rest := copy(sh.idle, sh.idle[n:])
		clear(sh.idle[rest:])
		sh.idle = sh.idle[:rest]
		parked += rest
		sh.mu.Unlock()
	}
	if parked > 0 && p.armed.CompareAndSwap(false, true) {
		p.trim.Reset(p.interval)
	}
}

// lockAll holds every shard's lock until the returned unlock: a count taken meanwhile is one
// moment's.
func (p *workerPool) lockAll() (unlock func()) {
	for i := range p.shards {
		p.shards[i].mu.Lock()
	}
	return func() {
		for i := range p.shards {
			p.shards[i].mu.Unlock()
		}
	}
}

// parked is how many workers are parked; the caller holds every shard's lock.
func (p *workerPool) parked() int {
	n := 0
	for i := range p.shards {
		n += len(p.shards[i].idle)
	}
	return n
}

// ParkedWorkers is how many of the process's goroutines are Workers' parked workers.
func ParkedWorkers() int {
	defer Workers.lockAll()()
	return Workers.parked()
}

// UnparkedGoroutines is the process's goroutines but Workers' parked workers, which come and go
// with load: the count to watch for leaks. Both are read under the pool's locks, so no worker
// parks between the two (one being trimmed may still be counted, which errs on the safe side).
func UnparkedGoroutines() int {
	defer Workers.lockAll()()
	return runtime.NumGoroutine() - Workers.parked()
}

// poolCounts is what a pool holds and has done, for tests.
type poolCounts struct{ idle, alive, started int }

func (p *workerPool) counts() poolCounts {
	defer p.lockAll()()
	var c poolCounts
	for i := range p.shards {
		sh := &p.shards[i]
		c.idle += len(sh.idle)
		c.alive += sh.alive
		c.started += sh.started
	}
	return c
}
