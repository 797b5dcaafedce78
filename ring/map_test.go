package ring

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func testMap(t testing.TB) *Map {
	t.Helper()
	m, err := NewMap("cluster-1", activeNodes("a", "b", "c", "d"), 8, 3)
	if err != nil {
		t.Fatalf("NewMap: %v", err)
	}
	return m
}

func TestMap_Validate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(m *Map)
		want   []string // substrings of the error; none means valid
	}{
		{"valid", func(*Map) {}, nil},
		{"learner ok", func(m *Map) { m.Shards[0].Replicas[1].Role = RoleLearner }, nil},
		{"draining node keeps replicas", func(m *Map) { m.Nodes[0].State = NodeDraining }, nil},
		{"no cluster ID", func(m *Map) { m.ClusterID = "" }, []string{"cluster ID is empty"}},
		{"epoch 0", func(m *Map) { m.Epoch = 0 }, []string{"epoch is 0"}},
		{"rf 0", func(m *Map) { m.RF = 0 }, []string{"replication factor is 0"}},
		{"shard count 0", func(m *Map) { m.ShardCount = 0 }, []string{"shard count is 0", "map has 8 shards but shard count is 0"}},
		{"too few shards", func(m *Map) { m.Shards = m.Shards[:7] }, []string{"map has 7 shards but shard count is 8"}},
		{"shard out of order", func(m *Map) { m.Shards[2].ID, m.Shards[3].ID = 3, 2 }, []string{"shard at index 2 has ID 3", "shard at index 3 has ID 2"}},
		{"unsorted nodes", func(m *Map) { m.Nodes[1], m.Nodes[2] = m.Nodes[2], m.Nodes[1] }, []string{`nodes are not sorted by ID: "b" comes after "c"`}},
		{"duplicate node", func(m *Map) { m.Nodes[1].ID = "a" }, []string{`node "a" appears twice`}},
		{"bad node state", func(m *Map) { m.Nodes[0].State = 0 }, []string{`node "a" has invalid state unspecified`}},
		{"unknown replica node", func(m *Map) { m.Nodes = m.Nodes[:3]; m.MetaVoters = []string{"a"} }, []string{`is on unknown node "d"`}},
		{"bad role", func(m *Map) { m.Shards[0].Replicas[0].Role = 9 }, []string{"invalid role Role(9)"}},
		{"no voter", func(m *Map) {
			for i := range m.Shards[1].Replicas {
				m.Shards[1].Replicas[i].Role = RoleLearner
			}
		}, []string{"shard 1 has no voter"}},
		{"two replicas on one node", func(m *Map) {
			r := &m.Shards[0].Replicas[1]
			r.NodeID = m.Shards[0].Replicas[0].NodeID
			r.ID = ReplicaID(0, r.NodeID, 1000)
			m.NextReplicaSeq = 1001
		}, []string{"holds more than one replica"}},
		{"duplicate replica ID", func(m *Map) { m.Shards[1].Replicas[0].ID = m.Shards[0].Replicas[0].ID }, []string{"is used in shard 0 and shard 1"}},
		{"replica ID names other node", func(m *Map) {
			m.Shards[0].Replicas[0].ID = ReplicaID(0, "zz", 1)
		}, []string{`ID names shard 0, node "zz"`}},
		{"replica ID not parseable", func(m *Map) { m.Shards[0].Replicas[0].ID = "r1" }, []string{`replica ID "r1" is not`}},
		{"replica seq not allocated", func(m *Map) { m.NextReplicaSeq-- }, []string{"not below next replica sequence"}},
		{"no meta voters", func(m *Map) { m.MetaVoters = nil }, []string{"no meta voters"}},
		{"unknown meta voter", func(m *Map) { m.MetaVoters = append(m.MetaVoters, "x") }, []string{`meta voter "x" is not a known node`}},
		{"duplicate meta voter", func(m *Map) { m.MetaVoters = append(m.MetaVoters, "a") }, []string{`meta voter "a" appears twice`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := testMap(t)
			tt.mutate(m)
			err := m.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidMap) {
				t.Fatalf("Validate() = %v, want ErrInvalidMap", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %v\nwant it to mention %q", err, w)
				}
			}
		})
	}
}

func TestMap_Clone(t *testing.T) {
	m := testMap(t)
	c := m.Clone()
	if !reflect.DeepEqual(m, c) {
		t.Fatalf("Clone differs from original")
	}
	c.Nodes[0].Addr = "changed"
	c.Shards[0].Replicas[0].Role = RoleLearner
	c.MetaVoters[0] = "z"
	c.Epoch++
	if m.Nodes[0].Addr == "changed" || m.Shards[0].Replicas[0].Role != RoleVoter || m.MetaVoters[0] != "a" || m.Epoch != 1 {
		t.Errorf("modifying the clone changed the original")
	}
}

func TestMap_Node(t *testing.T) {
	m := testMap(t)
	for _, id := range []string{"a", "b", "c", "d"} {
		if n, ok := m.Node(id); !ok || n.ID != id {
			t.Errorf("Node(%q) = %+v, %t", id, n, ok)
		}
	}
	for _, id := range []string{"", "0", "bb", "e"} {
		if n, ok := m.Node(id); ok {
			t.Errorf("Node(%q) = %+v, want not found", id, n)
		}
	}
}

func TestMap_ReplicasOn(t *testing.T) {
	m := testMap(t)
	total := 0
	for _, n := range m.Nodes {
		refs := m.ReplicasOn(n.ID)
		total += len(refs)
		for i, ref := range refs {
			if ref.Replica.NodeID != n.ID || (i > 0 && refs[i-1].Shard >= ref.Shard) {
				t.Errorf("ReplicasOn(%q)[%d] = %+v", n.ID, i, ref)
			}
			if s, r, ok := m.Replica(ref.Replica.ID); !ok || s != ref.Shard || r != ref.Replica {
				t.Errorf("Replica(%q) = %d, %+v, %t; want %+v", ref.Replica.ID, s, r, ok, ref)
			}
		}
	}
	if total != 8*3 {
		t.Errorf("ReplicasOn over all nodes found %d replicas, want 24", total)
	}
	if refs := m.ReplicasOn("nobody"); len(refs) != 0 {
		t.Errorf("ReplicasOn(nobody) = %v", refs)
	}
}

func TestMap_Replica_notFound(t *testing.T) {
	m := testMap(t)
	for _, id := range []string{"", "x", "0/a/999", "99/a/1", "4294967295/a/1", "-1/a/1"} {
		if s, r, ok := m.Replica(id); ok {
			t.Errorf("Replica(%q) = %d, %+v, want not found", id, s, r)
		}
	}
}

func TestMap_ShardForKey(t *testing.T) {
	m := testMap(t)
	for _, k := range []string{"a", "{x}1", "{x}2", ""} {
		if got, want := m.ShardForKey([]byte(k)), ShardForKey([]byte(k), 8); got != want {
			t.Errorf("Map.ShardForKey(%q) = %d, want %d", k, got, want)
		}
	}
}

func TestReplicaID(t *testing.T) {
	tests := []struct {
		shard uint32
		node  string
		seq   uint64
		want  string
	}{
		{7, "node-a", 12, "7/node-a/12"},
		{0, "n", 0, "0/n/0"},
		{4294967295, "a/b", 18446744073709551615, "4294967295/a/b/18446744073709551615"},
	}
	for _, tt := range tests {
		got := ReplicaID(tt.shard, tt.node, tt.seq)
		if got != tt.want {
			t.Errorf("ReplicaID(%d, %q, %d) = %q, want %q", tt.shard, tt.node, tt.seq, got, tt.want)
		}
		s, n, q, err := ParseReplicaID(got)
		if err != nil || s != tt.shard || n != tt.node || q != tt.seq {
			t.Errorf("ParseReplicaID(%q) = %d, %q, %d, %v", got, s, n, q, err)
		}
	}
	for _, bad := range []string{"", "1", "1/2", "1//2", "x/a/1", "1/a/x", "4294967296/a/1", "1/a/-1"} {
		if _, _, _, err := ParseReplicaID(bad); err == nil {
			t.Errorf("ParseReplicaID(%q) succeeded, want error", bad)
		}
	}
}

func TestNodeState_String(t *testing.T) {
	tests := map[NodeState]string{0: "unspecified", NodeJoining: "joining", NodeActive: "active", NodeDraining: "draining", NodeRemoved: "removed", 9: "NodeState(9)"}
	for s, want := range tests {
		if got := s.String(); got != want {
			t.Errorf("NodeState(%d).String() = %q, want %q", uint8(s), got, want)
		}
	}
}

func TestRole_String(t *testing.T) {
	tests := map[Role]string{RoleVoter: "voter", RoleLearner: "learner", 7: "Role(7)"}
	for r, want := range tests {
		if got := r.String(); got != want {
			t.Errorf("Role(%d).String() = %q, want %q", uint8(r), got, want)
		}
	}
}
