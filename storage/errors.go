package storage

import "errors"

var (
	// ErrClosed is returned by every operation on a closed LogDB or StateDB,
	// including requests that were queued but not yet committed when Close was
	// called.
	ErrClosed = errors.New("storage: closed")

	// ErrKeyNotFound is matched (errors.Is) by the error LogStore's
	// StableStore methods return for a missing key. That error's message is
	// exactly "not found" because hashicorp/raft compares err.Error() with
	// that string.
	ErrKeyNotFound = errors.New("storage: key not found")

	// ErrGroupNotFound is returned by LogStore methods after the group was
	// dropped with LogDB.DropGroup.
	ErrGroupNotFound = errors.New("storage: raft group not found (dropped?)")

	// ErrShardNotFound is returned by ShardStore methods after the shard was
	// dropped with StateDB.DropShard.
	ErrShardNotFound = errors.New("storage: shard not found (dropped?)")

	// ErrReadOnlyTx is returned by write methods of a Tx obtained from View.
	ErrReadOnlyTx = errors.New("storage: write in a read-only transaction (use Update)")

	// ErrTxDone is returned when a Tx is used after its function returned.
	ErrTxDone = errors.New("storage: transaction used after its function returned")

	// ErrInvalidID is returned for an empty or over-long group or shard ID.
	ErrInvalidID = errors.New("storage: invalid id (must be 1..256 bytes)")

	// ErrEmptyKey is returned when writing an empty key.
	ErrEmptyKey = errors.New("storage: empty key")

	// ErrBadSnapshot is matched by every error Restore returns for a stream
	// that is truncated, corrupted or of an unknown format. Nothing was
	// changed when it is returned.
	ErrBadSnapshot = errors.New("storage: bad snapshot stream")

	// ErrCorrupt is returned when stored data fails an internal consistency
	// check (an undecodable log entry, a key counter that does not match).
	ErrCorrupt = errors.New("storage: corrupt data")
)

// stableNotFound is the error the StableStore methods return for a missing
// key: its message is exactly "not found" (hashicorp/raft compares strings)
// and errors.Is(err, ErrKeyNotFound) holds.
type stableNotFound struct{}

func (stableNotFound) Error() string        { return "not found" }
func (stableNotFound) Is(target error) bool { return target == ErrKeyNotFound }

var errStableNotFound error = stableNotFound{}
