package actors

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// waitPool polls p until ok holds for its counts; the deadline only keeps a broken pool from
// hanging the test.
func waitPool(t *testing.T, p *workerPool, what string, ok func(poolCounts) bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !ok(p.counts()); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the pool holds %+v, want %s", p.counts(), what)
		}
	}
}

// waitCounts waits until p holds exactly want.
func waitCounts(t *testing.T, p *workerPool, want poolCounts) {
	t.Helper()
	waitPool(t, p, fmt.Sprintf("%+v", want), func(c poolCounts) bool { return c == want })
}

// turns runs n turns on p that block until the returned release is called, and waits until
// all have started.
func turns(p *workerPool, n int) (release func()) {
	gate := make(chan struct{})
	var started sync.WaitGroup
	started.Add(n)
	for range n {
		p.Go(func() {
			started.Done()
			<-gate
		})
	}
	started.Wait()
	return func() { close(gate) }
}

func TestWorkersRunTurnsOnParkedWorkers(t *testing.T) {
	p := newWorkerPool(4, 1, time.Hour)
	for range 3 {
		ran := make(chan struct{})
		p.Go(func() { close(ran) })
		<-ran
		// One goroutine started in all: the parked worker runs every later turn.
		waitCounts(t, p, poolCounts{idle: 1, alive: 1, started: 1})
	}
}

// The parked workers are bounded: a burst of turns beyond the bound ends its extra workers
// when it is over, and the next burst reuses the parked ones before starting any.
func TestWorkersParkNoMoreThanTheirBound(t *testing.T) {
	const bound, burst = 4, 10
	p := newWorkerPool(bound, 1, time.Hour)
	release := turns(p, burst)
	if c := p.counts(); c.started != burst || c.idle != 0 {
		t.Fatalf("%d turns at once: the pool holds %+v, want %d started and none parked", burst, c, burst)
	}
	release()
	waitCounts(t, p, poolCounts{idle: bound, alive: bound, started: burst})

	release = turns(p, bound+1) // the parked ones and one new
	if c := p.counts(); c.started != burst+1 || c.idle != 0 {
		t.Fatalf("%d turns at once with %d parked: the pool holds %+v, want %d started", bound+1, bound, c, burst+1)
	}
	release()
	waitCounts(t, p, poolCounts{idle: bound, alive: bound, started: burst + 1})
}

// A worker parked through a whole trim interval ends; one that ran meanwhile stays.
func TestWorkersIdleForAnIntervalEnd(t *testing.T) {
	p := newWorkerPool(8, 1, time.Hour) // the test calls trimIdle itself
	turns(p, 3)()
	waitCounts(t, p, poolCounts{idle: 3, alive: 3, started: 3})

	p.trimIdle() // the first interval begins; all three parked before it
	waitCounts(t, p, poolCounts{idle: 3, alive: 3, started: 3})
	turns(p, 1)() // one runs in the first interval and parks again
	waitCounts(t, p, poolCounts{idle: 3, alive: 3, started: 3})

	p.trimIdle() // the two idle through the first interval end
	waitCounts(t, p, poolCounts{idle: 1, alive: 1, started: 3})
	p.trimIdle()
	waitCounts(t, p, poolCounts{idle: 0, alive: 0, started: 3})
	if p.armed.Load() {
		t.Fatal("the trim timer is armed with no worker parked")
	}

	turns(p, 1)() // an emptied pool starts a worker again
	waitCounts(t, p, poolCounts{idle: 1, alive: 1, started: 4})
}

// The trim timer ends idle workers by itself, and is armed again once the pool has emptied.
func TestWorkersTrimOnTheirTimer(t *testing.T) {
	p := newWorkerPool(4, 1, 10*time.Millisecond)
	turns(p, 3)()
	waitCounts(t, p, poolCounts{idle: 0, alive: 0, started: 3})
	turns(p, 2)()
	waitCounts(t, p, poolCounts{idle: 0, alive: 0, started: 5})
}

// A pool that parks none (Workers in race builds) runs each turn on a goroutine of its own.
func TestWorkersParkingNoneStillRunTurns(t *testing.T) {
	p := newWorkerPool(0, 1, time.Hour)
	turns(p, 3)()
	turns(p, 2)()
	if c := p.counts(); c != (poolCounts{}) {
		t.Fatalf("a pool that parks none holds %+v, want nothing", c)
	}
}

// With a shard per P, each shard parks at most its share of the bound, and the trim ends the
// parked workers of every shard.
func TestWorkersShardsKeepTheBound(t *testing.T) {
	const bound, procs, burst = 128, 4, 200
	p := newWorkerPool(bound, procs, time.Hour)
	if len(p.shards) != procs {
		t.Fatalf("%d shards for %d Ps, want %d", len(p.shards), procs, procs)
	}
	turns(p, burst)()
	waitPool(t, p, "every worker parked or ended", func(c poolCounts) bool { return c.alive == c.idle })
	if c := p.counts(); c.started != burst || c.idle > bound || c.idle == 0 {
		t.Fatalf("after %d turns at once the pool holds %+v, want %d started and 1–%d parked", burst, c, burst, bound)
	}
	for i := range p.shards {
		if n := len(p.shards[i].idle); n > bound/procs {
			t.Errorf("shard %d parks %d workers, want at most %d", i, n, bound/procs)
		}
	}
	p.trimIdle()
	p.trimIdle()
	waitCounts(t, p, poolCounts{idle: 0, alive: 0, started: burst})
}

// A worker that parks in a shard the running trim has already looked at must find the timer
// armed: the trim disarms it before it looks, and the park arms it again.
func TestWorkersParkingDuringATrimArmsTheTimer(t *testing.T) {
	for {
		p := newWorkerPool(64, 2, time.Hour) // the test runs trimIdle itself
		turns(p, 1)()
		waitCounts(t, p, poolCounts{idle: 1, alive: 1, started: 1})
		if p.shards[0].alive != 1 {
			continue // wanted: the worker in shard 0, which the trim looks at first
		}
		release := turns(p, 1) // the worker runs; nothing is parked
		p.shards[1].mu.Lock()  // the trim will wait here, after shard 0
		done := make(chan struct{})
		go func() { p.trimIdle(); close(done) }()
		for p.tick.Load() == 0 {
			time.Sleep(time.Millisecond)
		}
		time.Sleep(20 * time.Millisecond) // (had it not looked at shard 0 yet, it would find the worker there: armed either way)
		release()
		for parked := 0; parked == 0; time.Sleep(time.Millisecond) {
			p.shards[0].mu.Lock()
			parked = len(p.shards[0].idle)
			p.shards[0].mu.Unlock()
		}
		p.shards[1].mu.Unlock()
		<-done
		if !p.armed.Load() {
			t.Fatal("a worker is parked and the trim timer is disarmed")
		}
		return
	}
}

// The shards are a power of two at least as many as the Ps, at most 64, and each parks at
// least 16 workers; together they never park more than the bound.
func TestWorkersShardCount(t *testing.T) {
	for _, c := range []struct{ max, procs, shards int }{
		{1024, 1, 1}, {1024, 2, 2}, {1024, 3, 4}, {1024, 5, 8}, {1024, 33, 64}, {1024, 200, 64},
		{64, 8, 4}, {100, 4, 4}, {16, 4, 1},
	} {
		p := newWorkerPool(c.max, c.procs, time.Hour)
		total := 0
		for i := range p.shards {
			total += p.shards[i].max
		}
		if len(p.shards) != c.shards || total > c.max || p.shards[0].max < min(16, c.max) {
			t.Errorf("max %d, %d Ps: %d shards of %d, want %d shards of at least 16, %d in all at most",
				c.max, c.procs, len(p.shards), p.shards[0].max, c.shards, c.max)
		}
	}
}
