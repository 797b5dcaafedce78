package replication

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// readIndex batches linearizable reads of one raft group (DESIGN.md §2): many
// reads share one leadership confirmation. A round
//
//  1. makes sure a Barrier has completed in the current term (a new leader
//     may not yet know the commit index of the previous term);
//  2. captures CommitIndex;
//  3. confirms leadership with VerifyLeader and checks the term is unchanged;
//  4. waits until the state machine has applied the captured index — more
//     exactly, the newest entry at or below it that the state machine sees:
//     raft never hands no-op and barrier entries to the FSM, so the FSM's
//     applied index can stay below a commit index that ends in them.
//
// Reads that arrive while a round is in flight join the next round, so a read
// is always covered by a confirmation that started after it arrived.
type readIndex struct {
	raft *raft.Raft
	logs raft.LogStore
	fsm  groupFSM
	m    *groupMetrics
	stop <-chan struct{}

	mu      sync.Mutex
	pending *readBatch
	kick    chan struct{}

	readyTerm uint64 // term whose Barrier completed; only run() touches it
}

type readBatch struct {
	n    int
	done chan struct{}
	err  error
}

func newReadIndex(r *raft.Raft, logs raft.LogStore, fsm groupFSM, m *groupMetrics, stop <-chan struct{}) *readIndex {
	return &readIndex{raft: r, logs: logs, fsm: fsm, m: m, stop: stop, kick: make(chan struct{}, 1)}
}

// wait blocks until a read arriving now may be served locally.
func (ri *readIndex) wait(ctx context.Context) error {
	ri.mu.Lock()
	if ri.pending == nil {
		ri.pending = &readBatch{done: make(chan struct{})}
	}
	b := ri.pending
	b.n++
	ri.mu.Unlock()
	select {
	case ri.kick <- struct{}{}:
	default:
	}
	select {
	case <-b.done:
		return b.err
	case <-ctx.Done():
		return ctx.Err()
	case <-ri.stop:
		return ErrStopped
	}
}

// run serves rounds until stop closes. One goroutine per replica.
func (ri *readIndex) run() {
	for {
		select {
		case <-ri.stop:
			ri.mu.Lock()
			if b := ri.pending; b != nil {
				ri.pending = nil
				b.err = ErrStopped
				close(b.done)
			}
			ri.mu.Unlock()
			return
		case <-ri.kick:
		}
		ri.mu.Lock()
		b := ri.pending
		ri.pending = nil
		ri.mu.Unlock()
		if b == nil {
			continue
		}
		b.err = ri.round()
		ri.m.readBatch.Observe(float64(b.n))
		close(b.done)
	}
}

func (ri *readIndex) round() error {
	term := ri.raft.CurrentTerm()
	if ri.raft.State() != raft.Leader {
		return ErrNotLeader
	}
	if ri.readyTerm != term {
		if err := await(context.Background(), ri.stop, ri.raft.Barrier(5*time.Second)); err != nil {
			return fmt.Errorf("%w: barrier after election: %v", ErrNotLeader, err)
		}
		if ri.raft.CurrentTerm() != term {
			return ErrNotLeader
		}
		ri.readyTerm = term
	}
	index := ri.raft.CommitIndex()
	if err := ri.raft.VerifyLeader().Error(); err != nil {
		return ErrNotLeader
	}
	if ri.raft.CurrentTerm() != term {
		return ErrNotLeader
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	go func() {
		select {
		case <-ri.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	index, err := ri.fsmIndex(index)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrNoLeader, err)
	}
	if err := ri.fsm.WaitApplied(ctx, index); err != nil {
		return fmt.Errorf("%w: state machine did not reach commit index %d: %v", ErrNoLeader, index, err)
	}
	return nil
}

// fsmIndex returns the index of the newest command or configuration entry
// at or below commit that the state machine has not applied yet, or the
// applied index when every entry above it is one the FSM never sees.
func (ri *readIndex) fsmIndex(commit uint64) (uint64, error) {
	applied := ri.fsm.AppliedIndex()
	var l raft.Log
	for i := commit; i > applied; i-- {
		if err := ri.logs.GetLog(i, &l); err != nil {
			return 0, fmt.Errorf("read log entry %d: %w", i, err)
		}
		if l.Type == raft.LogCommand || l.Type == raft.LogConfiguration {
			return i, nil
		}
	}
	return applied, nil
}
