//go:build ridgeline_ackearly

package replication

import "github.com/ridgeline-kv/ridgeline/replication/kvpb"

// ackBeforeCommit is a test-only fault for the chaos suite
// (tests/chaos TestChaos_BrokenBuildIsCaught): with the build tag
// ridgeline_ackearly, a replica acknowledges a write as soon as it is handed
// to raft, before it commits, so a leader crash loses acknowledged writes.
// Production builds never carry the tag; see ackearly_off.go.
const ackBeforeCommit = true

// earlyAck returns the result a write would have if it succeeded, without
// waiting for it to commit (the ridgeline_ackearly fault). It returns nil for
// data that is not a data-shard command (a meta-group command), which the
// caller then reports as an unexpected result.
func earlyAck(data []byte) *kvpb.CommandResult {
	cmd, err := decodeCommand(data)
	if err != nil {
		return nil
	}
	switch op := cmd.GetOp().(type) {
	case *kvpb.Command_Put:
		return &kvpb.CommandResult{Result: &kvpb.CommandResult_Put{Put: &kvpb.PutResponse{Succeeded: true, Version: 1}}}
	case *kvpb.Command_Delete:
		return &kvpb.CommandResult{Result: &kvpb.CommandResult_Delete{Delete: &kvpb.DeleteResponse{Succeeded: true, Existed: true, Version: 1}}}
	case *kvpb.Command_Txn:
		resp := &kvpb.TxnResponse{Succeeded: true}
		for _, o := range op.Txn.GetSuccess() {
			r := &kvpb.OpResult{Version: 1}
			if add := o.GetAdd(); add != nil {
				r.Counter = add.GetDelta()
			}
			resp.Results = append(resp.Results, r)
		}
		return &kvpb.CommandResult{Result: &kvpb.CommandResult_Txn{Txn: resp}}
	}
	return nil
}
