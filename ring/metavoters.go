package ring

import "slices"

// DesiredMetaVoters returns the meta group's voters m should have: 3, or 5
// once 5 nodes are active (fewer when fewer are active), chosen among the
// active nodes. Current voters that are still active are kept (in their
// order), so a change never replaces a healthy voter; the rest are filled
// in node ID order. Callers move m.MetaVoters towards it one node at a time,
// adding before removing.
func DesiredMetaVoters(m *Map) []string {
	var active []string
	for _, n := range m.Nodes {
		if n.State == NodeActive {
			active = append(active, n.ID)
		}
	}
	want := 3
	if len(active) >= 5 {
		want = 5
	}
	want = min(want, len(active))
	out := make([]string, 0, want)
	for _, id := range m.MetaVoters {
		if len(out) < want && slices.Contains(active, id) {
			out = append(out, id)
		}
	}
	for _, id := range active {
		if len(out) < want && !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out
}

// NextMetaVoters returns the successor of m (Epoch+1) that moves its meta
// voters one step towards DesiredMetaVoters — first adding a missing voter,
// then dropping one no longer wanted — or nil when they already match. It
// never drops the last voter.
func NextMetaVoters(m *Map) *Map {
	want := DesiredMetaVoters(m)
	for _, id := range want {
		if !slices.Contains(m.MetaVoters, id) {
			next := m.Clone()
			next.Epoch++
			next.MetaVoters = append(next.MetaVoters, id)
			return next
		}
	}
	if len(m.MetaVoters) <= 1 {
		return nil
	}
	for i, id := range m.MetaVoters {
		if !slices.Contains(want, id) {
			next := m.Clone()
			next.Epoch++
			next.MetaVoters = slices.Delete(slices.Clone(m.MetaVoters), i, i+1)
			return next
		}
	}
	return nil
}
