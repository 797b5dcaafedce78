package replication

import (
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/ridgeline-kv/ridgeline/storage"
)

// gatedLog is a durableLog whose appends become durable when gate closes.
type gatedLog struct {
	gate   chan struct{}
	err    error
	waited chan uint64
}

func (g *gatedLog) DurableCh(index uint64) <-chan struct{} {
	g.waited <- index
	return g.gate
}

func (g *gatedLog) AppendErr() error {
	select {
	case <-g.gate:
		return g.err
	default:
		return nil
	}
}

// TestDurableApplyFSM_WaitsForTheLeadersLog: a batch is applied (and so
// visible to reads and acknowledged) only once the local log holds its last
// entry durably.
func TestDurableApplyFSM_WaitsForTheLeadersLog(t *testing.T) {
	inner, _ := newTestFSM(t, fsmOptions{})
	log := &gatedLog{gate: make(chan struct{}), waited: make(chan uint64, 1)}
	f := &durableApplyFSM{groupFSM: inner, batching: inner, log: log, onFatal: func(err error) { t.Errorf("OnFatal: %v", err) }}
	batch := []*raft.Log{commandLog(t, 1, putCmd("a", "1")), commandLog(t, 2, putCmd("b", "2"))}
	done := make(chan []interface{}, 1)
	go func() { done <- f.ApplyBatch(batch) }()
	select {
	case got := <-log.waited:
		if got != 2 {
			t.Errorf("waited for entry %d to be durable; want 2, the batch's last", got)
		}
	case <-done:
		t.Fatal("the batch was applied without waiting for the log")
	case <-time.After(10 * time.Second):
		t.Fatal("ApplyBatch neither waited for the log nor returned")
	}
	// ApplyBatch is blocked in WaitDurable: nothing may be applied yet.
	if got := inner.AppliedIndex(); got != 0 {
		t.Fatalf("applied index %d before the log was durable; want 0", got)
	}
	if _, ok := getValue(t, inner, "a"); ok {
		t.Fatal("key a visible before the log was durable")
	}
	close(log.gate)
	res := <-done
	if len(res) != 2 || res[0] == nil || res[1] == nil {
		t.Fatalf("results %v; want two command results", res)
	}
	if got := inner.AppliedIndex(); got != 2 {
		t.Errorf("applied index %d; want 2", got)
	}
	if _, ok := getValue(t, inner, "b"); !ok {
		t.Error("key b missing after the batch applied")
	}
}

// TestDurableApplyFSM_LostAppendStopsTheNode: when the leader's append
// failed, nothing of the batch is applied, every entry gets the error and the
// node is told to stop.
func TestDurableApplyFSM_LostAppendStopsTheNode(t *testing.T) {
	inner, _ := newTestFSM(t, fsmOptions{})
	lost := errors.New("append lost")
	log := &gatedLog{gate: make(chan struct{}), err: lost, waited: make(chan uint64, 1)}
	close(log.gate)
	var fatal error
	f := &durableApplyFSM{groupFSM: inner, batching: inner, log: log, onFatal: func(err error) { fatal = err }}
	res := f.ApplyBatch([]*raft.Log{commandLog(t, 1, putCmd("a", "1"))})
	if !errors.Is(fatal, lost) {
		t.Errorf("OnFatal got %v; want the append's error", fatal)
	}
	if len(res) != 1 || res[0] != lost {
		t.Errorf("results %v; want the append's error", res)
	}
	if got := inner.AppliedIndex(); got != 0 {
		t.Errorf("applied index %d after a lost append; want 0", got)
	}
}

type limitRecorder struct {
	limit func() uint64
	ack   func(raft.ServerID, uint64, uint64)
}

func (r *limitRecorder) SetCommitLimit(limit func() uint64) { r.limit = limit }

func (r *limitRecorder) SetAppendAck(ack func(raft.ServerID, uint64, uint64)) { r.ack = ack }

// TestEnableEarlyLeaderAppends wires all four parts: the log asks whether
// its group leads at each append, the transport's commit limit is the log's
// durable end, the transport's acknowledgements reach the follower tracker,
// and applies wait for the log or the followers.
func TestEnableEarlyLeaderAppends(t *testing.T) {
	db, err := storage.OpenLogDB(filepath.Join(t.TempDir(), "raft.db"), storage.LogDBOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	logs, err := db.Group("g")
	if err != nil {
		t.Fatal(err)
	}
	inner, _ := newTestFSM(t, fsmOptions{})
	var trans limitRecorder
	var asked atomic.Int32
	leader := func() bool { asked.Add(1); return true }
	acks := newFollowerAcks("self", threeVoters, nil)
	fsm := enableEarlyLeaderAppends(logs, &trans, inner, leader, acks, func(err error) { t.Errorf("OnFatal: %v", err) })
	if d, ok := fsm.(*durableApplyFSM); !ok || d.log != logs || d.acks != acks {
		t.Errorf("state machine %T does not wait for the group's log and followers", fsm)
	}
	if trans.ack == nil {
		t.Fatal("the transport reports acknowledgements to nobody")
	}
	trans.ack("f1", 3, 7)
	trans.ack("f2", 3, 7)
	if !acks.durableOnQuorum(3, 7) {
		t.Error("acknowledgements given to the transport's callback did not reach the tracker")
	}
	if trans.limit == nil || trans.limit() != math.MaxUint64 {
		t.Fatal("the transport's commit limit is not the log's durable end")
	}
	if err := logs.StoreLogs([]*raft.Log{{Index: 1, Term: 1, Type: raft.LogCommand}}); err != nil {
		t.Fatal(err)
	}
	if err := logs.WaitDurable(1); err != nil {
		t.Fatal(err)
	}
	if asked.Load() != 1 {
		t.Errorf("the log asked whether its group leads %d times for one append; want 1", asked.Load())
	}
}

// threeVoters is the configuration of a three-replica group led by "self",
// with a learner.
func threeVoters() raft.Configuration {
	return raft.Configuration{Servers: []raft.Server{
		{ID: "self", Suffrage: raft.Voter},
		{ID: "f1", Suffrage: raft.Voter},
		{ID: "f2", Suffrage: raft.Voter},
		{ID: "learner", Suffrage: raft.Nonvoter},
	}}
}

// TestFollowerAcks_MajorityWithoutTheLeader: an entry counts as durable on
// a majority only when a majority of the voters other than the leader
// acknowledged it, in the entry's term.
func TestFollowerAcks_MajorityWithoutTheLeader(t *testing.T) {
	cfg := threeVoters()
	a := newFollowerAcks("self", func() raft.Configuration { return cfg }, nil)
	check := func(when string, term, index uint64, want bool) {
		t.Helper()
		if got := a.durableOnQuorum(term, index); got != want {
			t.Errorf("%s: durableOnQuorum(term %d, index %d) = %v; want %v", when, term, index, got, want)
		}
	}
	check("no acknowledgements", 2, 5, false)
	a.record("f1", 2, 9)
	check("one follower of two", 2, 5, false)
	a.record("learner", 2, 9)
	check("one follower and a learner", 2, 5, false)
	a.record("self", 2, 9) // the leader's own copy never counts here
	check("one follower and the leader itself", 2, 5, false)
	a.record("f2", 2, 5)
	check("both followers", 2, 5, true)
	check("beyond the second follower's index", 2, 6, false)
	check("an entry of another term", 1, 5, false)
	a.record("f2", 2, 3) // an older answer arriving late changes nothing
	check("after a stale acknowledgement", 2, 5, true)
	a.record("f1", 3, 1) // a new term replaces the old one's acknowledgements
	check("after f1 acknowledged in term 3", 2, 5, false)

	// Five voters: three of the four followers are needed.
	cfg = raft.Configuration{Servers: []raft.Server{
		{ID: "self", Suffrage: raft.Voter}, {ID: "f1", Suffrage: raft.Voter}, {ID: "f2", Suffrage: raft.Voter},
		{ID: "f3", Suffrage: raft.Voter}, {ID: "f4", Suffrage: raft.Voter},
	}}
	a = newFollowerAcks("self", func() raft.Configuration { return cfg }, nil)
	a.record("f1", 4, 10)
	a.record("f2", 4, 10)
	check("two of four followers", 4, 10, false)
	a.record("f4", 4, 12)
	check("three of four followers", 4, 10, true)

	// No configuration known (raft not started): never.
	cfg = raft.Configuration{}
	check("no configuration", 4, 10, false)
}

// TestFollowerAcks_ForgetsRemovedFollowers: acknowledgements of servers that
// left the configuration are dropped, so replica moves (fresh IDs each) do
// not grow the table for the leader's lifetime, and a follower that is
// still a member keeps its acknowledgement.
func TestFollowerAcks_ForgetsRemovedFollowers(t *testing.T) {
	cfg := threeVoters()
	a := newFollowerAcks("self", func() raft.Configuration { return cfg }, nil)
	for i := range 20 {
		a.record(raft.ServerID(fmt.Sprintf("moved-%d", i)), 2, 9)
	}
	a.record("f1", 2, 9)
	a.record("f2", 2, 9)
	if !a.durableOnQuorum(2, 9) {
		t.Fatal("durableOnQuorum(2, 9) = false with both followers acknowledged")
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.acks) > len(cfg.Servers) {
		t.Errorf("after a check the table holds %d acknowledgements for a configuration of %d servers: %v", len(a.acks), len(cfg.Servers), a.acks)
	}
	for _, id := range []raft.ServerID{"f1", "f2"} {
		if _, ok := a.acks[id]; !ok {
			t.Errorf("the acknowledgement of member %s was dropped", id)
		}
	}
}

// TestDurableApplyFSM_AppliesOnceFollowersHoldTheBatch: while the leader's
// own append is still in flight, a batch is applied as soon as both
// followers acknowledge it in its term, and not on anything less.
func TestDurableApplyFSM_AppliesOnceFollowersHoldTheBatch(t *testing.T) {
	inner, _ := newTestFSM(t, fsmOptions{})
	log := &gatedLog{gate: make(chan struct{}), waited: make(chan uint64, 16)}
	checks := make(chan struct{}, 16) // one per durableOnQuorum check
	var ahead atomic.Int32
	acks := newFollowerAcks("self", func() raft.Configuration { checks <- struct{}{}; return threeVoters() }, func() { ahead.Add(1) })
	f := &durableApplyFSM{groupFSM: inner, batching: inner, log: log, acks: acks, onFatal: func(err error) { t.Errorf("OnFatal: %v", err) }}
	batch := []*raft.Log{commandLog(t, 1, putCmd("a", "1")), commandLog(t, 2, putCmd("b", "2"))}
	for _, l := range batch {
		l.Term = 5
	}
	done := make(chan []interface{}, 1)
	go func() { done <- f.ApplyBatch(batch) }()
	nextCheck := func() {
		t.Helper()
		select {
		case <-checks:
		case <-done:
			t.Fatal("the batch was applied too early")
		case <-time.After(10 * time.Second):
			t.Fatal("ApplyBatch did not check the acknowledgements")
		}
	}
	// held: after an acknowledgement, the check it causes must find no
	// majority. A further check starting proves that one returned false.
	held := func(after string) {
		t.Helper()
		nextCheck()
		acks.notify <- struct{}{}
		nextCheck()
		if got := inner.AppliedIndex(); got != 0 {
			t.Fatalf("applied index %d after %s; want 0", got, after)
		}
	}
	nextCheck() // the first look, before any acknowledgement
	acks.record("f1", 5, 2)
	held("one follower's acknowledgement")
	acks.record("f2", 4, 2)
	held("the other follower's acknowledgement in an earlier term")
	acks.record("f2", 5, 1)
	held("the other follower's acknowledgement of entry 1 of 2")
	acks.record("f2", 5, 2)
	select {
	case res := <-done:
		if len(res) != 2 || res[0] == nil || res[1] == nil {
			t.Fatalf("results %v; want two command results", res)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the batch was not applied after both followers acknowledged it")
	}
	if got := inner.AppliedIndex(); got != 2 {
		t.Errorf("applied index %d; want 2", got)
	}
	if got := ahead.Load(); got != 1 {
		t.Errorf("%d batches reported applied ahead of the local log; want 1", got)
	}
	close(log.gate)
}
