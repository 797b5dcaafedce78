package ring

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/buraksezer/consistent"
)

func activeNodes(ids ...string) []Node {
	nodes := make([]Node, len(ids))
	for i, id := range ids {
		nodes[i] = Node{ID: id, State: NodeActive, Addr: "127.0.0.1:" + fmt.Sprint(7000+i)}
	}
	return nodes
}

func nodeIDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("node-%d", i+1)
	}
	return ids
}

func TestTargets_golden(t *testing.T) {
	// Placement must not change between runs, machines or dependency
	// upgrades: a change here moves replicas in every running cluster.
	got := Targets(activeNodes(nodeIDs(4)...), 8, 3)
	want := [][]string{
		{"node-1", "node-3", "node-4"},
		{"node-4", "node-2", "node-1"},
		{"node-4", "node-2", "node-1"},
		{"node-2", "node-1", "node-3"},
		{"node-1", "node-3", "node-4"},
		{"node-2", "node-1", "node-3"},
		{"node-1", "node-3", "node-4"},
		{"node-3", "node-4", "node-2"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Targets(node-1..4, 8, 3) =\n%v\nwant\n%v", got, want)
	}
}

func TestTargets_deterministic(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	for n := 1; n <= 10; n++ {
		nodes := activeNodes(nodeIDs(n)...)
		want := Targets(nodes, DefaultShards, DefaultReplicas)
		for range 5 {
			shuffled := slices.Clone(nodes)
			rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
			// Duplicates and non-active nodes must not matter either.
			shuffled = append(shuffled, nodes[rng.IntN(n)],
				Node{ID: "joining", State: NodeJoining}, Node{ID: "draining", State: NodeDraining}, Node{ID: "gone", State: NodeRemoved})
			if got := Targets(shuffled, DefaultShards, DefaultReplicas); !reflect.DeepEqual(got, want) {
				t.Fatalf("n=%d: Targets depends on input order:\n got %v\nwant %v", n, got, want)
			}
		}
	}
}

func TestTargets_replicaSets(t *testing.T) {
	for n := 1; n <= 10; n++ {
		for _, shards := range []uint32{1, 7, 32, 64} {
			for rf := uint32(1); rf <= 5; rf++ {
				ids := nodeIDs(n)
				targets := Targets(activeNodes(ids...), shards, rf)
				if uint32(len(targets)) != shards {
					t.Fatalf("n=%d shards=%d rf=%d: %d target sets", n, shards, rf, len(targets))
				}
				want := min(int(rf), n)
				for s, set := range targets {
					if len(set) != want {
						t.Errorf("n=%d shards=%d rf=%d shard %d: %d targets %v, want %d", n, shards, rf, s, len(set), set, want)
					}
					seen := map[string]bool{}
					for _, id := range set {
						if seen[id] || !slices.Contains(ids, id) {
							t.Errorf("n=%d shards=%d rf=%d shard %d: targets %v repeat or invent a node", n, shards, rf, s, set)
						}
						seen[id] = true
					}
				}
			}
		}
	}
}

func TestTargets_usesConsistent(t *testing.T) {
	ids := nodeIDs(5)
	members := make([]consistent.Member, len(ids))
	for i, id := range ids {
		members[i] = member(id)
	}
	c := consistent.New(members, consistent.Config{Hasher: xxhasher{}, PartitionCount: DefaultShards, ReplicationFactor: placementVnodes, Load: placementLoad})
	targets := Targets(activeNodes(ids...), DefaultShards, 3)
	for p, set := range targets {
		if owner := c.GetPartitionOwner(p).String(); set[0] != owner {
			t.Errorf("shard %d: preferred leader %s, consistent's owner %s", p, set[0], owner)
		}
		closest, err := c.GetClosestNForPartition(p, 3)
		if err != nil {
			t.Fatal(err)
		}
		for i, m := range closest {
			if set[i] != m.String() {
				t.Errorf("shard %d: targets %v, consistent's closest %v", p, set, closest)
				break
			}
		}
	}
}

func TestTargets_spread(t *testing.T) {
	schemes := map[string]func(int) string{
		"node-%d": func(i int) string { return fmt.Sprintf("node-%d", i+1) },
		"n%d":     func(i int) string { return fmt.Sprintf("n%d", i+1) },
		"kv%d":    func(i int) string { return fmt.Sprintf("kv%d", i) },
	}
	for name, scheme := range schemes {
		for n := 3; n <= 7; n++ {
			ids := make([]string, n)
			for i := range ids {
				ids[i] = scheme(i)
			}
			replicas, leaders := map[string]int{}, map[string]int{}
			for _, set := range Targets(activeNodes(ids...), DefaultShards, DefaultReplicas) {
				leaders[set[0]]++
				for _, id := range set {
					replicas[id]++
				}
			}
			avg := float64(DefaultShards*DefaultReplicas) / float64(n)
			var counts []string
			for _, id := range ids {
				counts = append(counts, fmt.Sprintf("%s=%d/%d", id, replicas[id], leaders[id]))
				if float64(replicas[id]) > 1.25*avg {
					t.Errorf("%s n=%d: %s holds %d replicas, more than 1.25 × average %.1f", name, n, id, replicas[id], avg)
				}
			}
			t.Logf("%s n=%d avg %.1f replicas/leaders: %s", name, n, avg, strings.Join(counts, " "))
		}
	}
}

func TestTargets_edgeCases(t *testing.T) {
	if got := Targets(nil, 4, 3); len(got) != 4 || slices.ContainsFunc(got, func(s []string) bool { return len(s) != 0 }) {
		t.Errorf("Targets(nil, 4, 3) = %v, want 4 empty sets", got)
	}
	if got := Targets([]Node{{ID: "a", State: NodeDraining}}, 2, 3); len(got[0]) != 0 {
		t.Errorf("Targets(draining only) = %v, want empty sets", got)
	}
	if got := Targets(activeNodes("a"), 0, 3); len(got) != 0 {
		t.Errorf("Targets(shards 0) = %v, want none", got)
	}
	if got := Targets(activeNodes("a", "b"), 3, 0); len(got) != 3 || len(got[0]) != 0 {
		t.Errorf("Targets(rf 0) = %v, want 3 empty sets", got)
	}
	// Many shards on one node: the bounded load must not panic.
	if got := Targets(activeNodes("a"), 1024, 3); len(got) != 1024 || got[1023][0] != "a" {
		t.Errorf("Targets(one node, 1024 shards) = %v...", got[:2])
	}
}

func TestNewMap(t *testing.T) {
	tests := []struct {
		nodes      int
		shards, rf uint32
		metaVoters int
	}{
		{1, 4, 3, 1},
		{2, 8, 3, 2},
		{3, 32, 3, 3},
		{4, 32, 3, 3},
		{5, 32, 3, 5},
		{7, 32, 5, 5},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("nodes=%d", tt.nodes), func(t *testing.T) {
			ids := nodeIDs(tt.nodes)
			input := activeNodes(ids...)
			for i := range input {
				input[i].State = NodeJoining
			}
			slices.Reverse(input)
			m, err := NewMap("c1", input, tt.shards, tt.rf)
			if err != nil {
				t.Fatalf("NewMap: %v", err)
			}
			if m.Epoch != 1 || m.ClusterID != "c1" || m.ShardCount != tt.shards || m.RF != tt.rf {
				t.Errorf("header = %q epoch %d shards %d rf %d", m.ClusterID, m.Epoch, m.ShardCount, m.RF)
			}
			if input[0].State != NodeJoining {
				t.Errorf("NewMap modified its input nodes")
			}
			for i, n := range m.Nodes {
				if n.ID != ids[i] || n.State != NodeActive {
					t.Errorf("Nodes[%d] = %+v, want %s active (sorted)", i, n, ids[i])
				}
			}
			if want := ids[:tt.metaVoters]; !slices.Equal(m.MetaVoters, want) {
				t.Errorf("MetaVoters = %v, want %v", m.MetaVoters, want)
			}
			targets := Targets(m.Nodes, tt.shards, tt.rf)
			seq := uint64(1)
			for s, sh := range m.Shards {
				var got []string
				for _, r := range sh.Replicas {
					got = append(got, r.NodeID)
					if want := ReplicaID(uint32(s), r.NodeID, seq); r.ID != want || r.Role != RoleVoter {
						t.Errorf("shard %d replica %+v, want ID %s voter", s, r, want)
					}
					seq++
				}
				if !slices.Equal(got, targets[s]) {
					t.Errorf("shard %d replicas on %v, targets %v", s, got, targets[s])
				}
			}
			if m.NextReplicaSeq != seq {
				t.Errorf("NextReplicaSeq = %d, want %d", m.NextReplicaSeq, seq)
			}
			if err := m.Validate(); err != nil {
				t.Errorf("Validate: %v", err)
			}
		})
	}
}

func TestNewMap_errors(t *testing.T) {
	tests := []struct {
		name       string
		cluster    string
		nodes      []Node
		shards, rf uint32
		want       string
	}{
		{"no cluster", "", activeNodes("a"), 4, 3, "cluster ID is empty"},
		{"no nodes", "c", nil, 4, 3, "no nodes"},
		{"no shards", "c", activeNodes("a"), 0, 3, "shard count is 0"},
		{"no rf", "c", activeNodes("a"), 4, 0, "replication factor is 0"},
		{"duplicate node", "c", activeNodes("a", "a"), 4, 3, `node "a" appears twice`},
		{"empty node ID", "c", activeNodes("", "a"), 4, 3, "empty ID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewMap(tt.cluster, tt.nodes, tt.shards, tt.rf)
			if !errors.Is(err, ErrInvalidMap) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("NewMap error = %v, want ErrInvalidMap mentioning %q", err, tt.want)
			}
		})
	}
}

func BenchmarkTargets(b *testing.B) {
	nodes := activeNodes(nodeIDs(7)...)
	b.ReportAllocs()
	for b.Loop() {
		Targets(nodes, DefaultShards, DefaultReplicas)
	}
}
