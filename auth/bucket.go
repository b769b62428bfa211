package auth

import (
	"sync"
	"time"
)

// Bucket is a token bucket: rate tokens per second, at most burst saved up. It is not safe for
// concurrent use; each owner (a reader goroutine) has its own, and Keyed guards its map.
type Bucket struct {
	rate, burst float64
	tokens      float64
	last        time.Time
}

// NewBucket returns a full bucket. A burst below 1 is raised to 1 so that one event can pass.
func NewBucket(rate, burst float64) *Bucket {
	b := &Bucket{}
	b.init(rate, burst)
	return b
}

func (b *Bucket) init(rate, burst float64) {
	b.rate, b.burst = rate, max(burst, 1)
	b.tokens = b.burst
}

func (b *Bucket) refill(now time.Time) {
	if !b.last.IsZero() {
		b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	}
	b.last = now
}

// Take takes n tokens, going into debt if there are not enough, and returns the tokens left
// (negative: the debt).
func (b *Bucket) Take(now time.Time, n float64) float64 {
	b.refill(now)
	b.tokens -= n
	return b.tokens
}

// Allow takes n tokens only if they are there.
func (b *Bucket) Allow(now time.Time, n float64) bool {
	b.refill(now)
	if b.tokens < n {
		return false
	}
	b.tokens -= n
	return true
}

// Available is the tokens there now.
func (b *Bucket) Available(now time.Time) float64 {
	b.refill(now)
	return b.tokens
}

// Wait is how long until a debt of -tokens is paid back.
func (b *Bucket) Wait(tokens float64) time.Duration {
	if tokens >= 0 || b.rate <= 0 {
		return 0
	}
	return time.Duration(-tokens / b.rate * float64(time.Second))
}

// Keyed holds one bucket per key (a source address). Buckets that have refilled completely are
// forgotten, so a scan from many addresses costs memory only while it lasts.
type Keyed struct {
	rate, burst float64

	mu      sync.Mutex
	m       map[string]*Bucket
	lastGC  time.Time
	maxKeys int
}

// NewKeyed returns buckets of rate tokens per second and burst capacity per key.
func NewKeyed(rate, burst float64) *Keyed {
	return &Keyed{rate: rate, burst: max(burst, 1), m: make(map[string]*Bucket), maxKeys: 1 << 16}
}

// Allow takes n tokens from key's bucket if it has them.
func (k *Keyed) Allow(key string, now time.Time, n float64) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.bucket(key, now).Allow(now, n)
}

// Take takes n tokens from key's bucket, into debt if need be, and returns what is left.
func (k *Keyed) Take(key string, now time.Time, n float64) float64 {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.bucket(key, now).Take(now, n)
}

// Available is what key's bucket holds now.
func (k *Keyed) Available(key string, now time.Time) float64 {
	k.mu.Lock()
	defer k.mu.Unlock()
	if b := k.m[key]; b != nil {
		return b.Available(now)
	}
	return k.burst
}

// Len is the number of keys remembered.
func (k *Keyed) Len() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.m)
}

func (k *Keyed) bucket(key string, now time.Time) *Bucket {
	b := k.m[key]
	if b != nil {
		return b
	}
	if len(k.m) >= 1024 && now.Sub(k.lastGC) > time.Second {
		k.gc(now)
	}
	if len(k.m) >= k.maxKeys {
		// Past the cap even after forgetting full buckets: forget the fullest, rather
		// than grow without bound under a spoofed-source flood.
		k.gcAll()
	}
	b = &Bucket{}
	b.init(k.rate, k.burst)
	b.last = now
	k.m[key] = b
	return b
}

func (k *Keyed) gc(now time.Time) {
	k.lastGC = now
	for key, b := range k.m {
		if b.Available(now) >= b.burst {
			delete(k.m, key)
		}
	}
}

func (k *Keyed) gcAll() {
	for key := range k.m {
		delete(k.m, key)
		if len(k.m) < k.maxKeys/2 {
			return
		}
	}
}
