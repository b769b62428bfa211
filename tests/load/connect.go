package main

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// runConnect opens o.Conns connections, o.Parallel at a time, each waiting
// for its CONNACK, and reports the rate. With idle set it then holds them
// for o.Hold and reports the broker's RSS growth per connection and its
// CPU use while they sit idle. Bounded by o.Duration for the opening phase.
func runConnect(o *options, idle bool) (*result, error) {
	res := newResult(o)
	runID := newRunID()
	rss0, _ := procRSS(o.PID)
	clients := make([]*client, o.Conns)
	lat := make([]hist, o.Parallel)
	var next, opened atomic.Int64
	var firstErr error
	var mu sync.Mutex
	stopAt := time.Now().Add(o.Duration)
	m0 := markCPU(o.PID)
	var wg sync.WaitGroup
	for w := range o.Parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stopAt) {
				i := int(next.Add(1) - 1)
				if i >= o.Conns {
					return
				}
				t := time.Now()
				d := o.dialOpts(fmt.Sprintf("%s-%x-c%d", o.Prefix, runID, i))
				// Held connections only read a CONNACK: 32 KB each would be fresh memory
				// (page faults) on every connect, the generator's not the broker's.
				d.readBuf, d.held = 512, true
				c, err := dial(d, nil)
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("connection %d: %w", i, err)
					}
					mu.Unlock()
					next.Store(int64(o.Conns))
					return
				}
				lat[w].add(int64(time.Since(t)))
				clients[i] = c
				opened.Add(1)
			}
		}()
	}
	wg.Wait()
	m1 := markCPU(o.PID)
	defer func() {
		_ = parallel(len(clients), o.Parallel, func(i int) error {
			if clients[i] != nil {
				clients[i].Close()
			}
			return nil
		})
	}()
	var h hist
	for i := range lat {
		h.merge(&lat[i])
	}
	res.setLatency(&h)
	res.Connections = int(opened.Load())
	wall := m1.at.Sub(m0.at).Seconds()
	res.ConnectsPerS = float64(res.Connections) / wall
	res.Seconds = wall
	res.setCPU(o, m0, m1, int64(res.Connections))
	if idle {
		time.Sleep(o.Hold / 2)
		a := markCPU(o.PID)
		time.Sleep(o.Hold / 2)
		b := markCPU(o.PID)
		if a.ok && b.ok {
			res.BrokerIdleCPU = (b.broker - a.broker).Seconds() / b.at.Sub(a.at).Seconds()
		}
		rss1, ok := procRSS(o.PID)
		if ok && res.Connections > 0 {
			res.BrokerRSSStartKB = rss0
			res.BrokerRSSKB = rss1
			res.RSSPerConnKB = float64(rss1-rss0) / float64(res.Connections)
		}
	}
	if firstErr != nil {
		res.Error = firstErr.Error()
	}
	return res, nil
}
