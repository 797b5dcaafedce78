package ring

import "testing"

func TestMap_WithNode(t *testing.T) {
	m, err := NewMap("c", []Node{{ID: "b", Addr: "b:1", State: NodeActive}, {ID: "d", Addr: "d:1", State: NodeActive}}, 4, 1)
	if err != nil {
		t.Fatal(err)
	}
	added := m.WithNode(Node{ID: "c", Addr: "c:1", State: NodeJoining})
	if got := [3]string{added.Nodes[0].ID, added.Nodes[1].ID, added.Nodes[2].ID}; got != [3]string{"b", "c", "d"} {
		t.Fatalf("nodes %v, want sorted b c d", got)
	}
	if added.Epoch != m.Epoch+1 || len(m.Nodes) != 2 {
		t.Fatalf("epoch %d (want %d), original has %d nodes (want 2, untouched)", added.Epoch, m.Epoch+1, len(m.Nodes))
	}
	if err := added.Validate(); err != nil {
		t.Fatalf("map with a joining node: %v", err)
	}
	updated := added.WithNode(Node{ID: "c", Addr: "c:2", State: NodeActive})
	if n, _ := updated.Node("c"); len(updated.Nodes) != 3 || n.Addr != "c:2" || n.State != NodeActive {
		t.Fatalf("update: %d nodes, c = %+v; want 3 nodes and c active at c:2", len(updated.Nodes), n)
	}
}
