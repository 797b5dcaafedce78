package replication

import (
	"errors"
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

func (g *gatedLog) WaitDurable(index uint64) error {
	g.waited <- index
	<-g.gate
	return g.err
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

type limitRecorder struct{ limit func() uint64 }

func (r *limitRecorder) SetCommitLimit(limit func() uint64) { r.limit = limit }

// TestEnableEarlyLeaderAppends wires all three parts: the log asks whether
// its group leads at each append, the transport's commit limit is the log's
// durable end, and applies wait for the log.
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
	fsm := enableEarlyLeaderAppends(logs, &trans, inner, leader, func(err error) { t.Errorf("OnFatal: %v", err) })
	if d, ok := fsm.(*durableApplyFSM); !ok || d.log != logs {
		t.Errorf("state machine %T does not wait for the group's log", fsm)
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
