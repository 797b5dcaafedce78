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

// TestShardStore_UpdateUndoInSharedBatch: two updates of the same shard in
// one group commit; the second fails after overwriting and deleting keys the
// first wrote, and its undo must restore exactly the first's writes.
func TestShardStore_UpdateUndoInSharedBatch(t *testing.T) {
	var commits, txns int
	var mu sync.Mutex
	d, err := OpenStateDB(filepath.Join(t.TempDir(), "state.db"), StateDBOptions{
		OnCommit: func(n int, _ time.Duration) { mu.Lock(); commits++; txns += n; mu.Unlock() },
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
	wait(1)
	wg.Go(func() {
		errs[1] = s.Update(func(tx *Tx) error {
			_ = tx.Put([]byte("k1"), []byte("second"), 2)
			_, _ = tx.Delete([]byte("k2"))
			_ = tx.Put([]byte("k3"), []byte("second"), 2)
			_ = tx.SysDelete([]byte("sess"))
			_ = tx.SetApplied(2)
			return errors.New("second fails")
		})
	})
	wait(2)
	wg.Go(func() {
		errs[2] = other.Update(func(tx *Tx) error { return tx.Put([]byte("x"), []byte("other"), 7) })
	})
	wait(3)
	mu.Lock()
	commits, txns = 0, 0
	mu.Unlock()
	release()
	wg.Wait()

	if errs[0] != nil || errs[1] == nil || errs[2] != nil {
		t.Fatalf("Update errors = %v; want nil, error, nil", errs)
	}
	mu.Lock()
	// The holder's commit plus one shared commit for the three updates.
	if commits != 2 || txns != 4 {
		t.Errorf("commits, requests = %d, %d; want 2, 4", commits, txns)
	}
	mu.Unlock()
	err = s.View(func(tx *Tx) error {
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
	s, _ := d.Shard("a")
	put := func(k string) error {
		return s.Update(func(tx *Tx) error { return tx.Put([]byte(k), []byte("v"), 1) })
	}

	mu.Lock()
	base := len(perCommit) // Shard("a") committed its bucket
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

// TestShardStore_UpdateAsync: UpdateAsync answers once its function has run,
// before the commit; readers see the writes only once committed reports
// success, and later updates see them. A failing function and a closed store
// are reported by UpdateAsync, and committed is then never called.
func TestShardStore_UpdateAsync(t *testing.T) {
	d, err := OpenStateDB(filepath.Join(t.TempDir(), "state.db"), StateDBOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s, _ := d.Shard("a")
	get := func() (string, uint64) {
		t.Helper()
		var data string
		var applied uint64
		if err := s.View(func(tx *Tx) error {
			v, _ := tx.Get([]byte("k"))
			data, applied = string(v.Data), tx.Applied()
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return data, applied
	}

	atCommit, proceed := make(chan struct{}), make(chan struct{})
	d.c.beforeCommit = func() { atCommit <- struct{}{}; <-proceed }
	committed := make(chan error, 1)
	answered := make(chan error, 1)
	go func() {
		answered <- s.UpdateAsync(func(tx *Tx) error {
			if err := tx.Put([]byte("k"), []byte("async"), 1); err != nil {
				return err
			}
			return tx.SetApplied(1)
		}, func(err error) { committed <- err })
	}()
	<-atCommit // the batch has run; its commit waits for proceed
	if err := <-answered; err != nil {
		t.Fatalf("UpdateAsync = %v", err)
	}
	if v, applied := get(); v != "" || applied != 0 {
		t.Errorf("before the commit a reader sees k=%q applied=%d; want nothing", v, applied)
	}
	select {
	case err := <-committed:
		t.Fatalf("committed(%v) called before the commit", err)
	default:
	}
	d.c.beforeCommit = nil
	close(proceed)
	if err := <-committed; err != nil {
		t.Fatalf("committed(%v); want nil", err)
	}
	if v, applied := get(); v != "async" || applied != 1 {
		t.Errorf("after the commit: k=%q applied=%d; want async, 1", v, applied)
	}
	var seen string
	if err := s.Update(func(tx *Tx) error {
		v, _ := tx.Get([]byte("k"))
		seen = string(v.Data)
		return nil
	}); err != nil || seen != "async" {
		t.Errorf("later Update: err %v, saw %q; want the async write", err, seen)
	}

	never := func(err error) { t.Errorf("committed(%v) called for a request that was refused", err) }
	boom := errors.New("boom")
	if err := s.UpdateAsync(func(tx *Tx) error {
		_ = tx.Put([]byte("k"), []byte("undone"), 2)
		return boom
	}, never); !errors.Is(err, boom) {
		t.Errorf("failing UpdateAsync = %v; want boom", err)
	}
	if v, _ := get(); v != "async" {
		t.Errorf("after a failed UpdateAsync k=%q; want async", v)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateAsync(func(tx *Tx) error { return nil }, never); !errors.Is(err, ErrClosed) {
		t.Errorf("UpdateAsync after Close = %v; want ErrClosed", err)
	}
}
