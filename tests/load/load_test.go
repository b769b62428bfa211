package main

import (
	"context"
	"encoding/binary"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/actormq/actormq/codec"
	"github.com/actormq/actormq/config"
	"github.com/actormq/actormq/supervisor"
)

// startBroker starts a broker with the default configuration on free
// loopback ports and returns the address of its 3.1.1 and 5.0 TCP
// listeners and of its WebSocket listener.
func startBroker(t testing.TB) (tcp311, tcp5, ws string) {
	t.Helper()
	cfg := config.Default()
	for i := range cfg.Listeners {
		cfg.Listeners[i].Address = "127.0.0.1:0"
	}
	cfg.Console.Listen = ""
	cfg.Store.DataDir = t.TempDir() // not the default data/ beside the test
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config: %v", err)
	}
	b, err := supervisor.Start(cfg, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)))
	if err != nil {
		t.Fatalf("start broker: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := b.Stop(ctx); err != nil {
			t.Errorf("stop broker: %v", err)
		}
	})
	for _, l := range cfg.Listeners {
		addr := b.Addr(l.Name).String()
		switch l.Name {
		case "mqtt":
			tcp311 = addr
		case "mqtt5":
			tcp5 = addr
		case "ws":
			ws = addr
		}
	}
	return tcp311, tcp5, ws
}

func smokeOptions(url, workload string) *options {
	var o options
	o.URL = url
	o.Workload = workload
	o.QoS = 1
	o.Proto = "3.1.1"
	o.Pubs, o.Subs, o.Pairs = 10, 10, 10
	o.Parallel = 10
	o.Size = 64
	o.Duration = 300 * time.Millisecond
	o.Warmup = 100 * time.Millisecond
	o.Drain = 3 * time.Second
	o.Window = -1
	o.Inflight = 100
	o.StallTimeout = 2 * time.Second
	o.Timeout = 5 * time.Second
	o.Prefix = "smoke"
	o.Retained = 500
	o.Conns = 50
	o.Hold = 100 * time.Millisecond
	return &o
}

// TestSmoke runs the flow workloads briefly against an in-process broker:
// at QoS 1 nothing may be lost or duplicated.
func TestSmoke(t *testing.T) {
	tcp311, tcp5, ws := startBroker(t)
	cases := []struct {
		name, url, workload, proto string
		qos                        int
	}{
		{"fan-in", "tcp://" + tcp311, "fan-in", "3.1.1", 1},
		{"fan-out", "tcp://" + tcp311, "fan-out", "3.1.1", 1},
		{"pairs", "tcp://" + tcp311, "pairs", "3.1.1", 1},
		{"pairs-v5", "tcp://" + tcp5, "pairs", "5.0", 1},
		{"pairs-qos2-v5", "tcp://" + tcp5, "pairs", "5.0", 2},
		{"fan-in-ws", "ws://" + ws + "/mqtt", "fan-in", "5.0", 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := smokeOptions(c.url, c.workload)
			o.Proto, o.QoS = c.proto, c.qos
			res, err := run(o)
			if err != nil {
				t.Fatal(err)
			}
			if res.Error != "" {
				t.Fatal(res.Error)
			}
			if res.Delivered == 0 || res.DeliveriesPerS == 0 {
				t.Fatalf("nothing delivered: %+v", res)
			}
			if res.Lost != 0 || res.Duplicates != 0 {
				t.Fatalf("lost %d, duplicates %d (sent %d, expected %d, delivered %d)",
					res.Lost, res.Duplicates, res.Sent, res.Expected, res.Delivered)
			}
			// The kernel's receive time on Linux TCP (rxstamp_linux.go); it may take a moment
			// to be turned on, and a smoke run is short.
			if strings.HasPrefix(c.url, "ws://") || runtime.GOOS != "linux" {
				if res.TimedAt != "reader" {
					t.Errorf("deliveries timed at %q, want %q", res.TimedAt, "reader")
				}
			} else if res.TimedAt == "reader" {
				t.Errorf("deliveries timed at %q: none at the socket", res.TimedAt)
			}
			t.Logf("%.0f deliveries/s, p99 %.2f ms", res.DeliveriesPerS, res.P99ms)
		})
	}
	t.Run("fixed-rate", func(t *testing.T) {
		o := smokeOptions("tcp://"+tcp311, "pairs")
		o.Rate = 2000
		o.TimeAt = "reader" // as most tools time a delivery
		res, err := run(o)
		if err != nil {
			t.Fatal(err)
		}
		if res.Lost != 0 || res.Duplicates != 0 || res.DeliveriesPerS < 1000 || res.DeliveriesPerS > 3000 {
			t.Fatalf("fixed rate 2000/s: %+v", res)
		}
		if res.TimedAt != "reader" {
			t.Errorf("-time-at reader: deliveries timed at %q", res.TimedAt)
		}
	})
	t.Run("retained", func(t *testing.T) {
		res, err := run(smokeOptions("tcp://"+tcp311, "retained"))
		if err != nil {
			t.Fatal(err)
		}
		if res.Lost != 0 || res.Delivered != 500 {
			t.Fatalf("retained: %+v", res)
		}
	})
	t.Run("connect-rate", func(t *testing.T) {
		res, err := run(smokeOptions("tcp://"+tcp311, "connect-rate"))
		if err != nil {
			t.Fatal(err)
		}
		if res.Error != "" || res.Connections != 50 {
			t.Fatalf("connect-rate: %+v", res)
		}
	})
	t.Run("connect-rate-sources", func(t *testing.T) {
		o := smokeOptions("tcp://"+tcp311, "connect-rate")
		o.Sources = 3 // 127.0.0.1 … 127.0.0.3
		res, err := run(o)
		if err != nil {
			t.Fatal(err)
		}
		if res.Error != "" || res.Connections != 50 || res.Sources != 3 {
			t.Fatalf("connect-rate from 3 source addresses: %+v", res)
		}
	})
}

func TestRefusesNonLoopback(t *testing.T) {
	for _, u := range []string{"tcp://8.8.8.8:1883", "ws://192.0.2.1:8080/mqtt", "http://127.0.0.1:1"} {
		if _, err := parseTarget(u); err == nil {
			t.Errorf("%s accepted", u)
		}
	}
	if _, err := parseTarget("127.0.0.1:1883"); err != nil {
		t.Errorf("127.0.0.1:1883: %v", err)
	}
}

func TestHistQuantiles(t *testing.T) {
	var h hist
	for i := int64(1); i <= 1000; i++ {
		h.add(i * int64(time.Microsecond))
	}
	for _, q := range []float64{0.5, 0.9, 0.99} {
		want := q * 1000 * float64(time.Microsecond)
		got := float64(h.quantile(q))
		if got < want*0.97 || got > want*1.03 {
			t.Errorf("q%.2f = %v, want ~%v", q, time.Duration(got), time.Duration(want))
		}
	}
}

// discard is a net.Conn that swallows writes.
type discard struct{ net.Conn }

func (discard) Write(b []byte) (int, error) { return len(b), nil }

// TestPublishPathDoesNotAllocate: encoding a PUBLISH into the batch buffer
// and flushing it costs no allocation, at QoS 0 and (with a free inflight
// slot) at QoS 1.
func TestPublishPathDoesNotAllocate(t *testing.T) {
	for _, v := range []codec.Version{codec.V311, codec.V5} {
		c := &client{conn: discard{}, ver: v, wbuf: make([]byte, 0, flushAt+1024), tokens: make(chan struct{}, 1), done: make(chan struct{})}
		payload := make([]byte, 64)
		topic := "load/1/in/7"
		for _, qos := range []byte{0, 1} {
			allocs := testing.AllocsPerRun(1000, func() {
				if qos > 0 {
					c.tokens <- struct{}{}
				}
				binary.LittleEndian.PutUint64(payload, 42)
				if err := c.Publish(topic, payload, qos, false); err != nil {
					t.Fatal(err)
				}
				if err := c.Flush(); err != nil {
					t.Fatal(err)
				}
			})
			if allocs != 0 {
				t.Errorf("%v QoS %d: %.1f allocations per publish", v, qos, allocs)
			}
		}
	}
}
