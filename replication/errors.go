package replication

import "errors"

// Sentinel errors of package replication. Compare with errors.Is; the gRPC
// adapter maps them to status codes in one table (toStatus).
var (
	// ErrInvalidArgument marks a request rejected by validation before it
	// reached raft. The wrapping error says what was wrong and what to do.
	ErrInvalidArgument = errors.New("replication: invalid argument")
	// ErrTooManyProposals: the shard already has the maximum number of
	// proposals in flight; nothing was applied, retry later.
	ErrTooManyProposals = errors.New("replication: too many proposals in flight")
	// ErrNotLeader: this replica is not the shard's leader; nothing was applied.
	ErrNotLeader = errors.New("replication: not the leader")
	// ErrNoLeader: the shard has no known leader; nothing was applied.
	ErrNoLeader = errors.New("replication: no leader")
	// ErrOutcomeUnknown: a write was proposed but leadership was lost before
	// its outcome was known; retrying with the same session and sequence is safe.
	ErrOutcomeUnknown = errors.New("replication: outcome unknown")
	// ErrWrongShard: this node holds no replica of the shard.
	ErrWrongShard = errors.New("replication: shard not on this node")
	// ErrStopped: the node is shutting down.
	ErrStopped = errors.New("replication: node stopped")
	// ErrRefused: an operator action that cannot be done in the cluster's
	// current state; the message says why and what to do first.
	ErrRefused = errors.New("replication: refused")
	// ErrSessionSuperseded: a retry carried a sequence older than the
	// session's last; the original outcome is no longer remembered.
	ErrSessionSuperseded = errors.New("replication: write sequence superseded")
)
