package ring

import (
	"fmt"
	"slices"
	"testing"
)

func metaTestMap(t *testing.T, n int) *Map {
	t.Helper()
	var nodes []Node
	for i := 1; i <= n; i++ {
		nodes = append(nodes, Node{ID: fmt.Sprintf("n%d", i), Addr: fmt.Sprintf("n%d:1", i), State: NodeActive})
	}
	m, err := NewMap("c", nodes, 4, 3)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestDesiredMetaVoters(t *testing.T) {
	for _, tc := range []struct {
		name  string
		nodes int
		edit  func(m *Map)
		want  []string
	}{
		{"three nodes", 3, nil, []string{"n1", "n2", "n3"}},
		{"four nodes keep three", 4, nil, []string{"n1", "n2", "n3"}},
		{"five nodes get five", 5, nil, []string{"n1", "n2", "n3", "n4", "n5"}},
		{"draining voter replaced", 4, func(m *Map) { m.Nodes[1].State = NodeDraining }, []string{"n1", "n3", "n4"}},
		{"down voter replaced", 4, func(m *Map) { m.Nodes[0].State = NodeDown }, []string{"n2", "n3", "n4"}},
		{"one active node", 3, func(m *Map) { m.Nodes[1].State, m.Nodes[2].State = NodeDown, NodeRemoved }, []string{"n1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := metaTestMap(t, tc.nodes)
			if tc.edit != nil {
				tc.edit(m)
			}
			if got := DesiredMetaVoters(m); !slices.Equal(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// Stepping with NextMetaVoters adds before it removes, changes one voter
// per step, and ends at the desired set.
func TestNextMetaVoters_Converges(t *testing.T) {
	m := metaTestMap(t, 5)
	m.MetaVoters = []string{"n1", "n2", "n3"}
	m.Nodes[0].State = NodeDown // n1 dead: replace it, and grow to... 4 active: 3 voters
	want := DesiredMetaVoters(m)
	for step := 0; ; step++ {
		next := NextMetaVoters(m)
		if next == nil {
			break
		}
		if d := len(next.MetaVoters) - len(m.MetaVoters); d != 1 && d != -1 {
			t.Fatalf("step %d changed %v to %v: more than one voter", step, m.MetaVoters, next.MetaVoters)
		}
		if len(next.MetaVoters) < len(m.MetaVoters) && len(m.MetaVoters) <= len(want) {
			t.Fatalf("step %d removed a voter before adding its replacement: %v → %v", step, m.MetaVoters, next.MetaVoters)
		}
		if err := next.Validate(); err != nil {
			t.Fatalf("step %d: %v", step, err)
		}
		m = next
		if step > 10 {
			t.Fatal("no convergence")
		}
	}
	got := slices.Clone(m.MetaVoters)
	slices.Sort(got)
	w := slices.Clone(want)
	slices.Sort(w)
	if !slices.Equal(got, w) {
		t.Fatalf("ended with %v, want %v", m.MetaVoters, want)
	}
}
