package main

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"
)

// runRetained loads o.Retained retained messages on distinct topics (QoS 1,
// every PUBACK awaited), then times a new subscriber on prefix/# until it
// has received them all, or until nothing new has arrived for 3 s. The
// retained messages are cleared at the end.
func runRetained(o *options) (*result, error) {
	res := newResult(o)
	runID := newRunID()
	prefix := o.Prefix + "/" + strconv.FormatUint(uint64(runID), 16) + "/ret"
	n := o.Retained
	topics := make([]string, n)
	for i := range topics {
		topics[i] = prefix + "/" + strconv.Itoa(i)
	}
	pub, err := dial(o.dialOpts(fmt.Sprintf("%s-%x-rp", o.Prefix, runID)), nil)
	if err != nil {
		return nil, err
	}
	defer pub.Close()
	payload := make([]byte, o.Size)
	binary.LittleEndian.PutUint32(payload[offRun:], runID)
	publishAll := func(body []byte) error {
		for i, t := range topics {
			if body != nil {
				binary.LittleEndian.PutUint64(payload[offSeq:], uint64(i))
			}
			if err := pub.Publish(t, body, 1, true); err != nil {
				return err
			}
		}
		if err := pub.Flush(); err != nil {
			return err
		}
		deadline := time.Now().Add(o.Timeout)
		for !pub.InflightIdle() {
			if time.Now().After(deadline) {
				return fmt.Errorf("retained: PUBACKs still missing after %v", o.Timeout)
			}
			time.Sleep(time.Millisecond)
		}
		return nil
	}
	if err := publishAll(payload); err != nil {
		return nil, err
	}
	defer func() { _ = publishAll([]byte{}) }() // clear them

	seen := make([]bool, n)
	var unique, dups atomic.Int64
	var lastAt atomic.Int64
	t0 := time.Now()
	done := make(chan struct{})
	sub, err := dial(o.dialOpts(fmt.Sprintf("%s-%x-rs", o.Prefix, runID)), func(b []byte, _ int64) {
		if len(b) < hdrSize || binary.LittleEndian.Uint32(b[offRun:]) != runID {
			return
		}
		i := int(binary.LittleEndian.Uint64(b[offSeq:]))
		if i >= n {
			return
		}
		if seen[i] {
			dups.Add(1)
			return
		}
		seen[i] = true
		lastAt.Store(int64(time.Since(t0)))
		if unique.Add(1) == int64(n) {
			close(done)
		}
	})
	if err != nil {
		return nil, err
	}
	defer sub.Close()
	m0 := markCPU(o.PID)
	t0 = time.Now()
	if err := sub.Subscribe(prefix+"/#", byte(o.QoS), o.Timeout); err != nil {
		return nil, err
	}
	// Bounded: all of them, 3 s without progress, or the run's duration.
	limit := time.After(o.Duration)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	prev, prevAt := int64(0), time.Now()
wait:
	for {
		select {
		case <-done:
			break wait
		case <-limit:
			break wait
		case <-tick.C:
			if u := unique.Load(); u != prev {
				prev, prevAt = u, time.Now()
			} else if time.Since(prevAt) > 3*time.Second {
				break wait
			}
		}
	}
	m1 := markCPU(o.PID)
	res.Expected = int64(n)
	res.Delivered = unique.Load()
	res.Lost = int64(n) - res.Delivered
	res.Duplicates = dups.Load()
	res.RetainedMs = float64(time.Duration(lastAt.Load()).Microseconds()) / 1000
	res.setCPU(o, m0, m1, res.Delivered)
	res.BrokerRSSKB, _ = procRSS(o.PID)
	return res, nil
}
