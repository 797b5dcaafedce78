package replication

import (
	"context"
	"slices"
	"time"

	"github.com/ridgeline-kv/ridgeline/replication/kvpb"
	"github.com/ridgeline-kv/ridgeline/ring"
)

// peerStatuses asks the nodes of a map for their replicas' status on demand,
// at most once per node: one round of the control loop or of garbage
// collection sees one consistent-enough picture without asking every node
// when it needs one answer. Not safe for concurrent use.
type peerStatuses struct {
	n      *Node
	m      *ring.Map
	byNode map[string]map[string]*kvpb.ReplicaStatus // node → replica ID → status; nil map = unreachable
}

func (n *Node) newPeerStatuses(m *ring.Map) *peerStatuses {
	return &peerStatuses{n: n, m: m, byNode: map[string]map[string]*kvpb.ReplicaStatus{}}
}

// node returns the statuses of nodeID's replicas, nil if it did not answer.
func (p *peerStatuses) node(nodeID string) map[string]*kvpb.ReplicaStatus {
	if st, ok := p.byNode[nodeID]; ok {
		return st
	}
	var resp *kvpb.NodeStatusResponse
	if nodeID == p.n.cfg.NodeID {
		resp = p.n.Status()
	} else if nd, ok := p.m.Node(nodeID); ok && nd.State != ring.NodeRemoved {
		if conn, err := p.n.peers.get(nd.Addr); err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			resp, _ = kvpb.NewAdminClient(conn).NodeStatus(ctx, &kvpb.NodeStatusRequest{})
			cancel()
		}
	}
	var out map[string]*kvpb.ReplicaStatus
	if resp != nil {
		out = make(map[string]*kvpb.ReplicaStatus, len(resp.GetReplicas()))
		for _, r := range resp.GetReplicas() {
			out[r.GetReplicaId()] = r
		}
	}
	p.byNode[nodeID] = out
	return out
}

// replica returns the status of a replica from the node its ID names.
func (p *peerStatuses) replica(id string) (*kvpb.ReplicaStatus, bool) {
	_, nodeID, _, err := ring.ParseReplicaID(id)
	if err != nil {
		return nil, false
	}
	st, ok := p.node(nodeID)[id]
	return st, ok
}

// leader returns the status of the shard's replica that leads, asking the
// nodes of the shard's replicas in the map (and also, since a leader the
// map has just dropped may still lead, extra replica IDs), nil if none
// answers as leader.
func (p *peerStatuses) leader(shard uint32, extra ...string) *kvpb.ReplicaStatus {
	if int(shard) >= len(p.m.Shards) {
		return nil
	}
	ids := extra
	for _, rep := range p.m.Shards[shard].Replicas {
		ids = append(ids, rep.ID)
	}
	for _, id := range ids {
		if st, ok := p.replica(id); ok && st.GetState() == "Leader" && st.GetShard() == shard {
			return st
		}
	}
	return nil
}

// settled reports whether the shard's raft configuration, as its leader
// sees it, is what the map says: the same voters and the same learners.
// The planner takes a shard's next step only when it is settled, so the
// map never runs ahead of raft by more than one step — a removal is never
// planned on the strength of a promotion raft has not made yet.
func (p *peerStatuses) settled(shard uint32) bool {
	st := p.leader(shard)
	if st == nil {
		return false
	}
	var voters, learners []string
	for _, rep := range p.m.Shards[shard].Replicas {
		if rep.Role == ring.RoleLearner {
			learners = append(learners, rep.ID)
		} else {
			voters = append(voters, rep.ID)
		}
	}
	return sameSet(voters, st.GetConfigVoters()) && sameSet(learners, st.GetConfigLearners())
}

// inRaftConfig reports whether replica id (of shard) is still part of its
// group's raft configuration, as the group's leader sees it; true when no
// leader answers, since then nobody can tell.
func (p *peerStatuses) inRaftConfig(shard uint32, id string) bool {
	st := p.leader(shard, id)
	if st == nil {
		return true
	}
	return slices.Contains(st.GetConfigVoters(), id) || slices.Contains(st.GetConfigLearners(), id)
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}
