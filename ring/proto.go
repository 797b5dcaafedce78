package ring

import (
	"fmt"
	"maps"
	"slices"

	"github.com/ridgeline-kv/ridgeline/replication/kvpb"
)

// FromProto converts a wire cluster map and validates it (see [Map.Validate]).
// Errors wrap [ErrInvalidMap] and say what is wrong.
func FromProto(pb *kvpb.ClusterMap) (*Map, error) {
	if pb == nil {
		return nil, fmt.Errorf("%w: map is nil", ErrInvalidMap)
	}
	m := &Map{
		ClusterID:       pb.GetClusterId(),
		Epoch:           pb.GetEpoch(),
		ShardCount:      pb.GetShardCount(),
		RF:              pb.GetReplicationFactor(),
		NextReplicaSeq:  pb.GetNextReplicaSeq(),
		RebalancePaused: pb.GetRebalancePaused(),
	}
	if len(pb.GetNodes()) > 0 {
		m.Nodes = make([]Node, len(pb.GetNodes()))
		for i, n := range pb.GetNodes() {
			m.Nodes[i] = Node{
				ID:          n.GetId(),
				Incarnation: n.GetIncarnation(),
				Addr:        n.GetAddr(),
				GossipAddr:  n.GetGossipAddr(),
				HTTPAddr:    n.GetHttpAddr(),
				State:       nodeStateFromProto(n.GetState()),
			}
		}
	}
	if len(pb.GetShards()) > 0 {
		m.Shards = make([]Shard, len(pb.GetShards()))
		for i, s := range pb.GetShards() {
			sh := Shard{ID: s.GetId()}
			if len(s.GetReplicas()) > 0 {
				sh.Replicas = make([]Replica, len(s.GetReplicas()))
				for j, r := range s.GetReplicas() {
					sh.Replicas[j] = Replica{ID: r.GetId(), NodeID: r.GetNodeId(), Role: roleFromProto(r.GetRole()), Bootstrap: r.GetBootstrap()}
				}
			}
			m.Shards[i] = sh
		}
	}
	if len(pb.GetMetaVoters()) > 0 {
		m.MetaVoters = append([]string(nil), pb.GetMetaVoters()...)
	}
	for _, p := range pb.GetPins() {
		if m.Pins == nil {
			m.Pins = make(map[uint32][]string, len(pb.GetPins()))
		}
		if _, dup := m.Pins[p.GetShard()]; dup {
			return nil, fmt.Errorf("%w: shard %d is pinned twice", ErrInvalidMap, p.GetShard())
		}
		m.Pins[p.GetShard()] = append([]string{}, p.GetNodeIds()...)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return m, nil
}

// Proto converts m to its wire form. It does not validate.
func (m *Map) Proto() *kvpb.ClusterMap {
	pb := &kvpb.ClusterMap{
		ClusterId:         m.ClusterID,
		Epoch:             m.Epoch,
		ShardCount:        m.ShardCount,
		ReplicationFactor: m.RF,
		NextReplicaSeq:    m.NextReplicaSeq,
		RebalancePaused:   m.RebalancePaused,
	}
	if len(m.Nodes) > 0 {
		pb.Nodes = make([]*kvpb.NodeInfo, len(m.Nodes))
		for i, n := range m.Nodes {
			pb.Nodes[i] = &kvpb.NodeInfo{
				Id:          n.ID,
				Incarnation: n.Incarnation,
				Addr:        n.Addr,
				GossipAddr:  n.GossipAddr,
				HttpAddr:    n.HTTPAddr,
				State:       kvpb.NodeState(n.State),
			}
		}
	}
	if len(m.Shards) > 0 {
		pb.Shards = make([]*kvpb.ShardInfo, len(m.Shards))
		for i, s := range m.Shards {
			si := &kvpb.ShardInfo{Id: s.ID}
			if len(s.Replicas) > 0 {
				si.Replicas = make([]*kvpb.ReplicaInfo, len(s.Replicas))
				for j, r := range s.Replicas {
					si.Replicas[j] = &kvpb.ReplicaInfo{Id: r.ID, NodeId: r.NodeID, Role: kvpb.ReplicaRole(r.Role), Bootstrap: r.Bootstrap}
				}
			}
			pb.Shards[i] = si
		}
	}
	if len(m.MetaVoters) > 0 {
		pb.MetaVoters = append([]string(nil), m.MetaVoters...)
	}
	for _, shard := range slices.Sorted(maps.Keys(m.Pins)) {
		pb.Pins = append(pb.Pins, &kvpb.ShardPin{Shard: shard, NodeIds: append([]string(nil), m.Pins[shard]...)})
	}
	return pb
}

// nodeStateFromProto maps out-of-range values to an invalid NodeState that
// Validate rejects, without wrapping around uint8.
func nodeStateFromProto(s kvpb.NodeState) NodeState {
	if s < 0 || s > 255 {
		return 255
	}
	return NodeState(s)
}

func roleFromProto(r kvpb.ReplicaRole) Role {
	if r < 0 || r > 255 {
		return 255
	}
	return Role(r)
}
