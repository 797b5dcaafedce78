package replication

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ridgeline-kv/ridgeline/ring"
)

// This file is the meta leader's control loop: it turns what gossip sees
// into map changes (admitting joining nodes) and runs the placement planner
// (ring.Plan), committing each round's moves as one new map. The moves
// themselves are carried out by the shard leaders (confchange.go) and the
// nodes hosting the replicas (cluster.go), all driven by the map.

// controlLoop runs on every node and acts while its meta replica leads.
func (n *Node) controlLoop() {
	t := time.NewTicker(n.cfg.ControlInterval)
	defer t.Stop()
	for {
		select {
		case <-n.stop:
			return
		case <-t.C:
		}
		n.mu.RLock()
		meta, mfsm := n.meta, n.metaFSM
		n.mu.RUnlock()
		if meta == nil || !meta.isLeader() {
			continue
		}
		m := mfsm.Map()
		if m == nil {
			continue
		}
		if err := n.controlRound(m); err != nil {
			n.logger.Warn("control round", "err", err)
		}
		// The next round is a full interval after this one ended: a round
		// slower than the interval (peer statuses, a meta commit under load)
		// must not be followed at once by another map change.
		t.Reset(n.cfg.ControlInterval)
	}
}

// controlRound makes at most one map change: membership first, then moves.
func (n *Node) controlRound(m *ring.Map) error {
	if next, why := n.admitNodes(m); next != nil {
		n.logger.Info("cluster membership", "change", why, "epoch", m.Epoch+1)
		return n.commitMap(m, next)
	}
	if next := ring.NextMetaVoters(m); next != nil {
		n.logger.Info("meta group membership", "from", m.MetaVoters, "to", next.MetaVoters, "epoch", next.Epoch)
		return n.commitMap(m, next)
	}
	if m.RebalancePaused {
		return nil
	}
	st := n.newPeerStatuses(m) // asked lazily: only when a learner or an unsettled shard is in question
	caughtUp := func(id string) bool {
		ls, ok := st.replica(id)
		if !ok || ls.AppliedIndex == 0 {
			return false
		}
		// Caught up: within a few entries of the highest commit index a
		// reachable voter reports (no voter's exceeds the leader's, and any
		// one answering is enough: promotion must not wait on the one node
		// that happens to lead).
		shard, _, _ := m.Replica(id)
		var commit uint64
		for _, rep := range m.Shards[shard].Replicas {
			if vs, ok := st.replica(rep.ID); ok && rep.Role == ring.RoleVoter {
				commit = max(commit, vs.CommitIndex)
			}
		}
		return commit > 0 && ls.AppliedIndex+16 >= commit
	}
	opts := ring.PlanOptions{MaxMovesInFlight: n.cfg.MaxMovesInFlight, MaxPerNode: n.cfg.MaxSnapshotTransfers, Down: n.nodeDown, Settled: st.settled}
	res := ring.Plan(m, caughtUp, opts)
	n.metrics.backlog.Set(float64(len(res.Moves) + len(res.Pending)))
	if len(res.Moves) == 0 {
		return nil
	}
	next := m
	for _, mv := range res.Moves {
		applied, err := next.Apply(mv)
		if err != nil {
			return fmt.Errorf("apply %v: %w", mv, err)
		}
		n.logger.Info("placement move", "move", mv.String())
		n.metrics.moves.WithLabelValues(mv.Kind.String()).Inc()
		next = applied
	}
	if err := n.commitMap(m, next); err != nil {
		return err
	}
	n.movesDone.Add(uint64(len(res.Moves)))
	return nil
}

// errMapChanged: a map proposed as the successor of epoch e was not
// committed because the committed map is no longer at e.
var errMapChanged = errors.New("map changed concurrently")

// commitMap commits next as the successor of cur (compare-and-set on cur's
// epoch through the meta group), failing with errMapChanged if cur is no
// longer the committed map.
func (n *Node) commitMap(cur, next *ring.Map) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := n.proposeMap(ctx, cur.Epoch, next)
	if err != nil {
		return err
	}
	if !res.Applied {
		return fmt.Errorf("%w (epoch now %d)", errMapChanged, res.Epoch)
	}
	return nil
}

// admitNodes returns the successor map that admits one alive gossip member
// not yet in the map (as joining), or activates one joining member, and a
// description; nil when membership is current.
func (n *Node) admitNodes(m *ring.Map) (*ring.Map, string) {
	for _, mem := range n.members.Members() {
		if mem.Status != ring.MemberAlive {
			continue
		}
		meta := mem.Meta
		if meta.ClusterID != "" && meta.ClusterID != m.ClusterID {
			continue
		}
		nd, known := m.Node(meta.NodeID)
		switch {
		case !known:
			return m.WithNode(ring.Node{ID: meta.NodeID, Incarnation: meta.Incarnation, Addr: meta.Addr,
				GossipAddr: mem.GossipAddr, HTTPAddr: meta.HTTPAddr, State: ring.NodeJoining}), "node " + meta.NodeID + " joins"
		case nd.State == ring.NodeJoining:
			nd.State = ring.NodeActive
			return m.WithNode(nd), "node " + meta.NodeID + " is active"
		case nd.State == ring.NodeDown:
			nd.State, nd.Incarnation, nd.HTTPAddr = ring.NodeActive, meta.Incarnation, meta.HTTPAddr
			return m.WithNode(nd), "node " + meta.NodeID + " is back"
		case nd.State != ring.NodeRemoved && meta.Incarnation > nd.Incarnation && meta.Addr == nd.Addr:
			nd.Incarnation, nd.HTTPAddr = meta.Incarnation, meta.HTTPAddr
			return m.WithNode(nd), "node " + meta.NodeID + " restarted"
		}
	}
	for _, nd := range m.Nodes {
		if nd.State == ring.NodeActive && nd.ID != n.cfg.NodeID && n.nodeDown(nd.ID) {
			nd.State = ring.NodeDown
			return m.WithNode(nd), fmt.Sprintf("node %s dead for over %v: replacing its replicas", nd.ID, n.cfg.DeadNodeGrace)
		}
	}
	return nil, ""
}

// nodeDown reports nodes gossip has seen dead for longer than the grace
// period: their replicas get replaced.
func (n *Node) nodeDown(nodeID string) bool {
	for _, mem := range n.members.Members() {
		if mem.Meta.NodeID == nodeID || mem.Name == nodeID {
			return mem.Status != ring.MemberAlive && time.Since(mem.Since) > n.cfg.DeadNodeGrace
		}
	}
	return false
}
