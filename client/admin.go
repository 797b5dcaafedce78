package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ridgeline-kv/ridgeline/replication/kvpb"
	"github.com/ridgeline-kv/ridgeline/ring"
)

// ErrRefused: the cluster refused an administrative change because of the
// cluster's state (for example draining a node would leave fewer active
// nodes than the replication factor, or removing a node that still holds
// replicas). The error text carries the server's reason. Retrying unchanged
// fails again until the state changes.
var ErrRefused = errors.New("client: refused")

// RebalanceAction is what [Client.Rebalance] asks of the planner.
type RebalanceAction uint8

// Rebalance actions.
const (
	RebalanceStatusOnly RebalanceAction = iota // report progress, change nothing
	RebalancePause                             // stop starting moves (moves in flight finish)
	RebalanceResume                            // start moves again
)

// String returns "status", "pause", "resume" or "RebalanceAction(n)".
func (a RebalanceAction) String() string {
	switch a {
	case RebalanceStatusOnly:
		return "status"
	case RebalancePause:
		return "pause"
	case RebalanceResume:
		return "resume"
	}
	return fmt.Sprintf("RebalanceAction(%d)", uint8(a))
}

func (a RebalanceAction) proto() (kvpb.RebalanceRequest_Action, bool) {
	switch a {
	case RebalanceStatusOnly:
		return kvpb.RebalanceRequest_STATUS, true
	case RebalancePause:
		return kvpb.RebalanceRequest_PAUSE, true
	case RebalanceResume:
		return kvpb.RebalanceRequest_RESUME, true
	}
	return 0, false
}

// RebalanceStatus is the placement progress the meta leader reports.
type RebalanceStatus struct {
	Epoch    uint64 // map epoch the report is about
	Paused   bool   // operators paused moves
	Balanced bool   // placement converged and balanced: nothing left to do

	MovesInFlight int // shards with a move in progress
	MovesPlanned  int // moves the planner would start now
	MovesDone     int // moves committed since the current meta leader took over
	Pending       int // shards whose replicas differ from their target
	Misplaced     int // replicas that must still move
	MinimumMoves  int // lower bound of replica additions to reach the target

	// SnapshotBytes is the cumulative snapshot bytes sent by the node that
	// answered (not cluster-wide).
	SnapshotBytes uint64
	// PendingReasons says, per pending shard, why it is not at its target
	// ("shard 4: ...").
	PendingReasons []string
}

// DrainNode marks nodeID draining: the cluster moves every replica and
// leadership off it, then it can be removed with [Client.RemoveNode]. It
// returns as soon as the change is committed, with the map epoch that carries
// it; follow the progress with [Client.Rebalance] and [Client.RefreshMap].
// Draining a node that is already draining succeeds.
//
// An error matches [ErrRefused] when the other active nodes cannot hold the
// replicas, [ErrInvalidArgument] when the cluster has no such node, and
// [ErrUnavailable] when no node answered before ctx's deadline. It blocks
// until then and is safe for concurrent use.
func (c *Client) DrainNode(ctx context.Context, nodeID string) (epoch uint64, err error) {
	resp, err := adminCall(ctx, c, "drain node "+nodeID, func(ctx context.Context, a kvpb.AdminClient) (*kvpb.MapChangeResponse, error) {
		return a.DrainNode(ctx, &kvpb.DrainNodeRequest{NodeId: nodeID})
	})
	if err != nil {
		return 0, err
	}
	c.refreshAsync()
	return resp.GetEpoch(), nil
}

// RemoveNode takes nodeID out of the cluster map for good: a drained node
// (no replicas left) or a dead one, whose replicas are then replaced. A
// removed node's ID is never reused and it may not rejoin with its data.
// Removing a removed node succeeds.
//
// An error matches [ErrRefused] when the node is alive and still holds
// replicas (drain it first) or cannot be removed yet, [ErrInvalidArgument]
// when the cluster has no such node, and [ErrUnavailable] when no node
// answered before ctx's deadline. It blocks until then and is safe for
// concurrent use.
func (c *Client) RemoveNode(ctx context.Context, nodeID string) (epoch uint64, err error) {
	resp, err := adminCall(ctx, c, "remove node "+nodeID, func(ctx context.Context, a kvpb.AdminClient) (*kvpb.MapChangeResponse, error) {
		return a.RemoveNode(ctx, &kvpb.RemoveNodeRequest{NodeId: nodeID})
	})
	if err != nil {
		return 0, err
	}
	c.refreshAsync()
	return resp.GetEpoch(), nil
}

// MoveReplica moves shard's replica on node from to node to. It pins the
// shard's replica set in the cluster map (its voters, from replaced by to)
// and returns as soon as the pin is committed, with the map epoch that
// carries it; the cluster then makes the move learner first: to gets a
// copy, catches up and becomes a voter, then from's replica is removed. If
// from was the shard's preferred leader, to becomes it. Follow the move with
// [Client.RefreshMap] (the shard's replicas equal [ring.Map.Pin]). While
// rebalancing is paused the pin is committed but the move waits for
// [RebalanceResume]. The pin keeps the shard there until [Client.UnpinShard];
// it is ignored while a pinned node is not active (draining, down,
// removed), so drains and failures still move the shard.
//
// An error matches [ErrRefused], saying why, when the shard does not exist,
// from holds no voter of it, to already holds a replica of it or is not an
// active, alive node, from == to, or a move of the shard is in progress; and
// [ErrUnavailable] when no node answered before ctx's deadline. It blocks
// until then and is safe for concurrent use.
func (c *Client) MoveReplica(ctx context.Context, shard uint32, from, to string) (epoch uint64, err error) {
	return c.mapChange(ctx, fmt.Sprintf("move shard %d from %s to %s", shard, from, to), func(ctx context.Context, a kvpb.AdminClient) (*kvpb.MapChangeResponse, error) {
		return a.MoveReplica(ctx, &kvpb.MoveReplicaRequest{Shard: shard, FromNode: from, ToNode: to})
	})
}

// TransferLeader makes node to shard's preferred leader: it pins the
// shard's replica set with to first and returns once the pin is committed,
// with its map epoch. The cluster then moves raft leadership to to and keeps
// it there (until [Client.UnpinShard]); like [Client.MoveReplica] it waits
// while rebalancing is paused and the pin is ignored while a pinned node is
// not active. Transferring to the preferred leader succeeds and pins it.
//
// An error matches [ErrRefused], saying why, when the shard does not exist,
// to holds no voter of it or is not an active, alive node, or a move of the
// shard is in progress; and [ErrUnavailable] when no node answered before
// ctx's deadline. It blocks until then and is safe for concurrent use.
func (c *Client) TransferLeader(ctx context.Context, shard uint32, to string) (epoch uint64, err error) {
	return c.mapChange(ctx, fmt.Sprintf("transfer leadership of shard %d to %s", shard, to), func(ctx context.Context, a kvpb.AdminClient) (*kvpb.MapChangeResponse, error) {
		return a.TransferLeader(ctx, &kvpb.TransferLeaderRequest{Shard: shard, ToNode: to})
	})
}

// UnpinShard drops shard's pin (set by [Client.MoveReplica] or
// [Client.TransferLeader]): the cluster places the shard automatically
// again, which may move it back. Unpinning a shard without a pin succeeds.
// It returns the map epoch after the change; errors match [ErrRefused] when
// the shard does not exist and [ErrUnavailable] when no node answered before
// ctx's deadline. It blocks until then and is safe for concurrent use.
func (c *Client) UnpinShard(ctx context.Context, shard uint32) (epoch uint64, err error) {
	return c.mapChange(ctx, fmt.Sprintf("unpin shard %d", shard), func(ctx context.Context, a kvpb.AdminClient) (*kvpb.MapChangeResponse, error) {
		return a.UnpinShard(ctx, &kvpb.UnpinShardRequest{Shard: shard})
	})
}

// mapChange runs an Admin call that changes the map and refreshes the
// cached map in the background once it succeeded.
func (c *Client) mapChange(ctx context.Context, what string, fn func(context.Context, kvpb.AdminClient) (*kvpb.MapChangeResponse, error)) (uint64, error) {
	resp, err := adminCall(ctx, c, what, fn)
	if err != nil {
		return 0, err
	}
	c.refreshAsync()
	return resp.GetEpoch(), nil
}

// Rebalance reports placement progress and, with [RebalancePause] or
// [RebalanceResume], first pauses or resumes placement moves (idempotent).
// The report is the meta leader's, whichever node answered. It blocks until
// answered or ctx's deadline ([ErrUnavailable]) and is safe for concurrent
// use.
func (c *Client) Rebalance(ctx context.Context, action RebalanceAction) (*RebalanceStatus, error) {
	pa, ok := action.proto()
	if !ok {
		return nil, newError(fmt.Sprintf("client: invalid argument: unknown rebalance action %v", action), ErrInvalidArgument)
	}
	resp, err := adminCall(ctx, c, "rebalance "+action.String(), func(ctx context.Context, a kvpb.AdminClient) (*kvpb.RebalanceResponse, error) {
		return a.Rebalance(ctx, &kvpb.RebalanceRequest{Action: pa})
	})
	if err != nil {
		return nil, err
	}
	if action != RebalanceStatusOnly {
		c.refreshAsync()
	}
	return &RebalanceStatus{
		Epoch:          resp.GetEpoch(),
		Paused:         resp.GetPaused(),
		Balanced:       resp.GetBalanced(),
		MovesInFlight:  int(resp.GetMovesInFlight()),
		MovesPlanned:   int(resp.GetMovesPlanned()),
		MovesDone:      int(resp.GetMovesDone()),
		Pending:        int(resp.GetPending()),
		Misplaced:      int(resp.GetMisplaced()),
		MinimumMoves:   int(resp.GetMinimumMoves()),
		SnapshotBytes:  resp.GetSnapshotBytes(),
		PendingReasons: slices.Clone(resp.GetPendingReasons()),
	}, nil
}

// RefreshMap fetches the cluster map now, from the known nodes and the
// configured endpoints, and returns the newest map the client has afterwards
// (the one [Client.Map] returns). Unlike the background refreshes it never
// reuses a fetch that started before the call, so a caller polling for
// progress (a drain, a rebalance) sees the map as of the call. It blocks
// until a node answers, every node failed, or ctx ends, and is safe for
// concurrent use.
func (c *Client) RefreshMap(ctx context.Context) (*ring.Map, error) {
	rt := c.routes.Load()
	if rt == nil || c.closed.Load() {
		return nil, ErrClosed
	}
	addrs := c.mapAddrs(rt)
	resp, err := c.fetchMap(ctx, addrs, rt.epoch()+1)
	if err != nil {
		if ctx.Err() != nil {
			return nil, newError(fmt.Sprintf("client: unavailable: no node returned the cluster map (%v): %v", ctx.Err(), err), ErrUnavailable, ctx.Err())
		}
		return nil, newError(fmt.Sprintf("client: unavailable: no node returned the cluster map: %v", err), ErrUnavailable)
	}
	if _, err := c.applyMap(resp); err != nil {
		return nil, err
	}
	return c.Map(), nil
}

// mapAddrs lists the addresses to ask for the map: the map's nodes (not
// removed) in random order, then configured endpoints not among them.
func (c *Client) mapAddrs(rt *routeTable) []string {
	var addrs []string
	seen := make(map[string]bool)
	for _, n := range rt.m.Nodes {
		if n.State != ring.NodeRemoved && n.Addr != "" && !seen[n.Addr] {
			seen[n.Addr] = true
			addrs = append(addrs, n.Addr)
		}
	}
	rand.Shuffle(len(addrs), func(i, j int) { addrs[i], addrs[j] = addrs[j], addrs[i] })
	for _, a := range c.cfg.Endpoints {
		if !seen[a] {
			seen[a] = true
			addrs = append(addrs, a)
		}
	}
	return addrs
}

// adminTargets orders the nodes an Admin call may go to: meta voters first
// (one of them leads the meta group, so they forward least), then the other
// nodes that are not removed or down, then down nodes and configured
// endpoints the map does not name. Within each group, healthy nodes come
// before ones that failed recently.
func (c *Client) adminTargets(rt *routeTable) []*conn {
	var out []*conn
	seen := make(map[string]bool)
	add := func(cn *conn) {
		if cn != nil && !seen[cn.addr] {
			seen[cn.addr] = true
			out = append(out, cn)
		}
	}
	rank := func(n ring.Node) int {
		switch {
		case n.State == ring.NodeDown:
			return 2
		case slices.Contains(rt.m.MetaVoters, n.ID):
			return 0
		}
		return 1
	}
	type cand struct {
		cn   *conn
		rank int
	}
	var cands []cand
	for _, n := range rt.m.Nodes {
		if t, ok := rt.byNode[n.ID]; ok {
			r := rank(n) * 2
			if t.conn.suspect() {
				r++
			}
			cands = append(cands, cand{t.conn, r})
		}
	}
	slices.SortStableFunc(cands, func(a, b cand) int { return a.rank - b.rank })
	for _, cd := range cands {
		add(cd.cn)
	}
	for _, a := range c.cfg.Endpoints {
		if cn, err := c.pool.get(a); err == nil {
			add(cn)
		}
	}
	return out
}

// adminCall runs fn against one node after another until one answers, a
// final error comes back, or ctx (given Config.RequestTimeout when it has no
// deadline) ends. Every node forwards Admin calls to the meta leader, so any
// node will do; every Admin call is idempotent, so retrying on another node
// after a timeout is safe. Transport errors, timeouts and "no meta leader"
// move on to the next node; after a round in which every node failed, the
// map is refreshed in the background and the call backs off.
func adminCall[R any](ctx context.Context, c *Client, what string, fn func(context.Context, kvpb.AdminClient) (R, error)) (R, error) {
	var zero R
	if c.closed.Load() || c.routes.Load() == nil {
		return zero, ErrClosed
	}
	ctx, cancel := c.callContext(ctx)
	defer cancel()
	var lastErr string
	for round := 0; ; round++ {
		for _, cn := range c.adminTargets(c.routes.Load()) {
			actx, acancel := context.WithTimeout(ctx, c.cfg.AttemptTimeout)
			start := time.Now()
			resp, err := fn(actx, cn.admin)
			acancel()
			if err == nil {
				cn.observe(time.Since(start))
				return resp, nil
			}
			st, _ := status.FromError(err)
			lastErr = cn.addr + ": " + st.Code().String() + ": " + st.Message()
			if c.closed.Load() {
				return zero, ErrClosed
			}
			if ctx.Err() != nil {
				return zero, adminGiveUp(ctx, what, lastErr)
			}
			if c.log.Enabled(ctx, slog.LevelDebug) {
				c.log.Debug("client: admin attempt failed", "call", what, "addr", cn.addr, "code", st.Code(), "err", st.Message())
			}
			retry, suspect := adminRetryable(st)
			if !retry {
				return zero, adminError(what, err)
			}
			if suspect {
				cn.markSuspect()
			}
		}
		c.refreshAsync()
		d := min(backoffCap, backoffBase<<min(round, 10))
		d = d/2 + rand.N(d/2+1)
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return zero, adminGiveUp(ctx, what, lastErr)
		case <-c.done:
			t.Stop()
			return zero, ErrClosed
		}
	}
}

// adminRetryable says whether an Admin attempt that failed with st may be
// tried on another node, and whether the node should be marked suspect.
func adminRetryable(st *status.Status) (retry, suspect bool) {
	switch st.Code() {
	case codes.Unavailable:
		for _, d := range st.Details() {
			if _, ok := d.(*kvpb.NotLeader); ok {
				return true, false // no meta leader right now: an election
			}
		}
		return true, true // transport error, or the node is shutting down
	case codes.DeadlineExceeded:
		return true, true
	case codes.Canceled:
		return true, false // the connection closed under the attempt
	case codes.ResourceExhausted:
		return !isMessageTooLarge(st.Message()), false
	case codes.FailedPrecondition:
		// A routing error (not the meta leader) rather than a refusal.
		for _, d := range st.Details() {
			switch d.(type) {
			case *kvpb.NotLeader, *kvpb.WrongShard:
				return true, false
			}
		}
	}
	return false, false
}

// adminError maps the final error of an Admin call: a refusal
// (FailedPrecondition without routing detail) to ErrRefused, the rest as
// fromStatus does. It keeps the server's message.
func adminError(what string, err error) error {
	if st, ok := status.FromError(err); ok && st.Code() == codes.FailedPrecondition {
		// The server's text starts with its own "replication: refused: ".
		msg := strings.TrimPrefix(st.Message(), "replication: refused: ")
		return newError(fmt.Sprintf("client: refused: %s: %s", what, msg), ErrRefused)
	}
	return fromStatus(err)
}

// adminGiveUp is the error of an Admin call that ran out of time.
func adminGiveUp(ctx context.Context, what string, last string) error {
	detail := "no reply"
	if last != "" {
		detail = last
	}
	return newError(fmt.Sprintf("client: unavailable: no node answered %s in time (%s; last error: %s)", what, causeText(ctx.Err()), detail), ErrUnavailable, ctx.Err())
}
