package ring

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/ridgeline-kv/ridgeline/replication/kvpb"
)

// pinFixture is a 4-node, 8-shard, RF 3 map at its target, and for shard 0
// its voters (preference order) and the node without a replica of it.
func pinFixture(t *testing.T) (m *Map, voters []string, outside string) {
	t.Helper()
	m = planMap(t, 4, 8, 3)
	m, _, res := convergePlan(t, m, allCaughtUp, PlanOptions{}, newPlanChecker(t, m, PlanOptions{}), false, 100)
	if !res.Done() {
		t.Fatalf("fixture not converged: %v", res.Pending)
	}
	for _, r := range m.Shards[0].Replicas {
		voters = append(voters, r.NodeID)
	}
	for _, n := range m.Nodes {
		if !slices.Contains(voters, n.ID) {
			outside = n.ID
		}
	}
	return m, voters, outside
}

func TestMap_Target_pins(t *testing.T) {
	base, voters, outside := pinFixture(t)
	moved := slices.Clone(voters)
	moved[1] = outside
	leader := slices.Clone(voters)
	preferFirst(leader, voters[2])

	tests := []struct {
		name    string
		pin     []string
		mutate  func(m *Map) *Map
		used    bool
		problem string // substring of PinProblem when not used
	}{
		{"move", moved, nil, true, ""},
		{"leader", leader, nil, true, ""},
		{"too few nodes", moved[:2], nil, false, "names 2 nodes but shards have 3 replicas"},
		{"too many nodes", append(slices.Clone(voters), outside), nil, false, "names 4 nodes"},
		{"pinned node draining", moved, func(m *Map) *Map { return withNodeState(m, outside, NodeDraining) }, false, "node " + outside + " is draining"},
		{"pinned node down", moved, func(m *Map) *Map { return withNodeState(m, outside, NodeDown) }, false, "is down"},
		{"pinned node removed", moved, func(m *Map) *Map {
			next := withNodeState(m, outside, NodeRemoved)
			next.Pins = map[uint32][]string{0: moved} // WithNode would drop it; check Target alone
			return next
		}, false, "is removed"},
		{"pinned node joining", moved, func(m *Map) *Map { return withNodeState(m, outside, NodeJoining) }, false, "is joining"},
		{"fewer active nodes than RF", voters, func(m *Map) *Map {
			next := withNodeState(m, outside, NodeDraining)
			return withNodeState(next, voters[2], NodeDraining)
		}, false, "names 3 nodes but shards have 2 replicas now (replication factor 3, 2 active nodes)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := base.WithPin(0, tt.pin)
			if tt.mutate != nil {
				m = tt.mutate(m)
			}
			if err := m.Validate(); err != nil {
				t.Fatalf("pinned map invalid: %v", err)
			}
			unpinned := m.WithPin(0, nil)
			got, want := m.Target(), unpinned.Target()
			if tt.used {
				want[0] = tt.pin
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Target() shard 0 = %v; want %v (pin %v, used %v)", got[0], want[0], tt.pin, tt.used)
			}
			problem := m.PinProblem(0)
			if tt.used != (problem == "") || !strings.Contains(problem, tt.problem) {
				t.Errorf("PinProblem(0) = %q; want %q", problem, tt.problem)
			}
		})
	}
}

func TestMap_WithPin(t *testing.T) {
	m, voters, outside := pinFixture(t)
	pinned := m.WithPin(3, voters)
	if pinned.Epoch != m.Epoch+1 || !reflect.DeepEqual(pinned.Pin(3), voters) || m.Pins != nil {
		t.Fatalf("WithPin: epoch %d, pin %v, original pins %v", pinned.Epoch, pinned.Pin(3), m.Pins)
	}
	if un := pinned.WithPin(3, nil); un.Pins != nil || un.Pin(3) != nil {
		t.Errorf("unpinned map keeps pins %v", un.Pins)
	}
	// Removing a pinned node drops its pins (they could never apply again);
	// other pins stay.
	pinned = pinned.WithPin(0, []string{outside, voters[1], voters[2]})
	n, _ := pinned.Node(voters[0])
	n.State = NodeRemoved
	if got := pinned.WithNode(n).Pins; !reflect.DeepEqual(got, map[uint32][]string{0: {outside, voters[1], voters[2]}}) {
		t.Errorf("after removing %s, pins = %v; want only shard 0's", voters[0], got)
	}
}

func TestMap_pinsCloneAndProto(t *testing.T) {
	m, voters, outside := pinFixture(t)
	m = m.WithPin(0, []string{outside, voters[1], voters[2]}).WithPin(5, []string{"node-2", "node-1", "node-3"})

	c := m.Clone()
	if !reflect.DeepEqual(c, m) {
		t.Fatalf("Clone differs: %v vs %v", c.Pins, m.Pins)
	}
	c.Pins[0][0] = "changed"
	delete(c.Pins, 5)
	if m.Pins[0][0] != outside || len(m.Pins) != 2 {
		t.Errorf("modifying the clone's pins changed the original: %v", m.Pins)
	}

	wire, err := proto.Marshal(m.Proto())
	if err != nil {
		t.Fatal(err)
	}
	var pb kvpb.ClusterMap
	if err := proto.Unmarshal(wire, &pb); err != nil {
		t.Fatal(err)
	}
	if len(pb.Pins) != 2 || pb.Pins[0].Shard != 0 || pb.Pins[1].Shard != 5 {
		t.Errorf("wire pins %v; want shards 0 and 5 in order", pb.Pins)
	}
	back, err := FromProto(&pb)
	if err != nil {
		t.Fatalf("FromProto: %v", err)
	}
	if !reflect.DeepEqual(back, m) {
		t.Errorf("round trip changed the pins: got %v, want %v", back.Pins, m.Pins)
	}

	pb.Pins = append(pb.Pins, &kvpb.ShardPin{Shard: 5, NodeIds: []string{"node-1"}})
	if _, err := FromProto(&pb); !errors.Is(err, ErrInvalidMap) || !strings.Contains(err.Error(), "shard 5 is pinned twice") {
		t.Errorf("FromProto with a shard pinned twice: %v", err)
	}
}

func TestMap_Validate_pins(t *testing.T) {
	tests := []struct {
		name string
		pins map[uint32][]string
		want string
	}{
		{"no such shard", map[uint32][]string{8: {"a", "b", "c"}}, "pin of shard 8: the map has 8 shards"},
		{"empty", map[uint32][]string{1: {}}, "pin of shard 1 names no node"},
		{"unknown node", map[uint32][]string{1: {"a", "b", "x"}}, `pin of shard 1 names unknown node "x"`},
		{"node twice", map[uint32][]string{1: {"a", "b", "a"}}, `pin of shard 1 names node "a" twice`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := testMap(t)
			m.Pins = tt.pins
			if err := m.Validate(); !errors.Is(err, ErrInvalidMap) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate() = %v; want %q", err, tt.want)
			}
		})
	}
}

func TestPinMove(t *testing.T) {
	m, voters, outside := pinFixture(t)
	pin, err := PinMove(m, 0, voters[0], outside)
	if want := []string{outside, voters[1], voters[2]}; err != nil || !reflect.DeepEqual(pin, want) {
		t.Errorf("PinMove(0, %s, %s) = %v, %v; want %v", voters[0], outside, pin, err, want)
	}
	pin, err = PinMove(m, 0, voters[2], outside)
	if want := []string{voters[0], voters[1], outside}; err != nil || !reflect.DeepEqual(pin, want) {
		t.Errorf("PinMove(0, %s, %s) = %v, %v; want %v", voters[2], outside, pin, err, want)
	}

	learner, err := m.Apply(Move{Kind: MoveAddLearner, Shard: 0, Replica: Replica{NodeID: outside}})
	if err != nil {
		t.Fatal(err)
	}
	promoted, err := learner.Apply(Move{Kind: MovePromote, Shard: 0, Replica: learner.Shards[0].Replicas[3]})
	if err != nil {
		t.Fatal(err)
	}
	// Asking again while the pinned move runs, or after, returns the pin.
	want := []string{outside, voters[1], voters[2]}
	if pin, err := PinMove(learner.WithPin(0, want), 0, voters[0], outside); err != nil || !reflect.DeepEqual(pin, want) {
		t.Errorf("PinMove again during the move = %v, %v; want the pin %v", pin, err, want)
	}
	if pin, err := PinLeader(learner.WithPin(0, want), 0, outside); err != nil || !reflect.DeepEqual(pin, want) {
		t.Errorf("PinLeader to the pinned leader during the move = %v, %v; want the pin %v", pin, err, want)
	}
	tests := []struct {
		name     string
		m        *Map
		shard    uint32
		from, to string
		want     string
	}{
		{"no such shard", m, 8, voters[0], outside, "shard 8 does not exist: the cluster has 8 shards (0-7)"},
		{"same node", m, 0, outside, outside, "both nodes are " + outside},
		{"unknown destination", m, 0, voters[0], "node-9", `node "node-9" is not in the cluster map`},
		{"destination draining", withNodeState(m, outside, NodeDraining), 0, voters[0], outside, "node " + outside + " is draining; a replica can only move to an active node"},
		{"destination holds one", m, 0, outside, voters[0], "node " + voters[0] + " already holds a replica of shard 0"},
		{"source holds none", m, 0, "node-9", outside, "node node-9 holds no replica of shard 0"},
		{"learner in flight", learner, 0, voters[0], outside, "has a move in progress (learner"},
		{"extra voter in flight", promoted, 0, voters[0], outside, "has a move in progress (4 voters, 3 once it finishes)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pin, err := PinMove(tt.m, tt.shard, tt.from, tt.to)
			if !errors.Is(err, ErrCannotPin) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("PinMove(%d, %s, %s) = %v, %v; want ErrCannotPin saying %q", tt.shard, tt.from, tt.to, pin, err, tt.want)
			}
		})
	}
}

func TestPinLeader(t *testing.T) {
	m, voters, outside := pinFixture(t)
	pin, err := PinLeader(m, 0, voters[2])
	if want := []string{voters[2], voters[0], voters[1]}; err != nil || !reflect.DeepEqual(pin, want) {
		t.Errorf("PinLeader(0, %s) = %v, %v; want %v", voters[2], pin, err, want)
	}
	if pin, err := PinLeader(m, 0, voters[0]); err != nil || !reflect.DeepEqual(pin, voters) {
		t.Errorf("PinLeader(0, preferred %s) = %v, %v; want %v", voters[0], pin, err, voters)
	}
	tests := []struct {
		name  string
		m     *Map
		shard uint32
		to    string
		want  string
	}{
		{"no such shard", m, 9, voters[0], "shard 9 does not exist"},
		{"no replica there", m, 0, outside, "node " + outside + " holds no replica of shard 0"},
		{"unknown node", m, 0, "node-9", `node "node-9" is not in the cluster map`},
		{"draining node", withNodeState(m, voters[1], NodeDraining), 0, voters[1], "is draining; leadership can only move to an active node"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if pin, err := PinLeader(tt.m, tt.shard, tt.to); !errors.Is(err, ErrCannotPin) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("PinLeader(%d, %s) = %v, %v; want ErrCannotPin saying %q", tt.shard, tt.to, pin, err, tt.want)
			}
		})
	}
}

// TestPlan_pinned: the planner carries out a pinned move learner first
// (add, promote, move the preference off the leaving node, remove) and a
// pinned leader by one preference move, touching no other shard, and the
// result stays put.
func TestPlan_pinned(t *testing.T) {
	m, voters, outside := pinFixture(t)
	tests := []struct {
		name  string
		pin   []string
		kinds []MoveKind
	}{
		{"move the preferred leader's replica", []string{outside, voters[1], voters[2]},
			[]MoveKind{MoveAddLearner, MovePromote, MoveTransferLeader, MoveRemoveReplica}},
		{"move a follower's replica", []string{voters[0], voters[1], outside},
			[]MoveKind{MoveAddLearner, MovePromote, MoveRemoveReplica}},
		{"transfer leadership", []string{voters[1], voters[0], voters[2]}, []MoveKind{MoveTransferLeader}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pinned := m.WithPin(0, tt.pin)
			got, st, res := convergePlan(t, pinned, allCaughtUp, DefaultPlanOptions(), newPlanChecker(t, pinned, DefaultPlanOptions()), true, 20)
			if !res.Done() {
				t.Fatalf("not converged: pending %v", res.Pending)
			}
			var kinds []MoveKind
			for _, mv := range st.log {
				if mv.Shard != 0 {
					t.Errorf("move of an unpinned shard: %v", mv)
				}
				kinds = append(kinds, mv.Kind)
			}
			if !slices.Equal(kinds, tt.kinds) {
				t.Errorf("moves %v; want kinds %v", st.log, tt.kinds)
			}
			if pinned.AtPin(0) {
				t.Errorf("AtPin before the move")
			}
			if !got.AtPin(0) {
				t.Errorf("shard 0 replicas %v; want the pin %v, all voters, %s first", got.Shards[0].Replicas, tt.pin, tt.pin[0])
			}
			if err := checkAtTarget(got, got.Target()); err != nil {
				t.Error(err)
			}
		})
	}

	// Draining a pinned node: the pin is ignored and the drain wins.
	pinned, _, _ := convergePlan(t, m.WithPin(0, []string{outside, voters[1], voters[2]}), allCaughtUp, PlanOptions{}, newPlanChecker(t, m, PlanOptions{}), false, 20)
	drained, _, res := convergePlan(t, withNodeState(pinned, outside, NodeDraining), allCaughtUp, PlanOptions{}, newPlanChecker(t, pinned, PlanOptions{}), false, 100)
	if !res.Done() || len(drained.ReplicasOn(outside)) != 0 {
		t.Errorf("drain of pinned node %s: done %v, %d replicas left", outside, res.Done(), len(drained.ReplicasOn(outside)))
	}
}
