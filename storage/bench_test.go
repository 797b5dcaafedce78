package storage_test

import (
	"bytes"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/ridgeline-kv/ridgeline/storage"
)

// runConcurrent runs op from `workers` goroutines, one call per b.Loop
// iteration, so up to `workers` calls are in flight at once.
func runConcurrent(b *testing.B, workers int, op func(worker int, seq uint64)) {
	tokens := make(chan struct{})
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			var seq uint64
			for range tokens {
				seq++
				op(w, seq)
			}
		})
	}
	for b.Loop() {
		tokens <- struct{}{}
	}
	close(tokens)
	wg.Wait()
}

func BenchmarkLogStore_StoreLogs(b *testing.B) {
	for _, groups := range []int{1, 32} {
		b.Run(fmt.Sprintf("groups=%d", groups), func(b *testing.B) {
			var commits atomic.Int64
			d := openLogDB(b, filepath.Join(b.TempDir(), "raft.db"), storage.LogDBOptions{
				OnCommit: func(int, int, time.Duration) { commits.Add(1) },
			})
			gs := make([]*storage.LogStore, groups)
			for i := range gs {
				gs[i], _ = d.Group(fmt.Sprintf("g%d", i))
			}
			data := bytes.Repeat([]byte("x"), 256)
			b.ReportAllocs()
			commits.Store(0)
			runConcurrent(b, groups, func(w int, seq uint64) {
				l := &raft.Log{Index: seq, Term: 1, Data: data, AppendedAt: time.Now()}
				if err := gs[w].StoreLogs([]*raft.Log{l}); err != nil {
					b.Error(err)
				}
			})
			b.ReportMetric(float64(commits.Load())/float64(b.N), "fsyncs/op")
		})
	}
}

func BenchmarkLogStore_GetLog(b *testing.B) {
	d := openLogDB(b, filepath.Join(b.TempDir(), "raft.db"), storage.LogDBOptions{})
	g, _ := d.Group("g")
	var ls []*raft.Log
	for i := uint64(1); i <= 1000; i++ {
		ls = append(ls, &raft.Log{Index: i, Term: 1, Data: bytes.Repeat([]byte("x"), 256), AppendedAt: time.Now()})
	}
	if err := g.StoreLogs(ls); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	var l raft.Log
	i := uint64(0)
	for b.Loop() {
		i = i%1000 + 1
		if err := g.GetLog(i, &l); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkShardStore_Update(b *testing.B) {
	for _, shards := range []int{1, 32} {
		b.Run(fmt.Sprintf("shards=%d", shards), func(b *testing.B) {
			var commits atomic.Int64
			d := openStateDB(b, filepath.Join(b.TempDir(), "state.db"), storage.StateDBOptions{
				OnCommit: func(int, time.Duration) { commits.Add(1) },
			})
			ss := make([]*storage.ShardStore, shards)
			for i := range ss {
				ss[i] = newShard(b, d, fmt.Sprintf("s%d", i))
			}
			val := bytes.Repeat([]byte("v"), 128)
			b.ReportAllocs()
			commits.Store(0)
			runConcurrent(b, shards, func(w int, seq uint64) {
				err := ss[w].Update(func(tx *storage.Tx) error {
					if err := tx.Put(fmt.Appendf(nil, "key/%d", seq%10000), val, seq); err != nil {
						return err
					}
					return tx.SetApplied(seq)
				})
				if err != nil {
					b.Error(err)
				}
			})
			b.ReportMetric(float64(commits.Load())/float64(b.N), "fsyncs/op")
		})
	}
}

func BenchmarkTx_Get(b *testing.B) {
	s := newShard(b, tempStateDB(b), "s")
	fill(b, s, 10000, 1)
	keys := make([][]byte, 10000)
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "key/%06d", i)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i = (i + 1) % len(keys)
		err := s.View(func(tx *storage.Tx) error {
			if _, ok := tx.Get(keys[i]); !ok {
				b.Fatal("missing key")
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}
