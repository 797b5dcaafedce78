package storage

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"

	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"
)

// walModel is what every group's log must hold: index -> term.
type walModel map[string]map[uint64]uint64

func walData(id string, index, term uint64) []byte {
	return fmt.Appendf(nil, "%s/%d/%d", id, index, term)
}

func walEntries(id string, from, to, term uint64) []*raft.Log {
	var ls []*raft.Log
	for i := from; i <= to; i++ {
		ls = append(ls, &raft.Log{Index: i, Term: term, Data: walData(id, i, term)})
	}
	return ls
}

// openTestLogDB opens path with small trim and cleaning limits, so that a
// short test exercises both.
func openTestLogDB(t *testing.T, path string) *LogDB {
	t.Helper()
	d, err := OpenLogDB(path, LogDBOptions{Logger: testingLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	d.trimMax, d.slack = 25, 40
	t.Cleanup(func() { _ = d.Close() })
	return d
}

// checkWAL compares every group of d with m, and the wal's key count with
// the one d keeps.
func checkWAL(t *testing.T, d *LogDB, m walModel) {
	t.Helper()
	for id, want := range m {
		g, err := d.Group(id)
		if err != nil {
			t.Fatal(err)
		}
		idx := slices.Sorted(func(yield func(uint64) bool) {
			for i := range want {
				if !yield(i) {
					return
				}
			}
		})
		var first, last uint64
		if len(idx) > 0 {
			first, last = idx[0], idx[len(idx)-1]
		}
		if f, _ := g.FirstIndex(); f != first {
			t.Fatalf("%s: FirstIndex = %d; want %d", id, f, first)
		}
		if l, _ := g.LastIndex(); l != last {
			t.Fatalf("%s: LastIndex = %d; want %d", id, l, last)
		}
		lo := uint64(1)
		if first > 3 {
			lo = first - 3
		}
		for i := lo; i <= last+3; i++ {
			var l raft.Log
			err := g.GetLog(i, &l)
			term, ok := want[i]
			switch {
			case !ok && !errors.Is(err, raft.ErrLogNotFound):
				t.Fatalf("%s: GetLog(%d) = %v (term %d); want not found", id, i, err, l.Term)
			case ok && err != nil:
				t.Fatalf("%s: GetLog(%d) = %v; want term %d", id, i, err, term)
			case ok && (l.Term != term || string(l.Data) != string(walData(id, i, term))):
				t.Fatalf("%s: GetLog(%d) = term %d %q; want term %d", id, i, l.Term, l.Data, term)
			}
		}
	}
	var keys int
	if err := d.db.View(func(tx *bolt.Tx) error {
		keys = tx.Bucket(walBucket).Stats().KeyN
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if keys != d.walKeys {
		t.Fatalf("wal holds %d keys; the LogDB counts %d", keys, d.walKeys)
	}
}

// TestLogDB_WALMatchesModel runs random raft-like log operations on several
// groups sharing the wal, reopening the file now and then, and compares
// every group with a model after each step. One group is mostly idle, so
// that its entries hold back the front of the wal and get archived.
func TestLogDB_WALMatchesModel(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 99))
			path := filepath.Join(t.TempDir(), "raft.db")
			d := openTestLogDB(t, path)
			ids := []string{"a", "b", "c", "idle"}
			m := walModel{}
			for _, id := range ids {
				m[id] = map[uint64]uint64{}
			}
			bounds := func(id string) (first, last uint64) {
				for i := range m[id] {
					if first == 0 || i < first {
						first = i
					}
					last = max(last, i)
				}
				return first, last
			}
			store := func(id string, ls []*raft.Log) {
				g, err := d.Group(id)
				if err != nil {
					t.Fatal(err)
				}
				if err := g.StoreLogs(ls); err != nil {
					t.Fatalf("%s: StoreLogs: %v", id, err)
				}
				for _, l := range ls {
					m[id][l.Index] = l.Term
				}
			}
			del := func(id string, lo, hi uint64) {
				g, _ := d.Group(id)
				if err := g.DeleteRange(lo, hi); err != nil {
					t.Fatalf("%s: DeleteRange(%d, %d): %v", id, lo, hi, err)
				}
				for i := range m[id] {
					if i >= lo && i <= hi {
						delete(m[id], i)
					}
				}
			}
			archivedAny := false
			for step := range 1500 {
				id := ids[rng.IntN(3)]
				if rng.IntN(40) == 0 {
					id = "idle"
				}
				first, last := bounds(id)
				term := uint64(step + 1)
				switch op := rng.IntN(100); {
				case op < 55: // append
					store(id, walEntries(id, last+1, last+1+uint64(rng.IntN(8)), term))
				case op < 70 && last > 0: // compact, keeping a few entries
					if keep := uint64(rng.IntN(5)); last > first+keep {
						del(id, first, last-keep)
					}
				case op < 76 && last > first: // conflict: truncate a suffix, append
					from := first + 1 + uint64(rng.IntN(int(last-first)))
					del(id, from, last)
					store(id, walEntries(id, from, from+uint64(rng.IntN(4)), term))
				case op < 80 && last > 0: // overwrite in place
					from := max(first, last-uint64(rng.IntN(3)))
					store(id, walEntries(id, from, last+uint64(rng.IntN(2)), term))
				case op < 83 && last > first+2: // a hole in the middle
					del(id, first+1, first+1+uint64(rng.IntN(int(last-first-1))))
				case op < 85: // delete everything, start below the old floor
					del(id, 0, 1<<62)
					store(id, walEntries(id, 1+uint64(rng.IntN(3)), 3+uint64(rng.IntN(3)), term))
				case op < 87 && last > 4: // store below the floor after a compaction
					del(id, first, last-1)
					store(id, walEntries(id, last-3, last+1, term))
				case op < 89: // drop and recreate
					if err := d.DropGroup(id); err != nil {
						t.Fatal(err)
					}
					m[id] = map[uint64]uint64{}
				case op < 92: // restart
					if err := d.Close(); err != nil {
						t.Fatal(err)
					}
					d = openTestLogDB(t, path)
				}
				for _, g := range d.byNum {
					archivedAny = archivedAny || slices.ContainsFunc(g.live, func(p walPair) bool { return p.seq == archived })
				}
				checkWAL(t, d, m)
			}
			if !archivedAny {
				t.Fatal("no entry was archived; the test does not cover the cleaner")
			}
		})
	}
}

// TestLogDB_IdleGroupDoesNotPinTheWAL: a busy group compacting its log past
// an idle one must not make the wal grow without bound, and the idle group's
// entries survive being archived and a restart.
func TestLogDB_IdleGroupDoesNotPinTheWAL(t *testing.T) {
	path := filepath.Join(t.TempDir(), "raft.db")
	d := openTestLogDB(t, path)
	idle, _ := d.Group("idle")
	busy, _ := d.Group("busy")
	if err := idle.StoreLogs(walEntries("idle", 1, 30, 1)); err != nil {
		t.Fatal(err)
	}
	var last uint64
	for range 200 {
		if err := busy.StoreLogs(walEntries("busy", last+1, last+10, 2)); err != nil {
			t.Fatal(err)
		}
		last += 10
		if err := busy.DeleteRange(0, last-5); err != nil {
			t.Fatal(err)
		}
	}
	// 2,000 entries went through; 35 are live.
	if limit := 35 + 35/2 + d.slack + d.trimMax; d.walKeys > limit {
		t.Fatalf("wal holds %d keys for 35 live entries; want at most %d", d.walKeys, limit)
	}
	if !slices.ContainsFunc(idle.live, func(p walPair) bool { return p.seq == archived }) {
		t.Fatal("the idle group's entries were never archived")
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	d = openTestLogDB(t, path)
	m := walModel{"idle": {}, "busy": {}}
	for i := uint64(1); i <= 30; i++ {
		m["idle"][i] = 1
	}
	for i := last - 4; i <= last; i++ {
		m["busy"][i] = 2
	}
	checkWAL(t, d, m)
}

// TestLogDB_MigratesFirstLayout opens a file written with a bucket per
// group's log and finds every entry in the wal.
func TestLogDB_MigratesFirstLayout(t *testing.T) {
	path := filepath.Join(t.TempDir(), "raft.db")
	db, err := openBolt(path, logMmapSize)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		for _, id := range []string{"a", "b"} {
			lb, err := tx.CreateBucket([]byte(legacyLogPrefix + id))
			if err != nil {
				return err
			}
			for _, l := range walEntries(id, 5, 9, 3) {
				if err := lb.Put(uint64Key(l.Index), appendLog(nil, l)); err != nil {
					return err
				}
			}
			sb, err := tx.CreateBucket([]byte(stablePrefix + id))
			if err != nil {
				return err
			}
			if err := sb.Put([]byte("CurrentTerm"), uint64Key(3)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	d := openTestLogDB(t, path)
	if groups, _ := d.Groups(); !slices.Equal(groups, []string{"a", "b"}) {
		t.Fatalf("Groups = %q; want [a b]", groups)
	}
	m := walModel{"a": {}, "b": {}}
	for i := uint64(5); i <= 9; i++ {
		m["a"][i], m["b"][i] = 3, 3
	}
	checkWAL(t, d, m)
	g, _ := d.Group("b")
	if term, err := g.GetUint64([]byte("CurrentTerm")); err != nil || term != 3 {
		t.Fatalf("CurrentTerm = %d, %v; want 3", term, err)
	}
	if ids, _ := listBuckets(d.db, legacyLogPrefix); len(ids) != 0 {
		t.Fatalf("first-layout buckets left after the migration: %q", ids)
	}
	// New groups get numbers of their own.
	c, _ := d.Group("c")
	if err := c.StoreLogs(walEntries("c", 1, 2, 1)); err != nil {
		t.Fatal(err)
	}
	m["c"] = map[uint64]uint64{1: 1, 2: 1}
	checkWAL(t, d, m)
}

// TestLogDB_ConcurrentCompactions: groups that empty their logs while
// others append in the same commits. A compaction's trim must never take
// entries written earlier in its own commit, which no group lists yet.
func TestLogDB_ConcurrentCompactions(t *testing.T) {
	path := filepath.Join(t.TempDir(), "raft.db")
	d := openTestLogDB(t, path)
	const groups, rounds = 8, 150
	done := make(chan error, groups)
	for i := range groups {
		id := fmt.Sprint("g", i)
		g, err := d.Group(id)
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			done <- func() error {
				for r := range uint64(rounds) {
					from := 3*r + 1
					if err := g.StoreLogs(walEntries(id, from, from+2, 1)); err != nil {
						return err
					}
					var l raft.Log
					if err := g.GetLog(from+2, &l); err != nil {
						return fmt.Errorf("%s: GetLog(%d) right after storing it: %w", id, from+2, err)
					}
					if err := g.DeleteRange(0, from+2); err != nil {
						return err
					}
				}
				return g.StoreLogs(walEntries(id, 3*rounds+1, 3*rounds+2, 1))
			}()
		}()
	}
	for range groups {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	d = openTestLogDB(t, path)
	m := walModel{}
	for i := range groups {
		m[fmt.Sprint("g", i)] = map[uint64]uint64{3*rounds + 1: 1, 3*rounds + 2: 1}
	}
	checkWAL(t, d, m)
}

// TestLogDB_WALStaysBounded compacts groups as raft does (a snapshot every
// threshold entries keeps trailing ones) at very different rates: the wal
// must hold little more than the live entries.
func TestLogDB_WALStaysBounded(t *testing.T) {
	d, err := OpenLogDB(filepath.Join(t.TempDir(), "raft.db"), LogDBOptions{Logger: testingLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	d.slack = 64
	const groups, threshold, trailing = 16, 256, 128
	rng := rand.New(rand.NewPCG(7, 7))
	gs := make([]*LogStore, groups)
	last := make([]uint64, groups)
	first := make([]uint64, groups)
	for i := range gs {
		gs[i], _ = d.Group(fmt.Sprint("g", i))
	}
	for range 8000 {
		// Group i is picked with weight 1/(i+1): a few busy, most slow.
		i := int(float64(groups) * rng.Float64() * rng.Float64() * rng.Float64())
		id := fmt.Sprint("g", i)
		if err := gs[i].StoreLogs(walEntries(id, last[i]+1, last[i]+4, 1)); err != nil {
			t.Fatal(err)
		}
		if first[i] == 0 {
			first[i] = 1
		}
		last[i] += 4
		if last[i]-first[i] >= threshold {
			if err := gs[i].DeleteRange(first[i], last[i]-trailing); err != nil {
				t.Fatal(err)
			}
			first[i] = last[i] - trailing + 1
		}
	}
	live := 0
	for i := range gs {
		if last[i] > 0 {
			live += int(last[i] - first[i] + 1)
		}
	}
	t.Logf("wal: %d keys, %d live", d.walKeys, live)
	if limit := live + live/2 + d.slack + d.trimMax; d.walKeys > limit {
		t.Fatalf("wal holds %d keys for %d live entries; want at most %d", d.walKeys, live, limit)
	}
}

// TestLogStore_GetLogFollowsAnEntryThatMoved: an entry rewritten (or
// archived) between GetLog's lookup of its place and the read is still
// found: raft takes ErrLogNotFound as "send the follower a snapshot".
func TestLogStore_GetLogFollowsAnEntryThatMoved(t *testing.T) {
	d := openTestLogDB(t, filepath.Join(t.TempDir(), "logs.db"))
	g, err := d.Group("g")
	if err != nil {
		t.Fatal(err)
	}
	if err := g.StoreLogs(walEntries("g", 1, 5, 1)); err != nil {
		t.Fatal(err)
	}
	before, _ := g.seqOf(3)
	moved := false
	g.afterLookup = func() {
		if moved {
			return
		}
		moved = true
		// Overwrite entry 3 in place: it gets a new wal sequence and the
		// old one is deleted in the same commit.
		if err := g.StoreLogs(walEntries("g", 3, 3, 2)); err != nil {
			t.Error(err)
		}
	}
	var l raft.Log
	if err := g.GetLog(3, &l); err != nil {
		t.Fatalf("GetLog(3) after the entry moved: %v", err)
	}
	if after, _ := g.seqOf(3); after == before {
		t.Fatalf("entry 3 is still at wal sequence %d: the test did not move it", before)
	}
	if want := walData("g", 3, 2); l.Term != 2 || !bytes.Equal(l.Data, want) {
		t.Errorf("GetLog(3) = term %d data %q; want the rewritten entry (term 2, %q)", l.Term, l.Data, want)
	}
}
