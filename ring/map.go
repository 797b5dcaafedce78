package ring

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// NodeState is a node's lifecycle state in the cluster map.
type NodeState uint8

// Node states. The numeric values equal kvpb.NodeState's; the zero value is
// "unspecified" and is not valid in a map.
const (
	NodeJoining  NodeState = iota + 1 // known, not yet given replicas
	NodeActive                        // holds replicas; counted by placement
	NodeDraining                      // being emptied; not counted by placement
	NodeRemoved                       // gone for good; its ID is never reused
	// NodeDown: gossip reported the node dead for longer than the grace
	// period; like draining it is not counted by placement, so its replicas
	// are replaced, but it becomes active again when it comes back.
	NodeDown
)

// String returns the lower-case name of s, or "unspecified" / "NodeState(n)".
func (s NodeState) String() string {
	switch s {
	case 0:
		return "unspecified"
	case NodeJoining:
		return "joining"
	case NodeActive:
		return "active"
	case NodeDraining:
		return "draining"
	case NodeRemoved:
		return "removed"
	case NodeDown:
		return "down"
	}
	return "NodeState(" + strconv.Itoa(int(s)) + ")"
}

func (s NodeState) valid() bool { return s >= NodeJoining && s <= NodeDown }

// Role is a replica's raft role.
type Role uint8

// Replica roles. The numeric values equal kvpb.ReplicaRole's.
const (
	RoleVoter   Role = iota // raft voter
	RoleLearner             // raft non-voter, catching up before promotion
)

// String returns "voter", "learner" or "Role(n)".
func (r Role) String() string {
	switch r {
	case RoleVoter:
		return "voter"
	case RoleLearner:
		return "learner"
	}
	return "Role(" + strconv.Itoa(int(r)) + ")"
}

// Node is a member of the cluster as the cluster map records it.
type Node struct {
	ID          string // stable, unique, never reused
	Incarnation uint64 // bumped each time the node restarts with its data
	Addr        string // gRPC address, for clients and peers
	GossipAddr  string // memberlist address
	HTTPAddr    string // metrics, health, pprof
	State       NodeState
}

// Replica is one member of a shard's raft group.
type Replica struct {
	ID     string // ReplicaID(shard, NodeID, seq): fresh, never reused
	NodeID string
	Role   Role
	// Bootstrap marks a replica of a new cluster's initial placement: it
	// bootstraps its raft group with the identical initial configuration.
	// Replicas added later join through the leader and never bootstrap.
	Bootstrap bool
}

// Shard is one raft group and the replicas the map assigns to it.
type Shard struct {
	ID uint32
	// Replicas in preference order: Replicas[0] is the preferred leader.
	Replicas []Replica
}

// ReplicaRef names a replica together with its shard.
type ReplicaRef struct {
	Shard   uint32
	Replica Replica
}

// Map is the authoritative, epoch-versioned cluster map committed through the
// meta raft group. A published Map is treated as immutable: change a
// [Map.Clone] and give it a higher Epoch. Methods are safe for concurrent use
// as long as nobody modifies the Map.
type Map struct {
	ClusterID  string
	Epoch      uint64
	ShardCount uint32
	RF         uint32
	// Nodes, sorted by ID, including draining and removed ones.
	Nodes []Node
	// Shards, indexed by shard ID; len(Shards) == ShardCount.
	Shards []Shard
	// MetaVoters are the node IDs of the meta raft group's voters.
	MetaVoters []string
	// NextReplicaSeq is the sequence number the next fresh replica ID gets.
	NextReplicaSeq uint64
	// RebalancePaused: operators paused placement moves (the planner does
	// not run; membership changes still commit).
	RebalancePaused bool
	// Pins are operators' replica sets for single shards, by shard: node
	// IDs, the first the preferred leader. [Map.Target] uses a valid pin in
	// place of the computed placement; see [Map.PinProblem]. nil when no
	// shard is pinned.
	Pins map[uint32][]string
}

// ReplicaID returns the ID of a replica of shard on nodeID allocated with
// sequence number seq, "<shard>/<node>/<seq>", e.g. "7/node-a/12".
func ReplicaID(shard uint32, nodeID string, seq uint64) string {
	return strconv.FormatUint(uint64(shard), 10) + "/" + nodeID + "/" + strconv.FormatUint(seq, 10)
}

// ParseReplicaID splits a replica ID made by [ReplicaID]. The node ID may
// itself contain '/'.
func ParseReplicaID(id string) (shard uint32, nodeID string, seq uint64, err error) {
	first := strings.IndexByte(id, '/')
	last := strings.LastIndexByte(id, '/')
	if first < 0 || last == first {
		return 0, "", 0, fmt.Errorf("ring: replica ID %q is not <shard>/<node>/<seq>", id)
	}
	s, err := strconv.ParseUint(id[:first], 10, 32)
	if err != nil {
		return 0, "", 0, fmt.Errorf("ring: replica ID %q: bad shard: %w", id, err)
	}
	q, err := strconv.ParseUint(id[last+1:], 10, 64)
	if err != nil {
		return 0, "", 0, fmt.Errorf("ring: replica ID %q: bad sequence: %w", id, err)
	}
	nodeID = id[first+1 : last]
	if nodeID == "" {
		return 0, "", 0, fmt.Errorf("ring: replica ID %q has an empty node ID", id)
	}
	return uint32(s), nodeID, q, nil
}

// Clone returns a deep copy of m.
func (m *Map) Clone() *Map {
	c := *m
	c.Nodes = slices.Clone(m.Nodes)
	c.MetaVoters = slices.Clone(m.MetaVoters)
	if m.Shards != nil {
		c.Shards = make([]Shard, len(m.Shards))
		for i, s := range m.Shards {
			c.Shards[i] = Shard{ID: s.ID, Replicas: slices.Clone(s.Replicas)}
		}
	}
	if m.Pins != nil {
		c.Pins = make(map[uint32][]string, len(m.Pins))
		for shard, pin := range m.Pins {
			c.Pins[shard] = slices.Clone(pin)
		}
	}
	return &c
}

// Node returns the node with the given ID.
func (m *Map) Node(id string) (Node, bool) {
	i, ok := slices.BinarySearchFunc(m.Nodes, id, func(n Node, id string) int {
		return strings.Compare(n.ID, id)
	})
	if !ok {
		return Node{}, false
	}
	return m.Nodes[i], true
}

// ShardForKey returns the shard of key in this map; see [Keyspace.ShardForKey].
func (m *Map) ShardForKey(key []byte) uint32 {
	return ShardForKey(key, m.ShardCount)
}

// ReplicasOn returns the replicas the map places on nodeID, by shard.
func (m *Map) ReplicasOn(nodeID string) []ReplicaRef {
	var refs []ReplicaRef
	for _, s := range m.Shards {
		for _, r := range s.Replicas {
			if r.NodeID == nodeID {
				refs = append(refs, ReplicaRef{Shard: s.ID, Replica: r})
			}
		}
	}
	return refs
}

// Replica finds the replica with the given ID.
func (m *Map) Replica(id string) (shard uint32, r Replica, ok bool) {
	s, _, _, err := ParseReplicaID(id)
	if err != nil || int64(s) >= int64(len(m.Shards)) {
		return 0, Replica{}, false
	}
	for _, r := range m.Shards[s].Replicas {
		if r.ID == id {
			return s, r, true
		}
	}
	return 0, Replica{}, false
}

// Validate reports every way in which m is not a well-formed cluster map. The
// error wraps [ErrInvalidMap] and joins one error per problem.
//
// A well-formed map has a cluster ID, Epoch ≥ 1, ShardCount ≥ 1, RF ≥ 1;
// nodes with non-empty IDs, strictly sorted by ID, in a valid state; exactly
// ShardCount shards with Shards[i].ID == i, each with at least one voter;
// replicas with valid roles on known nodes, at most one per node per shard,
// whose IDs are ReplicaID(shard, node, seq) with seq < NextReplicaSeq and
// unique across the map; at least one meta voter, each a known node,
// without duplicates; and pins of existing shards, each naming known nodes
// without duplicates (a pin naming a node that is not active is
// well-formed: Target ignores it).
func (m *Map) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if m.ClusterID == "" {
		add("cluster ID is empty")
	}
	if m.Epoch == 0 {
		add("epoch is 0; the first map has epoch 1")
	}
	if m.ShardCount == 0 {
		add("shard count is 0; it must be at least 1")
	}
	if m.RF == 0 {
		add("replication factor is 0; it must be at least 1")
	}

	nodes := make(map[string]bool, len(m.Nodes))
	for i, n := range m.Nodes {
		switch {
		case n.ID == "":
			add("node %d has an empty ID", i)
		case i > 0 && n.ID <= m.Nodes[i-1].ID:
			if n.ID == m.Nodes[i-1].ID {
				add("node %q appears twice", n.ID)
			} else {
				add("nodes are not sorted by ID: %q comes after %q", n.ID, m.Nodes[i-1].ID)
			}
		}
		if !n.State.valid() {
			add("node %q has invalid state %v", n.ID, n.State)
		}
		nodes[n.ID] = true
	}

	if uint64(len(m.Shards)) != uint64(m.ShardCount) {
		add("map has %d shards but shard count is %d", len(m.Shards), m.ShardCount)
	}
	replicaIDs := make(map[string]uint32)
	for i, s := range m.Shards {
		if uint64(s.ID) != uint64(i) {
			add("shard at index %d has ID %d", i, s.ID)
		}
		voters := 0
		onNode := make(map[string]bool, len(s.Replicas))
		for _, r := range s.Replicas {
			switch r.Role {
			case RoleVoter:
				voters++
			case RoleLearner:
			default:
				add("shard %d: replica %q has invalid role %v", s.ID, r.ID, r.Role)
			}
			if !nodes[r.NodeID] {
				add("shard %d: replica %q is on unknown node %q", s.ID, r.ID, r.NodeID)
			}
			if onNode[r.NodeID] {
				add("shard %d: node %q holds more than one replica", s.ID, r.NodeID)
			}
			onNode[r.NodeID] = true
			if prev, dup := replicaIDs[r.ID]; dup {
				add("replica ID %q is used in shard %d and shard %d", r.ID, prev, s.ID)
			}
			replicaIDs[r.ID] = s.ID
			shard, node, seq, err := ParseReplicaID(r.ID)
			switch {
			case err != nil:
				add("shard %d: %w", s.ID, err)
			case shard != s.ID || node != r.NodeID:
				add("shard %d: replica %q on node %q: ID names shard %d, node %q", s.ID, r.ID, r.NodeID, shard, node)
			case seq >= m.NextReplicaSeq:
				add("shard %d: replica %q has sequence %d, not below next replica sequence %d", s.ID, r.ID, seq, m.NextReplicaSeq)
			}
		}
		if voters == 0 {
			add("shard %d has no voter", s.ID)
		}
	}

	if len(m.MetaVoters) == 0 {
		add("no meta voters")
	}
	seen := make(map[string]bool, len(m.MetaVoters))
	for _, id := range m.MetaVoters {
		if !nodes[id] {
			add("meta voter %q is not a known node", id)
		}
		if seen[id] {
			add("meta voter %q appears twice", id)
		}
		seen[id] = true
	}
	errs = append(errs, m.validatePins(nodes)...)

	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrInvalidMap, errors.Join(errs...))
}
