package ring

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"
)

// The placement planner: it turns "current placement vs target" into the
// fewest single-replica, learner-first moves, one raft configuration change
// per move, never planning a shard below quorum.

var (
	// ErrBadMove is wrapped by every error [Map.Apply] returns for a move
	// that does not apply to the map, typically because the map changed
	// since the move was planned. Plan again from the newer map.
	ErrBadMove = errors.New("ring: move does not apply to the cluster map")

	// ErrCannotDrain is wrapped by the error [CanDrain] returns when a node
	// must not be drained.
	ErrCannotDrain = errors.New("ring: cannot drain node")
)

// MoveKind is the kind of a [Move].
type MoveKind uint8

// Move kinds, in the order a replacement goes through them: add the new
// replica as a learner, promote it once it has caught up, move leadership
// off the replica that leaves, remove that replica.
const (
	// MoveAddLearner adds a replica on Move.Replica.NodeID as a raft
	// non-voter (AddNonvoter). [Map.Apply] allocates its ID.
	MoveAddLearner MoveKind = iota + 1
	// MovePromote makes a caught-up learner a voter (AddVoter).
	MovePromote
	// MoveTransferLeader makes a voter the shard's preferred leader
	// (Replicas[0]); the executor then transfers raft leadership to it
	// (LeadershipTransferToServer). The planner emits it before removing
	// the preferred leader and to balance leadership.
	MoveTransferLeader
	// MoveRemoveReplica removes a replica (RemoveServer). The planner
	// never removes the preferred leader: it moves the preference first.
	// The executor still checks the actual leader and transfers leadership
	// away from a replica it is about to remove.
	MoveRemoveReplica
)

// String returns the kind's lower-case name.
func (k MoveKind) String() string {
	switch k {
	case MoveAddLearner:
		return "add-learner"
	case MovePromote:
		return "promote"
	case MoveTransferLeader:
		return "transfer-leader"
	case MoveRemoveReplica:
		return "remove-replica"
	}
	return "MoveKind(" + strconv.Itoa(int(k)) + ")"
}

// Move is one single-replica change of one shard: one raft configuration
// change (or, for MoveTransferLeader, one leadership transfer) and the map
// the meta group commits for it ([Map.Apply]).
type Move struct {
	Kind  MoveKind
	Shard uint32
	// Replica is the replica added, promoted, made preferred leader or
	// removed. For MoveAddLearner only NodeID is set; Apply allocates the
	// ID.
	Replica Replica
	// Replaces is, for MoveAddLearner, the node whose replica the new one
	// is to replace once it is a voter; "" when the shard is short of
	// replicas. Informational: the removal is planned on its own.
	Replaces string
}

// String describes the move for logs and operators.
func (mv Move) String() string {
	switch mv.Kind {
	case MoveAddLearner:
		s := fmt.Sprintf("shard %d: add learner on %s", mv.Shard, mv.Replica.NodeID)
		if mv.Replaces != "" {
			s += " to replace " + mv.Replaces
		}
		return s
	case MovePromote:
		return fmt.Sprintf("shard %d: promote %s to voter", mv.Shard, mv.Replica.ID)
	case MoveTransferLeader:
		return fmt.Sprintf("shard %d: transfer leadership to %s", mv.Shard, mv.Replica.ID)
	case MoveRemoveReplica:
		return fmt.Sprintf("shard %d: remove %s %s", mv.Shard, mv.Replica.Role, mv.Replica.ID)
	}
	return fmt.Sprintf("shard %d: %v %s", mv.Shard, mv.Kind, mv.Replica.ID)
}

// PlanOptions throttle and inform [Plan]. The zero value means no limits
// and no node known to be down.
type PlanOptions struct {
	// MaxMovesInFlight caps the shards with a move in progress (a learner,
	// or more voters than the target) across the cluster: Plan starts a new
	// move (MoveAddLearner) only below it. Moves that continue or finish a
	// move in progress are never held back. 0 means no cap.
	MaxMovesInFlight int
	// MaxPerNode caps, per node, the learners catching up on it (snapshot
	// receives) and the moves in progress whose preferred leader is on it
	// (snapshot sends, approximated by the preferred leader since ring does
	// not know the actual one). 0 means no cap.
	MaxPerNode int
	// Down reports nodes the caller believes are down (gossip suspects not
	// yet removed). Plan counts their replicas as unavailable for quorum and
	// adds, promotes or prefers nothing on them. Removed nodes are always
	// down. nil means none. Called synchronously; must not block.
	Down func(nodeID string) bool
	// Settled reports whether a shard's raft configuration has caught up
	// with the map (the same voters and learners). Plan takes no step on a
	// shard that is not settled, so the map runs at most one step ahead of
	// raft: a removal is never planned on the strength of a promotion raft
	// has not made yet. Asked only about shards that would move. nil means
	// every shard is settled.
	Settled func(shard uint32) bool
}

// DefaultPlanOptions returns the throttles a production meta leader should
// start from: 4 moves in flight, 2 snapshots per node.
func DefaultPlanOptions() PlanOptions {
	return PlanOptions{MaxMovesInFlight: 4, MaxPerNode: 2}
}

// Pending is a shard that differs from its target but gets no move in this
// plan, and why.
type Pending struct {
	Shard  uint32
	Reason string
}

// PlanResult is what [Plan] returns.
type PlanResult struct {
	// Moves to execute now, at most one per shard, so they commute: apply
	// them to the map in any order.
	Moves []Move
	// Pending shards, by shard ID: waiting for a learner to catch up, for
	// room under a cap, or stuck (quorum lost, no active node).
	Pending []Pending
}

// Done reports whether the map has converged: every shard holds exactly its
// target replicas, all voters, with the target's preferred leader first.
func (r PlanResult) Done() bool { return len(r.Moves) == 0 && len(r.Pending) == 0 }

// Target returns the placement [Plan] converges to: for each shard, the
// node IDs of [Targets] over m's active nodes, reordered so that the first
// is the shard's preferred leader. Preferred leaders are balanced to at most
// ⌈ShardCount/active nodes⌉ per node where the replica sets allow it (they
// always do with two or more replicas per shard), moving the preference away
// from consistent's partition owner as little as possible. Then every
// shard with a valid pin ([Map.Pins]) gets its pin instead, in the pin's
// order, so an operator's choice of replicas and leader stands even where it
// unbalances leaders. It is a pure function of the active node set,
// ShardCount, RF and the pins.
func (m *Map) Target() [][]string {
	t := Targets(m.Nodes, m.ShardCount, m.RF)
	ids := activeIDs(m.Nodes)
	if len(ids) > 0 {
		limit := (len(t) + len(ids) - 1) / len(ids)
		balanceLeaders(t, ids, limit+1) // the bound first
		balanceLeaders(t, ids, limit)   // then as even as the sets allow
	}
	m.applyPins(t)
	return t
}

// balanceLeaders moves preferred leaders (t[s][0]) within each shard's set
// until no node leads more than limit shards, or no further move helps. It
// shifts leadership along augmenting paths (u leads s, v is in s's set: let
// v lead s instead), so a node only loses a shard when another node with
// room gains one. Deterministic: nodes and shards are visited in order.
func balanceLeaders(t [][]string, ids []string, limit int) {
	count := make(map[string]int, len(ids))
	for _, set := range t {
		if len(set) > 0 {
			count[set[0]]++
		}
	}
	type edge struct {
		from  string
		shard int
	}
	stuck := make(map[string]bool)
	for {
		// The most loaded node above the limit that may still shed a shard.
		over := ""
		for _, id := range ids {
			if count[id] > limit && !stuck[id] && (over == "" || count[id] > count[over]) {
				over = id
			}
		}
		if over == "" {
			return
		}
		prev := map[string]edge{}
		seen := map[string]bool{over: true}
		queue := []string{over}
		found := ""
	search:
		for len(queue) > 0 {
			u := queue[0]
			queue = queue[1:]
			for s, set := range t {
				if len(set) == 0 || set[0] != u {
					continue
				}
				for _, v := range set[1:] {
					if seen[v] {
						continue
					}
					seen[v] = true
					prev[v] = edge{u, s}
					if count[v] < limit {
						found = v
						break search
					}
					queue = append(queue, v)
				}
			}
		}
		if found == "" {
			stuck[over] = true
			continue
		}
		for v := found; v != over; {
			e := prev[v]
			preferFirst(t[e.shard], v)
			v = e.from
		}
		count[over]--
		count[found]++
		clear(stuck)
	}
}

// preferFirst moves id to the front of set, keeping the others' order.
func preferFirst(set []string, id string) {
	i := slices.Index(set, id)
	if i > 0 {
		copy(set[1:i+1], set[:i])
		set[0] = id
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// quorum is the number of votes a raft group of n voters needs.
func quorum(n int) int { return n/2 + 1 }

// Plan returns the next moves that bring m towards [Map.Target]. It is pure
// and deterministic: the same map, caught-up answers and options give the
// same result.
//
// Per shard it plans at most one move, in this order of precedence:
//
//  1. A shard whose live voters are below a quorum of its voters is stuck:
//     no configuration change can commit. It is reported, never moved.
//  2. A learner on a node outside the target is removed.
//  3. With more voters than the target, the best voter outside the target
//     is removed: replicas on removed or down nodes first, then draining,
//     then the most loaded node. The preferred leader is never removed: the
//     preference moves to a staying voter first (MoveTransferLeader). A
//     removal that would leave live voters below a quorum of the remaining
//     voters is not planned.
//  4. A learner on a target node is promoted once caughtUp reports its
//     replica ID caught up; until then the shard waits: never two learners
//     at once.
//  5. With a target node missing, a learner is added there — a new move,
//     subject to opts' caps. Shards with a replica on a removed or down node
//     go first, then under-replicated shards, then drains, then rebalancing.
//  6. With the replica set equal to the target, the target's preferred
//     leader is made Replicas[0].
//
// So every replacement is added, caught up and promoted before the replica
// it replaces is removed; a shard never has more than target+1 voters; and
// the number of MoveAddLearner moves to converge equals [MinimalMoves] of
// the map and its target, as long as the target does not change meanwhile.
// A shard only shrinks without replacement when its target shrinks (fewer
// active nodes than RF); [CanDrain] refuses drains that would do that.
//
// caughtUp reports whether a learner has caught up with its leader (ring
// cannot know); nil means never. It is called synchronously and must not
// block.
func Plan(m *Map, caughtUp func(replicaID string) bool, opts PlanOptions) PlanResult {
	p := newPlanner(m, caughtUp, opts)
	var res PlanResult
	var adds []addCandidate
	for i := range m.Shards {
		mv, add, reason := p.shard(i)
		if (mv != nil || add != nil) && opts.Settled != nil && !opts.Settled(uint32(i)) {
			mv, add, reason = nil, nil, "waiting for raft to apply the previous step of its move"
		}
		switch {
		case mv != nil:
			res.Moves = append(res.Moves, *mv)
		case add != nil:
			adds = append(adds, *add)
		case reason != "":
			res.Pending = append(res.Pending, Pending{Shard: uint32(i), Reason: reason})
		}
	}
	slices.SortStableFunc(adds, func(a, b addCandidate) int { return cmp.Compare(a.priority, b.priority) })
	for _, a := range adds {
		if mv, reason := p.admit(a); mv != nil {
			res.Moves = append(res.Moves, *mv)
		} else {
			res.Pending = append(res.Pending, Pending{Shard: a.shard, Reason: reason})
		}
	}
	slices.SortStableFunc(res.Pending, func(a, b Pending) int { return cmp.Compare(a.Shard, b.Shard) })
	return res
}

type planner struct {
	m        *Map
	target   [][]string
	caughtUp func(string) bool
	opts     PlanOptions
	state    map[string]NodeState
	load     map[string]int // replicas per node
	receives map[string]int // learners per node
	sends    map[string]int // moves in progress per (live) preferred leader
	inFlight int            // shards with a move in progress
}

// addCandidate is a shard that needs a new learner, waiting for admission
// under the caps.
type addCandidate struct {
	shard    uint32
	priority int
	nodes    []string // missing live target nodes, in target order
	replaces string
}

func newPlanner(m *Map, caughtUp func(string) bool, opts PlanOptions) *planner {
	p := &planner{
		m:        m,
		target:   m.Target(),
		caughtUp: caughtUp,
		opts:     opts,
		state:    make(map[string]NodeState, len(m.Nodes)),
		load:     make(map[string]int, len(m.Nodes)),
		receives: make(map[string]int),
		sends:    make(map[string]int),
	}
	if p.caughtUp == nil {
		p.caughtUp = func(string) bool { return false }
	}
	for _, n := range m.Nodes {
		p.state[n.ID] = n.State
	}
	for i, s := range m.Shards {
		voters, live, learners := 0, 0, 0
		for _, r := range s.Replicas {
			p.load[r.NodeID]++
			switch {
			case r.Role == RoleLearner:
				learners++
			case p.alive(r.NodeID):
				live++
				voters++
			default:
				voters++
			}
		}
		// A shard that lost quorum moves nothing: it holds no place under
		// the caps.
		if live < quorum(voters) {
			continue
		}
		for _, r := range s.Replicas {
			if r.Role == RoleLearner {
				p.receives[r.NodeID]++
			}
		}
		if learners > 0 || voters > len(p.target[i]) {
			p.inFlight++
			if len(s.Replicas) > 0 && p.alive(s.Replicas[0].NodeID) {
				p.sends[s.Replicas[0].NodeID]++
			}
		}
	}
	return p
}

// alive reports whether a node's replicas can vote: it is in the map, not
// removed and not reported down.
func (p *planner) alive(id string) bool {
	st, ok := p.state[id]
	return ok && st != NodeRemoved && st != NodeDown && (p.opts.Down == nil || !p.opts.Down(id))
}

// shard decides shard i's next step: a move to emit now, a learner to add
// (subject to the caps), or a reason it waits; all zero when it is done.
func (p *planner) shard(i int) (*Move, *addCandidate, string) {
	s := p.m.Shards[i]
	target := p.target[i]
	id := uint32(i)
	if len(target) == 0 {
		return nil, nil, "no active node to place replicas on"
	}
	inTarget := func(node string) bool { return slices.Contains(target, node) }

	var voters []Replica
	var learners []Replica
	live := 0
	for _, r := range s.Replicas {
		if r.Role == RoleLearner {
			learners = append(learners, r)
			continue
		}
		voters = append(voters, r)
		if p.alive(r.NodeID) {
			live++
		}
	}
	if live < quorum(len(voters)) {
		return nil, nil, fmt.Sprintf("quorum lost: %d of %d voters alive, %d needed; the shard needs recovery", live, len(voters), quorum(len(voters)))
	}

	// 2. Learners outside the target (it changed) are dropped.
	for _, l := range learners {
		if !inTarget(l.NodeID) {
			return &Move{Kind: MoveRemoveReplica, Shard: id, Replica: l}, nil, ""
		}
	}

	// 3. Too many voters: remove the best one outside the target.
	var excess []Replica
	for _, r := range voters {
		if !inTarget(r.NodeID) {
			excess = append(excess, r)
		}
	}
	slices.SortStableFunc(excess, func(a, b Replica) int {
		if c := cmp.Compare(p.removalRank(a.NodeID), p.removalRank(b.NodeID)); c != 0 {
			return c
		}
		// Within a rank, spare the preferred leader: removing another
		// saves a leadership transfer.
		if c := cmp.Compare(b2i(a.ID == s.Replicas[0].ID), b2i(b.ID == s.Replicas[0].ID)); c != 0 {
			return c
		}
		if c := cmp.Compare(p.load[b.NodeID], p.load[a.NodeID]); c != 0 {
			return c
		}
		return cmp.Compare(a.NodeID, b.NodeID)
	})
	if len(voters) > len(target) {
		for _, x := range excess {
			after := live
			if p.alive(x.NodeID) {
				after--
			}
			if len(voters) < 2 || after < quorum(len(voters)-1) {
				continue
			}
			if s.Replicas[0].ID == x.ID {
				if to, ok := p.newPreferred(s, target, x); ok {
					return &Move{Kind: MoveTransferLeader, Shard: id, Replica: to}, nil, ""
				}
				continue
			}
			return &Move{Kind: MoveRemoveReplica, Shard: id, Replica: x}, nil, ""
		}
		return nil, nil, fmt.Sprintf("no voter can be removed without losing quorum (%d of %d alive)", live, len(voters))
	}

	// 4. The learner in the target is promoted once caught up; until then
	// the shard waits. (After step 3, so that a target that shrank
	// meanwhile never takes the shard beyond target+1 voters.)
	if len(learners) > 0 {
		l := learners[0]
		if p.alive(l.NodeID) && p.caughtUp(l.ID) {
			return &Move{Kind: MovePromote, Shard: id, Replica: l}, nil, ""
		}
		return nil, nil, "learner " + l.ID + " catching up"
	}

	// 5. A target node is missing: add a learner there.
	has := func(node string) bool {
		return slices.ContainsFunc(voters, func(r Replica) bool { return r.NodeID == node })
	}
	var missing []string
	for _, n := range target {
		if !has(n) {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		a := addCandidate{shard: id, priority: 3}
		for _, n := range missing {
			if p.alive(n) {
				a.nodes = append(a.nodes, n)
			}
		}
		if len(a.nodes) == 0 {
			return nil, nil, "missing target nodes are down"
		}
		if len(excess) > 0 {
			a.replaces = excess[0].NodeID
		}
		switch {
		case slices.ContainsFunc(voters, func(r Replica) bool { return !p.alive(r.NodeID) }):
			a.priority = 0
		case len(voters) < len(target):
			a.priority = 1
		case len(excess) > 0 && p.state[excess[0].NodeID] == NodeDraining:
			a.priority = 2
		}
		return nil, &a, ""
	}

	// 6. Replica set is the target: prefer the target's leader.
	if s.Replicas[0].NodeID != target[0] {
		if !p.alive(target[0]) {
			return nil, nil, "preferred leader " + target[0] + " is down"
		}
		for _, r := range voters {
			if r.NodeID == target[0] {
				return &Move{Kind: MoveTransferLeader, Shard: id, Replica: r}, nil, ""
			}
		}
	}
	return nil, nil, ""
}

// removalRank orders the nodes whose replicas leave a shard: dead first,
// then draining, then the rest.
func (p *planner) removalRank(node string) int {
	switch {
	case !p.alive(node):
		return 0
	case p.state[node] == NodeDraining:
		return 1
	case p.state[node] == NodeJoining:
		return 2
	}
	return 3
}

// newPreferred picks the voter to take over the preference from leaving:
// the target's preferred leader, else the first live target voter, else any
// other live voter.
func (p *planner) newPreferred(s Shard, target []string, leaving Replica) (Replica, bool) {
	candidates := func(yield func(Replica) bool) {
		for _, n := range target {
			for _, r := range s.Replicas {
				if r.NodeID == n && !yield(r) {
					return
				}
			}
		}
		for _, r := range s.Replicas {
			if !yield(r) {
				return
			}
		}
	}
	for r := range candidates {
		if r.ID != leaving.ID && r.Role == RoleVoter && p.alive(r.NodeID) {
			return r, true
		}
	}
	return Replica{}, false
}

// admit turns an add candidate into a move if the caps allow it.
func (p *planner) admit(a addCandidate) (*Move, string) {
	if c := p.opts.MaxMovesInFlight; c > 0 && p.inFlight >= c {
		return nil, fmt.Sprintf("waiting: %d moves in flight, at most %d", p.inFlight, c)
	}
	source := ""
	if rs := p.m.Shards[a.shard].Replicas; p.alive(rs[0].NodeID) {
		source = rs[0].NodeID
	}
	c := p.opts.MaxPerNode
	if c > 0 && source != "" && p.sends[source] >= c {
		return nil, fmt.Sprintf("waiting: %s sends %d snapshots, at most %d", source, p.sends[source], c)
	}
	for _, n := range a.nodes {
		if c > 0 && p.receives[n] >= c {
			continue
		}
		p.inFlight++
		p.receives[n]++
		if source != "" {
			p.sends[source]++
		}
		return &Move{Kind: MoveAddLearner, Shard: a.shard, Replica: Replica{NodeID: n, Role: RoleLearner}, Replaces: a.replaces}, ""
	}
	return nil, fmt.Sprintf("waiting: %v receive %d snapshots each, at most %d", a.nodes, c, c)
}

// Apply returns the map that results from executing mv on m: a clone with
// Epoch+1 — the map the meta group commits for the move. m is not modified.
//
// MoveAddLearner allocates a fresh replica ID from NextReplicaSeq on an
// active node without a replica of the shard and appends the learner;
// MovePromote makes a learner a voter; MoveTransferLeader moves a voter to
// Replicas[0]; MoveRemoveReplica deletes a replica, refusing to remove the
// last voter or one whose removal leaves fewer live voters (replicas on
// removed nodes count as dead) than a quorum of the remaining voters.
// Replicas are named by ID, so a move planned on an older map fails with an
// error wrapping [ErrBadMove] once it no longer applies.
func (m *Map) Apply(mv Move) (*Map, error) {
	bad := func(format string, args ...any) (*Map, error) {
		return nil, fmt.Errorf("%w: %v: %s", ErrBadMove, mv, fmt.Sprintf(format, args...))
	}
	if uint64(mv.Shard) >= uint64(len(m.Shards)) {
		return bad("the map has %d shards", len(m.Shards))
	}
	next := m.Clone()
	sh := &next.Shards[mv.Shard]
	idx := -1
	if mv.Kind != MoveAddLearner {
		idx = slices.IndexFunc(sh.Replicas, func(r Replica) bool { return r.ID == mv.Replica.ID })
		if idx < 0 {
			return bad("no replica %q in shard %d", mv.Replica.ID, mv.Shard)
		}
	}
	switch mv.Kind {
	case MoveAddLearner:
		node := mv.Replica.NodeID
		if n, ok := m.Node(node); !ok || n.State != NodeActive {
			return bad("node %q is not an active node", node)
		}
		if slices.ContainsFunc(sh.Replicas, func(r Replica) bool { return r.NodeID == node }) {
			return bad("node %q already holds a replica of shard %d", node, mv.Shard)
		}
		sh.Replicas = append(sh.Replicas, Replica{ID: ReplicaID(mv.Shard, node, next.NextReplicaSeq), NodeID: node, Role: RoleLearner})
		next.NextReplicaSeq++
	case MovePromote:
		if sh.Replicas[idx].Role != RoleLearner {
			return bad("replica %q is not a learner", mv.Replica.ID)
		}
		sh.Replicas[idx].Role = RoleVoter
	case MoveTransferLeader:
		if sh.Replicas[idx].Role != RoleVoter {
			return bad("replica %q is not a voter", mv.Replica.ID)
		}
		if idx == 0 {
			return bad("replica %q is already the preferred leader", mv.Replica.ID)
		}
		r := sh.Replicas[idx]
		copy(sh.Replicas[1:idx+1], sh.Replicas[:idx])
		sh.Replicas[0] = r
	case MoveRemoveReplica:
		if sh.Replicas[idx].Role == RoleVoter {
			voters, live, leavingLive := 0, 0, 0
			for i, r := range sh.Replicas {
				if r.Role != RoleVoter {
					continue
				}
				voters++
				if n, ok := m.Node(r.NodeID); ok && n.State != NodeRemoved && n.State != NodeDown {
					live++
					if i == idx {
						leavingLive = 1
					}
				}
			}
			if voters == 1 {
				return bad("replica %q is the shard's last voter", mv.Replica.ID)
			}
			if live-leavingLive < quorum(voters-1) {
				return bad("%d of %d remaining voters would be alive, below quorum", live-leavingLive, voters-1)
			}
		}
		sh.Replicas = slices.Delete(sh.Replicas, idx, idx+1)
	default:
		return bad("unknown move kind")
	}
	next.Epoch++
	return next, nil
}

// CanDrain reports why nodeID must not be drained (set to NodeDraining), or
// nil if it may. A drain must leave at least RF active nodes, so that every
// shard keeps RF replicas on the remaining nodes; with fewer, add a node
// first. Draining a draining node is a no-op (nil); a joining node holds no
// replicas and may always be drained; a removed or unknown one may not.
// The error wraps [ErrCannotDrain].
func CanDrain(m *Map, nodeID string) error {
	n, ok := m.Node(nodeID)
	if !ok {
		return fmt.Errorf("%w: node %q is not in the cluster map", ErrCannotDrain, nodeID)
	}
	switch n.State {
	case NodeRemoved:
		return fmt.Errorf("%w: node %q is already removed", ErrCannotDrain, nodeID)
	case NodeActive:
	default:
		return nil
	}
	remaining := 0
	for _, o := range m.Nodes {
		if o.State == NodeActive && o.ID != nodeID {
			remaining++
		}
	}
	if remaining < int(m.RF) {
		return fmt.Errorf("%w: node %q: %d active nodes would remain, fewer than the replication factor %d; add a node first",
			ErrCannotDrain, nodeID, remaining, m.RF)
	}
	return nil
}

// MinimalMoves returns the fewest replica additions (MoveAddLearner moves)
// that turn m's placement into target: Σ over shards of |target \ current|,
// counting learners as present. Every addition is a data copy, so this is
// the lower bound of a plan's cost; [Plan] meets it.
func MinimalMoves(m *Map, target [][]string) int {
	n := 0
	for i, t := range target {
		if i >= len(m.Shards) {
			n += len(t)
			continue
		}
		for _, node := range t {
			if !slices.ContainsFunc(m.Shards[i].Replicas, func(r Replica) bool { return r.NodeID == node }) {
				n++
			}
		}
	}
	return n
}

// NodeLoad is one node's share of a map's replicas and preferred leaders.
type NodeLoad struct {
	NodeID   string
	State    NodeState
	Replicas int
	Leaders  int // shards whose preferred leader (Replicas[0]) is on the node
}

// BalanceReport describes how evenly a map spreads replicas and preferred
// leaders over its active nodes.
type BalanceReport struct {
	// Nodes: the active nodes and any other node holding replicas, by ID.
	Nodes        []NodeLoad
	ActiveNodes  int
	AvgReplicas  float64 // replicas on active nodes / active nodes
	MaxReplicas  int     // most replicas on one active node
	ReplicaRatio float64 // MaxReplicas / AvgReplicas
	MaxLeaders   int     // most preferred leaders on one node
	LeaderLimit  int     // ⌈ShardCount / active nodes⌉ + 1
	Misplaced    int     // replicas on nodes that are not active
	// Balanced is the elastic-cluster rule: no misplaced replica, replicas
	// per node within 1.25× the average, no node preferred leader of more
	// than LeaderLimit shards.
	Balanced bool
}

// MaxReplicaRatio is the most replicas a balanced map puts on one node,
// relative to the average over active nodes.
const MaxReplicaRatio = 1.25

// Balance reports how m spreads replicas and preferred leaders.
func Balance(m *Map) BalanceReport {
	var r BalanceReport
	byNode := make(map[string]*NodeLoad, len(m.Nodes))
	for _, n := range m.Nodes {
		byNode[n.ID] = &NodeLoad{NodeID: n.ID, State: n.State}
		if n.State == NodeActive {
			r.ActiveNodes++
		}
	}
	total := 0
	for _, s := range m.Shards {
		for i, rep := range s.Replicas {
			l, ok := byNode[rep.NodeID]
			if !ok {
				continue
			}
			l.Replicas++
			if i == 0 {
				l.Leaders++
			}
			if l.State == NodeActive {
				total++
			} else {
				r.Misplaced++
			}
		}
	}
	for _, n := range m.Nodes {
		l := byNode[n.ID]
		if l.State != NodeActive && l.Replicas == 0 {
			continue
		}
		r.Nodes = append(r.Nodes, *l)
		r.MaxLeaders = max(r.MaxLeaders, l.Leaders)
		if l.State == NodeActive {
			r.MaxReplicas = max(r.MaxReplicas, l.Replicas)
		}
	}
	if r.ActiveNodes > 0 {
		r.AvgReplicas = float64(total) / float64(r.ActiveNodes)
		r.LeaderLimit = (int(m.ShardCount)+r.ActiveNodes-1)/r.ActiveNodes + 1
	}
	if r.AvgReplicas > 0 {
		r.ReplicaRatio = float64(r.MaxReplicas) / r.AvgReplicas
	}
	r.Balanced = r.ActiveNodes > 0 && r.Misplaced == 0 &&
		r.ReplicaRatio <= MaxReplicaRatio && r.MaxLeaders <= r.LeaderLimit
	return r
}
