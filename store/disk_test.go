package store

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// expectOpenError opens dir and expects an error that names dir, and a Load error if Open
// succeeds (some damage only shows when the data is read).
func expectDamaged(t *testing.T, dir string, mustContain ...string) {
	t.Helper()
	s, err := Open(dir, SyncBatch, nil)
	if err == nil {
		err = s.Load(Visitor{})
		_ = s.Close()
	}
	if err == nil {
		t.Fatal("damaged store opened and loaded without an error")
	}
	for _, want := range append([]string{dir}, mustContain...) {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	t.Log(err)
}

// populated returns a closed store with some data, flushed into a table when flush is set.
func populated(t *testing.T, flush bool) string {
	t.Helper()
	dir := t.TempDir()
	s := openDisk(t, dir, SyncBatch)
	var b Batch
	for i := range 200 {
		b.PutMessage("c", uint64(i), sampleMessage("t", Queued, 0))
	}
	b.PutSession(sampleSession("c"))
	commitWait(t, s, &b)
	if flush {
		if err := s.(*disk).db.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

func files(t *testing.T, dir, pattern string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, pattern))
	if err != nil || len(m) == 0 {
		entries, _ := os.ReadDir(dir)
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Fatalf("no %s in %v", pattern, names)
	}
	return m
}

func TestOpenCreatesDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "data")
	s := openDisk(t, dir, SyncNone)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openDisk(t, dir, SyncNone) // and opens it again as an existing store
	defer s.Close()
	if _, err := Open(t.TempDir(), "sometimes", nil); err == nil || !strings.Contains(err.Error(), "sometimes") {
		t.Errorf("bad sync mode: %v", err)
	}
}

func TestVersionMismatch(t *testing.T) {
	dir := populated(t, false)
	db, err := pebble.Open(dir, &pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Set(versionKey, binary.BigEndian.AppendUint32(nil, 99), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	expectDamaged(t, dir, "version 99", fmt.Sprintf("version %d", formatVersion))
}

func TestNotAStore(t *testing.T) {
	t.Run("garbage files", func(t *testing.T) {
		dir := t.TempDir()
		for _, name := range []string{"junk", "MANIFEST-000001", "000002.log"} {
			if err := os.WriteFile(filepath.Join(dir, name), []byte("this is not a pebble store\x00\xff"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		expectDamaged(t, dir)
	})
	t.Run("pebble without version", func(t *testing.T) {
		dir := t.TempDir()
		db, err := pebble.Open(dir, &pebble.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Set([]byte("someone else's key"), []byte("v"), pebble.Sync); err != nil {
			t.Fatal(err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		expectDamaged(t, dir, "no version key")
	})
	t.Run("empty pebble is adopted", func(t *testing.T) {
		dir := t.TempDir()
		db, err := pebble.Open(dir, &pebble.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		s := openDisk(t, dir, SyncBatch)
		_ = s.Close()
	})
}

func TestCorruption(t *testing.T) {
	t.Run("garbage manifest", func(t *testing.T) {
		dir := populated(t, true)
		for _, f := range files(t, dir, "MANIFEST-*") {
			if err := os.WriteFile(f, []byte("garbage garbage garbage garbage"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		expectDamaged(t, dir)
	})
	t.Run("truncated manifest", func(t *testing.T) {
		dir := populated(t, true)
		for _, f := range files(t, dir, "MANIFEST-*") {
			if err := os.Truncate(f, 10); err != nil {
				t.Fatal(err)
			}
		}
		expectDamaged(t, dir)
	})
	t.Run("truncated table", func(t *testing.T) {
		dir := populated(t, true)
		for _, f := range files(t, dir, "*.sst") {
			fi, err := os.Stat(f)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(f, fi.Size()/2); err != nil {
				t.Fatal(err)
			}
		}
		expectDamaged(t, dir)
	})
	t.Run("flipped bytes in table", func(t *testing.T) {
		dir := populated(t, true)
		for _, f := range files(t, dir, "*.sst") {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for i := 100; i < len(b)/2; i += 97 {
				b[i] ^= 0x5A
			}
			if err := os.WriteFile(f, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		expectDamaged(t, dir)
	})
	t.Run("garbage options", func(t *testing.T) {
		dir := populated(t, false)
		for _, f := range files(t, dir, "OPTIONS-*") {
			if err := os.WriteFile(f, []byte("[Version]\n\x00\x01\x02 not an ini"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		expectDamaged(t, dir)
	})
}

// TestCloseFlushes: Close with commits still queued writes them all and calls every callback.
func TestCloseFlushes(t *testing.T) {
	dir := t.TempDir()
	s := openDisk(t, dir, SyncAlways) // the slowest mode, so that the queue is still full at Close
	const n = 300
	calls := make(chan error, n)
	var b Batch
	for i := range n {
		b.Reset()
		b.PutInbound("c", uint16(i+1))
		s.Commit(&b, func(err error) { calls <- err })
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if len(calls) != n {
		t.Fatalf("%d callbacks after Close, want %d", len(calls), n)
	}
	s = openDisk(t, dir, SyncBatch)
	defer s.Close()
	if l := load(t, s); len(l.inbound) != n {
		t.Fatalf("%d inbound ids after reopen, want %d", len(l.inbound), n)
	}
}

// TestSoakBounded writes and acknowledges messages steadily and checks that the store does not
// grow: deletes are compacted away. The warm-up and the run are counted in messages, not
// time, so that a machine busy with other tests (which writes far fewer in a second) measures
// the same steady state.
func TestSoakBounded(t *testing.T) {
	dir := t.TempDir()
	s := openDisk(t, dir, SyncNone) // fsync would only slow the writer down
	defer s.Close()
	const (
		clients = 50
		window  = 20 // live messages per client: the rest is acknowledged
		warmup  = 300_000
		total   = 600_000
	)
	payload := sampleMessage("soak/topic", Queued, 0)
	payload.Pub.Payload = make([]byte, 512)
	start := time.Now()
	var warm uint64
	var seq uint64
	var written int
	for written < total {
		var b Batch
		for c := range clients {
			id := fmt.Sprintf("soak-%d", c)
			b.PutMessage(id, seq, payload)
			if seq >= window {
				b.DeleteMessage(id, seq-window)
			}
		}
		seq++
		written += clients
		if seq%50 == 0 {
			commitWait(t, s, &b) // keep the queue short, as a broker's acks would
		} else {
			s.Commit(&b, nil)
		}
		if warm == 0 && written >= warmup {
			commitWait(t, s, &Batch{})
			warm = s.Stats().Bytes
		}
	}
	commitWait(t, s, &Batch{})
	st := s.Stats()
	t.Logf("%d messages written and deleted in %v; bytes after warm-up %d, at end %d; keys %d; %+v",
		written, time.Since(start).Round(time.Millisecond), warm, st.Bytes, st.Keys, st)
	if st.Keys != clients*window {
		t.Errorf("keys = %d, want %d", st.Keys, clients*window)
	}
	if st.Bytes > 2*warm {
		t.Errorf("disk use grew from %d to %d bytes", warm, st.Bytes)
	}
}

func TestCallbackPanicDoesNotStopCommitter(t *testing.T) {
	s := openDisk(t, t.TempDir(), SyncNone)
	defer s.Close()
	var b Batch
	b.PutInbound("c", 1)
	s.Commit(&b, func(error) { panic("callback bug") })
	commitWait(t, s, &b)
}
