package actors

import (
	"runtime"
	"sync"
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
// worker left parked through a whole trim interval ends, so an idle broker keeps none.
//
// Race builds park none (workersParked): the pool's mutex, taken at the end of one turn and
// the start of the next, would tell the race detector that unrelated turns are ordered and
// hide their races. The pool's own tests use pools of their own.
var Workers = newWorkerPool(workersParked, time.Second)

// maxIdleWorkers bounds the parked workers: enough for the turns of a few hundred busy
// connections at once (a fan-out to 100 subscribers has 300), and at most a few MB of stacks
// for the second or two they are kept. It bounds memory, not anything a client controls: a
// turn finding no parked worker starts a goroutine, as without the pool.
const maxIdleWorkers = 1024

// dispatcherThroughput is the messages an actor handles in one turn before it yields, as
// protoactor's default dispatcher has it.
const dispatcherThroughput = 300

type workerPool struct {
	mu       sync.Mutex
	idle     []*worker // parked workers, a stack: the bottom parked first
	max      int
	tick     uint64 // trim intervals begun
	trim     *time.Timer
	interval time.Duration
	armed    bool // trim runs after the interval
	alive    int  // workers, parked or running a turn
	started  int  // goroutines started, for tests
}

type worker struct {
	next chan func() // buffered, so Go never waits for the worker to reach its receive
	tick uint64      // the interval it parked in
}

func newWorkerPool(max int, interval time.Duration) *workerPool {
	p := &workerPool{max: max, interval: interval}
	p.trim = time.AfterFunc(time.Hour, p.trimIdle)
	p.trim.Stop()
	return p
}

// Go runs fn on a parked worker, or on a new goroutine when none is parked. A pool that parks
// none starts a goroutine and touches nothing shared.
func (p *workerPool) Go(fn func()) {
	if p.max == 0 {
		go fn()
		return
	}
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		w := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		w.next <- fn
		return
	}
	p.started++
	p.alive++
	p.mu.Unlock()
	go p.work(fn)
}

// Schedule and Throughput make the pool a protoactor dispatcher.
func (p *workerPool) Schedule(fn func()) { p.Go(fn) }
func (p *workerPool) Throughput() int    { return dispatcherThroughput }

func (p *workerPool) work(fn func()) {
	w := &worker{next: make(chan func(), 1)}
	for fn != nil {
		fn()
		if !p.park(w) {
			return
		}
		fn = <-w.next // nil from trimIdle ends the worker
	}
}

// park lists w as idle, unless max are already.
func (p *workerPool) park(w *worker) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.idle) >= p.max {
		p.alive--
		return false
	}
	w.tick = p.tick
	p.idle = append(p.idle, w)
	if !p.armed {
		p.armed = true
		p.trim.Reset(p.interval)
	}
	return true
}

// trimIdle begins an interval and ends the workers parked before the last one began: they
// have been idle for a whole interval. They are at the bottom of the stack, since a worker
// that runs parks again on top.
func (p *workerPool) trimIdle() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.tick++
	n := 0
	for n < len(p.idle) && p.idle[n].tick+1 < p.tick {
		p.idle[n].next <- nil // its channel is empty: nothing is sent to a parked worker but by Go
		n++
	}
	p.alive -= n
	rest := copy(p.idle, p.idle[n:])
	clear(p.idle[rest:])
	p.idle = p.idle[:rest]
	if p.armed = rest > 0; p.armed {
		p.trim.Reset(p.interval)
	}
}

// ParkedWorkers is how many of the process's goroutines are Workers' parked workers.
func ParkedWorkers() int {
	Workers.mu.Lock()
	defer Workers.mu.Unlock()
	return len(Workers.idle)
}

// UnparkedGoroutines is the process's goroutines but Workers' parked workers, which come and go
// with load: the count to watch for leaks. Both are read under the pool's lock, so no worker
// parks between the two (one being trimmed may still be counted, which errs on the safe side).
func UnparkedGoroutines() int {
	Workers.mu.Lock()
	defer Workers.mu.Unlock()
	return runtime.NumGoroutine() - len(Workers.idle)
}

// poolCounts is what a pool holds and has done, for tests.
type poolCounts struct{ idle, alive, started int }

func (p *workerPool) counts() poolCounts {
	p.mu.Lock()
	defer p.mu.Unlock()
	return poolCounts{len(p.idle), p.alive, p.started}
}
