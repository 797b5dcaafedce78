package storagetest

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// entry builds a log entry with every field set.
func entry(index, term uint64) *raft.Log {
	return &raft.Log{
		Index:      index,
		Term:       term,
		Type:       raft.LogType(index % 7),
		Data:       []byte(fmt.Sprintf("data-%d-%d", index, term)),
		Extensions: []byte(fmt.Sprintf("ext-%d", index)),
		AppendedAt: time.Unix(1700000000, int64(index)*1000).UTC(),
	}
}

func entries(from, to, term uint64) []*raft.Log {
	var ls []*raft.Log
	for i := from; i <= to; i++ {
		ls = append(ls, entry(i, term))
	}
	return ls
}

func equalLog(a, b *raft.Log) bool {
	return a.Index == b.Index && a.Term == b.Term && a.Type == b.Type &&
		bytes.Equal(a.Data, b.Data) && bytes.Equal(a.Extensions, b.Extensions) &&
		a.AppendedAt.Equal(b.AppendedAt)
}

// checkBounds fails t unless s's first and last index are first and last.
func checkBounds(t *testing.T, s raft.LogStore, first, last uint64) {
	t.Helper()
	f, err := s.FirstIndex()
	if err != nil {
		t.Fatalf("FirstIndex: %v", err)
	}
	l, err := s.LastIndex()
	if err != nil {
		t.Fatalf("LastIndex: %v", err)
	}
	if f != first || l != last {
		t.Fatalf("FirstIndex, LastIndex = %d, %d; want %d, %d", f, l, first, last)
	}
}

// checkLogs fails t unless s holds exactly want[i] for each present index
// and nothing for each index in absent.
func checkLogs(t *testing.T, s raft.LogStore, want []*raft.Log, absent ...uint64) {
	t.Helper()
	for _, w := range want {
		var got raft.Log
		if err := s.GetLog(w.Index, &got); err != nil {
			t.Fatalf("GetLog(%d): %v", w.Index, err)
		}
		if !equalLog(&got, w) {
			t.Fatalf("GetLog(%d) = %+v; want %+v", w.Index, got, *w)
		}
	}
	for _, i := range absent {
		var got raft.Log
		if err := s.GetLog(i, &got); !errors.Is(err, raft.ErrLogNotFound) {
			t.Fatalf("GetLog(%d) error = %v; want raft.ErrLogNotFound", i, err)
		}
	}
}

func store(t *testing.T, s raft.LogStore, ls []*raft.Log) {
	t.Helper()
	if err := s.StoreLogs(ls); err != nil {
		t.Fatalf("StoreLogs: %v", err)
	}
}

// TestLogStore runs the raft.LogStore conformance suite. open must return a
// new, empty store, independent of every store it returned before.
func TestLogStore(t *testing.T, open func(t *testing.T) raft.LogStore) {
	t.Run("Empty", func(t *testing.T) {
		s := open(t)
		checkBounds(t, s, 0, 0)
		checkLogs(t, s, nil, 0, 1, 100)
	})

	t.Run("StoreLog", func(t *testing.T) {
		s := open(t)
		want := entry(1, 1)
		if err := s.StoreLog(want); err != nil {
			t.Fatalf("StoreLog: %v", err)
		}
		checkBounds(t, s, 1, 1)
		checkLogs(t, s, []*raft.Log{want}, 2)
	})

	t.Run("StoreLogsAllFields", func(t *testing.T) {
		s := open(t)
		ls := entries(5, 50, 3)
		ls[0].Data, ls[0].Extensions = nil, nil        // empty fields
		ls[1].AppendedAt = time.Time{}                 // zero time
		ls[2].Data = bytes.Repeat([]byte{0xab}, 1<<16) // large
		ls[3].Type = raft.LogConfiguration
		store(t, s, ls)
		checkBounds(t, s, 5, 50)
		checkLogs(t, s, ls, 4, 51)
	})

	t.Run("Overwrite", func(t *testing.T) {
		s := open(t)
		store(t, s, entries(1, 10, 1))
		// raft truncates a conflicting suffix, then appends the new one.
		if err := s.DeleteRange(6, 10); err != nil {
			t.Fatalf("DeleteRange: %v", err)
		}
		newer := entries(6, 8, 2)
		store(t, s, newer)
		checkBounds(t, s, 1, 8)
		checkLogs(t, s, append(entries(1, 5, 1), newer...), 9, 10)
		// Overwriting in place also works.
		again := entries(7, 7, 3)
		store(t, s, again)
		checkLogs(t, s, again)
	})

	// The ranges are those raft deletes: a prefix (compaction), a suffix
	// (conflict truncation) or everything (snapshot install).
	t.Run("DeleteRange", func(t *testing.T) {
		tests := []struct {
			name        string
			min, max    uint64
			first, last uint64
		}{
			{"prefix", 1, 40, 41, 100},
			{"prefix below first", 0, 10, 11, 100},
			{"suffix", 61, 100, 1, 60},
			{"suffix beyond last", 90, 1000, 1, 89},
			{"all", 1, 100, 0, 0},
			{"single", 100, 100, 1, 99},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				s := open(t)
				all := entries(1, 100, 1)
				store(t, s, all)
				if err := s.DeleteRange(tt.min, tt.max); err != nil {
					t.Fatalf("DeleteRange(%d, %d): %v", tt.min, tt.max, err)
				}
				checkBounds(t, s, tt.first, tt.last)
				var kept []*raft.Log
				var gone []uint64
				for _, l := range all {
					if l.Index >= tt.min && l.Index <= tt.max {
						gone = append(gone, l.Index)
					} else {
						kept = append(kept, l)
					}
				}
				checkLogs(t, s, kept, gone...)
				// The log keeps working after the delete.
				next := entries(tt.last+1, tt.last+3, 2)
				store(t, s, next)
				checkLogs(t, s, next)
			})
		}
	})

	t.Run("Isolation", func(t *testing.T) {
		a, b := open(t), open(t)
		store(t, a, entries(1, 20, 1))
		store(t, b, entries(100, 110, 2))
		checkBounds(t, a, 1, 20)
		checkBounds(t, b, 100, 110)
		checkLogs(t, a, entries(1, 20, 1), 100)
		checkLogs(t, b, entries(100, 110, 2), 1)
		if err := a.DeleteRange(1, 20); err != nil {
			t.Fatalf("DeleteRange: %v", err)
		}
		checkBounds(t, a, 0, 0)
		checkBounds(t, b, 100, 110)
	})

	t.Run("ConcurrentStores", func(t *testing.T) {
		const stores, batches, per = 8, 25, 4
		ss := make([]raft.LogStore, stores)
		for i := range ss {
			ss[i] = open(t)
		}
		var wg sync.WaitGroup
		errs := make(chan error, stores)
		for i, s := range ss {
			wg.Go(func() {
				for b := range uint64(batches) {
					from := b*per + 1
					if err := s.StoreLogs(entries(from, from+per-1, uint64(i+1))); err != nil {
						errs <- err
						return
					}
					if b%5 == 4 { // compact as raft does, concurrently
						if err := s.DeleteRange(0, from-1); err != nil {
							errs <- err
							return
						}
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		for i, s := range ss {
			last := uint64(batches * per)
			first := uint64((batches-1)*per + 1) // the last compaction was after the last batch
			checkBounds(t, s, first, last)
			checkLogs(t, s, entries(first, last, uint64(i+1)), first-1, last+1)
		}
	})
}

// TestStableStore runs the raft.StableStore conformance suite. open must
// return a new, empty store.
func TestStableStore(t *testing.T, open func(t *testing.T) raft.StableStore) {
	t.Run("Missing", func(t *testing.T) {
		s := open(t)
		// hashicorp/raft compares the message with "not found".
		if _, err := s.Get([]byte("CurrentTerm")); err == nil || err.Error() != "not found" {
			t.Fatalf("Get(missing) error = %v; want \"not found\"", err)
		}
		v, err := s.GetUint64([]byte("CurrentTerm"))
		if v != 0 || (err != nil && err.Error() != "not found") {
			t.Fatalf("GetUint64(missing) = %d, %v; want 0 and nil or \"not found\"", v, err)
		}
	})

	t.Run("SetGet", func(t *testing.T) {
		tests := []struct {
			name string
			key  string
			val  []byte
		}{
			{"short", "LastVoteCand", []byte("node-1")},
			{"binary", "k\x00\xff", []byte{0, 1, 2, 0xff}},
			{"large", "big", bytes.Repeat([]byte("x"), 1<<15)},
		}
		s := open(t)
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if err := s.Set([]byte(tt.key), tt.val); err != nil {
					t.Fatalf("Set: %v", err)
				}
				got, err := s.Get([]byte(tt.key))
				if err != nil || !bytes.Equal(got, tt.val) {
					t.Fatalf("Get(%q) = %q, %v; want %q", tt.key, got, err, tt.val)
				}
			})
		}
		// Overwrite.
		if err := s.Set([]byte("LastVoteCand"), []byte("node-2")); err != nil {
			t.Fatalf("Set: %v", err)
		}
		if got, _ := s.Get([]byte("LastVoteCand")); string(got) != "node-2" {
			t.Fatalf("Get after overwrite = %q; want node-2", got)
		}
	})

	t.Run("Uint64", func(t *testing.T) {
		s := open(t)
		for _, v := range []uint64{0, 1, 42, 1 << 63, ^uint64(0)} {
			if err := s.SetUint64([]byte("CurrentTerm"), v); err != nil {
				t.Fatalf("SetUint64(%d): %v", v, err)
			}
			got, err := s.GetUint64([]byte("CurrentTerm"))
			if err != nil || got != v {
				t.Fatalf("GetUint64 = %d, %v; want %d", got, err, v)
			}
		}
	})

	t.Run("Isolation", func(t *testing.T) {
		a, b := open(t), open(t)
		if err := a.SetUint64([]byte("CurrentTerm"), 7); err != nil {
			t.Fatal(err)
		}
		if err := a.Set([]byte("LastVoteCand"), []byte("a")); err != nil {
			t.Fatal(err)
		}
		if v, _ := b.GetUint64([]byte("CurrentTerm")); v != 0 {
			t.Fatalf("other store's GetUint64 = %d; want 0", v)
		}
		if _, err := b.Get([]byte("LastVoteCand")); err == nil {
			t.Fatalf("other store's Get found a key set in another store")
		}
	})
}
