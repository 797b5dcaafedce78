package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ridgeline-kv/ridgeline/client"
	"github.com/ridgeline-kv/ridgeline/ring"
)

// shardsResult is the output of shards list.
type shardsResult struct {
	ClusterID       string     `json:"cluster_id"`
	Epoch           uint64     `json:"epoch"`
	RebalancePaused bool       `json:"rebalance_paused"`
	Shards          []shardRow `json:"shards"`
	// PendingError: the meta leader's pending reasons could not be fetched.
	PendingError string `json:"pending_error,omitempty"`
}

type shardRow struct {
	Shard uint32 `json:"shard"`
	// Replicas in the map's preference order: the first is the preferred
	// leader.
	Replicas []shardReplica `json:"replicas"`
	// Leader is the node whose replica reports itself leader (else the
	// leader a replica names); "" when none is known.
	Leader string `json:"leader"`
	// AppliedIndex is the leader replica's applied index; 0 when the leader
	// did not report.
	AppliedIndex uint64   `json:"applied_index"`
	Pinned       bool     `json:"pinned"`
	Pin          []string `json:"pin,omitempty"`         // pinned nodes, preferred leader first
	PinIgnored   string   `json:"pin_ignored,omitempty"` // why the pin is not in force
	// AtPin: the pin is carried out (the pinned nodes, all voters, its
	// first the preferred leader).
	AtPin   bool   `json:"at_pin,omitempty"`
	Pending string `json:"pending,omitempty"` // why the shard is not at its target
}

type shardReplica struct {
	Node string `json:"node"`
	Role string `json:"role"` // voter or learner, as the map says
}

// buildShards combines the map, each node's status report and the meta
// leader's pending reasons ("shard N: why", as Rebalance reports them). It
// is pure, for tests.
func buildShards(m *ring.Map, reports map[string]*client.NodeStatus, pending []string, pendingErr error) *shardsResult {
	res := &shardsResult{ClusterID: m.ClusterID, Epoch: m.Epoch, RebalancePaused: m.RebalancePaused, Shards: []shardRow{}}
	if pendingErr != nil {
		res.PendingError = errorMessage(pendingErr)
	}
	type key struct {
		node  string
		shard uint32
	}
	replicas := map[key]client.ReplicaStatus{}
	for id, st := range reports {
		for _, r := range st.Replicas {
			if !r.Meta {
				replicas[key{id, r.Shard}] = r
			}
		}
	}
	reasons := map[uint32]string{}
	for _, p := range pending {
		rest, ok := strings.CutPrefix(p, "shard ")
		if !ok {
			continue
		}
		num, why, ok := strings.Cut(rest, ": ")
		if s, err := strconv.ParseUint(num, 10, 32); ok && err == nil {
			reasons[uint32(s)] = why
		}
	}
	for _, s := range m.Shards {
		row := shardRow{Shard: s.ID, Replicas: []shardReplica{}, Pending: reasons[s.ID]}
		hint := ""
		for _, r := range s.Replicas {
			row.Replicas = append(row.Replicas, shardReplica{Node: r.NodeID, Role: r.Role.String()})
			st, ok := replicas[key{r.NodeID, s.ID}]
			switch {
			case !ok:
			case st.State == "Leader":
				row.Leader, row.AppliedIndex = r.NodeID, st.AppliedIndex
			case hint == "" && st.LeaderID != "":
				hint = st.LeaderID
			}
		}
		if row.Leader == "" {
			row.Leader = hint
		}
		if pin := m.Pin(s.ID); pin != nil {
			row.Pinned, row.Pin, row.PinIgnored, row.AtPin = true, pin, m.PinProblem(s.ID), m.AtPin(s.ID)
			if row.Pending == "" && row.PinIgnored == "" && !row.AtPin {
				row.Pending = "moving to its pin"
			}
		}
		res.Shards = append(res.Shards, row)
	}
	return res
}

func (r *shardsResult) table(w io.Writer) {
	fmt.Fprintf(w, "cluster %s  epoch %d\n\n", r.ClusterID, r.Epoch)
	fmt.Fprintln(w, "SHARD\tREPLICAS (preferred leader first)\tLEADER\tAPPLIED\tPINNED\tPENDING")
	waiting := false
	for _, s := range r.Shards {
		parts := make([]string, 0, len(s.Replicas))
		for _, rp := range s.Replicas {
			parts = append(parts, rp.Node+":"+rp.Role)
		}
		leader, applied := s.Leader, "-"
		if leader == "" {
			leader = "none"
		}
		if s.AppliedIndex > 0 {
			applied = fmt.Sprint(s.AppliedIndex)
		}
		pinned := "no"
		switch {
		case s.Pinned && s.PinIgnored != "":
			pinned = "ignored"
		case s.Pinned:
			pinned = "yes"
			waiting = waiting || !s.AtPin
		}
		pending := s.Pending
		if pending == "" {
			pending = "-"
		}
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\n", s.Shard, strings.Join(parts, " "), leader, applied, pinned, pending)
	}
	if slices.ContainsFunc(r.Shards, func(s shardRow) bool { return s.Pinned }) {
		fmt.Fprintln(w)
	}
	for _, s := range r.Shards {
		if !s.Pinned {
			continue
		}
		fmt.Fprintf(w, "shard %d is pinned to %s", s.Shard, strings.Join(s.Pin, ", "))
		if s.PinIgnored != "" {
			fmt.Fprintf(w, "; the pin is ignored: %s", s.PinIgnored)
		}
		fmt.Fprintf(w, " (kvctl shards unpin %d)\n", s.Shard)
	}
	if r.RebalancePaused && waiting {
		fmt.Fprintln(w, "\nrebalancing is paused: pinned shards move once you run kvctl rebalance resume")
	}
	if r.PendingError != "" {
		fmt.Fprintf(w, "\npending reasons unavailable: %s\n", r.PendingError)
	}
}

// shardChangeResult is the output of shards move, transfer-leader and
// unpin.
type shardChangeResult struct {
	Shard  uint32   `json:"shard"`
	Action string   `json:"action"` // move, transfer-leader, unpin
	From   string   `json:"from,omitempty"`
	To     string   `json:"to,omitempty"`
	Epoch  uint64   `json:"epoch"` // map epoch of the change (done: of the last map seen)
	Pin    []string `json:"pin,omitempty"`
	// State: pinned (committed, the cluster works on it), done (--wait saw
	// it finish) or unpinned.
	State string `json:"state"`
	// RebalancePaused: the move waits for kvctl rebalance resume.
	RebalancePaused bool `json:"rebalance_paused"`
}

func (r *shardChangeResult) table(w io.Writer) {
	pin := strings.Join(r.Pin, ", ")
	switch {
	case r.State == "unpinned":
		fmt.Fprintf(w, "shard %d is unpinned (map epoch %d): the cluster places it automatically again\n", r.Shard, r.Epoch)
		return
	case r.Action == "move" && r.State == "done":
		fmt.Fprintf(w, "shard %d moved from %s to %s (map epoch %d): replicas on %s\n", r.Shard, r.From, r.To, r.Epoch, pin)
	case r.Action == "move":
		fmt.Fprintf(w, "shard %d: moving its replica from %s to %s (pinned to %s at map epoch %d)\n", r.Shard, r.From, r.To, pin, r.Epoch)
		fmt.Fprintf(w, "follow with: kvctl shards move %d %s %s --wait, or kvctl shards list\n", r.Shard, r.From, r.To)
	case r.State == "done":
		fmt.Fprintf(w, "shard %d is led by %s (map epoch %d)\n", r.Shard, r.To, r.Epoch)
	default:
		fmt.Fprintf(w, "shard %d: moving leadership to %s (pinned to %s at map epoch %d)\n", r.Shard, r.To, pin, r.Epoch)
		fmt.Fprintf(w, "follow with: kvctl shards transfer-leader %d %s --wait, or kvctl shards list\n", r.Shard, r.To)
	}
	if r.State != "done" {
		fmt.Fprintf(w, "the pin keeps the shard there until kvctl shards unpin %d; draining or losing a pinned node overrides it\n", r.Shard)
	}
	if r.RebalancePaused && r.State != "done" {
		fmt.Fprintln(w, "rebalancing is paused: the change waits for kvctl rebalance resume")
	}
}

// parseShard parses a SHARD argument against the map's shard count.
func parseShard(arg string, m *ring.Map) (uint32, error) {
	s, err := strconv.ParseUint(arg, 10, 32)
	if err != nil || s >= uint64(m.ShardCount) {
		return 0, usagef("SHARD must be a shard number from 0 to %d (the cluster has %d shards), got %q; kvctl shards list shows them", m.ShardCount-1, m.ShardCount, arg)
	}
	return uint32(s), nil
}

func newShardsCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "shards",
		Short: "List shards; move replicas and leadership by hand",
		Long: `Without a subcommand (or with list), list the shards with their replicas as the
map places them (preferred leader first), the node leading each, its applied
index, whether the shard is pinned, and why it is not at its target yet.

The cluster places replicas on its own. To override it for one shard:
kvctl shards move SHARD FROM TO, or kvctl shards transfer-leader SHARD TO.
Either pins the shard's replica set in the cluster map, and the cluster
carries the change out like its own moves (learner first, throttled, paused
by kvctl rebalance pause). The pin stays until kvctl shards unpin SHARD. A
pin is ignored while a pinned node is not active (draining, down, removed)
or while there are fewer active nodes than the replication factor, so a
drain or a dead node still moves the shard.`,
		Args: subcommandArgs("list", "move", "transfer-leader", "unpin"),
		RunE: func(cmd *cobra.Command, args []string) error { return a.listShards(cmd) },
	}
	cmd.AddCommand(newShardsListCmd(a), newShardsMoveCmd(a), newShardsTransferLeaderCmd(a), newShardsUnpinCmd(a))
	return cmd
}

func newShardsListCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List shards: replicas, leader, applied index, pin, pending reason",
		Args:  exactArgs(0, "none"),
		RunE:  func(cmd *cobra.Command, args []string) error { return a.listShards(cmd) },
	}
}

func (a *app) listShards(cmd *cobra.Command) error {
	return a.withClient(cmd, func(ctx context.Context, c *client.Client) error {
		m := c.Map()
		reports, _ := nodeStatuses(ctx, c, m)
		var pending []string
		st, err := c.Rebalance(ctx, client.RebalanceStatusOnly)
		if err == nil {
			pending = st.PendingReasons
		}
		return a.print(buildShards(m, reports, pending, err))
	})
}

func newShardsMoveCmd(a *app) *cobra.Command {
	var w waitFlags
	cmd := &cobra.Command{
		Use:   "move SHARD FROM TO",
		Short: "Move a shard's replica from one node to another",
		Long: `Move the replica of SHARD on node FROM to node TO, which must be active and
hold no replica of the shard. The shard is pinned to its current replicas
with FROM replaced by TO (if FROM is the preferred leader, TO becomes it),
and the cluster moves the replica learner first: TO receives a copy and
catches up, becomes a voter, then FROM's replica is removed. The cluster
refuses (exit 1, saying why) when the move does not apply, for instance
while another move of the shard is in progress.

With --wait, poll until the shard's replicas are the pinned nodes, all
voters, with the pin's first node first, printing progress to stderr. It exits 0 when done, 1 if not done within
--wait-timeout (the move goes on in the cluster) or if the pin stops being in
force, and 3 if the cluster cannot be reached. While rebalancing is paused
the move waits for kvctl rebalance resume.`,
		Args: exactArgs(3, "SHARD FROM TO"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := w.validate(); err != nil {
				return err
			}
			from, to := args[1], args[2]
			return a.withLongClient(cmd, func(c *client.Client) error {
				m := c.Map()
				shard, err := parseShard(args[0], m)
				if err != nil {
					return err
				}
				for _, id := range []string{from, to} {
					if err := checkNode(m, id); err != nil {
						return err
					}
				}
				res := &shardChangeResult{Shard: shard, Action: "move", From: from, To: to, State: "pinned"}
				if err := a.commitShardChange(cmd, c, res, func(ctx context.Context) (uint64, error) {
					return c.MoveReplica(ctx, shard, from, to)
				}); err != nil {
					return err
				}
				if !w.wait {
					return a.print(res)
				}
				fmt.Fprintf(a.stderr, "shard %d is pinned to %s (map epoch %d); waiting up to %v for the move\n", shard, strings.Join(res.Pin, ", "), res.Epoch, w.budget)
				err = a.poll(cmd.Context(), w, fmt.Sprintf("shard %d has not moved from %s to %s", shard, from, to),
					"the move goes on in the cluster: rerun with --wait to keep waiting, or see kvctl shards list",
					func(ctx context.Context) (bool, string, error) {
						m, err := c.RefreshMap(ctx)
						if err != nil {
							return false, "", err
						}
						if err := pinInForce(m, shard, res.Pin); err != nil {
							return false, "", err
						}
						res.Epoch = m.Epoch
						row := buildShards(m, nil, nil, nil).Shards[shard]
						return row.AtPin, shardProgressLine(m, row, ""), nil
					})
				if err != nil {
					return err
				}
				res.State = "done"
				return a.print(res)
			})
		},
	}
	w.register(cmd, "the shard's replicas are the pinned ones, all voters")
	return cmd
}

func newShardsTransferLeaderCmd(a *app) *cobra.Command {
	var w waitFlags
	cmd := &cobra.Command{
		Use:   "transfer-leader SHARD TO",
		Short: "Make a node the leader of a shard, and keep it there",
		Long: `Make node TO, which must hold a voter of SHARD and be active, the shard's
preferred leader: the shard is pinned to its current replicas with TO first,
and the cluster moves raft leadership to TO and keeps it there (automatic
leader balancing leaves a pinned shard alone). The cluster refuses (exit 1,
saying why) when TO holds no replica of the shard or a move of the shard is
in progress.

With --wait, poll until TO's replica reports itself the shard's raft leader,
printing progress to stderr. It exits 0 then, 1 if not within --wait-timeout
or if the pin stops being in force, and 3 if the cluster cannot be reached.
While rebalancing is paused the transfer waits for kvctl rebalance resume.`,
		Args: exactArgs(2, "SHARD TO"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := w.validate(); err != nil {
				return err
			}
			to := args[1]
			return a.withLongClient(cmd, func(c *client.Client) error {
				m := c.Map()
				shard, err := parseShard(args[0], m)
				if err != nil {
					return err
				}
				if err := checkNode(m, to); err != nil {
					return err
				}
				res := &shardChangeResult{Shard: shard, Action: "transfer-leader", To: to, State: "pinned"}
				if err := a.commitShardChange(cmd, c, res, func(ctx context.Context) (uint64, error) {
					return c.TransferLeader(ctx, shard, to)
				}); err != nil {
					return err
				}
				if !w.wait {
					return a.print(res)
				}
				fmt.Fprintf(a.stderr, "shard %d is pinned to %s (map epoch %d); waiting up to %v for %s to lead it\n", shard, strings.Join(res.Pin, ", "), res.Epoch, w.budget, to)
				err = a.poll(cmd.Context(), w, fmt.Sprintf("%s does not lead shard %d", to, shard),
					"the transfer goes on in the cluster: rerun with --wait to keep waiting, or see kvctl shards list",
					func(ctx context.Context) (bool, string, error) {
						m, err := c.RefreshMap(ctx)
						if err != nil {
							return false, "", err
						}
						if err := pinInForce(m, shard, res.Pin); err != nil {
							return false, "", err
						}
						st, err := c.NodeStatus(ctx, to)
						if err != nil {
							return false, "", err
						}
						leader := ""
						for _, r := range st.Replicas {
							if !r.Meta && r.Shard == shard {
								leader = r.LeaderID
								if r.State == "Leader" {
									leader = to
								}
							}
						}
						res.Epoch = m.Epoch
						row := buildShards(m, nil, nil, nil).Shards[shard]
						return leader == to, shardProgressLine(m, row, leader), nil
					})
				if err != nil {
					return err
				}
				res.State = "done"
				return a.print(res)
			})
		},
	}
	w.register(cmd, "TO leads the shard")
	return cmd
}

func newShardsUnpinCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "unpin SHARD",
		Short: "Let the cluster place a pinned shard automatically again",
		Long: `Drop the pin kvctl shards move or transfer-leader set on SHARD: the cluster
places the shard automatically again, which may move it back. Unpinning a
shard without a pin is harmless.`,
		Args: exactArgs(1, "SHARD"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				shard, err := parseShard(args[0], c.Map())
				if err != nil {
					return err
				}
				epoch, err := c.UnpinShard(ctx, shard)
				if err != nil {
					return err
				}
				return a.print(&shardChangeResult{Shard: shard, Action: "unpin", Epoch: epoch, State: "unpinned"})
			})
		},
	}
}

// commitShardChange makes the pinning call and fills res from the map after
// it (the pin, whether rebalancing is paused).
func (a *app) commitShardChange(cmd *cobra.Command, c *client.Client, res *shardChangeResult, call func(context.Context) (uint64, error)) error {
	ctx, cancel := a.reqContextFrom(cmd.Context())
	defer cancel()
	epoch, err := call(ctx)
	if err != nil {
		return err
	}
	res.Epoch = epoch
	m, err := c.RefreshMap(ctx)
	if err != nil {
		m = c.Map() // best effort: the pin is committed either way
	}
	res.Pin, res.RebalancePaused = m.Pin(res.Shard), m.RebalancePaused
	return nil
}

// pinInForce fails when shard's pin is no longer want or is ignored, so a
// wait for it would never end.
func pinInForce(m *ring.Map, shard uint32, want []string) error {
	got := m.Pin(shard)
	switch {
	case !slices.Equal(got, want):
		return fmt.Errorf("shard %d's pin changed to [%s] at map epoch %d (another kvctl shards command?); not waiting for [%s]",
			shard, strings.Join(got, ", "), m.Epoch, strings.Join(want, ", "))
	case m.PinProblem(shard) != "":
		return fmt.Errorf("shard %d's pin is ignored at map epoch %d: %s; the cluster places the shard automatically until that changes",
			shard, m.Epoch, m.PinProblem(shard))
	}
	return nil
}

// shardProgressLine is the progress line of shards move and transfer-leader
// --wait; leader is the raft leader seen, if asked.
func shardProgressLine(m *ring.Map, row shardRow, leader string) string {
	parts := make([]string, 0, len(row.Replicas))
	for _, rp := range row.Replicas {
		parts = append(parts, rp.Node+":"+rp.Role)
	}
	s := fmt.Sprintf("epoch %d: shard %d on %s", m.Epoch, row.Shard, strings.Join(parts, " "))
	if leader != "" {
		s += ", led by " + leader
	}
	if m.RebalancePaused {
		s += " (moves PAUSED: kvctl rebalance resume)"
	}
	return s
}
