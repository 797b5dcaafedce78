package client

import (
	"sync/atomic"

	"github.com/ridgeline-kv/ridgeline/ring"
)

// target is a node a request can be sent to.
type target struct {
	nodeID string
	conn   *conn
}

// shardRoute is the routing state of one shard: its replicas from the map
// and the cached leader, which requests update without locks.
type shardRoute struct {
	id       uint32
	replicas []target // map order: replicas[0] is the preferred leader
	leader   atomic.Pointer[target]
}

// replicaIndex returns the index of nodeID among the replicas, or -1.
func (s *shardRoute) replicaIndex(nodeID string) int {
	for i := range s.replicas {
		if s.replicas[i].nodeID == nodeID {
			return i
		}
	}
	return -1
}

// routeTable is an immutable snapshot of the cluster map made ready for
// routing. Only the leader pointers inside change; a new map yields a new
// table, published atomically.
type routeTable struct {
	m      *ring.Map
	ks     *ring.Keyspace
	shards []*shardRoute
	byNode map[string]target
}

func (rt *routeTable) epoch() uint64 { return rt.m.Epoch }

// buildRoutes makes the route table of m. Leaders come from leaders (shard →
// node ID, as a node reported them), else from old when that node is still a
// replica, else Replicas[0].
func buildRoutes(pool *connPool, m *ring.Map, leaders map[uint32]string, old *routeTable) (*routeTable, error) {
	rt := &routeTable{
		m:      m,
		ks:     ring.NewKeyspace(m.ShardCount),
		shards: make([]*shardRoute, len(m.Shards)),
		byNode: make(map[string]target, len(m.Nodes)),
	}
	for _, n := range m.Nodes {
		if n.State == ring.NodeRemoved || n.Addr == "" {
			continue
		}
		c, err := pool.get(n.Addr)
		if err != nil {
			return nil, err
		}
		rt.byNode[n.ID] = target{nodeID: n.ID, conn: c}
	}
	for i, s := range m.Shards {
		sr := &shardRoute{id: s.ID}
		for _, r := range s.Replicas {
			if t, ok := rt.byNode[r.NodeID]; ok {
				sr.replicas = append(sr.replicas, t)
			}
		}
		var lead *target
		if id, ok := leaders[s.ID]; ok && id != "" {
			if t, ok := rt.byNode[id]; ok {
				lead = &t
			}
		}
		if lead == nil && old != nil && i < len(old.shards) {
			if prev := old.shards[i].leader.Load(); prev != nil && sr.replicaIndex(prev.nodeID) >= 0 {
				lead = prev
			}
		}
		if lead == nil && len(sr.replicas) > 0 {
			t := sr.replicas[0]
			lead = &t
		}
		if lead != nil {
			sr.leader.Store(lead)
		}
		rt.shards[i] = sr
	}
	return rt, nil
}
