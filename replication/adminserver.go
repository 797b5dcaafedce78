package replication

import (
	"context"

	"github.com/ridgeline-kv/ridgeline/replication/kvpb"
	"github.com/ridgeline-kv/ridgeline/storage"
)

// adminServer adapts the Admin gRPC service to the node.
type adminServer struct {
	kvpb.UnimplementedAdminServer
	n *Node
}

func (s *adminServer) ClusterMap(ctx context.Context, req *kvpb.ClusterMapRequest) (*kvpb.ClusterMapResponse, error) {
	m := s.n.currentMap()
	resp := &kvpb.ClusterMapResponse{Leaders: map[uint32]string{}}
	if m == nil {
		return resp, nil
	}
	resp.Map = m.Proto()
	// Copy under the lock, resolve outside it: nodeOfReplica takes the read
	// lock itself, and a recursive read lock deadlocks once a writer queues.
	s.n.mu.RLock()
	local := make(map[uint32]*replica, len(s.n.byShard))
	for shard, r := range s.n.byShard {
		local[shard] = r
	}
	s.n.mu.RUnlock()
	for shard, r := range local {
		if id := s.n.nodeOfReplica(r.leader()); id != "" {
			resp.Leaders[shard] = id
		}
	}
	return resp, nil
}

func (s *adminServer) NodeStatus(ctx context.Context, req *kvpb.NodeStatusRequest) (*kvpb.NodeStatusResponse, error) {
	n := s.n
	resp := &kvpb.NodeStatusResponse{Node: &kvpb.NodeInfo{
		Id: n.cfg.NodeID, Incarnation: n.ident.Incarnation, Addr: n.advertise,
		GossipAddr: n.members.LocalGossipAddr(), HttpAddr: n.HTTPAddr(),
	}}
	if m := n.currentMap(); m != nil {
		resp.Epoch, resp.ClusterId = m.Epoch, m.ClusterID
		if nd, ok := m.Node(n.cfg.NodeID); ok {
			resp.Node.State = kvpb.NodeState(nd.State)
		}
	}
	n.mu.RLock()
	rs := make([]*replica, 0, len(n.replicas))
	for _, id := range sortedKeys(n.replicas) {
		rs = append(rs, n.replicas[id])
	}
	n.mu.RUnlock()
	for _, r := range rs {
		st := r.status(n.nodeOfReplica)
		if r.data != nil {
			r.data.View(func(tx *storage.Tx) error { st.Keys = tx.Keys(); return nil })
		}
		resp.Replicas = append(resp.Replicas, st)
	}
	return resp, nil
}

func (s *adminServer) DrainNode(ctx context.Context, req *kvpb.DrainNodeRequest) (*kvpb.MapChangeResponse, error) {
	resp, err := onMetaLeader(ctx, s.n, func() (*kvpb.MapChangeResponse, error) {
		epoch, err := s.n.drainNode(req.GetNodeId())
		return &kvpb.MapChangeResponse{Epoch: epoch}, err
	}, func(ctx context.Context, c kvpb.AdminClient) (*kvpb.MapChangeResponse, error) {
		return c.DrainNode(ctx, req)
	})
	return resp, s.n.toStatus(err, 0, nil)
}

func (s *adminServer) RemoveNode(ctx context.Context, req *kvpb.RemoveNodeRequest) (*kvpb.MapChangeResponse, error) {
	resp, err := onMetaLeader(ctx, s.n, func() (*kvpb.MapChangeResponse, error) {
		epoch, err := s.n.removeNode(req.GetNodeId())
		return &kvpb.MapChangeResponse{Epoch: epoch}, err
	}, func(ctx context.Context, c kvpb.AdminClient) (*kvpb.MapChangeResponse, error) {
		return c.RemoveNode(ctx, req)
	})
	return resp, s.n.toStatus(err, 0, nil)
}

func (s *adminServer) Rebalance(ctx context.Context, req *kvpb.RebalanceRequest) (*kvpb.RebalanceResponse, error) {
	resp, err := onMetaLeader(ctx, s.n, func() (*kvpb.RebalanceResponse, error) {
		return s.n.rebalance(req.GetAction())
	}, func(ctx context.Context, c kvpb.AdminClient) (*kvpb.RebalanceResponse, error) {
		return c.Rebalance(ctx, req)
	})
	return resp, s.n.toStatus(err, 0, nil)
}

func (s *adminServer) MoveReplica(ctx context.Context, req *kvpb.MoveReplicaRequest) (*kvpb.MapChangeResponse, error) {
	resp, err := onMetaLeader(ctx, s.n, func() (*kvpb.MapChangeResponse, error) {
		epoch, err := s.n.moveReplica(req.GetShard(), req.GetFromNode(), req.GetToNode())
		return &kvpb.MapChangeResponse{Epoch: epoch}, err
	}, func(ctx context.Context, c kvpb.AdminClient) (*kvpb.MapChangeResponse, error) {
		return c.MoveReplica(ctx, req)
	})
	return resp, s.n.toStatus(err, 0, nil)
}

func (s *adminServer) TransferLeader(ctx context.Context, req *kvpb.TransferLeaderRequest) (*kvpb.MapChangeResponse, error) {
	resp, err := onMetaLeader(ctx, s.n, func() (*kvpb.MapChangeResponse, error) {
		epoch, err := s.n.transferLeader(req.GetShard(), req.GetToNode())
		return &kvpb.MapChangeResponse{Epoch: epoch}, err
	}, func(ctx context.Context, c kvpb.AdminClient) (*kvpb.MapChangeResponse, error) {
		return c.TransferLeader(ctx, req)
	})
	return resp, s.n.toStatus(err, 0, nil)
}

func (s *adminServer) UnpinShard(ctx context.Context, req *kvpb.UnpinShardRequest) (*kvpb.MapChangeResponse, error) {
	resp, err := onMetaLeader(ctx, s.n, func() (*kvpb.MapChangeResponse, error) {
		epoch, err := s.n.unpinShard(req.GetShard())
		return &kvpb.MapChangeResponse{Epoch: epoch}, err
	}, func(ctx context.Context, c kvpb.AdminClient) (*kvpb.MapChangeResponse, error) {
		return c.UnpinShard(ctx, req)
	})
	return resp, s.n.toStatus(err, 0, nil)
}

// Status reports the node and its replicas (what Admin.NodeStatus serves).
func (n *Node) Status() *kvpb.NodeStatusResponse {
	st, _ := (&adminServer{n: n}).NodeStatus(context.Background(), &kvpb.NodeStatusRequest{})
	return st
}
