package replication

import "time"

// Limits from DESIGN.md §6. Validation (validate.go) enforces the input limits
// before a request reaches raft; the read path enforces the scan page limits.
const (
	// MaxKeySize is the largest key in bytes; keys are 1 B to 4 KiB.
	MaxKeySize = 4096
	// MaxValueSize is the largest value in bytes.
	MaxValueSize = 512 << 10
	// MaxRequestBytes is the largest request the gRPC server accepts; larger
	// ones fail with gRPC's own ResourceExhausted.
	MaxRequestBytes = 1536 << 10
	// MaxTxnOps bounds a Txn's ops (success and failure together) and,
	// separately, its compares.
	MaxTxnOps = 128
	// MaxScanKeys and MaxScanBytes bound one scan page; a caller asking for
	// more gets a page with more=true and continues from next_key.
	MaxScanKeys  = 10000
	MaxScanBytes = 4 << 20
	// MaxProposalsInFlight bounds proposals per shard that raft has not yet
	// answered; beyond it writes fail with ErrTooManyProposals, not applied.
	MaxProposalsInFlight = 1024
	// DefaultSessionTTL is how long, in leader-stamped command time, the shard
	// FSM remembers an idle write session's last result (see session.go).
	DefaultSessionTTL = 10 * time.Minute
)
