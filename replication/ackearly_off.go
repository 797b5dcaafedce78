//go:build !ridgeline_ackearly

package replication

import "github.com/ridgeline-kv/ridgeline/replication/kvpb"

// ackBeforeCommit is a test-only fault for the chaos suite, off in every
// build without the tag ridgeline_ackearly (see ackearly_on.go): a replica
// acknowledges a write only after it commits and applies.
const ackBeforeCommit = false

// earlyAck is never called without the ridgeline_ackearly tag.
func earlyAck([]byte) *kvpb.CommandResult { return nil }
