package ring

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func planMap(t testing.TB, n int, shards, rf uint32) *Map {
	t.Helper()
	m, err := NewMap("cluster-1", activeNodes(nodeIDs(n)...), shards, rf)
	if err != nil {
		t.Fatalf("NewMap: %v", err)
	}
	return m
}

// withNodeState returns m's successor in which node id (added if new) has state.
func withNodeState(m *Map, id string, state NodeState) *Map {
	next := m.Clone()
	next.Epoch++
	i, ok := slices.BinarySearchFunc(next.Nodes, id, func(n Node, id string) int { return strings.Compare(n.ID, id) })
	if ok {
		next.Nodes[i].State = state
	} else {
		next.Nodes = slices.Insert(next.Nodes, i, Node{ID: id, State: state})
	}
	return next
}

func allCaughtUp(string) bool { return true }

// moveStats counts the moves a convergence took.
type moveStats struct {
	rounds int
	byKind map[MoveKind]int
	log    []Move // every move, in application order
}

// planChecker checks the invariants every map a plan produces must keep.
type planChecker struct {
	t        testing.TB
	seen     map[string]bool // every replica ID ever allocated
	maxMoves int             // MaxMovesInFlight to check, 0 = none
	maxNode  int             // MaxPerNode (receives) to check, 0 = none
}

func newPlanChecker(t testing.TB, m *Map, opts PlanOptions) *planChecker {
	c := &planChecker{t: t, seen: map[string]bool{}, maxMoves: opts.MaxMovesInFlight, maxNode: opts.MaxPerNode}
	for _, s := range m.Shards {
		for _, r := range s.Replicas {
			c.seen[r.ID] = true
		}
	}
	return c
}

// liveVoters counts a shard's voters and those on nodes that are not
// removed.
func liveVoters(m *Map, s Shard) (voters, live int) {
	for _, r := range s.Replicas {
		if r.Role != RoleVoter {
			continue
		}
		voters++
		if n, ok := m.Node(r.NodeID); ok && n.State != NodeRemoved {
			live++
		}
	}
	return voters, live
}

func (c *planChecker) step(prev, next *Map, mv Move, target [][]string) {
	t := c.t
	t.Helper()
	if err := next.Validate(); err != nil {
		t.Fatalf("%v: invalid map: %v", mv, err)
	}
	if next.Epoch != prev.Epoch+1 {
		t.Fatalf("%v: epoch %d after %d", mv, next.Epoch, prev.Epoch)
	}
	ps, ns := prev.Shards[mv.Shard], next.Shards[mv.Shard]
	pv, pl := liveVoters(prev, ps)
	nv, nl := liveVoters(next, ns)
	if pl >= quorum(pv) && nl < quorum(nv) {
		t.Fatalf("%v: shard %d loses quorum: %d of %d voters alive, was %d of %d", mv, mv.Shard, nl, nv, pl, pv)
	}
	if mv.Kind == MoveRemoveReplica && mv.Replica.Role == RoleVoter {
		if ps.Replicas[0].ID == mv.Replica.ID {
			t.Fatalf("%v: removes the preferred leader without moving the preference first", mv)
		}
		if nv < len(target[mv.Shard]) {
			t.Fatalf("%v: shard %d left with %d voters before a replacement, target %v", mv, mv.Shard, nv, target[mv.Shard])
		}
	}
	if mv.Kind == MovePromote && pv+1 > len(target[mv.Shard])+1 {
		t.Fatalf("%v: shard %d would have %d voters, target %d", mv, mv.Shard, pv+1, len(target[mv.Shard]))
	}
	for _, r := range ns.Replicas {
		if slices.ContainsFunc(ps.Replicas, func(o Replica) bool { return o.ID == r.ID }) {
			continue
		}
		if c.seen[r.ID] {
			t.Fatalf("%v: replica ID %s reused", mv, r.ID)
		}
		c.seen[r.ID] = true
	}
}

// caps checks the throttles on a map produced from a clean start.
func (c *planChecker) caps(m *Map, target [][]string) {
	t := c.t
	t.Helper()
	inFlight := 0
	receives := map[string]int{}
	for i, s := range m.Shards {
		voters, learners := 0, 0
		for _, r := range s.Replicas {
			if r.Role == RoleLearner {
				learners++
				receives[r.NodeID]++
			} else {
				voters++
			}
		}
		if learners > 0 || voters > len(target[i]) {
			inFlight++
		}
		if learners > 1 {
			t.Fatalf("shard %d has %d learners", i, learners)
		}
	}
	if c.maxMoves > 0 && inFlight > c.maxMoves {
		t.Fatalf("%d moves in flight, cap %d", inFlight, c.maxMoves)
	}
	for n, r := range receives {
		if c.maxNode > 0 && r > c.maxNode {
			t.Fatalf("node %s receives %d snapshots, cap %d", n, r, c.maxNode)
		}
	}
}

// converge plans and applies moves until Plan has none left or maxRounds
// pass, checking every intermediate map.
func convergePlan(t testing.TB, m *Map, caughtUp func(string) bool, opts PlanOptions, c *planChecker, checkCaps bool, maxRounds int) (*Map, moveStats, PlanResult) {
	t.Helper()
	st := moveStats{byKind: map[MoveKind]int{}}
	for {
		res := Plan(m, caughtUp, opts)
		if len(res.Moves) == 0 {
			return m, st, res
		}
		if st.rounds == maxRounds {
			t.Fatalf("no convergence after %d rounds; next moves %v, pending %v", maxRounds, res.Moves, res.Pending)
		}
		st.rounds++
		target := m.Target()
		shards := map[uint32]bool{}
		for _, mv := range res.Moves {
			if shards[mv.Shard] {
				t.Fatalf("two moves for shard %d in one plan: %v", mv.Shard, res.Moves)
			}
			shards[mv.Shard] = true
			next, err := m.Apply(mv)
			if err != nil {
				t.Fatalf("Apply(%v): %v", mv, err)
			}
			c.step(m, next, mv, target)
			if checkCaps {
				c.caps(next, target)
			}
			m = next
			st.byKind[mv.Kind]++
			st.log = append(st.log, mv)
		}
	}
}

// checkAtTarget reports the first shard of m that is not exactly at target.
func checkAtTarget(m *Map, target [][]string) error {
	for i, s := range m.Shards {
		var got []string
		for _, r := range s.Replicas {
			if r.Role != RoleVoter {
				return fmt.Errorf("shard %d: %s is a %v", i, r.ID, r.Role)
			}
			got = append(got, r.NodeID)
		}
		want := target[i]
		if len(got) == 0 || len(want) == 0 || got[0] != want[0] || len(got) != len(want) ||
			!reflect.DeepEqual(slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(want))) {
			return fmt.Errorf("shard %d: replicas on %v, target %v", i, got, want)
		}
	}
	return nil
}

// TestPlan_join grows 3 → 4 → 5 nodes and shrinks 5 → 4 by a drain,
// checking that each change converges to the target with the minimum number
// of replica additions, and ends balanced.
func TestPlan_join(t *testing.T) {
	m := planMap(t, 3, DefaultShards, DefaultReplicas)
	steps := []struct {
		name  string
		node  string
		state NodeState
	}{
		{"3→4 join", "node-4", NodeActive},
		{"4→5 join", "node-5", NodeActive},
		{"5→4 drain", "node-2", NodeDraining},
	}
	for _, step := range steps {
		// A joining node is not placed on.
		if step.state == NodeActive {
			m = withNodeState(m, step.node, NodeJoining)
			if res := Plan(m, allCaughtUp, PlanOptions{}); !res.Done() {
				t.Fatalf("%s: plan with %s joining = %v, want done", step.name, step.node, res)
			}
		} else if err := CanDrain(m, step.node); err != nil {
			t.Fatalf("%s: CanDrain: %v", step.name, err)
		}
		m = withNodeState(m, step.node, step.state)

		target := m.Target()
		minimum := MinimalMoves(m, target)
		var got *Map
		var st moveStats
		var res PlanResult
		got, st, res = convergePlan(t, m, allCaughtUp, PlanOptions{}, newPlanChecker(t, m, PlanOptions{}), false, 100)
		if !res.Done() {
			t.Fatalf("%s: stopped with pending %v", step.name, res.Pending)
		}
		if err := checkAtTarget(got, target); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		adds := st.byKind[MoveAddLearner]
		if adds != minimum {
			t.Errorf("%s: %d additions, minimum %d", step.name, adds, minimum)
		}
		if st.byKind[MovePromote] != adds || st.byKind[MoveRemoveReplica] != adds {
			t.Errorf("%s: %d adds, %d promotes, %d removes; want equal", step.name, adds, st.byKind[MovePromote], st.byKind[MoveRemoveReplica])
		}
		// The unavoidable share: replicas the target puts on the node that
		// joined (or takes off the drained node).
		share := len(m.ReplicasOn(step.node))
		if step.state == NodeActive {
			share = len(got.ReplicasOn(step.node))
		}
		b := Balance(got)
		t.Logf("%s: %d additions = minimum %d (ratio %.2f); node share %d (target churn %.2f×); %d leader transfers, %d rounds; replicas max/avg %.2f, leaders max %d (limit %d)",
			step.name, adds, minimum, float64(adds)/float64(minimum), share, float64(minimum)/float64(share),
			st.byKind[MoveTransferLeader], st.rounds, b.ReplicaRatio, b.MaxLeaders, b.LeaderLimit)
		if !b.Balanced {
			t.Errorf("%s: not balanced: %+v", step.name, b)
		}
		if step.state == NodeDraining {
			if refs := got.ReplicasOn(step.node); len(refs) != 0 {
				t.Errorf("%s: drained %s still holds %v", step.name, step.node, refs)
			}
		}
		m = got
	}
}

func TestCanDrain(t *testing.T) {
	tests := []struct {
		name  string
		nodes int
		rf    uint32
		edit  func(*Map) *Map
		drain string
		want  string // substring of the error; "" means allowed
	}{
		{"enough nodes", 4, 3, nil, "node-1", ""},
		{"would leave fewer than RF", 3, 3, nil, "node-1", "2 active nodes would remain, fewer than the replication factor 3"},
		{"other node draining", 4, 3, func(m *Map) *Map { return withNodeState(m, "node-2", NodeDraining) }, "node-1", "2 active nodes would remain"},
		{"rf 1", 2, 1, nil, "node-2", ""},
		{"last node", 1, 1, nil, "node-1", "0 active nodes would remain"},
		{"already draining", 3, 3, func(m *Map) *Map { return withNodeState(m, "node-1", NodeDraining) }, "node-1", ""},
		{"joining", 3, 3, func(m *Map) *Map { return withNodeState(m, "node-9", NodeJoining) }, "node-9", ""},
		{"removed", 4, 3, func(m *Map) *Map { return withNodeState(m, "node-1", NodeRemoved) }, "node-1", "already removed"},
		{"unknown", 3, 3, nil, "node-7", "not in the cluster map"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := planMap(t, tt.nodes, 8, tt.rf)
			if tt.edit != nil {
				m = tt.edit(m)
			}
			err := CanDrain(m, tt.drain)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("CanDrain(%s) = %v, want nil", tt.drain, err)
			case tt.want != "" && (!errors.Is(err, ErrCannotDrain) || !strings.Contains(fmt.Sprint(err), tt.want)):
				t.Errorf("CanDrain(%s) = %v, want ErrCannotDrain containing %q", tt.drain, err, tt.want)
			}
		})
	}
}

// TestPlan_deadNode replaces a removed node's replicas: each replacement is
// a caught-up voter before the dead replica goes, and no intermediate map
// loses quorum.
func TestPlan_deadNode(t *testing.T) {
	m := withNodeState(planMap(t, 5, DefaultShards, 3), "node-2", NodeRemoved)
	dead := map[uint32]string{}
	for _, ref := range m.ReplicasOn("node-2") {
		dead[ref.Shard] = ref.Replica.ID
	}
	got, st, res := convergePlan(t, m, allCaughtUp, PlanOptions{}, newPlanChecker(t, m, PlanOptions{}), false, 100)
	if !res.Done() {
		t.Fatalf("pending %v", res.Pending)
	}
	if err := checkAtTarget(got, m.Target()); err != nil {
		t.Fatal(err)
	}
	// Per shard: add, promote, then remove the dead replica.
	for shard, id := range dead {
		var kinds []MoveKind
		for _, mv := range st.log {
			if mv.Shard != shard {
				continue
			}
			if mv.Kind == MoveAddLearner && mv.Replaces != "node-2" {
				t.Errorf("shard %d: %v, want it to replace node-2", shard, mv)
			}
			if mv.Kind != MoveTransferLeader {
				kinds = append(kinds, mv.Kind)
			}
			if mv.Kind == MoveRemoveReplica && mv.Replica.ID == id {
				break
			}
		}
		if want := []MoveKind{MoveAddLearner, MovePromote, MoveRemoveReplica}; !reflect.DeepEqual(kinds, want) {
			t.Errorf("shard %d: moves up to the dead replica's removal %v, want %v", shard, kinds, want)
		}
	}
	if b := Balance(got); !b.Balanced {
		t.Errorf("not balanced: %+v", b)
	}
}

// TestPlan_deadNodeFewerThanRF: with fewer active nodes than RF the dead
// replicas are removed without replacement, never below quorum.
func TestPlan_deadNodeFewerThanRF(t *testing.T) {
	m := withNodeState(planMap(t, 3, 16, 3), "node-3", NodeRemoved)
	got, st, res := convergePlan(t, m, allCaughtUp, PlanOptions{}, newPlanChecker(t, m, PlanOptions{}), false, 100)
	if !res.Done() {
		t.Fatalf("pending %v", res.Pending)
	}
	if err := checkAtTarget(got, m.Target()); err != nil {
		t.Fatal(err)
	}
	if st.byKind[MoveAddLearner] != 0 || st.byKind[MoveRemoveReplica] != 16 {
		t.Errorf("moves %v, want 16 removals and no additions", st.byKind)
	}
}

// TestPlan_lostQuorum: a shard with a majority of its voters on removed
// nodes is reported and left alone; the others still converge.
func TestPlan_lostQuorum(t *testing.T) {
	m := planMap(t, 5, DefaultShards, 3)
	m = withNodeState(withNodeState(m, "node-1", NodeRemoved), "node-2", NodeRemoved)
	stuck := map[uint32]bool{}
	for _, s := range m.Shards {
		if v, l := liveVoters(m, s); l < quorum(v) {
			stuck[s.ID] = true
		}
	}
	if len(stuck) == 0 {
		t.Fatal("test setup: no shard lost quorum")
	}
	got, st, res := convergePlan(t, m, allCaughtUp, PlanOptions{}, newPlanChecker(t, m, PlanOptions{}), false, 100)
	for _, mv := range st.log {
		if stuck[mv.Shard] {
			t.Errorf("moved stuck shard: %v", mv)
		}
	}
	var pending []uint32
	for _, p := range res.Pending {
		if !strings.Contains(p.Reason, "quorum lost") {
			t.Errorf("pending %v, want only lost quorum", p)
		}
		pending = append(pending, p.Shard)
	}
	if want := slices.Sorted(func(yield func(uint32) bool) {
		for s := range stuck {
			yield(s)
		}
	}); !reflect.DeepEqual(pending, want) {
		t.Errorf("pending shards %v, want %v", pending, want)
	}
	target := m.Target()
	for i := range got.Shards {
		if !stuck[uint32(i)] {
			one := &Map{Shards: got.Shards[i : i+1]}
			if err := checkAtTarget(one, target[i:i+1]); err != nil {
				t.Errorf("shard %d: %v", i, err)
			}
		}
	}
}

// TestPlan_caughtUp: learners that have not caught up are not promoted and
// their shards get no second learner.
func TestPlan_caughtUp(t *testing.T) {
	m := withNodeState(planMap(t, 3, DefaultShards, 3), "node-4", NodeActive)
	never := func(string) bool { return false }
	m, st, res := convergePlan(t, m, never, PlanOptions{}, newPlanChecker(t, m, PlanOptions{}), false, 10)
	if st.rounds != 1 || st.byKind[MoveAddLearner] == 0 || st.byKind[MovePromote] != 0 || st.byKind[MoveRemoveReplica] != 0 {
		t.Fatalf("with nothing caught up: %d rounds, moves %v; want one round of additions (and leader transfers)", st.rounds, st.byKind)
	}
	if len(res.Pending) != st.byKind[MoveAddLearner] {
		t.Errorf("%d pending, want one per learner (%d)", len(res.Pending), st.byKind[MoveAddLearner])
	}
	for _, p := range res.Pending {
		if !strings.Contains(p.Reason, "catching up") {
			t.Errorf("pending %v, want catching up", p)
		}
	}
	// One learner caught up: exactly its promotion is planned.
	learner := m.ReplicasOn("node-4")[0].Replica.ID
	res = Plan(m, func(id string) bool { return id == learner }, PlanOptions{})
	if len(res.Moves) != 1 || res.Moves[0].Kind != MovePromote || res.Moves[0].Replica.ID != learner {
		t.Errorf("plan with %s caught up = %v, want its promotion", learner, res.Moves)
	}
}

// TestPlan_settled: a shard whose raft configuration has not caught up
// with the map gets no step (it waits, with a reason), the others move, and
// Settled is asked only about shards that would move.
func TestPlan_settled(t *testing.T) {
	m := withNodeState(planMap(t, 3, DefaultShards, 3), "node-4", NodeActive)
	always := func(string) bool { return true }
	all := Plan(m, always, PlanOptions{})
	if len(all.Moves) < 2 {
		t.Fatalf("join of a 4th node planned %d moves, want several", len(all.Moves))
	}
	held := all.Moves[0].Shard
	asked := map[uint32]bool{}
	res := Plan(m, always, PlanOptions{Settled: func(shard uint32) bool {
		asked[shard] = true
		return shard != held
	}})
	for _, mv := range res.Moves {
		if mv.Shard == held {
			t.Errorf("unsettled shard %d got move %v", held, mv)
		}
	}
	if len(res.Moves) != len(all.Moves)-1 {
		t.Errorf("%d moves with shard %d unsettled, want %d (all but its own)", len(res.Moves), held, len(all.Moves)-1)
	}
	found := false
	for _, p := range res.Pending {
		if p.Shard == held && strings.Contains(p.Reason, "waiting for raft") {
			found = true
		}
	}
	if !found {
		t.Errorf("pending %v: want shard %d waiting for raft", res.Pending, held)
	}
	for shard := range asked {
		moves := false
		for _, mv := range all.Moves {
			moves = moves || mv.Shard == shard
		}
		if !moves {
			t.Errorf("Settled asked about shard %d, which has nothing to do", shard)
		}
	}
}

// TestPlan_caps: MaxMovesInFlight and MaxPerNode bound every intermediate
// map, and the plan still converges with the minimum additions.
func TestPlan_caps(t *testing.T) {
	for _, opts := range []PlanOptions{
		{MaxMovesInFlight: 1},
		{MaxMovesInFlight: 3, MaxPerNode: 1},
		DefaultPlanOptions(),
		{MaxPerNode: 2},
	} {
		t.Run(fmt.Sprintf("%+v", opts), func(t *testing.T) {
			m := planMap(t, 4, DefaultShards, 3)
			m = withNodeState(withNodeState(m, "node-5", NodeActive), "node-6", NodeActive)
			minimum := MinimalMoves(m, m.Target())
			got, st, res := convergePlan(t, m, allCaughtUp, opts, newPlanChecker(t, m, opts), true, 1000)
			if !res.Done() {
				t.Fatalf("pending %v", res.Pending)
			}
			if err := checkAtTarget(got, m.Target()); err != nil {
				t.Fatal(err)
			}
			if st.byKind[MoveAddLearner] != minimum {
				t.Errorf("%d additions, minimum %d", st.byKind[MoveAddLearner], minimum)
			}
			t.Logf("%d additions in %d rounds", minimum, st.rounds)
		})
	}
}

// TestPlan_down: a node reported down gets nothing and its replicas count as
// unavailable.
func TestPlan_down(t *testing.T) {
	m := withNodeState(planMap(t, 3, DefaultShards, 3), "node-4", NodeActive)
	res := Plan(m, allCaughtUp, PlanOptions{Down: func(id string) bool { return id == "node-4" }})
	for _, mv := range res.Moves {
		if mv.Replica.NodeID == "node-4" {
			t.Errorf("move %v onto a down node", mv)
		}
	}
	down := 0
	for _, p := range res.Pending {
		if strings.Contains(p.Reason, "missing target nodes are down") {
			down++
		}
	}
	if want := MinimalMoves(m, m.Target()); down != want {
		t.Errorf("%d shards pending for the down node, want %d", down, want)
	}
	// With node-1 and node-2 down every shard (on nodes 1-3) has lost quorum.
	res = Plan(m, allCaughtUp, PlanOptions{Down: func(id string) bool { return id == "node-1" || id == "node-2" }})
	if len(res.Moves) != 0 || len(res.Pending) != DefaultShards {
		t.Errorf("with a majority down: moves %v, %d pending; want none and all", res.Moves, len(res.Pending))
	}
}

// TestPlan_rfAboveNodes: RF 5 on 2 nodes places 2 replicas; each join adds
// one more replica per shard until RF is reached.
func TestPlan_rfAboveNodes(t *testing.T) {
	m := planMap(t, 2, 8, 5)
	for n := 3; n <= 6; n++ {
		m = withNodeState(m, fmt.Sprintf("node-%d", n), NodeActive)
		target := m.Target()
		got, st, res := convergePlan(t, m, allCaughtUp, PlanOptions{}, newPlanChecker(t, m, PlanOptions{}), false, 100)
		if !res.Done() {
			t.Fatalf("%d nodes: pending %v", n, res.Pending)
		}
		if err := checkAtTarget(got, target); err != nil {
			t.Fatalf("%d nodes: %v", n, err)
		}
		if want := min(n, 5); len(got.Shards[0].Replicas) != want {
			t.Errorf("%d nodes: %d replicas, want %d", n, len(got.Shards[0].Replicas), want)
		}
		t.Logf("%d nodes: moves %v", n, st.byKind)
		m = got
	}
}

func TestPlan_deterministic(t *testing.T) {
	m := withNodeState(withNodeState(planMap(t, 5, DefaultShards, 3), "node-6", NodeActive), "node-2", NodeDraining)
	opts := PlanOptions{MaxMovesInFlight: 5, MaxPerNode: 2}
	want := Plan(m, allCaughtUp, opts)
	for range 3 {
		if got := Plan(m.Clone(), allCaughtUp, opts); !reflect.DeepEqual(got, want) {
			t.Fatalf("Plan differs between calls:\n got %v\nwant %v", got, want)
		}
	}
}

func TestMap_Target(t *testing.T) {
	for n := 1; n <= 9; n++ {
		for _, shards := range []uint32{1, 8, 32, 64, 256} {
			for rf := uint32(1); rf <= 5; rf++ {
				m := planMap(t, n, shards, rf)
				got, plain := m.Target(), Targets(m.Nodes, shards, rf)
				leaders := map[string]int{}
				for s := range got {
					if !reflect.DeepEqual(slices.Sorted(slices.Values(got[s])), slices.Sorted(slices.Values(plain[s]))) {
						t.Fatalf("n=%d shards=%d rf=%d shard %d: Target %v, Targets %v: different sets", n, shards, rf, s, got[s], plain[s])
					}
					leaders[got[s][0]]++
				}
				limit := (int(shards)+n-1)/n + 1
				for id, l := range leaders {
					if l > limit && min(int(rf), n) > 1 {
						t.Errorf("n=%d shards=%d rf=%d: %s preferred leader of %d shards, limit %d", n, shards, rf, id, l, limit)
					}
				}
				if again := m.Target(); !reflect.DeepEqual(again, got) {
					t.Fatalf("n=%d shards=%d rf=%d: Target not deterministic", n, shards, rf)
				}
			}
		}
	}
}

func TestMap_Apply(t *testing.T) {
	m := planMap(t, 4, 8, 3)
	s0 := m.Shards[0]
	var outside string // a node without a replica of shard 0
	for _, id := range nodeIDs(4) {
		if !slices.ContainsFunc(s0.Replicas, func(r Replica) bool { return r.NodeID == id }) {
			outside = id
		}
	}
	added, err := m.Apply(Move{Kind: MoveAddLearner, Shard: 0, Replica: Replica{NodeID: outside}})
	if err != nil {
		t.Fatalf("add learner: %v", err)
	}
	learner := added.Shards[0].Replicas[3]
	if want := (Replica{ID: ReplicaID(0, outside, m.NextReplicaSeq), NodeID: outside, Role: RoleLearner}); learner != want {
		t.Errorf("added %+v, want %+v", learner, want)
	}
	if added.NextReplicaSeq != m.NextReplicaSeq+1 || added.Epoch != m.Epoch+1 || len(m.Shards[0].Replicas) != 3 {
		t.Errorf("add: seq %d epoch %d, original has %d replicas; want seq+1, epoch+1, original unchanged",
			added.NextReplicaSeq, added.Epoch, len(m.Shards[0].Replicas))
	}
	promoted, err := added.Apply(Move{Kind: MovePromote, Shard: 0, Replica: learner})
	if err != nil || promoted.Shards[0].Replicas[3].Role != RoleVoter {
		t.Fatalf("promote: %v, %+v", err, promoted)
	}
	moved, err := promoted.Apply(Move{Kind: MoveTransferLeader, Shard: 0, Replica: promoted.Shards[0].Replicas[2]})
	if err != nil {
		t.Fatalf("transfer: %v", err)
	}
	if got, want := moved.Shards[0].Replicas, []Replica{
		promoted.Shards[0].Replicas[2], promoted.Shards[0].Replicas[0], promoted.Shards[0].Replicas[1], promoted.Shards[0].Replicas[3],
	}; !reflect.DeepEqual(got, want) {
		t.Errorf("transfer: replicas %v, want %v", got, want)
	}
	removed, err := moved.Apply(Move{Kind: MoveRemoveReplica, Shard: 0, Replica: s0.Replicas[0]})
	if err != nil || len(removed.Shards[0].Replicas) != 3 || removed.Epoch != m.Epoch+4 {
		t.Fatalf("remove: %v, %+v", err, removed)
	}

	dead := withNodeState(m, s0.Replicas[1].NodeID, NodeRemoved)
	dead = withNodeState(dead, s0.Replicas[2].NodeID, NodeRemoved)
	twoVoters, _ := m.Apply(Move{Kind: MoveRemoveReplica, Shard: 0, Replica: s0.Replicas[2]})
	oneVoter, _ := twoVoters.Apply(Move{Kind: MoveRemoveReplica, Shard: 0, Replica: s0.Replicas[1]})
	bad := []struct {
		name string
		m    *Map
		mv   Move
		want string
	}{
		{"no such shard", m, Move{Kind: MovePromote, Shard: 8, Replica: s0.Replicas[0]}, "8 shards"},
		{"no such replica", m, Move{Kind: MovePromote, Shard: 0, Replica: Replica{ID: "0/node-1/999"}}, "no replica"},
		{"promote voter", m, Move{Kind: MovePromote, Shard: 0, Replica: s0.Replicas[1]}, "not a learner"},
		{"add twice", m, Move{Kind: MoveAddLearner, Shard: 0, Replica: Replica{NodeID: s0.Replicas[1].NodeID}}, "already holds"},
		{"add on unknown", m, Move{Kind: MoveAddLearner, Shard: 0, Replica: Replica{NodeID: "node-9"}}, "not an active node"},
		{"add on draining", withNodeState(m, outside, NodeDraining), Move{Kind: MoveAddLearner, Shard: 0, Replica: Replica{NodeID: outside}}, "not an active node"},
		{"transfer to learner", added, Move{Kind: MoveTransferLeader, Shard: 0, Replica: learner}, "not a voter"},
		{"transfer to preferred", m, Move{Kind: MoveTransferLeader, Shard: 0, Replica: s0.Replicas[0]}, "already the preferred"},
		{"remove last voter", oneVoter, Move{Kind: MoveRemoveReplica, Shard: 0, Replica: s0.Replicas[0]}, "last voter"},
		{"remove below quorum", dead, Move{Kind: MoveRemoveReplica, Shard: 0, Replica: s0.Replicas[0]}, "below quorum"},
		{"unknown kind", m, Move{Kind: 0, Shard: 0, Replica: s0.Replicas[0]}, "unknown move kind"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.m.Apply(tt.mv)
			if !errors.Is(err, ErrBadMove) || !strings.Contains(fmt.Sprint(err), tt.want) {
				t.Errorf("Apply(%v) = %v, want ErrBadMove containing %q", tt.mv, err, tt.want)
			}
		})
	}
}

func TestMinimalMoves(t *testing.T) {
	m := planMap(t, 3, 8, 3)
	if got := MinimalMoves(m, m.Target()); got != 0 {
		t.Errorf("MinimalMoves(m, own target) = %d, want 0", got)
	}
	target := make([][]string, 8)
	for i := range target {
		target[i] = []string{"node-1", "node-2", "node-9"}
	}
	if got := MinimalMoves(m, target); got != 8 {
		t.Errorf("MinimalMoves with one new node per shard = %d, want 8", got)
	}
}

func TestBalance(t *testing.T) {
	m := planMap(t, 3, 9, 3)
	b := Balance(m)
	if !b.Balanced || b.AvgReplicas != 9 || b.MaxReplicas != 9 || b.ReplicaRatio != 1 || b.LeaderLimit != 4 || b.Misplaced != 0 {
		t.Errorf("Balance(3 nodes, 9 shards, RF 3) = %+v", b)
	}
	m = withNodeState(withNodeState(m, "node-4", NodeActive), "node-1", NodeDraining)
	b = Balance(m)
	if b.Balanced || b.Misplaced != 9 || b.ActiveNodes != 3 || len(b.Nodes) != 4 {
		t.Errorf("Balance with node-1 draining, node-4 empty = %+v; want unbalanced, 9 misplaced", b)
	}
}

func TestMove_String(t *testing.T) {
	tests := []struct {
		mv   Move
		want string
	}{
		{Move{Kind: MoveAddLearner, Shard: 3, Replica: Replica{NodeID: "n4"}, Replaces: "n2"}, "shard 3: add learner on n4 to replace n2"},
		{Move{Kind: MoveAddLearner, Shard: 3, Replica: Replica{NodeID: "n4"}}, "shard 3: add learner on n4"},
		{Move{Kind: MovePromote, Shard: 3, Replica: Replica{ID: "3/n4/9"}}, "shard 3: promote 3/n4/9 to voter"},
		{Move{Kind: MoveTransferLeader, Shard: 3, Replica: Replica{ID: "3/n1/1"}}, "shard 3: transfer leadership to 3/n1/1"},
		{Move{Kind: MoveRemoveReplica, Shard: 3, Replica: Replica{ID: "3/n2/2"}}, "shard 3: remove voter 3/n2/2"},
		{Move{Kind: 9, Shard: 3}, "shard 3: MoveKind(9) "},
	}
	for _, tt := range tests {
		if got := tt.mv.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
	}
}

// FuzzPlan drives random membership changes — joins, activations, drains,
// deaths on up to 9 nodes, RF 1–5, 1–64 shards — interleaved with partial
// convergence under random catch-up answers, suspected nodes and caps. Every map produced
// must be valid, keep quorum where it had it, never reuse a replica ID and
// respect the caps; at the end, with everything caught up, the plan must
// converge within a bounded number of rounds to the target, except shards
// that lost quorum to deaths.
func FuzzPlan(f *testing.F) {
	f.Add(uint64(1), uint8(3), uint8(3), uint8(32), uint8(0), []byte{0, 1, 4, 4, 4})
	f.Add(uint64(2), uint8(5), uint8(3), uint8(32), uint8(2), []byte{3, 9, 9, 0, 1, 2, 14, 19})
	f.Add(uint64(3), uint8(2), uint8(5), uint8(7), uint8(1), []byte{0, 0, 1, 1, 4, 3, 4})
	f.Add(uint64(4), uint8(4), uint8(1), uint8(64), uint8(3), []byte{2, 7, 12, 0, 5, 1, 39})
	f.Fuzz(func(t *testing.T, seed uint64, n0, rf, shards, limit uint8, ops []byte) {
		rng := rand.New(rand.NewPCG(seed, 0))
		nodes := 1 + int(n0)%4
		m := planMap(t, nodes, 1+uint32(shards)%64, 1+uint32(rf)%5)
		opts := PlanOptions{MaxMovesInFlight: int(limit) % 4, MaxPerNode: int(limit/4) % 3}
		c := newPlanChecker(t, m, opts)
		pick := func(b byte, states ...NodeState) (string, bool) {
			var ids []string
			for _, n := range m.Nodes {
				if slices.Contains(states, n.State) {
					ids = append(ids, n.ID)
				}
			}
			if len(ids) == 0 {
				return "", false
			}
			return ids[int(b)%len(ids)], true
		}
		if len(ops) > 32 {
			ops = ops[:32]
		}
		for _, op := range ops {
			switch op % 5 {
			case 0: // a node joins
				if nodes < 9 {
					nodes++
					m = withNodeState(m, fmt.Sprintf("node-%d", nodes), NodeJoining)
				}
			case 1: // a joining node becomes active
				if id, ok := pick(op/5, NodeJoining); ok {
					m = withNodeState(m, id, NodeActive)
				}
			case 2: // drain, if allowed
				if id, ok := pick(op/5, NodeActive); ok && CanDrain(m, id) == nil {
					m = withNodeState(m, id, NodeDraining)
				}
			case 3: // a node dies (is removed)
				if id, ok := pick(op/5, NodeJoining, NodeActive, NodeDraining); ok {
					m = withNodeState(m, id, NodeRemoved)
				}
			case 4: // some planning rounds, learners catching up at random
				for range 1 + int(op/5)%6 {
					// Sometimes gossip suspects a node.
					round := opts
					if down := fmt.Sprintf("node-%d", 1+rng.IntN(4*nodes)); rng.IntN(4) == 0 {
						round.Down = func(id string) bool { return id == down }
					}
					res := Plan(m, func(string) bool { return rng.IntN(2) == 0 }, round)
					target := m.Target()
					for _, mv := range res.Moves {
						next, err := m.Apply(mv)
						if err != nil {
							t.Fatalf("Apply(%v): %v", mv, err)
						}
						c.step(m, next, mv, target)
						m = next
					}
				}
			}
		}
		target := m.Target()
		bound := 10 + 4*(MinimalMoves(m, target)+len(m.Shards))
		got, _, res := convergePlan(t, m, allCaughtUp, opts, c, false, bound)
		for _, p := range res.Pending {
			if !strings.Contains(p.Reason, "quorum lost") && !strings.Contains(p.Reason, "no active node") {
				t.Fatalf("stopped with shard %d pending: %s", p.Shard, p.Reason)
			}
		}
		for i, s := range got.Shards {
			if v, l := liveVoters(got, s); l < quorum(v) || len(target[i]) == 0 {
				continue
			}
			if err := checkAtTarget(&Map{Shards: got.Shards[i : i+1]}, target[i:i+1]); err != nil {
				t.Fatalf("not converged: %v", err)
			}
		}
	})
}

// BenchmarkPlan plans a join of a seventh node on 32 shards.
func BenchmarkPlan(b *testing.B) {
	m := withNodeState(planMap(b, 6, DefaultShards, 3), "node-7", NodeActive)
	opts := DefaultPlanOptions()
	b.ReportAllocs()
	for b.Loop() {
		Plan(m, allCaughtUp, opts)
	}
}

// BenchmarkPlan_converged plans on 7 nodes at their target: the steady state
// the meta leader re-checks.
func BenchmarkPlan_converged(b *testing.B) {
	m := planMap(b, 7, DefaultShards, 3)
	b.ReportAllocs()
	for b.Loop() {
		Plan(m, allCaughtUp, PlanOptions{})
	}
}
