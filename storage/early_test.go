package storage

import (
	"errors"
	"math"
	"path/filepath"
	"sync"
	"testing"

	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"
)

// commands returns command entries [from, to] of term 1.
func commands(from, to uint64) []*raft.Log {
	var ls []*raft.Log
	for i := from; i <= to; i++ {
		ls = append(ls, &raft.Log{Index: i, Term: 1, Type: raft.LogCommand, Data: []byte{byte(i)}})
	}
	return ls
}

// returned reports whether ch (buffered) has a value now, leaving it there.
func returned(ch chan error) bool {
	select {
	case err := <-ch:
		ch <- err
		return true
	default:
		return false
	}
}

// hold holds d's committer (holdCommitter) and releases it when the test
// ends, if it has not been released.
func hold(t *testing.T, d *LogDB) (wait func(n int), release func()) {
	wait, release = holdCommitter(t, d.c)
	release = sync.OnceFunc(release)
	t.Cleanup(release)
	return wait, release
}

// TestLogStore_ReturnEarly: while the committer is held, a leader's appends
// of commands at the log's end return at once and are readable, but are not
// durable: WaitDurable waits for them and DurableIndex stays below them.
// Everything else (a follower's append, a configuration entry) returns only
// once durable, after the appends in flight. After the commit all of it
// survives a reopen.
func TestLogStore_ReturnEarly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "raft.db")
	d, err := OpenLogDB(path, LogDBOptions{Logger: testingLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	g, _ := d.Group("a")
	other, _ := d.Group("b")
	if err := g.StoreLogs(commands(1, 3)); err != nil {
		t.Fatal(err)
	}
	leader := true
	g.ReturnEarly(func() bool { return leader })

	wait, release := hold(t, d)
	if err := g.StoreLogs(commands(4, 6)); err != nil {
		t.Fatalf("early StoreLogs: %v", err)
	}
	wait(1)
	if last, _ := g.LastIndex(); last != 6 {
		t.Errorf("LastIndex with the append in flight = %d; want 6", last)
	}
	var l raft.Log
	if err := g.GetLog(5, &l); err != nil || l.Index != 5 || l.Data[0] != 5 {
		t.Errorf("GetLog(5) of the append in flight = %+v, %v", l, err)
	}
	if got := g.DurableIndex(); got != 3 {
		t.Errorf("DurableIndex with entries 4-6 in flight = %d; want 3", got)
	}
	if err := g.WaitDurable(3); err != nil {
		t.Errorf("WaitDurable(3) = %v", err)
	}
	// A second append returns at once too, behind the first.
	if err := g.StoreLogs(commands(7, 8)); err != nil {
		t.Fatalf("second early StoreLogs: %v", err)
	}
	if first, last := mustBounds(t, g); first != 1 || last != 8 {
		t.Errorf("bounds with two appends in flight = %d-%d; want 1-8", first, last)
	}
	if err := g.GetLog(8, &l); err != nil || l.Index != 8 {
		t.Errorf("GetLog(8) of the second append in flight = %+v, %v", l, err)
	}
	if got := g.DurableIndex(); got != 3 {
		t.Errorf("DurableIndex with entries 4-8 in flight = %d; want 3", got)
	}
	durable := make(chan error, 1)
	go func() { durable <- g.WaitDurable(7) }()
	conf := make(chan error, 1) // a configuration entry never returns early
	go func() { conf <- g.StoreLogs([]*raft.Log{{Index: 9, Term: 1, Type: raft.LogConfiguration}}) }()
	follower := make(chan error, 1)
	go func() { follower <- other.StoreLogs(commands(1, 2)) }()
	wait(3) // both appends and the follower's
	// The committer is held: nothing can be durable, so none of these may
	// have returned.
	if returned(durable) || returned(conf) || returned(follower) {
		t.Fatal("a wait or a write returned before the commit it needs")
	}
	release()
	for name, ch := range map[string]chan error{"WaitDurable(7)": durable, "StoreLogs(9) (configuration)": conf, "follower's StoreLogs": follower} {
		if err := <-ch; err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if got := g.DurableIndex(); got != math.MaxUint64 {
		t.Errorf("DurableIndex with nothing in flight = %d; want MaxUint64", got)
	}

	leader = false
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}

	d = openTestLogDB(t, path)
	g, _ = d.Group("a")
	if first, last := mustBounds(t, g); first != 1 || last != 9 {
		t.Fatalf("after reopen: entries %d-%d; want 1-9", first, last)
	}
	for i := uint64(1); i <= 8; i++ {
		if err := g.GetLog(i, &l); err != nil || l.Data[0] != byte(i) {
			t.Fatalf("after reopen: GetLog(%d) = %+v, %v", i, l, err)
		}
	}
}

func mustBounds(t *testing.T, g *LogStore) (first, last uint64) {
	t.Helper()
	first, err := g.FirstIndex()
	if err != nil {
		t.Fatal(err)
	}
	last, err = g.LastIndex()
	if err != nil {
		t.Fatal(err)
	}
	return first, last
}

// TestLogStore_ReturnEarlyOnlyAtTheEnd: an append that overwrites entries or
// leaves a gap waits until it is durable, even on a leader.
func TestLogStore_ReturnEarlyOnlyAtTheEnd(t *testing.T) {
	d := openTestLogDB(t, filepath.Join(t.TempDir(), "raft.db"))
	g, _ := d.Group("a")
	if err := g.StoreLogs(commands(1, 5)); err != nil {
		t.Fatal(err)
	}
	g.ReturnEarly(func() bool { return true })
	for _, tc := range []struct {
		name string
		logs []*raft.Log
	}{
		{"overwrite", commands(4, 6)},
		{"gap", commands(9, 10)},
		{"holes", []*raft.Log{commands(6, 6)[0], commands(8, 8)[0]}},
	} {
		wait, release := hold(t, d)
		done := make(chan error, 1)
		go func() { done <- g.StoreLogs(tc.logs) }()
		wait(1)
		if returned(done) {
			t.Errorf("%s: returned before it was durable", tc.name)
		}
		release()
		if err := <-done; err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
	}
}

// TestLogStore_EarlyAppendLost: an early append that never commits (the
// LogDB closes with it queued) makes WaitDurable and every later write of
// the group fail, so nothing counts on the lost entries.
func TestLogStore_EarlyAppendLost(t *testing.T) {
	d, err := OpenLogDB(filepath.Join(t.TempDir(), "raft.db"), LogDBOptions{Logger: testingLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	g, _ := d.Group("a")
	g.ReturnEarly(func() bool { return true })
	wait, release := hold(t, d)
	if err := g.StoreLogs(commands(1, 2)); err != nil {
		t.Fatal(err)
	}
	wait(1)
	closed := make(chan error, 1)
	go func() { closed <- d.Close() }()
	<-d.c.stop // Close has begun: the queued append will fail
	release()
	if err := g.WaitDurable(2); !errors.Is(err, ErrClosed) {
		t.Fatalf("WaitDurable of the lost append = %v; want an error matching ErrClosed", err)
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if err := g.StoreLogs(commands(3, 3)); !errors.Is(err, ErrClosed) {
		t.Fatalf("StoreLogs after a lost append = %v; want it to fail", err)
	}
}

// TestLogStore_FailedAppendLeavesNoHole: when an append in flight fails, the
// appends behind it are not written either (the log would have a hole), and
// the group's waits and writes report the failure.
func TestLogStore_FailedAppendLeavesNoHole(t *testing.T) {
	d := openTestLogDB(t, filepath.Join(t.TempDir(), "raft.db"))
	g, _ := d.Group("a")
	if err := g.StoreLogs(commands(1, 2)); err != nil {
		t.Fatal(err)
	}
	g.ReturnEarly(func() bool { return true })
	// Make the next wal put fail: a nested bucket holds the key it will use.
	r := &request{done: make(chan struct{}, 1), apply: func(tx *bolt.Tx) error {
		_, err := tx.Bucket(walBucket).CreateBucket(uint64Key(d.nextSeq))
		return err
	}}
	if err := d.c.do(r); err != nil {
		t.Fatal(err)
	}
	wait, release := hold(t, d)
	for _, ls := range [][]*raft.Log{commands(3, 4), commands(5, 6)} {
		if err := g.StoreLogs(ls); err != nil {
			t.Fatal(err)
		}
	}
	wait(2)
	release()
	if err := g.WaitDurable(6); err == nil {
		t.Fatal("WaitDurable(6) succeeded after the append of 3-4 failed")
	}
	if last, _ := g.LastIndex(); last != 2 {
		t.Errorf("LastIndex = %d after the appends failed; want 2", last)
	}
	var l raft.Log
	if err := g.GetLog(5, &l); !errors.Is(err, raft.ErrLogNotFound) {
		t.Errorf("GetLog(5) = %+v, %v; want not found: entry 5 must not be written without 3 and 4", l, err)
	}
	if err := g.StoreLogs(commands(7, 7)); err == nil {
		t.Error("StoreLogs after a failed append succeeded")
	}
}
