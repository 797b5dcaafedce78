package replication

import (
	"context"
	"time"

	"github.com/hashicorp/raft"

	"github.com/ridgeline-kv/ridgeline/ring"
)

// balanceTransfersPerRound bounds the leadership transfers one node makes
// per balance round. With one, a new cluster's 32 leaders took 30-40 s to
// spread, so a benchmark started at once began with 15-20 transfers (each
// stalls its shard for about an election); eight spread them before make run
// reports ready. (A long chaos run stalled a drain once with eight: one
// node's reconcile loop stopped, with the signature of a replica shutdown
// hanging on a full AppendEntries pipeline, a transport bug since fixed.)
const balanceTransfersPerRound = 8

// balanceLoop moves shard leadership to each shard's preferred replica (the
// first of its replicas in the map) when that replica's node is alive, so
// leaders spread over the nodes as placement intends rather than as elections
// happen to fall. One transfer at a time, at most balanceTransfersPerRound
// per round; a shard whose transfer failed is left alone for a while.
func (n *Node) balanceLoop() {
	t := time.NewTicker(2 * n.cfg.ControlInterval)
	defer t.Stop()
	backoff := map[uint32]time.Time{}
	for {
		select {
		case <-n.stop:
			return
		case <-t.C:
		}
		m := n.currentMap()
		if m == nil {
			continue
		}
		alive := map[string]bool{}
		for _, mem := range n.members.Members() {
			if mem.Status == ring.MemberAlive {
				alive[mem.Meta.NodeID] = true
			}
		}
		moved := 0
		for _, r := range n.leadingShards() {
			if moved == balanceTransfersPerRound || isClosed(n.stop) {
				break
			}
			if time.Now().Before(backoff[r.spec.Shard]) || int(r.spec.Shard) >= len(m.Shards) {
				continue
			}
			reps := m.Shards[r.spec.Shard].Replicas
			// The map may name a voter raft has not promoted yet: a transfer
			// to a non-voter only disrupts the group (its TimeoutNow bumps
			// the term and the leader steps down for nothing).
			if len(reps) == 0 || reps[0].ID == r.spec.ID || reps[0].Role != ring.RoleVoter || !alive[reps[0].NodeID] || !r.hasVoter(reps[0].ID) {
				continue
			}
			nd, ok := m.Node(reps[0].NodeID)
			if !ok {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*n.cfg.ElectionTimeout+time.Second)
			err := await(ctx, r.stop, r.raft.LeadershipTransferToServer(raft.ServerID(reps[0].ID), raft.ServerAddress(nd.Addr)))
			cancel()
			if err != nil {
				backoff[r.spec.Shard] = time.Now().Add(30 * time.Second)
				n.logger.Debug("leadership transfer to preferred replica failed", "shard", r.spec.Shard, "to", reps[0].ID, "err", err)
			} else {
				n.logger.Debug("moved leadership to preferred replica", "shard", r.spec.Shard, "to", reps[0].NodeID)
			}
			moved++
		}
	}
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
