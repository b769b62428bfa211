package store

import (
	"bytes"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/actormq/actormq/codec"
)

// kind is one implementation under test. reopen closes s and returns the store a restart
// would see; for memory that is the same store (it keeps nothing across a process restart).
type kind struct {
	name   string
	open   func(t testing.TB, dir string) Store
	reopen func(t testing.TB, s Store, dir string) Store
}

func openDisk(t testing.TB, dir string, mode SyncMode) Store {
	t.Helper()
	s, err := Open(dir, mode, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var kinds = []kind{
	{
		name:   "memory",
		open:   func(testing.TB, string) Store { return NewMemory() },
		reopen: func(_ testing.TB, s Store, _ string) Store { return s },
	},
	{
		name: "pebble",
		open: func(t testing.TB, dir string) Store { return openDisk(t, dir, SyncBatch) },
		reopen: func(t testing.TB, s Store, dir string) Store {
			t.Helper()
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			return openDisk(t, dir, SyncBatch)
		},
	},
}

// commitWait commits b and waits for its callback.
func commitWait(t testing.TB, s Store, b *Batch) {
	t.Helper()
	errc := make(chan error, 1)
	s.Commit(b, func(err error) { errc <- err })
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

func samplePub(topic string, qos byte) *codec.Publish {
	p := &codec.Publish{QoS: qos, Retain: true, Topic: topic, Payload: []byte("payload of " + topic), PacketID: 7, Dup: qos > 0}
	p.Properties.SetPayloadFormatIndicator(1)
	p.Properties.SetMessageExpiryInterval(3600)
	p.Properties.SetContentType("text/plain")
	p.Properties.SetResponseTopic("reply/" + topic)
	p.Properties.SetCorrelationData([]byte{0, 1, 2, 0xFF})
	p.Properties.AddUserProperty("k", "v")
	p.Properties.AddUserProperty("k", "v2")
	return p
}

func sampleSession(id string) *SessionRecord {
	w := &codec.Will{Topic: "will/" + id, Payload: []byte("gone"), QoS: 2, Retain: true}
	w.Properties.SetWillDelayInterval(30)
	w.Properties.SetMessageExpiryInterval(60)
	w.Properties.SetContentType("text/plain")
	w.Properties.AddUserProperty("who", id)
	return &SessionRecord{
		ClientID:       id,
		User:           "user-" + id,
		Version:        5,
		Expiry:         0xFFFFFFFF,
		DisconnectedAt: time.Unix(1_800_000_000, 123456789),
		Will:           w,
		WillDelay:      30,
		Subscriptions: []SubscriptionRecord{
			{Filter: "a/+/c", QoS: 1, NoLocal: true, SubscriptionID: 268435455},
			{Filter: "$share/g/x/#", QoS: 2, RetainAsPublished: true, RetainHandling: 2},
			{Filter: "plain", QoS: 0},
		},
	}
}

func sampleMessage(topic string, st MessageState, pid uint16) *MessageRecord {
	return &MessageRecord{
		Pub:      samplePub(topic, 2),
		QoS:      1 + byte(st)%2,
		Retain:   st == Inflight,
		SubIDs:   []uint32{1, 300, 268435455},
		Received: time.Unix(1_800_000_001, 5),
		PacketID: pid,
		State:    st,
	}
}

// loaded is what Load saw, in order.
type loaded struct {
	order    []string // "s:id", "m:id:seq", "i:id:pid", "r:topic"
	sessions map[string]*SessionRecord
	messages map[string]*MessageRecord // "id/seq"
	inbound  map[string]bool           // "id/pid"
	retained map[string]*MessageRecord
}

func load(t testing.TB, s Store) *loaded {
	t.Helper()
	l := &loaded{sessions: map[string]*SessionRecord{}, messages: map[string]*MessageRecord{}, inbound: map[string]bool{}, retained: map[string]*MessageRecord{}}
	err := s.Load(Visitor{
		Session: func(r *SessionRecord) error {
			l.order = append(l.order, "s:"+r.ClientID)
			l.sessions[r.ClientID] = r
			return nil
		},
		Message: func(id string, seq uint64, r *MessageRecord) error {
			l.order = append(l.order, fmt.Sprintf("m:%s:%d", id, seq))
			l.messages[fmt.Sprintf("%s/%d", id, seq)] = r
			return nil
		},
		Inbound: func(id string, pid uint16) error {
			l.order = append(l.order, fmt.Sprintf("i:%s:%d", id, pid))
			l.inbound[fmt.Sprintf("%s/%d", id, pid)] = true
			return nil
		},
		Retained: func(topic string, r *MessageRecord) error {
			l.order = append(l.order, "r:"+topic)
			l.retained[topic] = r
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func equalSession(t *testing.T, want, got *SessionRecord) {
	t.Helper()
	if got == nil {
		t.Fatalf("session %q missing", want.ClientID)
	}
	if got.ClientID != want.ClientID || got.User != want.User || got.Version != want.Version || got.Expiry != want.Expiry ||
		!got.DisconnectedAt.Equal(want.DisconnectedAt) || got.WillDelay != want.WillDelay ||
		!reflect.DeepEqual(got.Subscriptions, want.Subscriptions) {
		t.Errorf("session:\n got %+v\nwant %+v", got, want)
	}
	if (got.Will == nil) != (want.Will == nil) {
		t.Fatalf("will: got %v, want %v", got.Will, want.Will)
	}
	if w, g := want.Will, got.Will; w != nil {
		if g.Topic != w.Topic || !bytes.Equal(g.Payload, w.Payload) || g.QoS != w.QoS || g.Retain != w.Retain ||
			!reflect.DeepEqual(g.Properties, w.Properties) {
			t.Errorf("will:\n got %+v\nwant %+v", g, w)
		}
	}
}

func equalMessage(t *testing.T, what string, want, got *MessageRecord) {
	t.Helper()
	if got == nil {
		t.Fatalf("%s missing", what)
	}
	if got.QoS != want.QoS || got.Retain != want.Retain || !reflect.DeepEqual(got.SubIDs, want.SubIDs) ||
		!got.Received.Equal(want.Received) || got.PacketID != want.PacketID || got.State != want.State {
		t.Errorf("%s:\n got %+v\nwant %+v", what, got, want)
	}
	w, g := want.Pub, got.Pub
	if g.Topic != w.Topic || !bytes.Equal(g.Payload, w.Payload) || g.QoS != w.QoS || g.Retain != w.Retain ||
		!reflect.DeepEqual(g.Properties, w.Properties) {
		t.Errorf("%s publish:\n got %+v\nwant %+v", what, g, w)
	}
}

func TestRoundTrip(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			dir := t.TempDir()
			s := k.open(t, dir)
			sess := []*SessionRecord{sampleSession("c1"), {ClientID: "c2", Version: 4, Expiry: 10}}
			msgs := map[uint64]*MessageRecord{
				1: sampleMessage("t/1", Queued, 0),
				2: sampleMessage("t/2", Inflight, 11),
				3: sampleMessage("t/3", Released, 12),
				4: {Pub: &codec.Publish{Topic: "t/0", Payload: nil}, QoS: 0}, // QoS 0, no properties, zero time
			}
			var b Batch
			for _, r := range sess {
				b.PutSession(r)
			}
			for seq, r := range msgs {
				b.PutMessage("c1", seq, r)
			}
			b.PutInbound("c1", 9)
			b.PutInbound("c1", 65535)
			b.PutRetained("r/a", sampleMessage("r/a", Queued, 0))
			b.PutRetained("r/b", sampleMessage("r/b", Queued, 0))
			if b.Len() != 2+4+2+2 {
				t.Fatalf("Len = %d", b.Len())
			}
			commitWait(t, s, &b)
			s = k.reopen(t, s, dir)
			defer s.Close()

			l := load(t, s)
			for _, r := range sess {
				equalSession(t, r, l.sessions[r.ClientID])
			}
			for seq, r := range msgs {
				equalMessage(t, fmt.Sprintf("message %d", seq), r, l.messages[fmt.Sprintf("c1/%d", seq)])
				if got := l.messages[fmt.Sprintf("c1/%d", seq)].Pub; k.name == "pebble" && (got.PacketID != 0 || got.Dup) {
					t.Errorf("per-hop fields kept: id %d dup %v", got.PacketID, got.Dup)
				}
			}
			for _, topic := range []string{"r/a", "r/b"} {
				equalMessage(t, "retained "+topic, sampleMessage(topic, Queued, 0), l.retained[topic])
			}
			wantOrder := []string{"s:c1", "m:c1:1", "m:c1:2", "m:c1:3", "m:c1:4", "i:c1:9", "i:c1:65535", "s:c2", "r:r/a", "r/b"}
			wantOrder[len(wantOrder)-1] = "r:r/b"
			if !reflect.DeepEqual(l.order, wantOrder) {
				t.Errorf("Load order\n got %v\nwant %v", l.order, wantOrder)
			}
			if st := s.Stats(); st.Keys != 10 {
				t.Errorf("Stats.Keys = %d, want 10", st.Keys)
			}
		})
	}
}

// TestLoadScopes: LoadClient reads one client's records and a Visitor with only Retained reads
// only the retained messages, both after every commit queued before them, whether or not its
// callback has run (an actor reloading after a failure must read its own last writes).
func TestLoadScopes(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			s := k.open(t, t.TempDir())
			defer s.Close()
			for i := range 50 {
				var b Batch
				id := fmt.Sprintf("c%d", i%5)
				b.PutSession(&SessionRecord{ClientID: id, Version: 4, Expiry: uint32(i)})
				b.PutMessage(id, uint64(i), sampleMessage("t", Queued, 0))
				b.PutInbound(id, uint16(i))
				b.PutRetained(fmt.Sprintf("r/%d", i), sampleMessage("r", Queued, 0))
				s.Commit(&b, nil) // not waited for
			}
			var got []string
			err := s.LoadClient("c3", Visitor{
				Session: func(r *SessionRecord) error {
					got = append(got, fmt.Sprintf("s:%s:%d", r.ClientID, r.Expiry))
					return nil
				},
				Message: func(id string, seq uint64, _ *MessageRecord) error {
					got = append(got, fmt.Sprintf("m:%s:%d", id, seq))
					return nil
				},
				Inbound: func(id string, pid uint16) error { got = append(got, fmt.Sprintf("i:%s:%d", id, pid)); return nil },
				Retained: func(topic string, _ *MessageRecord) error {
					t.Errorf("LoadClient visited retained %q", topic)
					return nil
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			want := []string{"s:c3:48"}
			for i := 3; i < 50; i += 5 {
				want = append(want, fmt.Sprintf("m:c3:%d", i))
			}
			for i := 3; i < 50; i += 5 {
				want = append(want, fmt.Sprintf("i:c3:%d", i))
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("LoadClient\n got %v\nwant %v", got, want)
			}
			if err := s.LoadClient("nobody", Visitor{Session: func(*SessionRecord) error { t.Error("a session for nobody"); return nil }}); err != nil {
				t.Fatal(err)
			}
			n := 0
			if err := s.Load(Visitor{Retained: func(string, *MessageRecord) error { n++; return nil }}); err != nil {
				t.Fatal(err)
			}
			if n != 50 {
				t.Errorf("retained-only Load visited %d, want 50", n)
			}
		})
	}
}

// TestBatchPutReplacesPut: a message put twice in a row in one batch (taken, then sent) is
// one write, of its later state.
func TestBatchPutReplacesPut(t *testing.T) {
	var b Batch
	b.PutMessage("c", 1, sampleMessage("t", Queued, 0))
	b.PutMessage("c", 1, sampleMessage("t", Inflight, 5))
	b.PutMessage("c", 2, sampleMessage("t", Queued, 0))
	b.PutMessage("d", 2, sampleMessage("t", Queued, 0))
	if b.Len() != 3 {
		t.Fatalf("Len = %d, want 3", b.Len())
	}
	s := NewMemory()
	commitWait(t, s, &b)
	if l := load(t, s); l.messages["c/1"].State != Inflight || l.messages["c/1"].PacketID != 5 {
		t.Errorf("message c/1 = %+v, want the later put", l.messages["c/1"])
	}
}

// Ids that contain the key layout's bytes, and ids that are prefixes of each other.
var trickyIDs = []string{"a", "a\x01", "a\x02\x00\x00\x00\x00\x00\x00\x00\x01", "a\xff", "\x00", "\x00\x01a", "", "ab", "b"}

func TestDeleteSession(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			dir := t.TempDir()
			s := k.open(t, dir)
			var b Batch
			for _, id := range trickyIDs {
				b.PutSession(&SessionRecord{ClientID: id, Version: 5})
				b.PutMessage(id, 1, sampleMessage("t", Queued, 0))
				b.PutMessage(id, 1<<63, sampleMessage("t", Inflight, 5))
				b.PutInbound(id, 3)
			}
			b.PutRetained("a", sampleMessage("a", Queued, 0)) // a topic named like a client id
			commitWait(t, s, &b)
			b.Reset()
			b.DeleteSession("a")
			b.DeleteMessage("ab", 1)
			b.DeleteInbound("b", 3)
			commitWait(t, s, &b)
			s = k.reopen(t, s, dir)
			defer s.Close()

			l := load(t, s)
			for _, id := range trickyIDs {
				_, hasS := l.sessions[id]
				_, hasM1 := l.messages[id+"/1"]
				_, hasM2 := l.messages[fmt.Sprintf("%s/%d", id, uint64(1<<63))]
				hasI := l.inbound[id+"/3"]
				want := id != "a"
				if hasS != want || hasM2 != want || hasM1 != (want && id != "ab") || hasI != (want && id != "b") {
					t.Errorf("id %q: session %v msg1 %v msg2 %v inbound %v", id, hasS, hasM1, hasM2, hasI)
				}
			}
			if l.retained["a"] == nil {
				t.Error("retained topic \"a\" deleted with session \"a\"")
			}
		})
	}
}

func TestParseKeyTricky(t *testing.T) {
	for _, id := range trickyIDs {
		for _, k := range [][]byte{sessionKey(nil, id), messageKey(nil, id, 42), inboundKey(nil, id, 7)} {
			p, err := parseKey(k)
			if err != nil || p.id != id {
				t.Errorf("parseKey(%q) = %+v, %v", k, p, err)
			}
		}
		// No other id's keys fall in this id's DeleteSession range.
		start := clientPrefix(nil, id)
		end := append(clientPrefix(nil, id), subEnd)
		for _, other := range trickyIDs {
			if other == id {
				continue
			}
			for _, k := range [][]byte{sessionKey(nil, other), messageKey(nil, other, 0), messageKey(nil, other, ^uint64(0)), inboundKey(nil, other, 0xFFFF)} {
				if bytes.Compare(k, start) >= 0 && bytes.Compare(k, end) < 0 {
					t.Errorf("key %q of %q is inside the range of %q", k, other, id)
				}
			}
		}
	}
}

func TestBadRecordFailsAlone(t *testing.T) {
	for _, k := range kinds[1:] { // memory keeps pointers and checks nothing
		t.Run(k.name, func(t *testing.T) {
			s := k.open(t, t.TempDir())
			defer s.Close()
			var bad, good Batch
			bad.PutMessage("c", 1, &MessageRecord{Pub: &codec.Publish{Topic: "t", QoS: 3}})
			good.PutMessage("c", 2, sampleMessage("t", Queued, 0))
			var wg sync.WaitGroup
			wg.Add(2)
			var badErr, goodErr error
			s.Commit(&bad, func(err error) { badErr = err; wg.Done() })
			s.Commit(&good, func(err error) { goodErr = err; wg.Done() })
			wg.Wait()
			if badErr == nil || goodErr != nil {
				t.Fatalf("bad: %v, good: %v", badErr, goodErr)
			}
			l := load(t, s)
			if len(l.messages) != 1 || l.messages["c/2"] == nil {
				t.Errorf("messages %v", l.messages)
			}
		})
	}
}

// TestCallbacks: every callback exactly once, in Commit order, for every mode; all durable
// after Close, which does not wait for the callbacks first.
func TestCallbacks(t *testing.T) {
	for _, mode := range []SyncMode{SyncBatch, SyncAlways, SyncNone} {
		t.Run(string(mode), func(t *testing.T) {
			dir := t.TempDir()
			s := openDisk(t, dir, mode)
			const n = 500
			var mu sync.Mutex
			var got []int
			var b Batch
			for i := range n {
				b.Reset()
				b.PutMessage("c", uint64(i), sampleMessage("t", Queued, 0))
				s.Commit(&b, func(err error) {
					if err != nil {
						t.Error(err)
					}
					mu.Lock()
					got = append(got, i)
					mu.Unlock()
				})
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			if len(got) != n {
				t.Fatalf("%d callbacks, want %d", len(got), n)
			}
			for i, v := range got {
				if v != i {
					t.Fatalf("callback %d was commit %d", i, v)
				}
			}
			mu.Unlock()
			s = openDisk(t, dir, mode)
			defer s.Close()
			if l := load(t, s); len(l.messages) != n {
				t.Fatalf("%d messages after reopen, want %d", len(l.messages), n)
			}
		})
	}
}

func TestConcurrentCommit(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			dir := t.TempDir()
			s := k.open(t, dir)
			const workers, each = 8, 200
			var wg sync.WaitGroup
			var calls sync.Map
			for w := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					id := fmt.Sprintf("client-%d", w)
					var b Batch
					for i := range each {
						b.Reset()
						if i == 0 {
							b.PutSession(&SessionRecord{ClientID: id, Version: 5})
						}
						b.PutMessage(id, uint64(i), sampleMessage("t", Queued, 0))
						if i%2 == 1 {
							b.DeleteMessage(id, uint64(i-1))
						}
						done := make(chan error, 1)
						key := fmt.Sprintf("%d/%d", w, i)
						s.Commit(&b, func(err error) {
							if _, dup := calls.LoadOrStore(key, true); dup {
								t.Errorf("callback %s called twice", key)
							}
							done <- err
						})
						if err := <-done; err != nil {
							t.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			s = k.reopen(t, s, dir)
			defer s.Close()
			l := load(t, s)
			if len(l.sessions) != workers || len(l.messages) != workers*each/2 {
				t.Fatalf("%d sessions, %d messages", len(l.sessions), len(l.messages))
			}
			if st := s.Stats(); k.name == "pebble" && (st.Commits != 0 || st.Keys != workers*(1+each/2)) {
				t.Errorf("stats after reopen: %+v", st)
			}
		})
	}
}

func TestCommitAfterClose(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			s := k.open(t, t.TempDir())
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			errc := make(chan error, 1)
			var b Batch
			b.PutInbound("c", 1)
			s.Commit(&b, func(err error) { errc <- err })
			if err := <-errc; err != ErrClosed {
				t.Fatalf("got %v, want ErrClosed", err)
			}
		})
	}
}

func TestMessageStateString(t *testing.T) {
	if Queued.String() != "queued" || Released.String() != "released" || MessageState(9).String() != "MessageState(9)" {
		t.Error("MessageState.String")
	}
	if strings.Contains(Inflight.String(), "(") {
		t.Error(Inflight.String())
	}
}

// TestDecodeDamagedValues: every truncation of a valid value is an error, never a panic, and
// a value with flipped bytes never panics.
func TestDecodeDamagedValues(t *testing.T) {
	sv, err := appendSession(nil, sampleSession("c"))
	if err != nil {
		t.Fatal(err)
	}
	mv, err := appendMessage(nil, sampleMessage("t", Inflight, 3))
	if err != nil {
		t.Fatal(err)
	}
	for n := range len(sv) {
		if _, err := decodeSession("c", append([]byte(nil), sv[:n]...)); err == nil {
			t.Errorf("session truncated to %d bytes decoded", n)
		}
	}
	for n := range len(mv) {
		if _, err := decodeMessage(append([]byte(nil), mv[:n]...)); err == nil {
			t.Errorf("message truncated to %d bytes decoded", n)
		}
	}
	for i := range len(sv) {
		b := append([]byte(nil), sv...)
		b[i] ^= 0xFF
		_, _ = decodeSession("c", b)
	}
	for i := range len(mv) {
		b := append([]byte(nil), mv...)
		b[i] ^= 0xFF
		_, _ = decodeMessage(b)
	}
}
