package ring

import (
	"fmt"
	"slices"
	"strings"

	"github.com/buraksezer/consistent"
)

const (
	// placementVnodes is consistent's ReplicationFactor: virtual nodes per
	// member on the hash ring.
	placementVnodes = 32
	// placementLoad is consistent's bounded-load factor: no node owns more
	// than ceil(load × shards / nodes) shards as preferred leader.
	placementLoad = 1.25
)

// member is a node ID as a consistent.Member.
type member string

func (m member) String() string { return string(m) }

// Targets returns, for each shard, the IDs of the nodes that should hold its
// replicas, preferred leader first: min(rf, active nodes) distinct active
// nodes per shard, computed with buraksezer/consistent v1.0.0 over the nodes
// whose State is NodeActive (GetPartitionOwner for the first,
// GetClosestNForPartition for the rest). It is a pure function of the set of
// active node IDs: input order and duplicates do not matter. With no active
// node every shard's target is empty.
//
// Targets are where replicas should end up, not a plan: a planner turns
// "current vs target" into single-replica moves.
func Targets(nodes []Node, shardCount, rf uint32) [][]string {
	targets := make([][]string, shardCount)
	ids := activeIDs(nodes)
	if len(ids) == 0 || shardCount == 0 || rf == 0 {
		return targets
	}
	count := min(int(rf), len(ids))
	c := newPlacementRing(ids, shardCount)
	for p := range int(shardCount) {
		owner := c.GetPartitionOwner(p)
		closest, err := c.GetClosestNForPartition(p, count)
		if err != nil || owner == nil || len(closest) == 0 || closest[0].String() != owner.String() {
			// Unreachable: count <= members and p is in range. Fall back
			// to sorted order so the result is still valid and deterministic.
			targets[p] = fallbackTargets(ids, p, count)
			continue
		}
		t := make([]string, 0, count)
		for _, m := range closest {
			t = append(t, m.String())
		}
		targets[p] = t
	}
	return targets
}

// activeIDs returns the sorted, de-duplicated IDs of the active nodes.
func activeIDs(nodes []Node) []string {
	ids := make([]string, 0, len(nodes))
	for _, n := range nodes {
		if n.State == NodeActive && n.ID != "" {
			ids = append(ids, n.ID)
		}
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}

// newPlacementRing builds consistent's ring over sorted ids. consistent
// panics when no member has room for a partition; that cannot happen with a
// load factor above 1, but if it ever does we retry with a higher load
// rather than crash the meta leader.
func newPlacementRing(ids []string, shardCount uint32) *consistent.Consistent {
	members := make([]consistent.Member, len(ids))
	for i, id := range ids {
		members[i] = member(id)
	}
	for load := placementLoad; ; load += 0.25 {
		if c := tryNewRing(members, consistent.Config{
			Hasher:            xxhasher{},
			PartitionCount:    int(shardCount),
			ReplicationFactor: placementVnodes,
			Load:              load,
		}); c != nil {
			return c
		}
	}
}

func tryNewRing(members []consistent.Member, cfg consistent.Config) (c *consistent.Consistent) {
	defer func() {
		if recover() != nil {
			c = nil
		}
	}()
	return consistent.New(members, cfg)
}

func fallbackTargets(ids []string, shard, count int) []string {
	t := make([]string, count)
	for i := range count {
		t[i] = ids[(shard+i)%len(ids)]
	}
	return t
}

// NewMap returns the initial cluster map of a new cluster: Epoch 1, every
// given node Active, each shard's replicas the [Targets] of those nodes (all
// voters, with fresh IDs from NextReplicaSeq, which starts at 1), and as meta
// voters the first 3 node IDs in sorted order (5 with five or more nodes, all
// of them with fewer than three).
func NewMap(clusterID string, nodes []Node, shardCount, rf uint32) (*Map, error) {
	var bad []string
	if clusterID == "" {
		bad = append(bad, "cluster ID is empty")
	}
	if len(nodes) == 0 {
		bad = append(bad, "no nodes")
	}
	if shardCount == 0 {
		bad = append(bad, "shard count is 0")
	}
	if rf == 0 {
		bad = append(bad, "replication factor is 0")
	}
	if len(bad) > 0 {
		return nil, fmt.Errorf("%w: %s", ErrInvalidMap, strings.Join(bad, "; "))
	}

	m := &Map{
		ClusterID:      clusterID,
		Epoch:          1,
		ShardCount:     shardCount,
		RF:             rf,
		Nodes:          slices.Clone(nodes),
		NextReplicaSeq: 1,
	}
	for i := range m.Nodes {
		m.Nodes[i].State = NodeActive
	}
	slices.SortFunc(m.Nodes, func(a, b Node) int { return strings.Compare(a.ID, b.ID) })

	m.Shards = make([]Shard, shardCount)
	for s, t := range Targets(m.Nodes, shardCount, rf) {
		sh := Shard{ID: uint32(s), Replicas: make([]Replica, len(t))}
		for i, nodeID := range t {
			sh.Replicas[i] = Replica{ID: ReplicaID(uint32(s), nodeID, m.NextReplicaSeq), NodeID: nodeID, Role: RoleVoter}
			m.NextReplicaSeq++
		}
		m.Shards[s] = sh
	}

	voters := 3
	if len(m.Nodes) >= 5 {
		voters = 5
	}
	for _, n := range m.Nodes[:min(voters, len(m.Nodes))] {
		m.MetaVoters = append(m.MetaVoters, n.ID)
	}

	if err := m.Validate(); err != nil {
		return nil, err
	}
	return m, nil
}
