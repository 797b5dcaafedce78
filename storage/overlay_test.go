package storage

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// model is what a shard must hold: data keys with versions, sys keys, the
// applied index.
type model struct {
	data    map[string]Value
	sys     map[string]string
	applied uint64
}

func (m model) clone() model {
	c := model{data: maps.Clone(m.data), sys: maps.Clone(m.sys), applied: m.applied}
	for k, v := range c.data {
		c.data[k] = Value{Data: bytes.Clone(v.Data), Version: v.Version}
	}
	return c
}

// checkModel compares everything a reader can see of s with m.
func checkModel(t *testing.T, s *ShardStore, m model, rng *rand.Rand) {
	t.Helper()
	err := s.View(func(tx *Tx) error {
		if tx.Applied() != m.applied || tx.Keys() != uint64(len(m.data)) {
			t.Fatalf("applied, keys = %d, %d; want %d, %d", tx.Applied(), tx.Keys(), m.applied, len(m.data))
		}
		for i := range 48 { // the key space, and some keys never written
			k := fmt.Sprintf("k%02d", i)
			v, ok := tx.Get([]byte(k))
			w, wok := m.data[k]
			if ok != wok || ok && (!bytes.Equal(v.Data, w.Data) || v.Version != w.Version) {
				t.Fatalf("Get(%s) = %q@%d, %v; want %q@%d, %v", k, v.Data, v.Version, ok, w.Data, w.Version, wok)
			}
		}
		// A random range, sometimes narrowed by a prefix.
		a, b := fmt.Sprintf("k%02d", rng.IntN(48)), fmt.Sprintf("k%02d", rng.IntN(48))
		if a > b {
			a, b = b, a
		}
		o := ScanOptions{Start: []byte(a), End: []byte(b)}
		if rng.IntN(3) == 0 {
			o = ScanOptions{Prefix: []byte(a[:2])}
		}
		var got []string
		if err := tx.Scan(o, func(k []byte, v Value) bool {
			got = append(got, fmt.Sprintf("%s=%s@%d", k, v.Data, v.Version))
			return true
		}); err != nil {
			return err
		}
		var want []string
		for _, k := range slices.Sorted(maps.Keys(m.data)) {
			in := len(o.Prefix) > 0 && strings.HasPrefix(k, string(o.Prefix)) ||
				len(o.Prefix) == 0 && k >= a && k < b
			if in {
				want = append(want, fmt.Sprintf("%s=%s@%d", k, m.data[k].Data, m.data[k].Version))
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("Scan(%+v) = %v; want %v", o, got, want)
		}
		got = got[:0]
		if err := tx.SysForEach(func(k, v []byte) error { got = append(got, string(k)+"="+string(v)); return nil }); err != nil {
			return err
		}
		want = want[:0]
		for _, k := range slices.Sorted(maps.Keys(m.sys)) {
			want = append(want, k+"="+m.sys[k])
		}
		if !slices.Equal(got, want) {
			t.Fatalf("SysForEach = %v; want %v", got, want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestShardStore_ApplyMatchesModel drives one shard through random applies
// (some failing), flushes, crashes, snapshot restores and reads, and checks
// after every step that readers see exactly the model: the applies
// published, layered over what was flushed, and after a crash exactly what
// was flushed.
func TestShardStore_ApplyMatchesModel(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 99))
			path := filepath.Join(t.TempDir(), "state.db")
			open := func() (*StateDB, *ShardStore) {
				d, err := OpenStateDB(path, StateDBOptions{FlushInterval: time.Hour, Logger: testingLogger(t)})
				if err != nil {
					t.Fatal(err)
				}
				s, err := d.Shard("m")
				if err != nil {
					t.Fatal(err)
				}
				return d, s
			}
			d, s := open()
			defer func() { _ = d.Close() }()
			cur := model{data: map[string]Value{}, sys: map[string]string{}}
			durable := cur.clone()
			var counts [5]int
			for step := range 1500 {
				switch op := rng.IntN(100); {
				case op < 80: // an apply of a few writes; one in ten fails
					next := cur.clone()
					fail := rng.IntN(10) == 0
					err := s.Apply(func(tx *Tx) error {
						for range 1 + rng.IntN(6) {
							k := fmt.Sprintf("k%02d", rng.IntN(40))
							switch rng.IntN(5) {
							case 0, 1, 2:
								v := Value{Data: fmt.Appendf(nil, "v%d", step), Version: uint64(step + 1)}
								if err := tx.Put([]byte(k), v.Data, v.Version); err != nil {
									return err
								}
								next.data[k] = v
							case 3:
								existed, err := tx.Delete([]byte(k))
								if err != nil {
									return err
								}
								if _, want := next.data[k]; existed != want {
									t.Fatalf("Delete(%s) existed = %v; want %v", k, existed, want)
								}
								delete(next.data, k)
							case 4:
								sk := fmt.Sprintf("s%d", rng.IntN(8))
								if rng.IntN(3) == 0 {
									if err := tx.SysDelete([]byte(sk)); err != nil {
										return err
									}
									delete(next.sys, sk)
								} else {
									if err := tx.SysPut([]byte(sk), fmt.Appendf(nil, "x%d", step)); err != nil {
										return err
									}
									next.sys[sk] = fmt.Sprintf("x%d", step)
								}
							}
						}
						// The Tx sees its own writes, in Get and Scan.
						n := 0
						if err := tx.Scan(ScanOptions{}, func(k []byte, v Value) bool {
							if w := next.data[string(k)]; !bytes.Equal(w.Data, v.Data) {
								t.Fatalf("in-Tx Scan %s = %q; want %q", k, v.Data, w.Data)
							}
							n++
							return true
						}); err != nil {
							return err
						}
						if n != len(next.data) || tx.Keys() != uint64(len(next.data)) {
							t.Fatalf("in-Tx Scan saw %d keys, Keys() = %d; want %d", n, tx.Keys(), len(next.data))
						}
						next.applied = uint64(step + 1)
						if err := tx.SetApplied(next.applied); err != nil {
							return err
						}
						if fail {
							return errors.New("rejected")
						}
						return nil
					})
					if (err != nil) != fail {
						t.Fatalf("step %d: Apply = %v; want failure %v", step, err, fail)
					}
					if !fail {
						cur = next
					}
					counts[0]++
				case op < 84:
					if err := d.Flush(); err != nil {
						t.Fatal(err)
					}
					durable = cur.clone()
					counts[1]++
				case op < 86: // a crash loses what was not flushed
					crash(t, d)
					d, s = open()
					cur = durable.clone()
					counts[2]++
				case op < 88: // a snapshot restored elsewhere holds the same
					sn, err := s.Snapshot()
					if err != nil {
						t.Fatal(err)
					}
					var buf bytes.Buffer
					if _, err := sn.WriteTo(&buf); err != nil {
						t.Fatal(err)
					}
					sn.Release()
					durable = cur.clone() // Snapshot flushed
					r, err := d.Shard("r")
					if err != nil {
						t.Fatal(err)
					}
					if _, err := r.Restore(&buf); err != nil {
						t.Fatal(err)
					}
					checkModel(t, r, cur, rng)
					counts[3]++
				default:
					checkModel(t, s, cur, rng)
					counts[4]++
				}
			}
			checkModel(t, s, cur, rng)
			t.Logf("applies %d, flushes %d, crashes %d, restores %d, checks %d", counts[0], counts[1], counts[2], counts[3], counts[4])
		})
	}
}

// TestShardStore_ViewIsAtomic: while applies move two keys together and
// flushes write them out, every View sees both keys at the same value, in
// Get and in Scan, and never a value older than one it saw before.
func TestShardStore_ViewIsAtomic(t *testing.T) {
	d, err := OpenStateDB(filepath.Join(t.TempDir(), "state.db"), StateDBOptions{FlushInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	s, _ := d.Shard("a")
	const rounds = 3000
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(done)
		for i := 1; i <= rounds; i++ {
			v := fmt.Appendf(nil, "%06d", i)
			if err := s.Apply(func(tx *Tx) error {
				if err := tx.Put([]byte("a"), v, uint64(i)); err != nil {
					return err
				}
				if err := tx.Put([]byte("b"), v, uint64(i)); err != nil {
					return err
				}
				return tx.SetApplied(uint64(i))
			}); err != nil {
				t.Error(err)
				return
			}
			if i%100 == 0 {
				if err := d.Flush(); err != nil {
					t.Error(err)
					return
				}
			}
		}
	})
	for range 2 {
		wg.Go(func() {
			var last uint64
			for {
				select {
				case <-done:
					return
				default:
				}
				err := s.View(func(tx *Tx) error {
					a, _ := tx.Get([]byte("a"))
					b, _ := tx.Get([]byte("b"))
					var scanned []uint64
					_ = tx.Scan(ScanOptions{}, func(_ []byte, v Value) bool { scanned = append(scanned, v.Version); return true })
					applied := tx.Applied()
					if a.Version != b.Version || a.Version != applied || len(scanned) > 0 && (len(scanned) != 2 || scanned[0] != applied || scanned[1] != applied) {
						return fmt.Errorf("torn view: a@%d b@%d scan %v applied %d", a.Version, b.Version, scanned, applied)
					}
					if applied < last {
						return fmt.Errorf("view went back from %d to %d", last, applied)
					}
					last = applied
					return nil
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if _, _, k := checksumOf(t, s); k != 2 {
		t.Fatalf("keys = %d; want 2", k)
	}
}

func checksumOf(t *testing.T, s *ShardStore) (applied, sum, keys uint64) {
	t.Helper()
	a, sm, k, err := s.Checksum()
	if err != nil {
		t.Fatal(err)
	}
	return a, sm, k
}

// TestStateDB_FailedFlushStopsApplies: once a flush fails (here its commit
// is aborted by a request that broke the shared transaction), Flush reports
// it and every later Apply fails with it, so the replica stops instead of
// acknowledging writes it can no longer make durable.
func TestStateDB_FailedFlushStopsApplies(t *testing.T) {
	d, err := OpenStateDB(filepath.Join(t.TempDir(), "state.db"), StateDBOptions{FlushInterval: time.Hour, Logger: testingLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	s, _ := d.Shard("a")
	put := func(v string) error {
		return s.Apply(func(tx *Tx) error { return tx.Put([]byte("k"), []byte(v), 1) })
	}
	if err := put("before"); err != nil {
		t.Fatal(err)
	}
	wait, release := holdCommitter(t, d.c)
	var wg sync.WaitGroup
	wg.Go(func() {
		poison := &request{done: make(chan struct{}, 1), apply: func(*bolt.Tx) error { return errors.New("disk on fire") }}
		_ = d.c.do(poison)
	})
	wait(1)
	var flushErr error
	wg.Go(func() { flushErr = d.Flush() })
	wait(2) // the flush shares the poisoned batch
	release()
	wg.Wait()
	if flushErr == nil {
		t.Fatal("Flush in a failed commit = nil; want an error")
	}
	if err := put("after"); err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("Apply after a failed flush = %v; want the flush's error", err)
	}
}
