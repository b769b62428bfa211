package store

import (
	"fmt"
	"sync"
	"testing"
)

// BenchmarkCommit commits 1-message batches and waits for each callback, from 1 or 16
// committers. commits/write is the group commit factor: batches per fsync in batch mode.
func BenchmarkCommit(b *testing.B) {
	for _, mode := range []SyncMode{SyncBatch, SyncAlways, SyncNone} {
		for _, committers := range []int{1, 16} {
			b.Run(fmt.Sprintf("%s/committers=%d", mode, committers), func(b *testing.B) {
				s, err := Open(b.TempDir(), mode, nil)
				if err != nil {
					b.Fatal(err)
				}
				msg := sampleMessage("bench/topic", Queued, 0)
				msg.Pub.Payload = make([]byte, 256)
				var wg sync.WaitGroup
				per := (b.N + committers - 1) / committers
				b.ResetTimer()
				for c := range committers {
					wg.Add(1)
					go func() {
						defer wg.Done()
						id := fmt.Sprintf("bench-%d", c)
						done := make(chan error, 1)
						cb := func(err error) { done <- err }
						var batch Batch
						for i := range per {
							batch.Reset()
							batch.PutMessage(id, uint64(i), msg)
							s.Commit(&batch, cb)
							if err := <-done; err != nil {
								b.Error(err)
								return
							}
						}
					}()
				}
				wg.Wait()
				b.StopTimer()
				st := s.Stats()
				b.ReportMetric(st.GroupCommit(), "commits/write")
				if err := s.Close(); err != nil {
					b.Fatal(err)
				}
			})
		}
	}
}

// BenchmarkLoad loads a store of 100,000 messages (1,000 sessions of 100 messages each).
func BenchmarkLoad(b *testing.B) {
	const sessions, each = 1000, 100
	dir := b.TempDir()
	s, err := Open(dir, SyncNone, nil)
	if err != nil {
		b.Fatal(err)
	}
	msg := sampleMessage("bench/topic", Inflight, 1)
	msg.Pub.Payload = make([]byte, 256)
	for c := range sessions {
		var batch Batch
		id := fmt.Sprintf("client-%04d", c)
		batch.PutSession(sampleSession(id))
		for i := range each {
			batch.PutMessage(id, uint64(i), msg)
		}
		s.Commit(&batch, nil)
	}
	if err := s.Close(); err != nil { // and reopen, so that Load reads what a restart reads
		b.Fatal(err)
	}
	s, err = Open(dir, SyncNone, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	b.ResetTimer()
	for b.Loop() {
		n := 0
		err := s.Load(Visitor{
			Session: func(*SessionRecord) error { return nil },
			Message: func(string, uint64, *MessageRecord) error { n++; return nil },
		})
		if err != nil || n != sessions*each {
			b.Fatalf("loaded %d, %v", n, err)
		}
	}
	b.ReportMetric(float64(sessions*each)*float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}
