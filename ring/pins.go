package ring

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Pins are operators' choices of single shards' replica sets (kvctl shards
// move and transfer-leader). The target placement is recomputed from the
// active node set, so a manual move would be undone by the planner; a pin
// makes it stick instead: [Map.Target] uses a shard's pin in place of the
// computed replica set, and the planner carries the change out like any
// other, learner first, under its caps.
//
// A pin is used only while it is valid: exactly the shard's replica count
// (min(RF, active nodes)) of distinct nodes, all of them active. An invalid
// pin is ignored, not deleted: draining a pinned node, a pinned node going
// down or being removed, or too few active nodes for RF put the shard back
// under computed placement, and a pin that becomes valid again (a down node
// comes back) is used again. [Map.PinProblem] says why a pin is ignored.

// ErrCannotPin is wrapped by the errors [PinMove] and [PinLeader] return
// when an operator's move or leadership transfer does not apply to the map.
var ErrCannotPin = errors.New("ring: cannot pin shard")

// AtPin reports whether shard is pinned and its replicas are all voters on
// exactly the pinned nodes, the pin's first node first: the pin is carried
// out. (Only the first position of a pin is an order, the preferred leader;
// the planner does not reorder the others.)
func (m *Map) AtPin(shard uint32) bool {
	pin, ok := m.Pins[shard]
	if !ok || uint64(shard) >= uint64(len(m.Shards)) {
		return false
	}
	reps := m.Shards[shard].Replicas
	if len(reps) != len(pin) || len(reps) == 0 || reps[0].NodeID != pin[0] {
		return false
	}
	for _, r := range reps {
		if r.Role != RoleVoter || !slices.Contains(pin, r.NodeID) {
			return false
		}
	}
	return true
}

// Pin returns a copy of shard's pinned node IDs (the first is the preferred
// leader), or nil when it is not pinned.
func (m *Map) Pin(shard uint32) []string {
	return slices.Clone(m.Pins[shard])
}

// WithPin returns the successor of m (a clone with Epoch+1) in which shard
// is pinned to nodes, or unpinned when nodes is empty.
func (m *Map) WithPin(shard uint32, nodes []string) *Map {
	next := m.Clone()
	next.Epoch++
	if len(nodes) == 0 {
		delete(next.Pins, shard)
		if len(next.Pins) == 0 {
			next.Pins = nil
		}
		return next
	}
	if next.Pins == nil {
		next.Pins = make(map[uint32][]string)
	}
	next.Pins[shard] = slices.Clone(nodes)
	return next
}

// replicaCount is the number of replicas the target gives every shard:
// min(RF, active nodes).
func (m *Map) replicaCount() int {
	return min(int(m.RF), len(activeIDs(m.Nodes)))
}

// PinProblem says why shard's pin is ignored by [Map.Target], or "" when
// the shard has no pin or its pin is in use.
func (m *Map) PinProblem(shard uint32) string {
	pin, ok := m.Pins[shard]
	if !ok {
		return ""
	}
	return m.pinProblem(pin)
}

func (m *Map) pinProblem(pin []string) string {
	if want := m.replicaCount(); len(pin) != want {
		return fmt.Sprintf("it names %d nodes but shards have %d replicas now (replication factor %d, %d active nodes)",
			len(pin), want, m.RF, len(activeIDs(m.Nodes)))
	}
	for i, id := range pin {
		if slices.Contains(pin[:i], id) {
			return fmt.Sprintf("it names node %s twice", id)
		}
		n, ok := m.Node(id)
		switch {
		case !ok:
			return fmt.Sprintf("node %s is not in the cluster map", id)
		case n.State != NodeActive:
			return fmt.Sprintf("node %s is %v", id, n.State)
		}
	}
	return ""
}

// applyPins replaces the computed target of every shard with a valid pin.
func (m *Map) applyPins(t [][]string) {
	for shard, pin := range m.Pins {
		if uint64(shard) < uint64(len(t)) && m.pinProblem(pin) == "" {
			t[shard] = slices.Clone(pin)
		}
	}
}

// validatePins reports malformed pins: of shards the map does not have,
// empty, or naming unknown nodes or a node twice.
func (m *Map) validatePins(known map[string]bool) []error {
	var errs []error
	for _, shard := range slices.Sorted(maps.Keys(m.Pins)) {
		pin := m.Pins[shard]
		if uint64(shard) >= uint64(m.ShardCount) {
			errs = append(errs, fmt.Errorf("pin of shard %d: the map has %d shards", shard, m.ShardCount))
		}
		if len(pin) == 0 {
			errs = append(errs, fmt.Errorf("pin of shard %d names no node", shard))
		}
		for i, id := range pin {
			if !known[id] {
				errs = append(errs, fmt.Errorf("pin of shard %d names unknown node %q", shard, id))
			}
			if slices.Contains(pin[:i], id) {
				errs = append(errs, fmt.Errorf("pin of shard %d names node %q twice", shard, id))
			}
		}
	}
	return errs
}

// shardVoters returns shard's voter nodes in preference order, or an error
// when a move of the shard is in progress (a learner, or more voters than
// the target), so a pin built now would not describe a settled shard.
func (m *Map) shardVoters(shard uint32) ([]string, error) {
	if err := m.checkShard(shard); err != nil {
		return nil, err
	}
	var voters []string
	for _, r := range m.Shards[shard].Replicas {
		if r.Role == RoleLearner {
			return nil, fmt.Errorf("%w: shard %d has a move in progress (learner %s on node %s); wait until it finishes and retry",
				ErrCannotPin, shard, r.ID, r.NodeID)
		}
		voters = append(voters, r.NodeID)
	}
	if want := m.replicaCount(); len(voters) > want {
		return nil, fmt.Errorf("%w: shard %d has a move in progress (%d voters, %d once it finishes); wait until it finishes and retry",
			ErrCannotPin, shard, len(voters), want)
	}
	return voters, nil
}

// checkShard refuses a shard the map does not have.
func (m *Map) checkShard(shard uint32) error {
	if uint64(shard) >= uint64(len(m.Shards)) {
		return fmt.Errorf("%w: shard %d does not exist: the cluster has %d shards (0-%d)", ErrCannotPin, shard, len(m.Shards), len(m.Shards)-1)
	}
	return nil
}

// checkPin refuses a pin [Map.Target] would ignore.
func (m *Map) checkPin(shard uint32, pin []string) error {
	if p := m.pinProblem(pin); p != "" {
		return fmt.Errorf("%w: shard %d cannot be pinned to %s: %s", ErrCannotPin, shard, strings.Join(pin, ","), p)
	}
	return nil
}

// PinMove returns the pin that moves shard's replica off node from onto
// node to: the shard's voters in preference order with from replaced by to
// (so if from is the preferred leader, to becomes it). If the pin in force
// already places a replica on to and none on from, it is returned as it is,
// so asking again (while the move runs, or after) succeeds. It refuses, with an
// error wrapping [ErrCannotPin] that says what to do, when the shard does
// not exist, from == to, to is unknown or not active, from holds no voter
// of the shard, to already holds a replica of it, or a move of the shard is
// in progress.
func PinMove(m *Map, shard uint32, from, to string) ([]string, error) {
	if err := m.checkShard(shard); err != nil {
		return nil, err
	}
	if from == to {
		return nil, fmt.Errorf("%w: both nodes are %s: name the node to move the replica off and a different node to move it to", ErrCannotPin, from)
	}
	if pin := m.Pins[shard]; pin != nil && m.pinProblem(pin) == "" && slices.Contains(pin, to) && !slices.Contains(pin, from) {
		return slices.Clone(pin), nil // asked before: the pin in force already makes the move
	}
	if err := m.pinTarget(to, "a replica can only move to an active node"); err != nil {
		return nil, err
	}
	voters, err := m.shardVoters(shard)
	if err != nil {
		return nil, err
	}
	i := slices.Index(voters, from)
	switch {
	case slices.Contains(voters, to):
		return nil, fmt.Errorf("%w: node %s already holds a replica of shard %d (its replicas are on %s); move it to a node without one",
			ErrCannotPin, to, shard, strings.Join(voters, ", "))
	case i < 0:
		return nil, fmt.Errorf("%w: node %s holds no replica of shard %d (its replicas are on %s)",
			ErrCannotPin, from, shard, strings.Join(voters, ", "))
	}
	pin := slices.Clone(voters)
	pin[i] = to
	if err := m.checkPin(shard, pin); err != nil {
		return nil, err
	}
	return pin, nil
}

// PinLeader returns the pin that makes node to shard's preferred leader:
// the shard's voters with to moved to the front, or the pin in force if it
// already names to first. It refuses, with an error
// wrapping [ErrCannotPin], when the shard does not exist, to holds no voter
// of it or is not active, or a move of the shard is in progress.
func PinLeader(m *Map, shard uint32, to string) ([]string, error) {
	if err := m.checkShard(shard); err != nil {
		return nil, err
	}
	if err := m.pinTarget(to, "leadership can only move to an active node"); err != nil {
		return nil, err
	}
	if pin := m.Pins[shard]; pin != nil && m.pinProblem(pin) == "" && pin[0] == to {
		return slices.Clone(pin), nil // asked before: the pin in force already makes to the leader
	}
	voters, err := m.shardVoters(shard)
	if err != nil {
		return nil, err
	}
	if !slices.Contains(voters, to) {
		return nil, fmt.Errorf("%w: node %s holds no replica of shard %d (its replicas are on %s); move a replica there first",
			ErrCannotPin, to, shard, strings.Join(voters, ", "))
	}
	pin := slices.Clone(voters)
	preferFirst(pin, to)
	if err := m.checkPin(shard, pin); err != nil {
		return nil, err
	}
	return pin, nil
}

// pinTarget refuses a node that is unknown or not active as a pin's
// destination.
func (m *Map) pinTarget(id, why string) error {
	n, ok := m.Node(id)
	switch {
	case !ok:
		return fmt.Errorf("%w: node %q is not in the cluster map", ErrCannotPin, id)
	case n.State != NodeActive:
		return fmt.Errorf("%w: node %s is %v; %s", ErrCannotPin, id, n.State, why)
	}
	return nil
}
