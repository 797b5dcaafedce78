package storage_test

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ridgeline-kv/ridgeline/storage"
)

func openStateDB(t testing.TB, path string, opts storage.StateDBOptions) *storage.StateDB {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	d, err := storage.OpenStateDB(path, opts)
	if err != nil {
		t.Fatalf("OpenStateDB: %v", err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

func newShard(t testing.TB, d *storage.StateDB, id string) *storage.ShardStore {
	t.Helper()
	s, err := d.Shard(id)
	if err != nil {
		t.Fatalf("Shard(%q): %v", id, err)
	}
	return s
}

func tempStateDB(t testing.TB) *storage.StateDB {
	return openStateDB(t, filepath.Join(t.TempDir(), "state.db"), storage.StateDBOptions{})
}

func mustUpdate(t testing.TB, s *storage.ShardStore, fn func(tx *storage.Tx) error) {
	t.Helper()
	if err := s.Update(fn); err != nil {
		t.Fatalf("Update: %v", err)
	}
}

// dump returns the shard's data as "key=value@version" strings.
func dump(t testing.TB, s *storage.ShardStore) []string {
	t.Helper()
	var out []string
	err := s.View(func(tx *storage.Tx) error {
		return tx.Scan(storage.ScanOptions{}, func(k []byte, v storage.Value) bool {
			out = append(out, fmt.Sprintf("%s=%s@%d", k, v.Data, v.Version))
			return true
		})
	})
	if err != nil {
		t.Fatalf("View: %v", err)
	}
	return out
}

func checksum(t testing.TB, s *storage.ShardStore) (applied, sum, keys uint64) {
	t.Helper()
	applied, sum, keys, err := s.Checksum()
	if err != nil {
		t.Fatalf("Checksum: %v", err)
	}
	return applied, sum, keys
}

func TestTx_PutGetDelete(t *testing.T) {
	s := newShard(t, tempStateDB(t), "1")
	tests := []struct {
		name      string
		op        func(tx *storage.Tx) error
		key       string
		wantData  string
		wantVer   uint64
		wantFound bool
		wantKeys  uint64
	}{
		{"put new", func(tx *storage.Tx) error { return tx.Put([]byte("a"), []byte("1"), 10) }, "a", "1", 10, true, 1},
		{"put second", func(tx *storage.Tx) error { return tx.Put([]byte("b"), []byte("2"), 11) }, "b", "2", 11, true, 2},
		{"overwrite", func(tx *storage.Tx) error { return tx.Put([]byte("a"), []byte("1b"), 12) }, "a", "1b", 12, true, 2},
		{"empty value", func(tx *storage.Tx) error { return tx.Put([]byte("c"), nil, 13) }, "c", "", 13, true, 3},
		{"delete", func(tx *storage.Tx) error {
			ok, err := tx.Delete([]byte("a"))
			if !ok {
				return errors.New("Delete(a) existed = false")
			}
			return err
		}, "a", "", 0, false, 2},
		{"delete missing", func(tx *storage.Tx) error {
			ok, err := tx.Delete([]byte("zz"))
			if ok {
				return errors.New("Delete(zz) existed = true")
			}
			return err
		}, "zz", "", 0, false, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mustUpdate(t, s, tt.op)
			err := s.View(func(tx *storage.Tx) error {
				v, ok := tx.Get([]byte(tt.key))
				if ok != tt.wantFound || string(v.Data) != tt.wantData || v.Version != tt.wantVer {
					t.Errorf("Get(%q) = %q@%d, %v; want %q@%d, %v", tt.key, v.Data, v.Version, ok, tt.wantData, tt.wantVer, tt.wantFound)
				}
				if got := tx.Keys(); got != tt.wantKeys {
					t.Errorf("Keys() = %d; want %d", got, tt.wantKeys)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
	if _, _, keys := checksum(t, s); keys != 2 {
		t.Fatalf("Checksum keys = %d; want 2", keys)
	}
}

func TestTx_Scan(t *testing.T) {
	s := newShard(t, tempStateDB(t), "1")
	keys := []string{"a", "a/1", "a/2", "a/3", "b", "b/1", "c\xff", "c\xff\xff", "d"}
	mustUpdate(t, s, func(tx *storage.Tx) error {
		for i, k := range slices.Backward(keys) { // insertion order must not matter
			if err := tx.Put([]byte(k), []byte(k), uint64(i)); err != nil {
				return err
			}
		}
		return nil
	})
	tests := []struct {
		name  string
		o     storage.ScanOptions
		limit int
		want  []string
	}{
		{"all", storage.ScanOptions{}, 0, keys},
		{"start", storage.ScanOptions{Start: []byte("b")}, 0, []string{"b", "b/1", "c\xff", "c\xff\xff", "d"}},
		{"end exclusive", storage.ScanOptions{End: []byte("a/3")}, 0, []string{"a", "a/1", "a/2"}},
		{"start end", storage.ScanOptions{Start: []byte("a/2"), End: []byte("b/1")}, 0, []string{"a/2", "a/3", "b"}},
		{"prefix", storage.ScanOptions{Prefix: []byte("a/")}, 0, []string{"a/1", "a/2", "a/3"}},
		{"prefix 0xff", storage.ScanOptions{Prefix: []byte("c\xff")}, 0, []string{"c\xff", "c\xff\xff"}},
		{"prefix and start", storage.ScanOptions{Prefix: []byte("a/"), Start: []byte("a/2")}, 0, []string{"a/2", "a/3"}},
		{"prefix and end", storage.ScanOptions{Prefix: []byte("a"), End: []byte("a/2")}, 0, []string{"a", "a/1"}},
		{"empty range", storage.ScanOptions{Start: []byte("b"), End: []byte("b")}, 0, nil},
		{"no match", storage.ScanOptions{Prefix: []byte("x")}, 0, nil},
		{"stop early", storage.ScanOptions{}, 2, []string{"a", "a/1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			err := s.View(func(tx *storage.Tx) error {
				return tx.Scan(tt.o, func(k []byte, v storage.Value) bool {
					if !bytes.Equal(k, v.Data) {
						t.Errorf("value of %q = %q", k, v.Data)
					}
					got = append(got, string(k))
					return tt.limit == 0 || len(got) < tt.limit
				})
			})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("Scan(%+v) = %q; want %q", tt.o, got, tt.want)
			}
		})
	}
}

func TestTx_ReadOnly(t *testing.T) {
	s := newShard(t, tempStateDB(t), "1")
	var saved *storage.Tx
	mustUpdate(t, s, func(tx *storage.Tx) error { saved = tx; return nil })
	if err := saved.Put([]byte("k"), nil, 1); !errors.Is(err, storage.ErrTxDone) {
		t.Errorf("Put after Update returned = %v; want ErrTxDone", err)
	}
	err := s.View(func(tx *storage.Tx) error {
		tests := []struct {
			name string
			call func() error
		}{
			{"Put", func() error { return tx.Put([]byte("k"), nil, 1) }},
			{"Delete", func() error { _, err := tx.Delete([]byte("k")); return err }},
			{"SetApplied", func() error { return tx.SetApplied(1) }},
			{"SysPut", func() error { return tx.SysPut([]byte("k"), nil) }},
			{"SysDelete", func() error { return tx.SysDelete([]byte("k")) }},
		}
		for _, tt := range tests {
			if err := tt.call(); !errors.Is(err, storage.ErrReadOnlyTx) {
				t.Errorf("%s in View = %v; want ErrReadOnlyTx", tt.name, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestTx_Sys(t *testing.T) {
	s := newShard(t, tempStateDB(t), "1")
	mustUpdate(t, s, func(tx *storage.Tx) error {
		for _, k := range []string{"session/2", "session/1", "empty"} {
			v := []byte("v-" + k)
			if k == "empty" {
				v = nil
			}
			if err := tx.SysPut([]byte(k), v); err != nil {
				return err
			}
		}
		return tx.SysDelete([]byte("session/2"))
	})
	err := s.View(func(tx *storage.Tx) error {
		if got := tx.SysGet([]byte("session/1")); string(got) != "v-session/1" {
			t.Errorf("SysGet = %q", got)
		}
		if got := tx.SysGet([]byte("session/2")); got != nil {
			t.Errorf("SysGet(deleted) = %q; want nil", got)
		}
		var ks []string
		_ = tx.SysForEach(func(k, _ []byte) error { ks = append(ks, string(k)); return nil })
		if want := []string{"empty", "session/1"}; !slices.Equal(ks, want) {
			t.Errorf("SysForEach keys = %q; want %q", ks, want)
		}
		if tx.Keys() != 0 {
			t.Errorf("Keys() = %d; sys keys must not count", tx.Keys())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestShardStore_UpdateError: a failing function persists nothing, not even
// the applied index set in the same transaction.
func TestShardStore_UpdateError(t *testing.T) {
	s := newShard(t, tempStateDB(t), "1")
	mustUpdate(t, s, func(tx *storage.Tx) error {
		_ = tx.SysPut([]byte("sess"), []byte("old"))
		_ = tx.Put([]byte("keep"), []byte("old"), 1)
		_ = tx.Put([]byte("gone"), []byte("old"), 1)
		return tx.SetApplied(1)
	})
	before := dump(t, s)
	boom := errors.New("boom")
	err := s.Update(func(tx *storage.Tx) error {
		_ = tx.Put([]byte("keep"), []byte("new"), 2)
		_ = tx.Put([]byte("new"), []byte("new"), 2)
		_, _ = tx.Delete([]byte("gone"))
		_ = tx.SysPut([]byte("sess"), []byte("new"))
		_ = tx.SysPut([]byte("sess2"), []byte("new"))
		_ = tx.SetApplied(2)
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update = %v; want boom", err)
	}
	if after := dump(t, s); !slices.Equal(after, before) {
		t.Fatalf("data after failed Update = %q; want %q", after, before)
	}
	err = s.View(func(tx *storage.Tx) error {
		if tx.Applied() != 1 || tx.Keys() != 2 || string(tx.SysGet([]byte("sess"))) != "old" || tx.SysGet([]byte("sess2")) != nil {
			t.Errorf("after failed Update: applied %d keys %d sess %q sess2 %q; want 1, 2, old, nil",
				tx.Applied(), tx.Keys(), tx.SysGet([]byte("sess")), tx.SysGet([]byte("sess2")))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, keys := checksum(t, s); keys != 2 {
		t.Fatalf("keys = %d; want 2", keys)
	}
}

func TestShardStore_UpdatePanic(t *testing.T) {
	s := newShard(t, tempStateDB(t), "1")
	func() {
		defer func() {
			if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "kaboom") {
				t.Fatalf("recover() = %v; want the panic re-raised", r)
			}
		}()
		_ = s.Update(func(tx *storage.Tx) error {
			_ = tx.Put([]byte("k"), []byte("v"), 1)
			panic("kaboom")
		})
	}()
	if got := dump(t, s); got != nil {
		t.Fatalf("data after panicking Update = %q; want none", got)
	}
	mustUpdate(t, s, func(tx *storage.Tx) error { return tx.Put([]byte("k"), []byte("v"), 1) })
}

func TestShardStore_AppliedIndex(t *testing.T) {
	s := newShard(t, tempStateDB(t), "1")
	for _, idx := range []uint64{0, 5, 6, 100} {
		if idx > 0 {
			mustUpdate(t, s, func(tx *storage.Tx) error { return tx.SetApplied(idx) })
		}
		got, err := s.AppliedIndex()
		if err != nil || got != idx {
			t.Fatalf("AppliedIndex = %d, %v; want %d", got, err, idx)
		}
	}
}

// fill writes n keys and sys entries to s and sets the applied index.
func fill(t testing.TB, s *storage.ShardStore, n int, applied uint64) {
	t.Helper()
	mustUpdate(t, s, func(tx *storage.Tx) error {
		for i := range n {
			k := fmt.Appendf(nil, "key/%06d", i)
			if err := tx.Put(k, bytes.Repeat(k, i%7), uint64(i+1)); err != nil {
				return err
			}
			if i%10 == 0 {
				if err := tx.SysPut(fmt.Appendf(nil, "session/%d", i), k); err != nil {
					return err
				}
			}
		}
		return tx.SetApplied(applied)
	})
}

func snapshotBytes(t testing.TB, s *storage.ShardStore) ([]byte, uint64) {
	t.Helper()
	sn, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer sn.Release()
	var buf bytes.Buffer
	n, err := sn.WriteTo(&buf)
	if err != nil || n != int64(buf.Len()) {
		t.Fatalf("WriteTo = %d, %v; wrote %d", n, err, buf.Len())
	}
	sn.Release()
	sn.Release() // idempotent
	return buf.Bytes(), sn.Index()
}

func TestShardStore_SnapshotRestore(t *testing.T) {
	d := tempStateDB(t)
	src, dst := newShard(t, d, "src"), newShard(t, d, "dst")
	fill(t, src, 2000, 777)
	fill(t, dst, 50, 3) // Restore replaces, it does not merge
	mustUpdate(t, dst, func(tx *storage.Tx) error { return tx.Put([]byte("zzz-only-in-dst"), nil, 1) })

	snap, idx := snapshotBytes(t, src)
	if idx != 777 {
		t.Fatalf("Snapshot.Index = %d; want 777", idx)
	}
	got, err := dst.Restore(bytes.NewReader(snap))
	if err != nil || got != 777 {
		t.Fatalf("Restore = %d, %v; want 777", got, err)
	}
	a1, s1, k1 := checksum(t, src)
	a2, s2, k2 := checksum(t, dst)
	if a1 != a2 || s1 != s2 || k1 != k2 {
		t.Fatalf("Checksum src = %d/%x/%d, dst = %d/%x/%d; want equal", a1, s1, k1, a2, s2, k2)
	}
	if k1 != 2000 {
		t.Fatalf("keys = %d; want 2000", k1)
	}
	// The restored shard keeps working, counter included.
	mustUpdate(t, dst, func(tx *storage.Tx) error { return tx.Put([]byte("after"), nil, 800) })
	if _, _, k := checksum(t, dst); k != 2001 {
		t.Fatalf("keys after restore+put = %d; want 2001", k)
	}
	// Restoring into a dropped shard recreates it.
	if err := d.DropShard("dst"); err != nil {
		t.Fatal(err)
	}
	if _, err := dst.Restore(bytes.NewReader(snap)); err != nil {
		t.Fatalf("Restore into dropped shard: %v", err)
	}
	if _, s3, _ := checksum(t, dst); s3 != s1 {
		t.Fatalf("checksum after restore into dropped shard differs")
	}
}

func TestShardStore_RestoreBadStream(t *testing.T) {
	d := tempStateDB(t)
	src, dst := newShard(t, d, "src"), newShard(t, d, "dst")
	fill(t, src, 300, 50)
	fill(t, dst, 20, 9)
	snap, _ := snapshotBytes(t, src)
	flip := func(i int) []byte {
		b := bytes.Clone(snap)
		b[i] ^= 0x40
		return b
	}
	tests := []struct {
		name   string
		stream []byte
	}{
		{"empty", nil},
		{"bad magic", flip(0)},
		{"bad version", flip(8)},
		{"flipped header", flip(9)},
		{"flipped middle", flip(len(snap) / 2)},
		{"flipped checksum", flip(len(snap) - 1)},
		{"truncated header", snap[:5]},
		{"truncated middle", snap[:len(snap)/2]},
		{"truncated checksum", snap[:len(snap)-2]},
		{"missing checksum", snap[:len(snap)-4]},
	}
	wantA, wantS, wantK := checksum(t, dst)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			idx, err := dst.Restore(bytes.NewReader(tt.stream))
			if !errors.Is(err, storage.ErrBadSnapshot) {
				t.Fatalf("Restore = %d, %v; want ErrBadSnapshot", idx, err)
			}
			if a, s, k := checksum(t, dst); a != wantA || s != wantS || k != wantK {
				t.Fatalf("shard changed by a rejected restore: %d/%x/%d, was %d/%x/%d", a, s, k, wantA, wantS, wantK)
			}
		})
	}
	t.Logf("example error: %v", func() error { _, err := dst.Restore(bytes.NewReader(snap[:100])); return err }())
}

// TestShardStore_SnapshotPointInTime: a snapshot shows the state when it was
// taken even though writes continue.
func TestShardStore_SnapshotPointInTime(t *testing.T) {
	d := tempStateDB(t)
	src, dst := newShard(t, d, "src"), newShard(t, d, "dst")
	fill(t, src, 500, 10)
	wantA, wantS, wantK := checksum(t, src)
	sn, err := src.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer sn.Release()
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range 50 {
			mustUpdate(t, src, func(tx *storage.Tx) error {
				_, _ = tx.Delete(fmt.Appendf(nil, "key/%06d", i))
				_ = tx.Put(fmt.Appendf(nil, "new/%d", i), []byte("x"), uint64(11+i))
				_ = tx.SysPut([]byte("session/0"), []byte("changed"))
				return tx.SetApplied(uint64(11 + i))
			})
		}
	})
	var buf bytes.Buffer
	if _, err := sn.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	sn.Release()
	if _, err := dst.Restore(&buf); err != nil {
		t.Fatal(err)
	}
	if a, s, k := checksum(t, dst); a != wantA || s != wantS || k != wantK {
		t.Fatalf("restored = %d/%x/%d; want the snapshot-time state %d/%x/%d", a, s, k, wantA, wantS, wantK)
	}
	if a, _, _ := checksum(t, src); a != 60 {
		t.Fatalf("src applied = %d; want 60", a)
	}
}

func TestStateDB_DropShard(t *testing.T) {
	d := tempStateDB(t)
	a, b := newShard(t, d, "a"), newShard(t, d, "b")
	fill(t, a, 10, 1)
	fill(t, b, 10, 1)
	if err := d.DropShard("a"); err != nil {
		t.Fatal(err)
	}
	if err := d.DropShard("missing"); err != nil {
		t.Fatalf("DropShard(missing) = %v", err)
	}
	if err := a.Update(func(*storage.Tx) error { return nil }); !errors.Is(err, storage.ErrShardNotFound) {
		t.Fatalf("Update on dropped shard = %v; want ErrShardNotFound", err)
	}
	if _, err := a.AppliedIndex(); !errors.Is(err, storage.ErrShardNotFound) {
		t.Fatalf("AppliedIndex on dropped shard = %v; want ErrShardNotFound", err)
	}
	if ids, _ := d.Shards(); !slices.Equal(ids, []string{"b"}) {
		t.Fatalf("Shards = %q; want [b]", ids)
	}
	a2 := newShard(t, d, "a")
	if _, _, k := checksum(t, a2); k != 0 {
		t.Fatalf("recreated shard has %d keys; want 0", k)
	}
	if _, _, k := checksum(t, b); k != 10 {
		t.Fatalf("other shard has %d keys; want 10", k)
	}
}

func TestStateDB_Reopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	d := openStateDB(t, path, storage.StateDBOptions{})
	type sum struct{ a, s, k uint64 }
	want := map[string]sum{}
	for i := range 4 {
		id := fmt.Sprintf("shard-%d", i)
		s := newShard(t, d, id)
		fill(t, s, 100*(i+1), uint64(i+10))
		a, c, k := checksum(t, s)
		want[id] = sum{a, c, k}
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	d = openStateDB(t, path, storage.StateDBOptions{})
	ids, err := d.Shards()
	if err != nil || len(ids) != 4 {
		t.Fatalf("Shards = %q, %v", ids, err)
	}
	for _, id := range ids {
		a, c, k := checksum(t, newShard(t, d, id))
		if (sum{a, c, k}) != want[id] {
			t.Fatalf("%s after reopen = %v; want %v", id, sum{a, c, k}, want[id])
		}
	}
}

func TestStateDB_Close(t *testing.T) {
	d := tempStateDB(t)
	s := newShard(t, d, "a")
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}
	tests := []struct {
		name string
		call func() error
	}{
		{"Update", func() error { return s.Update(func(*storage.Tx) error { return nil }) }},
		{"View", func() error { return s.View(func(*storage.Tx) error { return nil }) }},
		{"Snapshot", func() error { _, err := s.Snapshot(); return err }},
		{"Shard", func() error { _, err := d.Shard("b"); return err }},
		{"DropShard", func() error { return d.DropShard("a") }},
	}
	for _, tt := range tests {
		if err := tt.call(); !errors.Is(err, storage.ErrClosed) {
			t.Errorf("%s after Close = %v; want ErrClosed", tt.name, err)
		}
	}
}

// TestStateDB_GroupCommit: concurrent Updates of many shards share flushes
// and commits (counted through OnCommit, not timed), and every one of them
// lands.
func TestStateDB_GroupCommit(t *testing.T) {
	var commits, txns atomic.Int64
	d := openStateDB(t, filepath.Join(t.TempDir(), "state.db"), storage.StateDBOptions{
		OnCommit: func(n int, _ time.Duration) { commits.Add(1); txns.Add(int64(n)) },
	})
	const shards, writes = 32, 20
	ss := make([]*storage.ShardStore, shards)
	for i := range ss {
		ss[i] = newShard(t, d, fmt.Sprintf("s%d", i))
	}
	commits.Store(0)
	txns.Store(0)
	var wg sync.WaitGroup
	for i, s := range ss {
		wg.Go(func() {
			for j := range writes {
				err := s.Update(func(tx *storage.Tx) error {
					if i%8 == 0 && j%2 == 1 { // failing callers must not disturb the rest
						_ = tx.Put([]byte("poison"), nil, 1)
						return errors.New("rejected")
					}
					if err := tx.Put(fmt.Appendf(nil, "k%d", j), []byte("v"), uint64(j+1)); err != nil {
						return err
					}
					return tx.SetApplied(uint64(j + 1))
				})
				if wantErr := i%8 == 0 && j%2 == 1; (err != nil) != wantErr {
					t.Errorf("shard %d write %d: Update = %v; want error: %v", i, j, err, wantErr)
				}
			}
		})
	}
	wg.Wait()
	const ok = shards*writes - shards/8*writes/2 // the rest fail
	if c := commits.Load(); c == 0 || c >= ok {
		t.Fatalf("commits = %d for %d concurrent updates; want fewer (group commit)", c, ok)
	}
	t.Logf("%d updates in %d commits", ok, commits.Load())
	for i, s := range ss {
		wantKeys := uint64(writes)
		if i%8 == 0 {
			wantKeys = writes / 2
		}
		a, _, k := checksum(t, s)
		if k != wantKeys || a == 0 {
			t.Fatalf("shard %d: keys %d applied %d; want %d keys", i, k, a, wantKeys)
		}
	}
}
