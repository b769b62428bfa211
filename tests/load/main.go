// Command load is actormq's load generator: it drives any MQTT broker on
// this machine with one workload per run and prints one JSON line of
// results on stdout and a summary on stderr.
//
//	go run ./tests/load -url tcp://127.0.0.1:1883 -workload fan-in -qos 1 -pid $(pidof actormq)
//
// Workloads: fan-in, fan-out, pairs (closed loop, or fixed rate with
// -rate), retained, connect-rate and idle. See docs/BENCHMARKS.md.
package main

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"time"

	"github.com/actormq/actormq/codec"
)

type options struct {
	Persistent   bool
	URL          string
	Workload     string
	QoS          int
	Proto        string
	Pubs         int
	Subs         int
	Pairs        int
	Conns        int
	Parallel     int
	Retained     int
	Size         int
	Duration     time.Duration
	Warmup       time.Duration
	Drain        time.Duration
	Hold         time.Duration
	Rate         float64
	Window       int
	Inflight     int
	StallTimeout time.Duration
	Timeout      time.Duration
	PID          int
	Procs        int
	GOGC         int
	Prefix       string
	Label        string
	Sources      int
	CPUProfile   string
	TimeAt       string

	target target
	ver    codec.Version
	window int64
}

func (o *options) flags(fs *flag.FlagSet) {
	fs.StringVar(&o.URL, "url", "tcp://127.0.0.1:1883", "broker: tcp://HOST:PORT or ws://HOST:PORT/mqtt (loopback only)")
	fs.StringVar(&o.Workload, "workload", "fan-in", "fan-in | fan-out | pairs | retained | connect-rate | idle")
	fs.IntVar(&o.QoS, "qos", 0, "QoS of publishes and subscriptions: 0, 1 or 2")
	fs.StringVar(&o.Proto, "proto", "3.1.1", "MQTT version: 3.1.1 or 5.0")
	fs.IntVar(&o.Pubs, "pubs", 50, "fan-in: publishers")
	fs.IntVar(&o.Subs, "subs", 100, "fan-out: subscribers")
	fs.IntVar(&o.Pairs, "pairs", 200, "pairs: publisher/subscriber pairs")
	fs.IntVar(&o.Conns, "conns", 10000, "connect-rate, idle: connections to open")
	fs.IntVar(&o.Parallel, "parallel", 50, "connections opened in parallel (setup, connect-rate, idle)")
	fs.IntVar(&o.Retained, "retained", 10000, "retained: retained messages to load")
	fs.IntVar(&o.Size, "size", 64, "payload bytes (at least 24)")
	fs.DurationVar(&o.Duration, "duration", 5*time.Second, "measurement window (every run stops by itself)")
	fs.DurationVar(&o.Warmup, "warmup", time.Second, "load before the measurement window")
	fs.DurationVar(&o.Drain, "drain", 5*time.Second, "after publishing stops, wait at most this for deliveries")
	fs.DurationVar(&o.Hold, "hold", 2*time.Second, "idle: how long to hold the connections before measuring")
	fs.Float64Var(&o.Rate, "rate", 0, "fixed-rate mode: offered deliveries/s in total (publishes/s × subscribers per message); 0 = closed loop")
	fs.IntVar(&o.Window, "window", -1, "closed loop: undelivered messages per publisher (-1: fan-in 100 at QoS 0 / 16 at QoS>0, fan-out 100, pairs 20)")
	fs.IntVar(&o.Inflight, "inflight", 100, "QoS>0 publishes awaiting acknowledgement per connection (capped by the broker's Receive Maximum)")
	fs.DurationVar(&o.StallTimeout, "stall-timeout", time.Second, "closed loop: write a publisher's outstanding messages off after this long without any delivery")
	fs.DurationVar(&o.Timeout, "timeout", 10*time.Second, "connect and subscribe timeout")
	fs.IntVar(&o.PID, "pid", 0, "broker PID: its CPU and RSS from /proc")
	fs.IntVar(&o.Procs, "procs", 1, "GOMAXPROCS of the generator (1 leaves the broker a core)")
	fs.IntVar(&o.GOGC, "gc", 400, "GOGC of the generator")
	fs.StringVar(&o.Prefix, "prefix", "load", "topic and client id prefix")
	fs.StringVar(&o.Label, "label", "", "copied into the result (e.g. the broker's name)")
	fs.BoolVar(&o.Persistent, "persistent", false, "sessions that outlive their connection (3.1.1 clean session off, 5.0 Session Expiry 300 s), which a broker with a store writes to disk")
	fs.StringVar(&o.TimeAt, "time-at", "socket", "where a delivery is timed: socket (when it reached the subscriber's socket, from the kernel; Linux TCP) or reader (when the subscriber's goroutine got to it, as most tools do)")
	fs.StringVar(&o.CPUProfile, "cpuprofile", "", "write the generator's own CPU profile to this file (to see what limits it when it saturates)")
	fs.IntVar(&o.Sources, "sources", 1, "local addresses 127.0.0.1 … 127.0.0.N to dial from, in turn (past ~14,000 connections per source address, connect(2) itself slows down)")
}

func (o *options) check() error {
	t, err := parseTarget(o.URL)
	if err != nil {
		return err
	}
	if o.Sources == 0 {
		o.Sources = 1
	}
	if o.Sources < 1 || o.Sources > 254 {
		return fmt.Errorf("-sources %d: want 1 to 254", o.Sources)
	}
	if o.Sources > 1 && !isIPv4Loopback(t.addr) {
		return fmt.Errorf("-sources %d: the target must be an IPv4 loopback address", o.Sources)
	}
	t.sources = o.Sources
	o.target = t
	switch o.Proto {
	case "3.1.1", "4", "311":
		o.ver = codec.V311
	case "5.0", "5":
		o.ver = codec.V5
	default:
		return fmt.Errorf("-proto %q: want 3.1.1 or 5.0", o.Proto)
	}
	if o.QoS < 0 || o.QoS > 2 {
		return fmt.Errorf("-qos %d: want 0, 1 or 2", o.QoS)
	}
	switch o.TimeAt {
	case "":
		o.TimeAt = "socket"
	case "socket", "reader":
	default:
		return fmt.Errorf("-time-at %q: want socket or reader", o.TimeAt)
	}
	if o.Size < hdrSize {
		return fmt.Errorf("-size %d: at least %d bytes", o.Size, hdrSize)
	}
	if o.Duration <= 0 {
		return errors.New("-duration must be positive")
	}
	if o.Parallel < 1 {
		o.Parallel = 1
	}
	return nil
}

func (o *options) dialOpts(id string) dialOpts {
	return dialOpts{addr: o.target, ver: o.ver, clientID: id, keepAlive: 60, inflight: o.Inflight, clean: !o.Persistent, timeout: o.Timeout,
		timeAtSocket: o.TimeAt != "reader"}
}

// result is the JSON line of one run.
type result struct {
	Label    string  `json:"label,omitempty"`
	Workload string  `json:"workload"`
	URL      string  `json:"url"`
	Proto    string  `json:"proto"`
	QoS      int     `json:"qos"`
	Size     int     `json:"size"`
	Pubs     int     `json:"pubs,omitempty"`
	Subs     int     `json:"subs,omitempty"`
	Window   int     `json:"window,omitempty"`
	Rate     float64 `json:"rate,omitempty"`
	Seconds  float64 `json:"seconds"`

	DeliveriesPerS float64 `json:"deliveries_per_s,omitempty"`
	PublishesPerS  float64 `json:"publishes_per_s,omitempty"`
	Sent           int64   `json:"sent,omitempty"`
	Expected       int64   `json:"expected,omitempty"`
	Delivered      int64   `json:"delivered"`
	Lost           int64   `json:"lost"`
	Duplicates     int64   `json:"duplicates"`
	Reordered      int64   `json:"reordered"`
	Stalls         int64   `json:"stalls,omitempty"`
	Rejected       int64   `json:"rejected,omitempty"`

	P50ms float64 `json:"p50_ms,omitempty"`
	P90ms float64 `json:"p90_ms,omitempty"`
	P99ms float64 `json:"p99_ms,omitempty"`
	MaxMs float64 `json:"max_ms,omitempty"`
	// TimedAt says where deliveries were timed: "socket" (the kernel's receive time, Linux TCP),
	// "reader" (when the subscriber's goroutine got to them: WebSocket, other systems) or
	// "socket and reader".
	TimedAt string `json:"timed_at,omitempty"`

	ConnectsPerS   float64 `json:"connects_per_s,omitempty"`
	Connections    int     `json:"connections,omitempty"`
	Sources        int     `json:"sources,omitempty"` // local addresses dialled from, when more than one
	RetainedMs     float64 `json:"retained_ms,omitempty"`
	RSSPerConnKB   float64 `json:"broker_rss_per_conn_kb,omitempty"`
	BrokerIdleCPU  float64 `json:"broker_idle_cpu_cores,omitempty"`
	ClientCPUCores float64 `json:"client_cpu_cores"`
	ClientProcs    int     `json:"client_procs"`
	ClientSat      bool    `json:"client_saturated"`

	BrokerCPUCores   float64 `json:"broker_cpu_cores,omitempty"`
	BrokerCPUusMsg   float64 `json:"broker_cpu_us_per_msg,omitempty"`
	BrokerRSSKB      int64   `json:"broker_rss_kb,omitempty"`
	BrokerRSSStartKB int64   `json:"broker_rss_start_kb,omitempty"`

	Error string `json:"error,omitempty"`
}

func newResult(o *options) *result {
	r := &result{Label: o.Label, Workload: o.Workload, URL: o.target.String(), Proto: o.Proto, QoS: o.QoS,
		Size: o.Size, Rate: o.Rate, Seconds: o.Duration.Seconds(), ClientProcs: runtime.GOMAXPROCS(0)}
	if o.Sources > 1 {
		r.Sources = o.Sources
	}
	switch o.Workload {
	case "fan-in":
		r.Pubs, r.Subs = o.Pubs, 1
	case "fan-out":
		r.Pubs, r.Subs = 1, o.Subs
	case "pairs":
		r.Pubs, r.Subs = o.Pairs, o.Pairs
	}
	return r
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func (r *result) setLatency(h *hist) {
	r.P50ms = ms(h.quantile(0.50))
	r.P90ms = ms(h.quantile(0.90))
	r.P99ms = ms(h.quantile(0.99))
	r.MaxMs = ms(time.Duration(h.max))
}

// setCPU fills the client's and the broker's CPU use between two marks;
// msgs is what was delivered between them.
func (r *result) setCPU(o *options, a, b cpuMark, msgs int64) {
	wall := b.at.Sub(a.at).Seconds()
	if wall <= 0 {
		return
	}
	r.ClientCPUCores = (b.self - a.self).Seconds() / wall
	r.ClientSat = r.ClientCPUCores >= 0.9*float64(r.ClientProcs)
	if a.ok && b.ok {
		r.BrokerCPUCores = (b.broker - a.broker).Seconds() / wall
		if msgs > 0 {
			r.BrokerCPUusMsg = float64((b.broker - a.broker).Microseconds()) / float64(msgs)
		}
	}
}

func newRunID() uint32 {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return binary.LittleEndian.Uint32(b[:]) | 1
}

// run executes one workload.
func run(o *options) (*result, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	switch o.Workload {
	case "fan-in", "fan-out", "pairs":
		return runFlow(o)
	case "retained":
		return runRetained(o)
	case "connect-rate":
		return runConnect(o, false)
	case "idle":
		return runConnect(o, true)
	}
	return nil, fmt.Errorf("-workload %q: want fan-in, fan-out, pairs, retained, connect-rate or idle", o.Workload)
}

func (r *result) summary(w io.Writer) {
	fmt.Fprintf(w, "%s %s qos%d %s", r.Workload, r.URL, r.QoS, r.Proto)
	if r.Label != "" {
		fmt.Fprintf(w, " [%s]", r.Label)
	}
	fmt.Fprintln(w)
	switch r.Workload {
	case "fan-in", "fan-out", "pairs":
		mode := fmt.Sprintf("closed loop, window %d", r.Window)
		if r.Rate > 0 {
			mode = fmt.Sprintf("fixed rate %.0f deliveries/s", r.Rate)
		}
		fmt.Fprintf(w, "  %d pubs → %d subs, %s, %.0fs\n", r.Pubs, r.Subs, mode, r.Seconds)
		fmt.Fprintf(w, "  deliveries/s %.0f  (publishes/s %.0f)\n", r.DeliveriesPerS, r.PublishesPerS)
		fmt.Fprintf(w, "  latency p50 %.2f  p90 %.2f  p99 %.2f  max %.2f ms (timed at the %s)\n", r.P50ms, r.P90ms, r.P99ms, r.MaxMs, r.TimedAt)
		fmt.Fprintf(w, "  sent %d  expected %d  delivered %d  lost %d  duplicates %d  reordered %d  stalls %d\n",
			r.Sent, r.Expected, r.Delivered, r.Lost, r.Duplicates, r.Reordered, r.Stalls)
	case "retained":
		fmt.Fprintf(w, "  %d retained: delivered %d in %.1f ms, lost %d, duplicates %d\n", r.Expected, r.Delivered, r.RetainedMs, r.Lost, r.Duplicates)
	case "connect-rate", "idle":
		fmt.Fprintf(w, "  %d connections, %.0f connects/s, connect p50 %.2f p99 %.2f ms\n", r.Connections, r.ConnectsPerS, r.P50ms, r.P99ms)
		if r.RSSPerConnKB != 0 {
			fmt.Fprintf(w, "  broker RSS %d → %d KB: %.2f KB per connection; idle CPU %.3f cores\n", r.BrokerRSSStartKB, r.BrokerRSSKB, r.RSSPerConnKB, r.BrokerIdleCPU)
		}
	}
	if r.BrokerCPUCores > 0 {
		fmt.Fprintf(w, "  broker CPU %.2f cores, %.2f µs per delivery, RSS %d KB\n", r.BrokerCPUCores, r.BrokerCPUusMsg, r.BrokerRSSKB)
	}
	sat := ""
	if r.ClientSat {
		sat = "  — client saturated: the figures above are a lower bound for the broker"
	}
	fmt.Fprintf(w, "  client CPU %.2f of %d cores%s\n", r.ClientCPUCores, r.ClientProcs, sat)
	if r.Error != "" {
		fmt.Fprintf(w, "  error: %s\n", r.Error)
	}
}

func main() {
	var o options
	fs := flag.NewFlagSet("load", flag.ExitOnError)
	o.flags(fs)
	_ = fs.Parse(os.Args[1:])
	if o.Procs > 0 {
		runtime.GOMAXPROCS(o.Procs)
	}
	if o.GOGC > 0 {
		debug.SetGCPercent(o.GOGC)
	}
	if o.CPUProfile != "" {
		f, err := os.Create(o.CPUProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "load: -cpuprofile:", err)
			os.Exit(1)
		}
	}
	res, err := run(&o)
	pprof.StopCPUProfile()
	if err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(1)
	}
	line, _ := json.Marshal(res)
	fmt.Println(string(line))
	res.summary(os.Stderr)
	if res.Error != "" {
		os.Exit(2)
	}
}

func isIPv4Loopback(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	ip := net.ParseIP(host)
	return err == nil && ip != nil && ip.To4() != nil && ip.IsLoopback()
}
