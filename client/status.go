package client

import (
	"context"
	"fmt"
	"time"

	"github.com/ridgeline-kv/ridgeline/replication/kvpb"
	"github.com/ridgeline-kv/ridgeline/ring"
)

// NodeStatus is one node's report of itself and the replicas it hosts.
type NodeStatus struct {
	NodeID      string
	Addr        string
	Incarnation uint64
	State       string // joining, active, draining, removed
	ClusterID   string
	Epoch       uint64 // newest map epoch the node knows
	Replicas    []ReplicaStatus
}

// ReplicaStatus is the raft state of one replica on a node.
type ReplicaStatus struct {
	Shard        uint32 // meaningless when Meta
	Meta         bool   // the replica of the meta group
	ReplicaID    string
	State        string // Leader, Follower, Candidate, Shutdown
	LeaderID     string // leader node ID as this replica sees it
	Term         uint64
	CommitIndex  uint64
	AppliedIndex uint64
	LastLogIndex uint64
	LastContact  time.Duration
	Keys         uint64
}

// NodeStatus asks one node (by ID, from the cached map) for its status. It
// makes a single attempt bounded by ctx and Config.AttemptTimeout; an
// unreachable node yields an error matching ErrUnavailable.
func (c *Client) NodeStatus(ctx context.Context, nodeID string) (*NodeStatus, error) {
	rt := c.routes.Load()
	if rt == nil || c.closed.Load() {
		return nil, ErrClosed
	}
	n, ok := rt.m.Node(nodeID)
	if !ok || n.Addr == "" {
		return nil, newError(fmt.Sprintf("client: invalid argument: node %q is not in the cluster map (epoch %d)", nodeID, rt.epoch()), ErrInvalidArgument)
	}
	cn, err := c.pool.get(n.Addr)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.AttemptTimeout)
	defer cancel()
	resp, err := cn.admin.NodeStatus(ctx, &kvpb.NodeStatusRequest{})
	if err != nil {
		if ctx.Err() != nil {
			return nil, newError(fmt.Sprintf("client: unavailable: node %s at %s did not answer: %v", nodeID, n.Addr, ctx.Err()), ErrUnavailable, ctx.Err())
		}
		return nil, fmt.Errorf("node %s at %s: %w", nodeID, n.Addr, fromStatus(err))
	}
	ns := &NodeStatus{
		NodeID:      resp.GetNode().GetId(),
		Addr:        resp.GetNode().GetAddr(),
		Incarnation: resp.GetNode().GetIncarnation(),
		State:       nodeStateName(resp.GetNode().GetState()),
		ClusterID:   resp.GetClusterId(),
		Epoch:       resp.GetEpoch(),
	}
	if ns.NodeID == "" {
		ns.NodeID = nodeID
	}
	for _, r := range resp.GetReplicas() {
		ns.Replicas = append(ns.Replicas, ReplicaStatus{
			Shard:        r.GetShard(),
			Meta:         r.GetMeta(),
			ReplicaID:    r.GetReplicaId(),
			State:        r.GetState(),
			LeaderID:     r.GetLeaderId(),
			Term:         r.GetTerm(),
			CommitIndex:  r.GetCommitIndex(),
			AppliedIndex: r.GetAppliedIndex(),
			LastLogIndex: r.GetLastLogIndex(),
			LastContact:  time.Duration(r.GetLastContactMs()) * time.Millisecond,
			Keys:         r.GetKeys(),
		})
	}
	return ns, nil
}

func nodeStateName(s kvpb.NodeState) string { return ring.NodeState(s).String() }
