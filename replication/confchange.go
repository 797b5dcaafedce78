package replication

import (
	"context"
	"time"

	"github.com/hashicorp/raft"

	"github.com/ridgeline-kv/ridgeline/ring"
)

// confChangeLoop makes each shard's raft configuration follow the map, on
// the shard's leader: replicas the map adds join as non-voters, learners the
// map promotes become voters, and replicas the map drops are removed — adds
// before removals, one change per shard per round, every change guarded by
// the index of the configuration it was computed from (prevIndex). A leader the map
// drops hands leadership to a voter that stays before it is removed.
func (n *Node) confChangeLoop() {
	t := time.NewTicker(n.cfg.ControlInterval / 2)
	defer t.Stop()
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
		for _, r := range n.leadingShards() {
			if err := n.confChange(m, r); err != nil {
				n.logger.Debug("configuration change", "shard", r.spec.Shard, "err", err)
			}
		}
		n.mu.RLock()
		meta := n.meta
		n.mu.RUnlock()
		if meta != nil && meta.isLeader() {
			if err := n.metaConfChange(m, meta); err != nil {
				n.logger.Debug("meta configuration change", "err", err)
			}
		}
	}
}

func (n *Node) confChange(m *ring.Map, r *replica) error {
	if int(r.spec.Shard) >= len(m.Shards) {
		return nil
	}
	want := m.Shards[r.spec.Shard].Replicas
	if !containsReplica(want, r.spec.ID) && len(want) > 0 {
		// The map moved this replica away while it leads: hand over first.
		for _, rep := range want {
			if rep.Role == ring.RoleVoter && r.hasVoter(rep.ID) {
				if nd, ok := m.Node(rep.NodeID); ok {
					return await(context.Background(), r.stop, r.raft.LeadershipTransferToServer(raft.ServerID(rep.ID), raft.ServerAddress(nd.Addr)))
				}
			}
		}
		return nil
	}
	f := r.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return err
	}
	// The configuration future of hashicorp/raft carries no index, so the
	// prevIndex guard is the newest configuration entry the FSM applied: a
	// change computed from an older configuration than raft's latest fails
	// and is recomputed next round.
	have, idx := f.Configuration(), r.data.configIndex.Load()
	suffrage := map[string]raft.ServerSuffrage{}
	for _, s := range have.Servers {
		suffrage[string(s.ID)] = s.Suffrage
	}
	const timeout = 5 * time.Second
	for _, rep := range want {
		nd, ok := m.Node(rep.NodeID)
		if !ok {
			continue
		}
		id, addr := raft.ServerID(rep.ID), raft.ServerAddress(nd.Addr)
		s, present := suffrage[rep.ID]
		switch {
		case !present && rep.Role == ring.RoleLearner:
			n.logger.Info("adding learner", "shard", r.spec.Shard, "replica", rep.ID)
			return await(context.Background(), r.stop, r.raft.AddNonvoter(id, addr, idx, timeout))
		case !present || (rep.Role == ring.RoleVoter && s != raft.Voter):
			n.logger.Info("adding voter", "shard", r.spec.Shard, "replica", rep.ID)
			return await(context.Background(), r.stop, r.raft.AddVoter(id, addr, idx, timeout))
		}
	}
	for _, s := range have.Servers {
		if !containsReplica(want, string(s.ID)) {
			n.logger.Info("removing replica", "shard", r.spec.Shard, "replica", s.ID)
			return await(context.Background(), r.stop, r.raft.RemoveServer(s.ID, idx, timeout))
		}
	}
	return nil
}

func containsReplica(reps []ring.Replica, id string) bool {
	for _, r := range reps {
		if r.ID == id {
			return true
		}
	}
	return false
}

// metaConfChange makes the meta group's raft configuration follow the map's
// MetaVoters, on the meta leader: missing voters are added (the meta state
// is one small map, so they catch up at once), then voters the map dropped
// are removed; a leader the map dropped hands leadership over first.
func (n *Node) metaConfChange(m *ring.Map, r *replica) error {
	f := r.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return err
	}
	n.mu.RLock()
	mfsm := n.metaFSM
	n.mu.RUnlock()
	if mfsm == nil {
		return nil
	}
	have, idx := f.Configuration(), mfsm.configIndex.Load() // prevIndex: see confChange
	present := map[string]bool{}
	for _, s := range have.Servers {
		present[string(s.ID)] = s.Suffrage == raft.Voter
	}
	const timeout = 5 * time.Second
	for _, id := range m.MetaVoters {
		nd, ok := m.Node(id)
		if !ok || present[metaReplicaID(id)] {
			continue
		}
		n.logger.Info("adding meta voter", "node", id)
		return await(context.Background(), r.stop, r.raft.AddVoter(raft.ServerID(metaReplicaID(id)), raft.ServerAddress(nd.Addr), idx, timeout))
	}
	for _, s := range have.Servers {
		nodeID, _ := metaReplicaNode(string(s.ID))
		if containsString(m.MetaVoters, nodeID) {
			continue
		}
		if s.ID == raft.ServerID(r.spec.ID) {
			return await(context.Background(), r.stop, r.raft.LeadershipTransfer())
		}
		n.logger.Info("removing meta voter", "node", nodeID)
		return await(context.Background(), r.stop, r.raft.RemoveServer(s.ID, idx, timeout))
	}
	return nil
}

// leadingShards returns the shard replicas on this node that currently lead.
func (n *Node) leadingShards() []*replica {
	n.mu.RLock()
	defer n.mu.RUnlock()
	var leading []*replica
	for _, r := range n.byShard {
		if r.isLeader() {
			leading = append(leading, r)
		}
	}
	return leading
}
