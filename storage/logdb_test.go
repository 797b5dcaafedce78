package storage_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/ridgeline-kv/ridgeline/storage"
	"github.com/ridgeline-kv/ridgeline/storage/storagetest"
)

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func openLogDB(t testing.TB, path string, opts storage.LogDBOptions) *storage.LogDB {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	d, err := storage.OpenLogDB(path, opts)
	if err != nil {
		t.Fatalf("OpenLogDB: %v", err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

// groupOpener returns an open function for the conformance suite that hands
// out a fresh group of one shared LogDB per call.
func groupOpener(t *testing.T) func(t *testing.T) *storage.LogStore {
	d := openLogDB(t, filepath.Join(t.TempDir(), "raft.db"), storage.LogDBOptions{})
	var n atomic.Int64
	return func(t *testing.T) *storage.LogStore {
		g, err := d.Group(fmt.Sprintf("g%d", n.Add(1)))
		if err != nil {
			t.Fatalf("Group: %v", err)
		}
		return g
	}
}

func TestLogStore_Conformance(t *testing.T) {
	open := groupOpener(t)
	storagetest.TestLogStore(t, func(t *testing.T) raft.LogStore { return open(t) })
}

// A leader's store, whose appends return before they are durable, must
// behave the same to raft.
func TestLogStore_ConformanceReturningEarly(t *testing.T) {
	open := groupOpener(t)
	storagetest.TestLogStore(t, func(t *testing.T) raft.LogStore {
		g := open(t)
		g.ReturnEarly(func() bool { return true })
		return g
	})
}

func TestStableStore_Conformance(t *testing.T) {
	open := groupOpener(t)
	storagetest.TestStableStore(t, func(t *testing.T) raft.StableStore { return open(t) })
}

// The suite itself is checked against hashicorp/raft's reference store.
func TestInmemStore_Conformance(t *testing.T) {
	storagetest.TestLogStore(t, func(*testing.T) raft.LogStore { return raft.NewInmemStore() })
	storagetest.TestStableStore(t, func(*testing.T) raft.StableStore { return raft.NewInmemStore() })
}

func TestLogStore_GetNotFoundError(t *testing.T) {
	g := groupOpener(t)(t)
	_, err := g.Get([]byte("missing"))
	if err == nil || err.Error() != "not found" || !errors.Is(err, storage.ErrKeyNotFound) {
		t.Fatalf("Get(missing) error = %v; want message \"not found\" matching ErrKeyNotFound", err)
	}
	if _, err := g.GetUint64([]byte("missing")); !errors.Is(err, storage.ErrKeyNotFound) {
		t.Fatalf("GetUint64(missing) error = %v; want ErrKeyNotFound", err)
	}
	if err := g.Set([]byte("empty"), nil); err != nil {
		t.Fatal(err)
	}
	if v, err := g.Get([]byte("empty")); err != nil || len(v) != 0 {
		t.Fatalf("Get(empty value) = %q, %v; want empty, nil", v, err)
	}
}

func TestLogStore_NoAliasing(t *testing.T) {
	g := groupOpener(t)(t)
	in := &raft.Log{Index: 1, Term: 1, Data: []byte("hello"), Extensions: []byte("ext")}
	if err := g.StoreLog(in); err != nil {
		t.Fatal(err)
	}
	in.Data[0], in.Extensions[0] = 'X', 'X'
	var out raft.Log
	if err := g.GetLog(1, &out); err != nil {
		t.Fatal(err)
	}
	if string(out.Data) != "hello" || string(out.Extensions) != "ext" {
		t.Fatalf("GetLog = %q/%q; want hello/ext (the store must not alias the caller's slices)", out.Data, out.Extensions)
	}
}

func TestLogDB_Reopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "raft.db")
	d := openLogDB(t, path, storage.LogDBOptions{})
	for i := range 3 {
		g, err := d.Group(fmt.Sprintf("shard-%d", i))
		if err != nil {
			t.Fatal(err)
		}
		var ls []*raft.Log
		for j := uint64(1); j <= 50; j++ {
			ls = append(ls, &raft.Log{Index: j, Term: uint64(i + 1), Data: []byte{byte(j)}})
		}
		if err := g.StoreLogs(ls); err != nil {
			t.Fatal(err)
		}
		if err := g.DeleteRange(1, 10); err != nil {
			t.Fatal(err)
		}
		if err := g.SetUint64([]byte("CurrentTerm"), uint64(i+1)); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := d.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	d = openLogDB(t, path, storage.LogDBOptions{})
	groups, err := d.Groups()
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"shard-0", "shard-1", "shard-2"}; !slices.Equal(groups, want) {
		t.Fatalf("Groups = %q; want %q", groups, want)
	}
	for i, id := range groups {
		g, err := d.Group(id)
		if err != nil {
			t.Fatal(err)
		}
		first, _ := g.FirstIndex()
		last, _ := g.LastIndex()
		if first != 11 || last != 50 {
			t.Fatalf("%s: FirstIndex, LastIndex = %d, %d; want 11, 50", id, first, last)
		}
		var l raft.Log
		if err := g.GetLog(50, &l); err != nil || l.Term != uint64(i+1) || !bytes.Equal(l.Data, []byte{50}) {
			t.Fatalf("%s: GetLog(50) = %+v, %v", id, l, err)
		}
		if term, err := g.GetUint64([]byte("CurrentTerm")); err != nil || term != uint64(i+1) {
			t.Fatalf("%s: CurrentTerm = %d, %v; want %d", id, term, err, i+1)
		}
	}
}

func TestLogDB_DropGroup(t *testing.T) {
	d := openLogDB(t, filepath.Join(t.TempDir(), "raft.db"), storage.LogDBOptions{})
	a, _ := d.Group("a")
	b, _ := d.Group("b")
	for _, g := range []*storage.LogStore{a, b} {
		if err := g.StoreLog(&raft.Log{Index: 1, Term: 1}); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.DropGroup("a"); err != nil {
		t.Fatal(err)
	}
	if err := d.DropGroup("never-existed"); err != nil {
		t.Fatalf("DropGroup(missing) = %v; want nil", err)
	}
	if err := a.StoreLog(&raft.Log{Index: 2, Term: 1}); !errors.Is(err, storage.ErrGroupNotFound) {
		t.Fatalf("StoreLog on dropped group = %v; want ErrGroupNotFound", err)
	}
	if groups, _ := d.Groups(); !slices.Equal(groups, []string{"b"}) {
		t.Fatalf("Groups = %q; want [b]", groups)
	}
	// Re-creating the group starts empty.
	a2, err := d.Group("a")
	if err != nil {
		t.Fatal(err)
	}
	if last, _ := a2.LastIndex(); last != 0 {
		t.Fatalf("recreated group LastIndex = %d; want 0", last)
	}
	if last, _ := b.LastIndex(); last != 1 {
		t.Fatalf("other group LastIndex = %d; want 1", last)
	}
}

func TestLogDB_Close(t *testing.T) {
	d := openLogDB(t, filepath.Join(t.TempDir(), "raft.db"), storage.LogDBOptions{})
	g, _ := d.Group("a")
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		call func() error
	}{
		{"StoreLog", func() error { return g.StoreLog(&raft.Log{Index: 1}) }},
		{"DeleteRange", func() error { return g.DeleteRange(1, 2) }},
		{"Set", func() error { return g.Set([]byte("k"), []byte("v")) }},
		{"GetLog", func() error { return g.GetLog(1, &raft.Log{}) }},
		{"Get", func() error { _, err := g.Get([]byte("k")); return err }},
		{"Group", func() error { _, err := d.Group("b"); return err }},
		{"Groups", func() error { _, err := d.Groups(); return err }},
	}
	for _, tt := range tests {
		if err := tt.call(); !errors.Is(err, storage.ErrClosed) {
			t.Errorf("%s after Close = %v; want ErrClosed", tt.name, err)
		}
	}
}

// TestLogDB_GroupCommit checks that concurrent writes of different groups
// share commits: it counts requests and commits, it does not time them.
func TestLogDB_GroupCommit(t *testing.T) {
	var commits, txns, entries atomic.Int64
	d := openLogDB(t, filepath.Join(t.TempDir(), "raft.db"), storage.LogDBOptions{
		OnCommit: func(e, n int, _ time.Duration) {
			commits.Add(1)
			txns.Add(int64(n))
			entries.Add(int64(e))
		},
	})
	const groups, writes = 32, 20
	gs := make([]*storage.LogStore, groups)
	for i := range gs {
		g, err := d.Group(fmt.Sprintf("g%d", i))
		if err != nil {
			t.Fatal(err)
		}
		gs[i] = g
	}
	commits.Store(0)
	txns.Store(0)
	entries.Store(0)
	var wg sync.WaitGroup
	for _, g := range gs {
		wg.Go(func() {
			for j := uint64(1); j <= writes; j++ {
				if err := g.StoreLogs([]*raft.Log{{Index: 2*j - 1, Term: 1}, {Index: 2 * j, Term: 1}}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if got, want := txns.Load(), int64(groups*writes); got != want {
		t.Fatalf("requests committed = %d; want %d", got, want)
	}
	if got, want := entries.Load(), int64(groups*writes*2); got != want {
		t.Fatalf("entries committed = %d; want %d", got, want)
	}
	if c := commits.Load(); c >= txns.Load() {
		t.Fatalf("commits = %d for %d concurrent requests; want fewer (group commit)", c, txns.Load())
	}
	t.Logf("%d requests in %d commits", txns.Load(), commits.Load())
	for _, g := range gs {
		if last, _ := g.LastIndex(); last != 2*writes {
			t.Fatalf("LastIndex = %d; want %d", last, 2*writes)
		}
	}
}

// TestLogDB_FailureIsolation: a request that fails inside a group commit
// does not fail the others.
func TestLogDB_FailureIsolation(t *testing.T) {
	d := openLogDB(t, filepath.Join(t.TempDir(), "raft.db"), storage.LogDBOptions{})
	const groups = 16
	var wg sync.WaitGroup
	for i := range groups {
		g, err := d.Group(fmt.Sprintf("g%d", i))
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			for j := uint64(1); j <= 20; j++ {
				if i%4 == 0 {
					// A key bbolt refuses: the request fails inside the batch.
					if err := g.Set(bytes.Repeat([]byte("k"), 40000), []byte("v")); err == nil {
						t.Error("Set(oversized key) = nil; want an error")
					}
					continue
				}
				if err := g.StoreLog(&raft.Log{Index: j, Term: 1}); err != nil {
					t.Errorf("StoreLog: %v", err)
				}
			}
			if i%4 != 0 {
				if last, _ := g.LastIndex(); last != 20 {
					t.Errorf("LastIndex = %d; want 20", last)
				}
			}
		})
	}
	wg.Wait()
}

// TestLogStore_DeleteRangeEdges covers ranges raft never issues, which
// hashicorp/raft's in-memory store gets wrong.
func TestLogStore_DeleteRangeEdges(t *testing.T) {
	tests := []struct {
		name        string
		min, max    uint64
		first, last uint64
	}{
		{"superset", 0, 1 << 62, 0, 0},
		{"outside", 200, 300, 1, 100},
		{"middle", 40, 60, 1, 100},
	}
	open := groupOpener(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := open(t)
			var ls []*raft.Log
			for i := uint64(1); i <= 100; i++ {
				ls = append(ls, &raft.Log{Index: i, Term: 1})
			}
			if err := g.StoreLogs(ls); err != nil {
				t.Fatal(err)
			}
			if err := g.DeleteRange(tt.min, tt.max); err != nil {
				t.Fatal(err)
			}
			first, _ := g.FirstIndex()
			last, _ := g.LastIndex()
			if first != tt.first || last != tt.last {
				t.Fatalf("FirstIndex, LastIndex = %d, %d; want %d, %d", first, last, tt.first, tt.last)
			}
			for i := uint64(1); i <= 100; i++ {
				err := g.GetLog(i, &raft.Log{})
				if gone := i >= tt.min && i <= tt.max; gone != errors.Is(err, raft.ErrLogNotFound) {
					t.Fatalf("GetLog(%d) = %v; deleted: %v", i, err, gone)
				}
			}
		})
	}
}
