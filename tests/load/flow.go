package main

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// The payload header: send time (ns since the run's start, monotonic),
// publisher index, sequence number and run id; the rest is padding.
const (
	offTS   = 0
	offPub  = 8
	offSeq  = 12
	offRun  = 20
	hdrSize = 24
)

// publisher is one publishing connection and its closed-loop accounting.
type publisher struct {
	c       *client
	idx     int
	topic   string
	payload []byte
	fan     int64 // deliveries expected per publish

	sent      atomic.Int64
	delivered atomic.Int64 // unique deliveries counted by the subscribers
	writeOff  atomic.Int64 // deliveries given up on after a stall
	waiting   atomic.Bool
	wake      chan struct{}
	lowWater  int64
	stalls    atomic.Int64
}

func (p *publisher) outstanding() int64 {
	return p.sent.Load()*p.fan - p.delivered.Load() - p.writeOff.Load()
}

// subscriber is one subscribing connection; its fields other than recv are
// touched only by its reader goroutine until that goroutine has ended.
type subscriber struct {
	c        *client
	seen     [][]uint64 // per publisher: a bitset of sequence numbers
	maxSeq   []int64
	recv     atomic.Int64
	unique   int64
	dups     int64
	reorder  int64
	inWindow int64
	h        hist
	timed    [2]int64 // deliveries in h by where they were timed: [atSocket], [atReader]
}

// Where a delivery was timed (subscriber.timed).
const (
	atSocket = iota // the kernel's receive time (rxstamp_linux.go)
	atReader        // when the subscriber's goroutine got to it
)

// flowRun is one fan-in, fan-out or pairs run.
type flowRun struct {
	o    *options
	run  uint32
	t0   time.Time
	pubs []*publisher
	subs []*subscriber

	warmEnd, stopAt int64 // ns since t0
	started         atomic.Bool
}

func (f *flowRun) now() int64 { return int64(time.Since(f.t0)) }

func (f *flowRun) handler(s *subscriber) onPublish {
	wall0 := f.t0.UnixNano()
	return func(b []byte, rx int64) {
		if len(b) < hdrSize || binary.LittleEndian.Uint32(b[offRun:]) != f.run || !f.started.Load() {
			return
		}
		now, at := f.now(), atReader
		if rx != 0 {
			// When it reached the socket, on the clock of the payload's stamp.
			now, at = min(now, rx-wall0), atSocket
		}
		ts := int64(binary.LittleEndian.Uint64(b[offTS:]))
		pi := int(binary.LittleEndian.Uint32(b[offPub:]))
		seq := int64(binary.LittleEndian.Uint64(b[offSeq:]))
		s.recv.Add(1)
		if pi >= len(f.pubs) {
			return
		}
		w := int(seq >> 6)
		bs := s.seen[pi]
		if w >= len(bs) {
			bs = append(bs, make([]uint64, w+1-len(bs)+len(bs)/2)...)
			s.seen[pi] = bs
		}
		bit := uint64(1) << (seq & 63)
		if bs[w]&bit != 0 {
			s.dups++
			return
		}
		bs[w] |= bit
		s.unique++
		if seq < s.maxSeq[pi] {
			s.reorder++
		} else {
			s.maxSeq[pi] = seq
		}
		p := f.pubs[pi]
		p.delivered.Add(1)
		if p.waiting.Load() && p.outstanding() <= p.lowWater {
			select {
			case p.wake <- struct{}{}:
			default:
			}
		}
		if ts >= f.warmEnd && ts < f.stopAt {
			s.timed[at]++
			s.h.add(now - ts)
		}
		if now >= f.warmEnd && now < f.stopAt {
			s.inWindow++
		}
	}
}

// setupFlow connects subscribers, then publishers, for the workload.
func setupFlow(o *options, f *flowRun) error {
	prefix := o.Prefix + "/" + strconv.FormatUint(uint64(f.run), 16)
	var nPubs, nSubs int
	var fan int64 = 1
	switch o.Workload {
	case "fan-in":
		nPubs, nSubs = o.Pubs, 1
	case "fan-out":
		nPubs, nSubs = 1, o.Subs
		fan = int64(o.Subs)
	case "pairs":
		nPubs, nSubs = o.Pairs, o.Pairs
	}
	f.pubs = make([]*publisher, nPubs)
	f.subs = make([]*subscriber, nSubs)
	for i := range f.subs {
		f.subs[i] = &subscriber{seen: make([][]uint64, nPubs), maxSeq: make([]int64, nPubs)}
		for j := range f.subs[i].maxSeq {
			f.subs[i].maxSeq[j] = -1
		}
	}
	window := int64(o.Window)
	if window < 0 {
		window = defaultWindow(o)
	}
	for i := range f.pubs {
		p := &publisher{idx: i, fan: fan, wake: make(chan struct{}, 1), payload: make([]byte, o.Size)}
		switch o.Workload {
		case "fan-in":
			p.topic = prefix + "/in/" + strconv.Itoa(i)
		case "fan-out":
			p.topic = prefix + "/out"
		case "pairs":
			p.topic = prefix + "/p/" + strconv.Itoa(i)
		}
		binary.LittleEndian.PutUint32(p.payload[offPub:], uint32(i))
		binary.LittleEndian.PutUint32(p.payload[offRun:], f.run)
		p.lowWater = window * fan / 2
		f.pubs[i] = p
	}
	o.window = window
	err := parallel(len(f.subs), o.Parallel, func(i int) error {
		s := f.subs[i]
		c, err := dial(o.dialOpts(fmt.Sprintf("%s-%x-s%d", o.Prefix, f.run, i)), f.handler(s))
		if err != nil {
			return err
		}
		s.c = c
		filter := prefix + "/out"
		switch o.Workload {
		case "fan-in":
			filter = prefix + "/in/+"
		case "pairs":
			filter = prefix + "/p/" + strconv.Itoa(i)
		}
		return c.Subscribe(filter, byte(o.QoS), o.Timeout)
	})
	if err != nil {
		return fmt.Errorf("subscribers: %w", err)
	}
	err = parallel(len(f.pubs), o.Parallel, func(i int) error {
		c, err := dial(o.dialOpts(fmt.Sprintf("%s-%x-p%d", o.Prefix, f.run, i)), nil)
		f.pubs[i].c = c
		return err
	})
	if err != nil {
		return fmt.Errorf("publishers: %w", err)
	}
	return nil
}

func defaultWindow(o *options) int64 {
	switch o.Workload {
	case "fan-in":
		if o.QoS == 0 {
			return 100
		}
		return 16
	case "fan-out":
		return 100
	}
	return 20
}

// publishLoop runs one publisher until stopAt: closed loop (at most window
// deliveries outstanding) or, with a rate, paced at its share of it.
func (f *flowRun) publishLoop(p *publisher, wg *sync.WaitGroup, errs chan<- error) {
	defer wg.Done()
	o := f.o
	qos := byte(o.QoS)
	limit := o.window * p.fan
	var interval, next int64
	if o.Rate > 0 {
		perPub := o.Rate / float64(p.fan) / float64(len(f.pubs))
		interval = int64(float64(time.Second) / perPub)
		next = f.now() + interval*int64(p.idx)/int64(len(f.pubs))
	}
	stall := time.NewTimer(time.Hour)
	defer stall.Stop()
	for seq := int64(0); ; seq++ {
		now := f.now()
		if now >= f.stopAt {
			break
		}
		ts := now
		if interval > 0 {
			if now < next {
				if p.c.Flush() != nil {
					break
				}
				time.Sleep(time.Duration(next - now))
			}
			// Paced by the schedule, stamped with the actual send time: a
			// late wake-up of this process is not the broker's latency.
			ts = f.now()
			next += interval
		} else if limit > 0 && p.outstanding() >= limit {
			if p.c.Flush() != nil {
				break
			}
			for p.outstanding() >= limit {
				p.waiting.Store(true)
				if p.outstanding() < limit {
					p.waiting.Store(false)
					break
				}
				stall.Reset(o.StallTimeout)
				before := p.delivered.Load()
				select {
				case <-p.wake:
				case <-stall.C:
					if p.delivered.Load() == before {
						// Nothing arrived for a whole stall timeout: write
						// the outstanding messages off (they count as lost).
						p.stalls.Add(1)
						p.writeOff.Add(p.outstanding())
					}
				case <-p.c.done:
					p.waiting.Store(false)
					errs <- fmt.Errorf("publisher %d: %v", p.idx, p.c.errOr())
					return
				}
				if !stall.Stop() {
					select {
					case <-stall.C:
					default:
					}
				}
				p.waiting.Store(false)
			}
			if f.now() >= f.stopAt {
				break
			}
		}
		binary.LittleEndian.PutUint64(p.payload[offTS:], uint64(ts))
		binary.LittleEndian.PutUint64(p.payload[offSeq:], uint64(seq))
		if err := p.c.Publish(p.topic, p.payload, qos, false); err != nil {
			errs <- fmt.Errorf("publisher %d: %v", p.idx, err)
			return
		}
		p.sent.Add(1)
	}
	if err := p.c.Flush(); err != nil {
		errs <- fmt.Errorf("publisher %d: %v", p.idx, err)
	}
}

func runFlow(o *options) (*result, error) {
	f := &flowRun{o: o, run: newRunID(), t0: time.Now()}
	if err := setupFlow(o, f); err != nil {
		f.close()
		return nil, err
	}
	defer f.close()
	res := newResult(o)
	res.Window = int(o.window)
	rssStart, _ := procRSS(o.PID)
	f.warmEnd = f.now() + int64(o.Warmup)
	f.stopAt = f.warmEnd + int64(o.Duration)
	f.started.Store(true)
	var wg sync.WaitGroup
	errs := make(chan error, len(f.pubs))
	for _, p := range f.pubs {
		wg.Add(1)
		go f.publishLoop(p, &wg, errs)
	}
	time.Sleep(time.Until(f.t0.Add(time.Duration(f.warmEnd))))
	m0 := markCPU(o.PID)
	time.Sleep(time.Until(f.t0.Add(time.Duration(f.stopAt))))
	m1 := markCPU(o.PID)
	rss, _ := procRSS(o.PID)
	wg.Wait()
	close(errs)
	var runErr error
	for err := range errs {
		if runErr == nil {
			runErr = err
		}
	}
	// Drain: wait until everything sent has arrived, or nothing new has
	// arrived for a while.
	var expected int64
	for _, p := range f.pubs {
		expected += p.sent.Load() * p.fan
	}
	recvd := func() int64 {
		var n int64
		for _, s := range f.subs {
			n += s.recv.Load()
		}
		return n
	}
	deadline := time.Now().Add(o.Drain)
	last, lastAt := recvd(), time.Now()
	for time.Now().Before(deadline) {
		n := recvd()
		if n >= expected {
			break
		}
		if n != last {
			last, lastAt = n, time.Now()
		} else if time.Since(lastAt) > 500*time.Millisecond {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Stop the readers before reading their counters.
	for _, s := range f.subs {
		s.c.Close()
		<-s.c.rdone
	}
	var h hist
	var unique, inWin int64
	for _, s := range f.subs {
		h.merge(&s.h)
		unique += s.unique
		res.Duplicates += s.dups
		res.Reordered += s.reorder
		inWin += s.inWindow
	}
	var sent, stalls int64
	for _, p := range f.pubs {
		sent += p.sent.Load()
		stalls += p.stalls.Load()
		res.Rejected += p.c.rejected.Load()
	}
	secs := o.Duration.Seconds()
	res.Sent = sent
	res.Expected = expected
	res.Delivered = unique
	res.Lost = expected - unique
	res.Stalls = stalls
	res.DeliveriesPerS = float64(inWin) / secs
	res.PublishesPerS = res.DeliveriesPerS / float64(f.pubs[0].fan)
	res.setLatency(&h)
	var timed [2]int64
	for _, s := range f.subs {
		timed[atSocket] += s.timed[atSocket]
		timed[atReader] += s.timed[atReader]
	}
	res.TimedAt = timedAt(timed)
	res.setCPU(o, m0, m1, inWin)
	if o.PID > 0 {
		res.BrokerRSSKB = rss
		res.BrokerRSSStartKB = rssStart
	}
	if runErr != nil {
		res.Error = runErr.Error()
	}
	return res, nil
}

func (f *flowRun) close() {
	for _, p := range f.pubs {
		if p != nil && p.c != nil {
			p.c.Close()
		}
	}
	for _, s := range f.subs {
		if s != nil && s.c != nil {
			s.c.Close()
		}
	}
}

// parallel runs fn(0..n-1) on at most k goroutines and returns the first error.
func parallel(n, k int, fn func(i int) error) error {
	if k < 1 {
		k = 1
	}
	var next atomic.Int64
	var first error
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range min(k, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := fn(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					next.Store(int64(n)) // stop handing out work
					return
				}
			}
		}()
	}
	wg.Wait()
	return first
}

// timedAt names where the measured deliveries were timed: at the socket, when read, or some
// of each (the kernel turns receive timestamps on a moment after the first socket asks).
func timedAt(n [2]int64) string {
	switch {
	case n[atSocket] == 0 && n[atReader] == 0:
		return "" // nothing measured
	case n[atReader] == 0:
		return "socket"
	case n[atSocket] == 0:
		return "reader"
	}
	return "socket and reader"
}
