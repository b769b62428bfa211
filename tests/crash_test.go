package tests

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/actormq/actormq/codec"
	"github.com/actormq/actormq/internal/brokertest"
)

// TestCrashKill9LosesNothingAcknowledged runs the broker as a real process under steady QoS 1
// load and kills it with SIGKILL several times at random moments, starting it again each time
// on the same data_dir. Every message a publisher got a PUBACK for must reach the persistent
// subscriber (at least once: QoS 1 may repeat [MQTT-4.3.2]), whatever the moment of the kill:
// with store.sync = "batch" a PUBACK is sent only once the message is on disk.
func TestCrashKill9LosesNothingAcknowledged(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the broker and kills it several times")
	}
	kills := crashKills()
	cr := newCrashBroker(t)
	cr.start()

	sub := newCrashSubscriber(t, cr.addr)
	const publishers = 4
	pubs := make([]*crashPublisher, publishers)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for i := range pubs {
		pubs[i] = &crashPublisher{t: t, id: fmt.Sprintf("crash-pub-%d", i), addr: cr.addr, acked: map[uint32]bool{}}
		wg.Add(1)
		go func(p *crashPublisher) { defer wg.Done(); p.run(stop) }(pubs[i])
	}
	cr.killAtRandom(kills, func(k int) {
		t.Logf("kill %d: %d acknowledged so far, %d received", k, countAcked(pubs), sub.count())
	})
	close(stop)
	wg.Wait()

	// Every acknowledged message arrives; the subscriber reconnects by itself.
	deadline := time.Now().Add(20 * time.Second)
	for {
		missing := 0
		for _, p := range pubs {
			p.mu.Lock()
			for seq := range p.acked {
				if !sub.has(p.id, seq) {
					missing++
				}
			}
			p.mu.Unlock()
		}
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d acknowledged messages never reached the persistent subscriber (%d acknowledged, %d received)",
				missing, countAcked(pubs), sub.count())
		}
		time.Sleep(50 * time.Millisecond)
	}
	total := countAcked(pubs)
	if total < 100 {
		t.Errorf("only %d messages acknowledged across %d kills: the load did not run", total, kills)
	}
	t.Logf("%d kills, %d messages acknowledged, all received (%d deliveries, duplicates allowed at QoS 1)", kills, total, sub.deliveries())
	sub.close()
	cr.stopGracefully()
	cr.expectNoPanic()
}

// crashKills is how many times a crash test kills the broker: 4, or 25 with ACTORMQ_LONG set.
func crashKills() int {
	if os.Getenv("ACTORMQ_LONG") != "" {
		return 25
	}
	return 4
}

func countAcked(pubs []*crashPublisher) int {
	n := 0
	for _, p := range pubs {
		p.mu.Lock()
		n += len(p.acked)
		p.mu.Unlock()
	}
	return n
}

// crashBroker is the broker binary, run and killed by a test on a fixed port and data_dir.
type crashBroker struct {
	t      *testing.T
	bin    string
	config string
	addr   string
	cmd    *exec.Cmd
	log    brokertest.Output
}

func newCrashBroker(t *testing.T) *crashBroker {
	dir := t.TempDir()
	bin := filepath.Join(dir, "actormq")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/actormq/actormq").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	// A port that stays the same across restarts, so clients reconnect where they were.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	config := filepath.Join(dir, "config.toml")
	body := fmt.Sprintf(`
[[listeners]]
name = "mqtt"
kind = "tcp"
address = %q

[store]
data_dir = "data"
sync = "batch"

[console]
listen = ""
`, addr)
	if err := os.WriteFile(config, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	cb := &crashBroker{t: t, bin: bin, config: config, addr: addr}
	t.Cleanup(func() {
		if cb.cmd != nil {
			_ = cb.cmd.Process.Kill()
			_ = cb.cmd.Wait()
		}
	})
	return cb
}

func (c *crashBroker) start() {
	c.t.Helper()
	c.cmd = exec.Command(c.bin, "-config", c.config)
	c.cmd.Stderr = &c.log
	if err := c.cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	waitFor(c.t, 15*time.Second, "the broker to accept connections", func() bool {
		conn, err := net.DialTimeout("tcp", c.addr, 200*time.Millisecond)
		if err == nil {
			_ = conn.Close()
		}
		return err == nil
	})
}

func (c *crashBroker) kill() {
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	_ = c.cmd.Wait()
	c.cmd = nil
}

// killAtRandom kills the running broker kills times, 200–700 ms apart, and starts it again
// after each kill; killed(k) runs while it is down (k from 1). It ends after a last stretch of
// traffic on the restarted broker.
func (c *crashBroker) killAtRandom(kills int, killed func(k int)) {
	for k := range kills {
		time.Sleep(time.Duration(200+rand.IntN(500)) * time.Millisecond)
		c.kill()
		killed(k + 1)
		c.start()
	}
	time.Sleep(500 * time.Millisecond)
}

func (c *crashBroker) expectNoPanic() {
	if strings.Contains(c.log.String(), "panic") {
		c.t.Errorf("the broker logged a panic:\n%s", c.log.String())
	}
}

func (c *crashBroker) stopGracefully() {
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	_ = c.cmd.Wait()
	c.cmd = nil
}

// crashDial connects clientID with a persistent session, retrying while the broker restarts.
func crashDial(addr, clientID string, stop <-chan struct{}) (net.Conn, *codec.Reader, bool) {
	for {
		select {
		case <-stop:
			return nil, nil, false
		default:
		}
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			r := codec.NewReader(bufio.NewReader(conn), 0)
			r.SetVersion(codec.V311)
			b, _ := codec.Append(nil, &codec.Connect{ProtocolName: "MQTT", Version: codec.V311, KeepAlive: 30, ClientID: clientID}, codec.V311)
			_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err = conn.Write(b); err == nil {
				var p codec.Packet
				if p, err = r.ReadPacket(); err == nil {
					if ack, ok := p.(*codec.Connack); ok && ack.ReasonCode == codec.Success {
						_ = conn.SetDeadline(time.Time{})
						return conn, r, true
					}
				}
			}
			_ = conn.Close()
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// crashPublisher publishes numbered QoS 1 messages with a window of unacknowledged ones and
// records which were acknowledged. After a lost connection it goes on with new numbers: what
// was not acknowledged is not owed.
type crashPublisher struct {
	t     *testing.T
	id    string
	addr  string
	mu    sync.Mutex
	acked map[uint32]bool
	next  uint32
}

func (p *crashPublisher) run(stop <-chan struct{}) {
	crashSessions(p.addr, p.id, stop, func(conn net.Conn, r *codec.Reader) { p.session(conn, r, stop) })
}

// crashSessions connects clientID and runs session on the connection, again after every lost
// connection (every kill of the broker), until stop is closed.
func crashSessions(addr, clientID string, stop <-chan struct{}, session func(net.Conn, *codec.Reader)) {
	for {
		conn, r, ok := crashDial(addr, clientID, stop)
		if !ok {
			return
		}
		session(conn, r)
		_ = conn.Close()
		select {
		case <-stop:
			return
		default:
		}
	}
}

func (p *crashPublisher) session(conn net.Conn, r *codec.Reader, stop <-chan struct{}) {
	const window = 32
	inflight := make(chan struct{}, window)
	ids := sync.Map{} // packet id -> message number
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			pkt, err := r.ReadPacket()
			if err != nil {
				return
			}
			if ack, ok := pkt.(*codec.Puback); ok {
				if seq, ok := ids.LoadAndDelete(ack.PacketID); ok {
					p.mu.Lock()
					p.acked[seq.(uint32)] = true
					p.mu.Unlock()
				}
				<-inflight
			}
		}
	}()
	defer func() {
		_ = conn.Close() // ends the reader, whose acknowledgements are then all counted
		<-done
	}()
	var id uint16
	for {
		select {
		case <-stop:
			return
		case <-done:
			return
		case inflight <- struct{}{}:
		}
		p.next++
		id = id%60000 + 1
		ids.Store(id, p.next)
		payload := fmt.Sprintf("%s/%d", p.id, p.next)
		b, _ := codec.Append(nil, &codec.Publish{QoS: 1, PacketID: id, Topic: "crash/" + p.id, Payload: []byte(payload)}, codec.V311)
		if _, err := conn.Write(b); err != nil {
			return
		}
	}
}

// crashSubscriber is a persistent 3.1.1 subscriber to crash/# that acknowledges everything
// and reconnects whenever its connection is lost.
type crashSubscriber struct {
	mu       sync.Mutex
	got      map[string]bool
	received int
	stop     chan struct{}
	done     chan struct{}
}

func newCrashSubscriber(t *testing.T, addr string) *crashSubscriber {
	s := &crashSubscriber{got: map[string]bool{}, stop: make(chan struct{}), done: make(chan struct{})}
	conn, r, _ := crashDial(addr, "crash-sub", s.stop)
	b, _ := codec.Append(nil, &codec.Subscribe{PacketID: 1, Subscriptions: []codec.Subscription{{Filter: "crash/#", QoS: 1}}}, codec.V311)
	if _, err := conn.Write(b); err != nil {
		t.Fatal(err)
	}
	if p, err := r.ReadPacket(); err != nil {
		t.Fatal(err)
	} else if _, ok := p.(*codec.Suback); !ok {
		t.Fatalf("expected SUBACK, got %T", p)
	}
	go func() {
		defer close(s.done)
		for {
			s.read(conn, r)
			select {
			case <-s.stop:
				// A clean goodbye: the broker handles every PUBACK sent before it.
				b, _ := codec.Append(nil, &codec.Disconnect{}, codec.V311)
				_, _ = conn.Write(b)
			default:
			}
			_ = conn.Close()
			var ok bool
			if conn, r, ok = crashDial(addr, "crash-sub", s.stop); !ok {
				return
			}
		}
	}()
	return s
}

func (s *crashSubscriber) read(conn net.Conn, r *codec.Reader) {
	for {
		select {
		case <-s.stop:
			return
		default:
		}
		_ = conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		pkt, err := r.ReadPacket()
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			continue
		}
		if err != nil {
			return
		}
		m, ok := pkt.(*codec.Publish)
		if !ok {
			continue
		}
		s.mu.Lock()
		s.got[string(m.Payload)] = true
		s.received++
		s.mu.Unlock()
		b, _ := codec.Append(nil, &codec.Puback{PacketID: m.PacketID}, codec.V311)
		if _, err := conn.Write(b); err != nil {
			return
		}
	}
}

func (s *crashSubscriber) has(pub string, seq uint32) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.got[fmt.Sprintf("%s/%d", pub, seq)]
}

func (s *crashSubscriber) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.got)
}

func (s *crashSubscriber) deliveries() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.received
}

func (s *crashSubscriber) close() {
	close(s.stop)
	<-s.done
}

// TestProcessRestartKeepsQueuedAndRetained runs the broker binary, leaves a persistent 5.0
// subscriber offline with QoS 1 and QoS 2 messages queued for it and a retained message set,
// then ends the process, gracefully (SIGTERM) and then without a word (SIGKILL), and starts it
// again each time on the same data_dir. The subscriber gets each message once
// [MQTT-4.3.3] and its session present [MQTT-3.2.2-2]; a new subscriber gets the retained
// message [MQTT-3.3.1-6].
func TestProcessRestartKeepsQueuedAndRetained(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the broker and restarts it")
	}
	cr := newCrashBroker(t)
	for _, how := range []string{"SIGTERM", "SIGKILL"} {
		t.Run(how, func(t *testing.T) {
			cr.start()
			keep := func(c *codec.Connect) { c.CleanStart = false; c.Properties.SetSessionExpiryInterval(600) }
			sub := brokertest.Dial(t, cr.addr, codec.V5)
			sub.Connect("process-sub-"+how, keep)
			sub.Send(&codec.Subscribe{PacketID: 1, Subscriptions: []codec.Subscription{{Filter: "process/" + how + "/#", QoS: 2}}})
			if _, ok := sub.Read().(*codec.Suback); !ok {
				t.Fatal("no SUBACK")
			}
			sub.Send(&codec.Disconnect{})
			sub.ExpectClosed(5 * time.Second)

			pub := brokertest.Dial(t, cr.addr, codec.V5)
			pub.Connect("process-pub-" + how)
			for i, p := range []*codec.Publish{
				{QoS: 1, PacketID: 1, Topic: "process/" + how + "/1", Payload: []byte("at least once")},
				{QoS: 2, PacketID: 2, Topic: "process/" + how + "/2", Payload: []byte("exactly once")},
				{QoS: 1, PacketID: 3, Retain: true, Topic: "process/" + how + "/r", Payload: []byte("kept")},
			} {
				pub.Send(p)
				ack := pub.Read()
				if p.QoS == 2 {
					pub.Send(&codec.Pubrel{PacketID: p.PacketID})
					pub.Read()
				}
				if ack == nil {
					t.Fatalf("publish %d not acknowledged", i)
				}
			}
			_ = pub.Conn.Close()

			if how == "SIGTERM" {
				cr.stopGracefully()
			} else {
				cr.kill()
			}
			cr.start()

			again := brokertest.Dial(t, cr.addr, codec.V5)
			if ack := again.Connect("process-sub-"+how, keep); !ack.SessionPresent {
				t.Fatal("the session is not present after the restart")
			}
			got := map[string]int{}
			for len(got) < 3 {
				p, err := again.ReadErr(5 * time.Second)
				if err != nil {
					t.Fatalf("after the restart, got %v, then %v", got, err)
				}
				switch m := p.(type) {
				case *codec.Publish:
					got[string(m.Payload)]++
					if m.QoS == 1 {
						again.Send(&codec.Puback{PacketID: m.PacketID})
					} else if m.QoS == 2 {
						again.Send(&codec.Pubrec{PacketID: m.PacketID})
					}
				case *codec.Pubrel:
					again.Send(&codec.Pubcomp{PacketID: m.PacketID})
				}
			}
			// Nothing more: the QoS 2 message came once.
			for {
				p, err := again.ReadErr(300 * time.Millisecond)
				if err != nil {
					break
				}
				if m, ok := p.(*codec.Publish); ok {
					got[string(m.Payload)]++
				}
				if r, ok := p.(*codec.Pubrel); ok {
					again.Send(&codec.Pubcomp{PacketID: r.PacketID})
				}
			}
			if got["exactly once"] != 1 || got["at least once"] < 1 || got["kept"] < 1 {
				t.Errorf("after the restart the subscriber got %v", got)
			}
			late := brokertest.Dial(t, cr.addr, codec.V5)
			late.Connect("process-late-" + how)
			late.Send(&codec.Subscribe{PacketID: 1, Subscriptions: []codec.Subscription{{Filter: "process/" + how + "/r", QoS: 0}}})
			late.Read() // SUBACK
			if m, ok := late.Read().(*codec.Publish); !ok || !m.Retain || string(m.Payload) != "kept" {
				t.Errorf("retained after the restart: %+v", m)
			}
			d := &codec.Disconnect{}
			d.Properties.SetSessionExpiryInterval(0)
			again.Send(d)
			cr.stopGracefully()
		})
	}
}
