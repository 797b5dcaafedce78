// Package storage is Ridgeline's node-local persistence: the raft log and
// stable store shared by every raft group on a node (LogDB, one bbolt file),
// and the replicated state store with a bucket per shard (StateDB, another
// bbolt file), including shard snapshots.
//
// Invariants:
//
//   - Every write is durable (fsynced) before the call returns. NoSync is never
//     used. The one exception is ShardStore.Apply, for writes durable
//     elsewhere (raft applies, held by a majority's raft log): its writes are
//     visible to readers at once, held in memory as immutable layers over
//     the bbolt buckets, and written to bbolt by the StateDB's flusher every
//     FlushInterval (100 ms), before a Snapshot or Restore, on Flush and on
//     Close, data and applied index in one transaction. A crash loses the
//     applies since the last flush, and raft replays them. The other
//     exception is a leader's log append, when LogStore.ReturnEarly allows
//     it: StoreLogs returns while the append is in flight (readable, not
//     yet durable), and the caller counts on this log holding them only
//     once WaitDurable returns (or DurableCh closes).
//   - Readers (View, Snapshot) see a consistent point in time: the layers and
//     the bbolt read transaction under them are captured together.
//   - Writes are group-committed: concurrent writes from different raft groups
//     (LogDB) or different shards (StateDB) are coalesced by one committer
//     goroutine per file into a single bbolt transaction and a single fsync.
//     A request that arrives while a commit is in flight joins the next one,
//     up to a cap on the batch size; under load (the last commit carried
//     more than one request) a commit also waits up to GroupCommitLinger
//     for more.
//   - A request that fails never affects the other requests of its group
//     commit. Apply and Update functions are called exactly once; a failing
//     function publishes nothing.
//   - A commit (write or fsync) error is returned to every waiter of that
//     commit and logged. Callers must treat it as fatal for the node. A
//     failed flush makes every later Apply fail.
//   - A shard's data and its applied index are written in the same transaction.
//   - After Close, every call fails with ErrClosed.
//
// On-disk layout of the state store, per shard: top-level buckets
// "data/<id>" (key -> 8-byte big-endian version || value bytes) and
// "sys/<id>" (opaque key -> value), plus the keys "applied/<id>" and
// "keys/<id>" (8-byte big-endian applied index and data key count) in the
// shared bucket "meta". Buckets are kept flat so that a group commit dirties
// about one page per shard.
//
// On-disk layout of the log store: new entries of every group in one bucket
// "wal", in commit order (8-byte big-endian sequence -> group number, raft
// index, encoded raft.Log), so that a group commit appends to one B+tree;
// entries that stay live long are moved once to their group's
// "archive/<id>" bucket (index -> entry) by a log-structured cleaner;
// "walgroups" (group ID -> number, floor, min sequence) says which wal
// entries are live; "stable/<id>" holds each group's raft.StableStore keys.
// See wal.go.
package storage
