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
// so the leader keeps such a commit from being known until a majority holds
// it durably:
//
//   - its state machine applies, and so acknowledges or serves a read of, no
//     entry before the leader's log holds it durably, or a majority of the
//     voters other than the leader have acknowledged it (durableApplyFSM,
//     followerAcks);
//   - the commit index it sends to followers never passes its log's durable
//     end (transport.Transport.SetCommitLimit), so no follower applies an
//     entry the leader could still lose.
//
// A leader that crashes with an append in flight loses entries nobody has
// applied unless a majority of the others hold them; the new leader keeps or
// overwrites them as raft does for any entry. Configuration changes, no-ops
// and barriers stay synchronous.
func enableEarlyLeaderAppends(logs *storage.LogStore, trans earlyTransport, fsm groupFSM, leader func() bool, acks *followerAcks, onFatal func(error)) groupFSM {
	batching, ok := fsm.(raft.BatchingFSM)
	if !ok {
		return fsm // applies could not wait: keep appends synchronous
	}
	trans.SetCommitLimit(logs.DurableIndex)
	trans.SetAppendAck(acks.record)
	logs.ReturnEarly(leader)
	return &durableApplyFSM{groupFSM: fsm, batching: batching, log: logs, acks: acks, onFatal: onFatal}
}

// earlyTransport is what enableEarlyLeaderAppends needs of the transport.
type earlyTransport interface {
	SetCommitLimit(func() uint64)
	SetAppendAck(func(follower raft.ServerID, term, index uint64))
}

// durableLog is the part of storage.LogStore that durableApplyFSM uses.
type durableLog interface {
	DurableCh(index uint64) <-chan struct{}
	AppendErr() error
}

// durableApplyFSM applies a batch only once a majority holds it durably:
// the local log and raft's commit, or a majority of the other voters.
type durableApplyFSM struct {
	groupFSM
	batching raft.BatchingFSM
	log      durableLog
	acks     *followerAcks
	onFatal  func(error)
}

var _ raft.BatchingFSM = (*durableApplyFSM)(nil)

// ApplyBatch waits until logs are durable on a majority, then applies them.
// If an append of the local log failed, the node stops and nothing is
// applied.
func (f *durableApplyFSM) ApplyBatch(logs []*raft.Log) []interface{} {
	if len(logs) == 0 {
		return nil
	}
	last := logs[len(logs)-1]
	if err := f.waitDurable(last.Index, last.Term); err != nil {
		f.onFatal(err)
		out := make([]interface{}, len(logs))
		for i := range out {
			out[i] = err
		}
		return out
	}
	return f.batching.ApplyBatch(logs)
}

// waitDurable returns once the local log holds every entry up to index
// durably (raft has committed them, counting the local copy), or a majority
// of the other voters have acknowledged them in term, the term of the entry
// at index. It returns the error of a failed local append.
func (f *durableApplyFSM) waitDurable(index, term uint64) error {
	durable := f.log.DurableCh(index)
	var notify chan struct{}
	if f.acks != nil {
		notify = f.acks.notify
	}
	for {
		select {
		case <-durable:
			return f.log.AppendErr()
		default:
		}
		if f.acks != nil && f.acks.durableOnQuorum(term, index) {
			if f.acks.ahead != nil {
				f.acks.ahead()
			}
			return f.log.AppendErr()
		}
		select {
		case <-durable:
			return f.log.AppendErr()
		case <-notify:
		}
	}
}

// Apply applies one entry; see ApplyBatch.
func (f *durableApplyFSM) Apply(l *raft.Log) interface{} {
	return f.ApplyBatch([]*raft.Log{l})[0]
}
