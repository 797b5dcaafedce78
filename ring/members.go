package ring

import (
	"slices"
	"sort"
)

// WithNode returns the successor of m (a clone with Epoch+1) in which node n
// is added, or replaces the node with the same ID. Nodes stay sorted by ID.
// When n is removed, pins naming it are dropped: they could never be used
// again.
func (m *Map) WithNode(n Node) *Map {
	next := m.Clone()
	next.Epoch++
	if n.State == NodeRemoved {
		for shard, pin := range next.Pins {
			if slices.Contains(pin, n.ID) {
				delete(next.Pins, shard)
			}
		}
		if len(next.Pins) == 0 {
			next.Pins = nil
		}
	}
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
