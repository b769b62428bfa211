package tests

// The store across broker restarts: stored sessions with their queued, inflight and QoS 2
// state, and retained messages, come back when a broker starts on the same data_dir. Each
// test stops one broker and starts another in the same process, as an operator restarting
// actormq would; tests/crash_test.go does it to a real process with kill -9.

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/actormq/actormq/codec"
	"github.com/actormq/actormq/config"
	"github.com/actormq/actormq/store"
)

// restartable is a broker that a test can restart on the same store directory.
type restartable struct {
	t      *testing.T
	dir    string
	mutate []func(*config.Config)
	*testBroker
}

func newRestartable(t *testing.T, mutate ...func(*config.Config)) *restartable {
	r := &restartable{t: t, dir: t.TempDir()}
	r.mutate = append([]func(*config.Config){func(c *config.Config) { c.Store.DataDir = r.dir }}, mutate...)
	r.testBroker = startBroker(t, r.mutate...)
	return r
}

// restart stops the broker gracefully and starts a new one on the same store.
func (r *restartable) restart() {
	r.t.Helper()
	r.stop()
	r.testBroker = startBroker(r.t, r.mutate...)
}

func (r *restartable) stop() {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.Stop(ctx); err != nil {
		r.t.Fatalf("stop: %v", err)
	}
}

// TestDurableQueuedMessagesSurviveRestart: the sessions of a 3.1.1 client with clean session
// off and of a 5.0 client with a Session Expiry Interval hold queued QoS 1 and 2 messages
// across a restart, and get each once when they reconnect, with Session Present
// [MQTT-3.2.2-2]; the retained message is stored too [MQTT-3.3.1-5] and reaches a new
// subscriber.
func TestDurableQueuedMessagesSurviveRestart(t *testing.T) {
	r := newRestartable(t)
	sub3, _ := v3RawConnect(t, r.TCP311, "sub311", v3NotClean)
	v3Subscribe(sub3, 1, "d/#", 2)
	v3Disconnect(sub3)
	sub5, _ := v5Connect(t, r.testBroker, "sub5", v5Expiry(3600))
	sub5.sub("d/#", 2)
	sub5.disconnect()

	pub, _ := v5Connect(t, r.testBroker, "pub")
	pub.pub("d/1", 1, "one")
	pub.pub("d/2", 2, "two")
	if code := pub.publish(&codec.Publish{Topic: "d/r", QoS: 1, Retain: true, Payload: []byte("kept")}); code != codec.Success {
		t.Fatalf("retained publish: %s", code)
	}
	pub.disconnect()

	r.restart()

	want := []queuedMsg{{"d/1", "one", 1}, {"d/2", "two", 2}, {"d/r", "kept", 1}}
	sub3, ack := v3RawConnect(t, r.TCP311, "sub311", v3NotClean)
	if !ack.SessionPresent {
		t.Error("3.1.1: the stored session is not present after the restart")
	}
	// All three come at once (the window allows): read them, then acknowledge each. Order is
	// kept per topic and QoS [MQTT-4.6.0-6], not across them: a stored session's QoS 2
	// delivery waits for the record of its packet id, so a QoS 1 message may overtake it.
	got := expectEachOnce(t, "3.1.1", want, func() *codec.Publish { return v3ReadPublish(sub3) })
	for _, m := range got {
		switch m.QoS {
		case 1:
			sub3.Send(&codec.Puback{PacketID: m.PacketID})
		case 2:
			sub3.Send(&codec.Pubrec{PacketID: m.PacketID})
			if rel, ok := sub3.Read().(*codec.Pubrel); !ok || rel.PacketID != m.PacketID {
				t.Fatalf("3.1.1: PUBREL expected for %d, got %+v", m.PacketID, rel)
			}
			sub3.Send(&codec.Pubcomp{PacketID: m.PacketID})
		}
	}
	v3ExpectSilence(sub3, v5Quiet)

	sub5, ack5 := v5Connect(t, r.testBroker, "sub5", v5Expiry(3600), v5Resume)
	if !ack5.SessionPresent {
		t.Error("5.0: the stored session is not present after the restart")
	}
	expectEachOnce(t, "5.0", want, sub5.receive)
	sub5.quiet(v5Quiet)

	late, _ := v5Connect(t, r.testBroker, "late")
	late.sub("d/#", 1)
	if m := late.receive(); m.Topic != "d/r" || string(m.Payload) != "kept" || !m.Retain {
		t.Errorf("retained after restart: %s %q retain=%v", m.Topic, m.Payload, m.Retain)
	}
	late.disconnect()
	sub3.Send(&codec.Disconnect{})
	sub5.endSession()
	endSessions(t, r.testBroker, "sub311")
}

// queuedMsg is a message a stored session holds: one per topic in these tests.
type queuedMsg struct {
	topic, payload string
	qos            byte
}

// expectEachOnce reads len(want) PUBLISHes with next and checks that each of want came once,
// in any order, and returns them in the order they came.
func expectEachOnce(t *testing.T, who string, want []queuedMsg, next func() *codec.Publish) []*codec.Publish {
	t.Helper()
	var got []*codec.Publish
	seen := map[string]bool{}
	for range want {
		m := next()
		if i := slices.IndexFunc(want, func(w queuedMsg) bool {
			return m.Topic == w.topic && string(m.Payload) == w.payload && m.QoS == w.qos
		}); i < 0 || seen[m.Topic] {
			t.Fatalf("%s after restart: %s %q QoS %d, not one of %v or a repeat", who, m.Topic, m.Payload, m.QoS, want)
		}
		seen[m.Topic] = true
		got = append(got, m)
	}
	return got
}

// TestDurableInflightResumedAfterRestart: messages sent but not acknowledged when the broker
// stopped are sent again with DUP set and their packet ids, in their original order, and a
// released QoS 2 message gets its PUBREL again [MQTT-4.4.0-1] [MQTT-3.3.1-1].
func TestDurableInflightResumedAfterRestart(t *testing.T) {
	r := newRestartable(t)
	sub, _ := v5Connect(t, r.testBroker, "inflight", v5Expiry(3600))
	sub.sub("f/#", 2)
	pub, _ := v5Connect(t, r.testBroker, "pub")
	pub.pub("f/1", 1, "first")
	pub.pub("f/2", 2, "second")
	pub.pub("f/3", 2, "third")
	m1, m2, m3 := sub.expectPublish(), sub.expectPublish(), sub.expectPublish()
	// m1 and m2 unacknowledged; m3 received (PUBREC) and released (PUBREL), not completed.
	sub.Send(&codec.Pubrec{PacketID: m3.PacketID})
	v5Await(sub, "PUBREL", func(p *codec.Pubrel) bool { return p.PacketID == m3.PacketID })
	pub.disconnect()

	r.restart()

	again, ack := v5Connect(t, r.testBroker, "inflight", v5Expiry(3600), v5Resume)
	if !ack.SessionPresent {
		t.Fatal("session not present after the restart")
	}
	for _, was := range []*codec.Publish{m1, m2} {
		p := again.expectPublish()
		if !p.Dup || p.PacketID != was.PacketID || string(p.Payload) != string(was.Payload) || p.QoS != was.QoS {
			t.Errorf("resent %q id %d dup %v QoS %d, want %q id %d with DUP at QoS %d",
				p.Payload, p.PacketID, p.Dup, p.QoS, was.Payload, was.PacketID, was.QoS)
		}
	}
	rel := v5Await(again, "PUBREL", func(p *codec.Pubrel) bool { return p.PacketID == m3.PacketID })
	if rel.ReasonCode != codec.Success {
		t.Errorf("PUBREL again: %s", rel.ReasonCode)
	}
	again.Send(&codec.Pubcomp{PacketID: m3.PacketID})
	again.Send(&codec.Puback{PacketID: m1.PacketID})
	again.ack(m2)
	again.quiet(v5Quiet)
	again.endSession()
}

// TestDurableInboundQoS2AfterRestart: a QoS 2 message the broker acknowledged with PUBREC
// before it stopped is not routed again when the client retransmits it after the restart
// [MQTT-4.3.3-10] (no duplicate to the subscriber), and its PUBREL is answered with Success:
// the packet id was kept [MQTT-4.3.3-11].
func TestDurableInboundQoS2AfterRestart(t *testing.T) {
	r := newRestartable(t)
	sub, _ := v5Connect(t, r.testBroker, "once", v5Expiry(3600))
	sub.sub("q2/#", 2)
	pub, _ := v5Connect(t, r.testBroker, "sender", v5Expiry(3600))
	pub.Send(&codec.Publish{Topic: "q2/x", QoS: 2, PacketID: 7, Payload: []byte("exactly once")})
	if rec := v5Await(pub, "PUBREC", func(p *codec.Pubrec) bool { return p.PacketID == 7 }); rec.ReasonCode != codec.Success {
		t.Fatalf("PUBREC: %s", rec.ReasonCode)
	}
	sub.receiveMsg("q2/x", "exactly once")
	sub.disconnect()

	r.restart()

	pub, ack := v5Connect(t, r.testBroker, "sender", v5Expiry(3600), v5Resume)
	if !ack.SessionPresent {
		t.Fatal("publisher's session not present after the restart")
	}
	pub.Send(&codec.Publish{Topic: "q2/x", QoS: 2, PacketID: 7, Dup: true, Payload: []byte("exactly once")})
	v5Await(pub, "PUBREC", func(p *codec.Pubrec) bool { return p.PacketID == 7 })
	pub.Send(&codec.Pubrel{PacketID: 7})
	if comp := v5Await(pub, "PUBCOMP", func(p *codec.Pubcomp) bool { return p.PacketID == 7 }); comp.ReasonCode != codec.Success {
		t.Errorf("PUBCOMP after the restart: %s, want Success (the packet id was kept)", comp.ReasonCode)
	}
	sub, _ = v5Connect(t, r.testBroker, "once", v5Expiry(3600), v5Resume)
	sub.quiet(v5Quiet)
	sub.endSession()
	pub.endSession()
}

// TestDurableSessionExpiredWhileDown: a session whose expiry passed while the broker was down
// is ended when the broker starts, and its will is published then, since a will is sent at
// the latest when its session ends [MQTT-3.1.3-9]; a stored subscriber gets it.
func TestDurableSessionExpiredWhileDown(t *testing.T) {
	r := newRestartable(t)
	watcher, _ := v3RawConnect(t, r.TCP311, "watcher", v3NotClean)
	v3Subscribe(watcher, 1, "will/#", 1)
	v3Disconnect(watcher)
	const expiry = 2 // seconds; the will waits for the session's end (its delay is longer)
	dying := v5WillConnect(t, r.testBroker, "dying", "will/dying", 3600, expiry)
	dying.drop()
	waitFor(t, 5*time.Second, "the dropped connection to be gone", func() bool { return r.Stats().Connected.Load() == 0 })
	dropped := time.Now()
	r.stop()
	time.Sleep(time.Until(dropped.Add(expiry*time.Second + 200*time.Millisecond)))
	r.testBroker = startBroker(t, r.mutate...)

	watcher, _ = v3RawConnect(t, r.TCP311, "watcher", v3NotClean)
	m := v3ReadPublish(watcher)
	if m.Topic != "will/dying" {
		t.Fatalf("watcher got %q, want the will", m.Topic)
	}
	watcher.Send(&codec.Puback{PacketID: m.PacketID})
	if n := r.Stats().Sessions.Load(); n != 1 {
		t.Errorf("sessions after the restart: %d, want 1 (the expired one ended)", n)
	}
	watcher.Send(&codec.Disconnect{})
	endSessions(t, r.testBroker, "watcher")
}

// TestDurableWithPersistenceOff: with store.persistence = false nothing is written to disk
// and a restart starts from nothing.
func TestDurableWithPersistenceOff(t *testing.T) {
	r := newRestartable(t, func(c *config.Config) { c.Store.Persistence = false })
	sub, _ := v5Connect(t, r.testBroker, "volatile", v5Expiry(3600))
	sub.sub("v/#", 1)
	sub.disconnect()
	r.restart()
	sub, ack := v5Connect(t, r.testBroker, "volatile", v5Expiry(3600), v5Resume)
	if ack.SessionPresent {
		t.Error("a session survived a restart with persistence off")
	}
	sub.endSession()
	if entries, err := os.ReadDir(r.dir); err != nil || len(entries) != 0 {
		t.Errorf("data_dir with persistence off: %d entries, %v; want it untouched", len(entries), err)
	}
}

// TestDurableCleanSessionsAreNotWritten: a session that ends with its connection is never
// written, whatever it does; a stored one is deleted from the store when it ends.
func TestDurableCleanSessionsAreNotWritten(t *testing.T) {
	r := newRestartable(t)
	clean, _ := v5Connect(t, r.testBroker, "clean")
	clean.sub("c/#", 2)
	kept, _ := v5Connect(t, r.testBroker, "kept", v5Expiry(3600))
	kept.sub("k/#", 1)
	pub, _ := v5Connect(t, r.testBroker, "pub")
	for i := range 20 {
		pub.pub(fmt.Sprintf("c/%d", i), 2, "x")
		clean.receive()
	}
	r.stop()
	ids := storedClients(t, r.dir)
	if len(ids) != 1 || ids[0] != "kept" {
		t.Fatalf("stored sessions: %v, want only [kept]", ids)
	}
	r.testBroker = startBroker(t, r.mutate...)
	kept, _ = v5Connect(t, r.testBroker, "kept", v5Expiry(3600), v5Resume)
	kept.endSession()
	r.stop()
	if ids := storedClients(t, r.dir); len(ids) != 0 {
		t.Errorf("stored sessions after the last one ended: %v, want none", ids)
	}
	r.testBroker = startBroker(t, r.mutate...)
}

// storedClients opens a stopped broker's store and lists the client ids it holds records of.
func storedClients(t *testing.T, dir string) []string {
	t.Helper()
	st, err := store.Open(dir, store.SyncBatch, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var ids []string
	seen := map[string]bool{}
	note := func(id string) {
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	err = st.Load(store.Visitor{
		Session: func(r *store.SessionRecord) error { note(r.ClientID); return nil },
		Message: func(id string, _ uint64, _ *store.MessageRecord) error { note(id); return nil },
		Inbound: func(id string, _ uint16) error { note(id); return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// TestDurableStoreStaysFlat: under steady QoS 1 traffic to a stored session (publishers with
// a window of unacknowledged messages, the subscriber acknowledging as it goes), the store
// keeps only what is owed, acknowledged messages are deleted and compacted away, and its size
// on disk levels off instead of growing with the traffic; once everything is acknowledged it
// holds no message at all. ACTORMQ_LONG=1 runs it for a minute, long enough to check the level.
func TestDurableStoreStaysFlat(t *testing.T) {
	run := 6 * time.Second
	if os.Getenv("ACTORMQ_LONG") != "" {
		run = time.Minute
	}
	r := newRestartable(t)
	sub := newCrashSubscriber(t, r.TCP311)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	pubs := make([]*crashPublisher, 4)
	for i := range pubs {
		pubs[i] = &crashPublisher{t: t, id: fmt.Sprintf("flat-pub-%d", i), addr: r.TCP311, acked: map[uint32]bool{}}
		wg.Add(1)
		go func(p *crashPublisher) { defer wg.Done(); p.run(stop) }(pubs[i])
	}
	var sizes []int64
	for start := time.Now(); time.Since(start) < run; {
		time.Sleep(run / 12)
		sizes = append(sizes, dirSize(t, r.dir))
	}
	close(stop)
	wg.Wait()
	half := len(sizes) / 2
	firstMax, lastMax := slices.Max(sizes[:half]), slices.Max(sizes[half:])
	total := countAcked(pubs)
	t.Logf("%d messages through a stored session in %v; store size (KiB) every %v: %v", total, run, run/12, kib(sizes))
	// Pebble's memtables (4 MiB) fill before the first flush and compactions: only a long
	// run can show the level the size settles at.
	if run >= 30*time.Second && lastMax > firstMax*3/2+(4<<20) {
		t.Errorf("the store kept growing under steady traffic: at most %d bytes in the first half, %d in the second", firstMax, lastMax)
	}
	waitFor(t, 20*time.Second, "every acknowledged message to reach the subscriber", func() bool { return sub.count() >= total })
	// and those still on their way when the publishers stopped: nothing arrives for a while.
	for last := -1; last != sub.count(); {
		last = sub.count()
		time.Sleep(300 * time.Millisecond)
	}
	sub.close()
	r.stop()
	st, err := store.Open(r.dir, store.SyncBatch, nil)
	if err != nil {
		t.Fatal(err)
	}
	msgs := 0
	if err := st.Load(store.Visitor{Message: func(string, uint64, *store.MessageRecord) error { msgs++; return nil }}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	if msgs > 0 {
		t.Errorf("%d messages left in the store after all were acknowledged", msgs)
	}
	r.testBroker = startBroker(t, r.mutate...)
	ids := []string{"crash-sub"}
	for _, p := range pubs {
		ids = append(ids, p.id)
	}
	endSessions(t, r.testBroker, ids...)
}

func kib(sizes []int64) []int64 {
	out := make([]int64, len(sizes))
	for i, s := range sizes {
		out[i] = s >> 10
	}
	return out
}

// dirSize is the bytes of the files under dir.
func dirSize(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}
