package replication

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/ridgeline-kv/ridgeline/replication/kvpb"
	"github.com/ridgeline-kv/ridgeline/ring"
)

// Operator actions on the cluster map — drain, remove, pause and resume
// rebalancing, pin a shard's replicas (move a replica, transfer leadership)
// — run on the meta leader; any other node forwards a request there once.

// forwardedKey marks a forwarded request so it is never forwarded twice.
const forwardedKey = "x-ridgeline-forwarded"

// onMetaLeader runs local if this node leads the meta group, else forwards
// the call to the meta leader's node with remote.
func onMetaLeader[T any](ctx context.Context, n *Node, local func() (T, error), remote func(context.Context, kvpb.AdminClient) (T, error)) (T, error) {
	var zero T
	n.mu.RLock()
	meta := n.meta
	n.mu.RUnlock()
	if meta != nil && meta.isLeader() {
		return local()
	}
	if md, ok := metadata.FromIncomingContext(ctx); ok && len(md.Get(forwardedKey)) > 0 {
		return zero, fmt.Errorf("%w: node %s does not lead the meta group (anymore); retry", ErrNoLeader, n.cfg.NodeID)
	}
	var addrs []string
	if meta != nil {
		if _, addr := n.leaderOf(meta); addr != "" {
			addrs = append(addrs, addr)
		}
	}
	if m := n.currentMap(); m != nil {
		for _, id := range m.MetaVoters {
			if nd, ok := m.Node(id); ok && id != n.cfg.NodeID {
				addrs = append(addrs, nd.Addr)
			}
		}
	}
	fctx := metadata.AppendToOutgoingContext(ctx, forwardedKey, n.cfg.NodeID)
	var errs []error
	for _, addr := range addrs {
		conn, err := n.peers.get(addr)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		resp, err := remote(fctx, kvpb.NewAdminClient(conn))
		if err == nil || status.Code(err) != codes.Unavailable {
			return resp, err // the meta leader's answer, success or not
		}
		errs = append(errs, err)
	}
	return zero, fmt.Errorf("%w: no meta leader reachable: %v", ErrNoLeader, errors.Join(errs...))
}

// metaMap returns the committed map on the meta leader.
func (n *Node) metaMap() (*ring.Map, error) {
	n.mu.RLock()
	mfsm := n.metaFSM
	n.mu.RUnlock()
	if mfsm == nil || mfsm.Map() == nil {
		return nil, fmt.Errorf("%w: no cluster map yet", ErrNoLeader)
	}
	return mfsm.Map(), nil
}

// metaNode returns the committed map (on the meta leader) and nodeID's
// entry in it, or an error naming the unknown node.
func (n *Node) metaNode(nodeID string) (*ring.Map, ring.Node, error) {
	m, err := n.metaMap()
	if err != nil {
		return nil, ring.Node{}, err
	}
	nd, ok := m.Node(nodeID)
	if !ok {
		return nil, ring.Node{}, fmt.Errorf("%w: no node %q in the cluster (kvctl nodes lists them)", ErrInvalidArgument, nodeID)
	}
	return m, nd, nil
}

// setNodeState commits m with nd in state st and returns the new epoch.
func (n *Node) setNodeState(m *ring.Map, nd ring.Node, st ring.NodeState) (uint64, error) {
	nd.State = st
	next := m.WithNode(nd)
	if err := n.commitMap(m, next); err != nil {
		return 0, err
	}
	n.logger.Info("node state", "node", nd.ID, "state", st, "epoch", next.Epoch)
	return next.Epoch, nil
}

// drainNode marks nodeID draining; the planner then moves everything off.
func (n *Node) drainNode(nodeID string) (uint64, error) {
	m, nd, err := n.metaNode(nodeID)
	if err != nil {
		return 0, err
	}
	switch nd.State {
	case ring.NodeDraining:
		return m.Epoch, nil
	case ring.NodeRemoved:
		return 0, fmt.Errorf("%w: node %q was removed; there is nothing to drain", ErrRefused, nodeID)
	}
	if err := ring.CanDrain(m, nodeID); err != nil {
		return 0, fmt.Errorf("%w: %v", ErrRefused, err)
	}
	return n.setNodeState(m, nd, ring.NodeDraining)
}

// removeNode takes a drained (no replicas left) or dead node out of the map.
func (n *Node) removeNode(nodeID string) (uint64, error) {
	m, nd, err := n.metaNode(nodeID)
	if err != nil {
		return 0, err
	}
	switch {
	case nd.State == ring.NodeRemoved:
		return m.Epoch, nil
	case containsString(m.MetaVoters, nodeID):
		return 0, fmt.Errorf("%w: node %q is a voter of the meta group; moving meta voters is not supported yet", ErrRefused, nodeID)
	}
	if held := len(m.ReplicasOn(nodeID)); held > 0 && !n.gossipDead(nodeID) {
		return 0, fmt.Errorf("%w: node %q is alive and still holds %d replicas: drain it first (kvctl nodes drain %s --wait)", ErrRefused, nodeID, held, nodeID)
	}
	return n.setNodeState(m, nd, ring.NodeRemoved)
}

// gossipDead reports whether gossip currently considers nodeID not alive.
func (n *Node) gossipDead(nodeID string) bool {
	for _, mem := range n.members.Members() {
		if mem.Meta.NodeID == nodeID || mem.Name == nodeID {
			return mem.Status != ring.MemberAlive
		}
	}
	return true
}

// rebalance pauses or resumes moves and reports placement progress.
func (n *Node) rebalance(action kvpb.RebalanceRequest_Action) (*kvpb.RebalanceResponse, error) {
	m, err := n.metaMap()
	if err != nil {
		return nil, err
	}
	if pause := action == kvpb.RebalanceRequest_PAUSE; (pause || action == kvpb.RebalanceRequest_RESUME) && m.RebalancePaused != pause {
		next := m.Clone()
		next.Epoch++
		next.RebalancePaused = pause
		if err := n.commitMap(m, next); err != nil {
			return nil, err
		}
		n.logger.Info("rebalancing", "paused", pause, "epoch", next.Epoch)
		m = next
	}
	plan := ring.Plan(m, func(string) bool { return true }, ring.PlanOptions{Down: n.nodeDown})
	b := ring.Balance(m)
	resp := &kvpb.RebalanceResponse{
		Epoch:         m.Epoch,
		Paused:        m.RebalancePaused,
		Balanced:      plan.Done() && b.Balanced,
		MovesPlanned:  uint32(len(plan.Moves)),
		MovesDone:     uint32(n.movesDone.Load()),
		Pending:       uint32(len(plan.Pending)),
		Misplaced:     uint32(b.Misplaced),
		MinimumMoves:  uint32(ring.MinimalMoves(m, m.Target())),
		MovesInFlight: uint32(movesInFlight(m)),
		SnapshotBytes: n.trans.Stats().SnapshotBytesSent,
	}
	for _, p := range plan.Pending {
		resp.PendingReasons = append(resp.PendingReasons, fmt.Sprintf("shard %d: %s", p.Shard, p.Reason))
	}
	// A membership change gossip has seen but the map does not carry yet
	// (a node joining, coming back or going down) means placement will move.
	if next, why := n.admitNodes(m); next != nil {
		resp.Balanced = false
		resp.PendingReasons = append(resp.PendingReasons, why)
	}
	return resp, nil
}

// movesInFlight counts shards with a learner or more voters than RF.
func movesInFlight(m *ring.Map) int {
	n := 0
	for _, s := range m.Shards {
		voters := 0
		learner := false
		for _, r := range s.Replicas {
			if r.Role == ring.RoleLearner {
				learner = true
			} else {
				voters++
			}
		}
		if learner || voters > int(m.RF) {
			n++
		}
	}
	return n
}

// moveReplica pins shard to its voters with from replaced by to; the
// planner then makes the move, learner first.
func (n *Node) moveReplica(shard uint32, from, to string) (uint64, error) {
	return n.pinShard(shard, to, func(m *ring.Map) ([]string, error) { return ring.PinMove(m, shard, from, to) })
}

// transferLeader pins shard to its voters with to first; the planner makes
// to the preferred leader and the balance loop moves raft leadership there.
func (n *Node) transferLeader(shard uint32, to string) (uint64, error) {
	return n.pinShard(shard, to, func(m *ring.Map) ([]string, error) { return ring.PinLeader(m, shard, to) })
}

// unpinShard drops shard's pin: placement is computed again.
func (n *Node) unpinShard(shard uint32) (uint64, error) {
	return n.updateMap(func(m *ring.Map) (*ring.Map, error) {
		if uint64(shard) >= uint64(m.ShardCount) {
			return nil, fmt.Errorf("%w: shard %d does not exist: the cluster has %d shards (0-%d)", ErrRefused, shard, m.ShardCount, m.ShardCount-1)
		}
		if m.Pins[shard] == nil {
			return nil, nil
		}
		return m.WithPin(shard, nil), nil
	}, "shard unpinned", "shard", shard)
}

// pinShard commits the pin of shard that build computes from the committed
// map, unless the shard already has it. to, the node the pin moves
// something to, must be alive: a pin onto a node gossip reports dead would
// only wait.
func (n *Node) pinShard(shard uint32, to string, build func(*ring.Map) ([]string, error)) (uint64, error) {
	return n.updateMap(func(m *ring.Map) (*ring.Map, error) {
		pin, err := build(m)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrRefused, err)
		}
		if n.gossipDead(to) {
			return nil, fmt.Errorf("%w: node %s is not alive (gossip reports it unreachable); bring it back or choose another node", ErrRefused, to)
		}
		if slices.Equal(m.Pins[shard], pin) {
			return nil, nil
		}
		return m.WithPin(shard, pin), nil
	}, "shard pinned", "shard", shard, "to", to)
}

// updateMap commits the successor change computes from the committed map,
// logs what with the log attributes and the new map's pins, and returns its
// epoch; a nil successor changes nothing (the committed epoch is returned).
// When the control loop commits a map in between, the change is computed
// again from the newer map, a few times.
func (n *Node) updateMap(change func(*ring.Map) (*ring.Map, error), what string, attrs ...any) (uint64, error) {
	for attempt := 0; ; attempt++ {
		m, err := n.metaMap()
		if err != nil {
			return 0, err
		}
		next, err := change(m)
		if err != nil {
			return 0, err
		}
		if next == nil {
			return m.Epoch, nil
		}
		err = n.commitMap(m, next)
		if err == nil {
			n.logger.Info(what, append(attrs, "epoch", next.Epoch, "pins", next.Pins, "rebalance_paused", next.RebalancePaused)...)
			return next.Epoch, nil
		}
		if !errors.Is(err, errMapChanged) || attempt == 4 {
			return 0, err
		}
	}
}
