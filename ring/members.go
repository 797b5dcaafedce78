package ring

import "sort"

// WithNode returns the successor of m (a clone with Epoch+1) in which node n
// is added, or replaces the node with the same ID. Nodes stay sorted by ID.
func (m *Map) WithNode(n Node) *Map {
	next := m.Clone()
	next.Epoch++
	i := sort.Search(len(next.Nodes), func(i int) bool { return next.Nodes[i].ID >= n.ID })
	if i < len(next.Nodes) && next.Nodes[i].ID == n.ID {
		next.Nodes[i] = n
		return next
	}
	next.Nodes = append(next.Nodes, Node{})
	copy(next.Nodes[i+1:], next.Nodes[i:])
	next.Nodes[i] = n
	return next
}
