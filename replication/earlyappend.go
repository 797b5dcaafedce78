package replication

import (
	"github.com/hashicorp/raft"

	"github.com/ridgeline-kv/ridgeline/storage"
)

// A data shard's leader writes its log in parallel with replicating it (the
// Raft thesis, §10.2.1): its StoreLogs returns before the append is durable
// (storage.LogStore.ReturnEarly), so hashicorp/raft sends the entries to the
// followers while the leader's own fsync is in flight instead of after it.
// raft then counts the leader's copy towards a commit before it is durable,
// so the leader keeps such a commit from being known until its copy is:
//
//   - its state machine applies, and so acknowledges or serves a read of, no
//     entry before the leader's log holds it durably (durableApplyFSM);
//   - the commit index it sends to followers never passes its log's durable
//     end (transport.Transport.SetCommitLimit), so no follower applies an
//     entry the leader could still lose.
//
// A leader that crashes with an append in flight loses entries nobody has
// applied; the new leader keeps or overwrites them as raft does for any
// uncommitted entry. Configuration changes, no-ops and barriers stay
// synchronous.
func enableEarlyLeaderAppends(logs *storage.LogStore, trans interface{ SetCommitLimit(func() uint64) }, fsm groupFSM, leader func() bool, onFatal func(error)) groupFSM {
	batching, ok := fsm.(raft.BatchingFSM)
	if !ok {
		return fsm // applies could not wait: keep appends synchronous
	}
	trans.SetCommitLimit(logs.DurableIndex)
	logs.ReturnEarly(leader)
	return &durableApplyFSM{groupFSM: fsm, batching: batching, log: logs, onFatal: onFatal}
}

// durableLog is the part of storage.LogStore that durableApplyFSM uses.
type durableLog interface {
	WaitDurable(index uint64) error
}

// durableApplyFSM applies a batch only once the local log holds it durably.
type durableApplyFSM struct {
	groupFSM
	batching raft.BatchingFSM
	log      durableLog
	onFatal  func(error)
}

var _ raft.BatchingFSM = (*durableApplyFSM)(nil)

// ApplyBatch waits until logs are durable in the local raft log, then applies
// them. If the append failed, the node stops and nothing is applied.
func (f *durableApplyFSM) ApplyBatch(logs []*raft.Log) []interface{} {
	if len(logs) == 0 {
		return nil
	}
	if err := f.log.WaitDurable(logs[len(logs)-1].Index); err != nil {
		f.onFatal(err)
		out := make([]interface{}, len(logs))
		for i := range out {
			out[i] = err
		}
		return out
	}
	return f.batching.ApplyBatch(logs)
}

// Apply applies one entry; see ApplyBatch.
func (f *durableApplyFSM) Apply(l *raft.Log) interface{} {
	return f.ApplyBatch([]*raft.Log{l})[0]
}
