package storage

import (
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"
)

// holdCommitter blocks c's goroutine inside a request until the returned
// release is called, so that requests submitted meanwhile are deterministically
// coalesced into the next batch. wait blocks until n requests are queued.
func holdCommitter(t *testing.T, c *committer) (wait func(n int), release func()) {
	t.Helper()
	entered, gate := make(chan struct{}), make(chan struct{})
	go func() {
		r := &request{done: make(chan struct{}, 1), apply: func(*bolt.Tx) error {
			close(entered)
			<-gate
			return nil
		}}
		_ = c.do(r)
	}()
	<-entered
	wait = func(n int) {
		deadline := time.Now().Add(10 * time.Second)
		for len(c.reqs) < n {
			if time.Now().After(deadline) {
				t.Fatalf("only %d of %d requests queued", len(c.reqs), n)
			}
			time.Sleep(time.Millisecond)
		}
	}
	return wait, func() { close(gate) }
}

// TestShardStore_UpdatesShareAFlush: Updates of two shards, issued while
// the committer is busy, become durable in one shared commit; a failing
// Update in between publishes nothing, even what it wrote over the first's
// keys.
func TestShardStore_UpdatesShareAFlush(t *testing.T) {
	var commits, txns int
	var mu sync.Mutex
	d, err := OpenStateDB(filepath.Join(t.TempDir(), "state.db"), StateDBOptions{
		OnCommit:      func(n int, _ time.Duration) { mu.Lock(); commits++; txns += n; mu.Unlock() },
		FlushInterval: time.Hour, // flushes happen on demand only
	})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	s, _ := d.Shard("a")
	other, _ := d.Shard("b")

	wait, release := holdCommitter(t, d.c)
	errs := make([]error, 3)
	var wg sync.WaitGroup
	wg.Go(func() {
		errs[0] = s.Update(func(tx *Tx) error {
			_ = tx.Put([]byte("k1"), []byte("first"), 1)
			_ = tx.Put([]byte("k2"), []byte("first"), 1)
			_ = tx.SysPut([]byte("sess"), []byte("first"))
			return tx.SetApplied(1)
		})
	})
	wait(1) // the flush request waits behind the held commit
	errs[1] = s.Update(func(tx *Tx) error {
		_ = tx.Put([]byte("k1"), []byte("second"), 2)
		_, _ = tx.Delete([]byte("k2"))
		_ = tx.Put([]byte("k3"), []byte("second"), 2)
		_ = tx.SysDelete([]byte("sess"))
		_ = tx.SetApplied(2)
		return errors.New("second fails")
	})
	wg.Go(func() {
		errs[2] = other.Update(func(tx *Tx) error { return tx.Put([]byte("x"), []byte("other"), 7) })
	})
	waitFor(t, func() bool {
		ok := false
		_ = other.View(func(tx *Tx) error { _, ok = tx.Get([]byte("x")); return nil })
		return ok
	})
	mu.Lock()
	commits, txns = 0, 0
	mu.Unlock()
	release()
	wg.Wait()

	if errs[0] != nil || errs[1] == nil || errs[2] != nil {
		t.Fatalf("Update errors = %v; want nil, error, nil", errs)
	}
	mu.Lock()
	// The holder's commit plus one flush for both shards.
	if commits != 2 || txns != 2 {
		t.Errorf("commits, requests = %d, %d; want 2, 2", commits, txns)
	}
	mu.Unlock()
	check := func(s *ShardStore) {
		t.Helper()
		err := s.View(func(tx *Tx) error {
			v1, _ := tx.Get([]byte("k1"))
			v2, ok2 := tx.Get([]byte("k2"))
			_, ok3 := tx.Get([]byte("k3"))
			if string(v1.Data) != "first" || !ok2 || string(v2.Data) != "first" || ok3 ||
				string(tx.SysGet([]byte("sess"))) != "first" || tx.Applied() != 1 || tx.Keys() != 2 {
				t.Errorf("k1=%q k2=%q,%v k3 %v sess=%q applied=%d keys=%d; want first, first, no k3, first, 1, 2",
					v1.Data, v2.Data, ok2, ok3, tx.SysGet([]byte("sess")), tx.Applied(), tx.Keys())
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	check(s)
	// Durable: a crash now (nothing flushed at close) keeps all of it.
	path := d.db.Path()
	crash(t, d)
	d2, err := OpenStateDB(path, StateDBOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	s2, _ := d2.Shard("a")
	check(s2)
	o2, _ := d2.Shard("b")
	if err := o2.View(func(tx *Tx) error {
		if v, ok := tx.Get([]byte("x")); !ok || string(v.Data) != "other" {
			t.Errorf("shard b after crash: x = %q, %v; want other", v.Data, ok)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// TestCommitter_DirtyFailure: a request that fails leaving the transaction
// dirty is isolated by rollback and re-run on the LogDB, and fails its whole
// batch on the StateDB (where re-running would call functions twice).
func TestCommitter_DirtyFailure(t *testing.T) {
	tests := []struct {
		name      string
		rerun     bool
		wantOther bool // whether the other requests succeed
	}{
		{"rerun", true, true},
		{"abort", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, err := openBolt(filepath.Join(t.TempDir(), "x.db"), 0)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			c := newCommitter(db, testingLogger(t), nil)
			c.rerun = tt.rerun
			defer c.close()

			calls := make([]int, 3)
			mk := func(i int, fail bool) *request {
				return &request{done: make(chan struct{}, 1), apply: func(tx *bolt.Tx) error {
					calls[i]++
					b, err := tx.CreateBucketIfNotExists([]byte("b"))
					if err != nil {
						return err
					}
					_ = b.Put([]byte{byte(i)}, []byte("v"))
					if fail {
						return errors.New("dirty failure")
					}
					return nil
				}}
			}
			reqs := []*request{mk(0, false), mk(1, true), mk(2, false)}
			wait, release := holdCommitter(t, c)
			var wg sync.WaitGroup
			for i, r := range reqs {
				wg.Go(func() { _ = c.do(r) })
				wait(i + 1)
			}
			release()
			wg.Wait()
			if reqs[1].err == nil {
				t.Fatalf("failing request err = nil")
			}
			for _, i := range []int{0, 2} {
				if ok := reqs[i].err == nil; ok != tt.wantOther {
					t.Errorf("request %d err = %v; want success %v", i, reqs[i].err, tt.wantOther)
				}
			}
			_ = db.View(func(tx *bolt.Tx) error {
				for i := range 3 {
					var v []byte
					if b := tx.Bucket([]byte("b")); b != nil {
						v = b.Get([]byte{byte(i)})
					}
					if want := tt.wantOther && i != 1; (v != nil) != want {
						t.Errorf("key %d stored = %v; want %v", i, v != nil, want)
					}
				}
				return nil
			})
			if !tt.rerun && (calls[0] > 1 || calls[2] > 1) {
				t.Errorf("apply calls = %v; want at most once each without rerun", calls)
			}
		})
	}
}

func TestLogStore_CloseFailsQueued(t *testing.T) {
	d, err := OpenLogDB(filepath.Join(t.TempDir(), "raft.db"), LogDBOptions{Logger: testingLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	g, _ := d.Group("a")
	wait, release := holdCommitter(t, d.c)
	done := make(chan error)
	go func() { done <- g.StoreLog(&raft.Log{Index: 1, Term: 1}) }()
	wait(1)
	closed := make(chan error)
	go func() { closed <- d.Close() }()
	<-d.c.stop // Close has begun
	// Close must wait for the batch in flight; the queued write fails.
	release()
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Fatalf("queued StoreLog = %v; want ErrClosed", err)
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
}

// TestCommitter_LingerUnderLoad: once a commit carried more than one request,
// the next commit waits (up to the linger) for more, so a request arriving
// just after a lone one shares its fsync.
func TestCommitter_LingerUnderLoad(t *testing.T) {
	var mu sync.Mutex
	var perCommit []int
	d, err := OpenStateDB(filepath.Join(t.TempDir(), "state.db"), StateDBOptions{
		GroupCommitLinger: 500 * time.Millisecond,
		OnCommit:          func(n int, _ time.Duration) { mu.Lock(); perCommit = append(perCommit, n); mu.Unlock() },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	put := func(k string) error {
		r := &request{done: make(chan struct{}, 1), apply: func(tx *bolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists([]byte("t"))
			if err != nil {
				return err
			}
			return b.Put([]byte(k), []byte("v"))
		}}
		return d.c.do(r)
	}

	mu.Lock()
	base := len(perCommit)
	mu.Unlock()

	// Load: two requests queued behind a held commit form a batch of two.
	wait, release := holdCommitter(t, d.c)
	var wg sync.WaitGroup
	for _, k := range []string{"a", "b"} {
		wg.Go(func() {
			if err := put(k); err != nil {
				t.Error(err)
			}
		})
	}
	wait(2)
	release()
	wg.Wait()

	// A lone request: the committer takes it and lingers; one sent while it
	// lingers joins the same commit.
	wg.Go(func() {
		if err := put("c"); err != nil {
			t.Error(err)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(perCommit)
		mu.Unlock()
		if n >= base+2 && len(d.c.reqs) == 0 {
			break // {held} and {a, b} committed; "c" has been taken by the committer
		}
		if time.Now().After(deadline) {
			t.Fatal("first commits did not happen")
		}
		time.Sleep(time.Millisecond)
	}
	wg.Go(func() {
		if err := put("d"); err != nil {
			t.Error(err)
		}
	})
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if got := perCommit[base:]; len(got) != 3 || got[2] != 2 {
		t.Fatalf("commits carried %v requests; want the lone request and the late one to share the third commit ([1 2 2])", got)
	}
}
