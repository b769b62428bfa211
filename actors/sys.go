package actors

import (
	"runtime/metrics"
	"strconv"
	"sync"
	"time"

	"github.com/actormq/actormq/codec"
)

// Version is the broker's version, published on $SYS/broker/version.
const Version = "0.1.0"

// SysPublisher publishes the broker's $SYS topics (Mosquitto's names) as retained messages,
// through the router like any publish, so that subscribers of "$SYS/#" get them and a plain
// "#" does not (topics implements the $ rule).
type SysPublisher struct {
	env     *Env
	started time.Time
	heapMax uint64
	heap    []metrics.Sample
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once
}

// StartSys publishes at once and then every interval until Stop.
func StartSys(env *Env, interval time.Duration) *SysPublisher {
	p := &SysPublisher{env: env, started: time.Now(), stop: make(chan struct{}), done: make(chan struct{}),
		heap: []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}}
	go p.run(interval)
	return p
}

// Stop ends the publisher and waits for its goroutine.
func (p *SysPublisher) Stop() {
	p.once.Do(func() { close(p.stop) })
	<-p.done
}

func (p *SysPublisher) run(interval time.Duration) {
	defer close(p.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		p.publishAll()
		select {
		case <-t.C:
		case <-p.stop:
			return
		}
	}
}

func (p *SysPublisher) publishAll() {
	s := p.env.Stats
	u := func(v uint64) string { return strconv.FormatUint(v, 10) }
	i := func(v int64) string { return strconv.FormatInt(v, 10) }
	total := int64(0)
	if p.env.Dir != nil {
		total = int64(p.env.Dir.Len())
	}
	connected := s.Connected.Load()
	// runtime/metrics, not ReadMemStats: no stop-the-world every interval.
	metrics.Read(p.heap)
	var heap uint64
	if p.heap[0].Value.Kind() == metrics.KindUint64 {
		heap = p.heap[0].Value.Uint64()
	}
	p.heapMax = max(p.heapMax, heap)
	dropped := s.DroppedQueue.Load() + s.DroppedTooLarge.Load() + s.DroppedExpired.Load()
	for _, kv := range [...][2]string{
		{"$SYS/broker/version", "actormq " + Version},
		{"$SYS/broker/uptime", strconv.FormatInt(int64(time.Since(p.started)/time.Second), 10) + " seconds"},
		{"$SYS/broker/clients/connected", i(connected)},
		{"$SYS/broker/clients/disconnected", i(max(total-connected, 0))},
		{"$SYS/broker/clients/total", i(total)},
		{"$SYS/broker/clients/maximum", i(s.MaxConnected.Load())},
		{"$SYS/broker/publish/messages/dropped", u(dropped)},
		{"$SYS/broker/heap/current", u(heap)},
		{"$SYS/broker/heap/maximum", u(p.heapMax)},
		{"$SYS/broker/messages/received", u(s.MessagesIn())},
		{"$SYS/broker/messages/sent", u(s.MessagesOut())},
		{"$SYS/broker/bytes/received", u(s.BytesIn.Load())},
		{"$SYS/broker/bytes/sent", u(s.BytesOut.Load())},
		{"$SYS/broker/subscriptions/count", i(s.Subscriptions.Load())},
		{"$SYS/broker/retained messages/count", i(s.Retained.Load())},
	} {
		p.publish(kv[0], kv[1])
	}
}

// publish routes one retained QoS 0 message, as Session.publishWill does: no publisher link,
// so no credit and no acknowledgement.
func (p *SysPublisher) publish(topic, payload string) {
	pub := &codec.Publish{Topic: topic, Payload: []byte(payload), Retain: true}
	p.env.System.Root.Send(p.env.Shards[p.env.shardOf(topic)], newRoute(p.env, pub, "", nil, time.Now()))
}
