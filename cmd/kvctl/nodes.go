package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ridgeline-kv/ridgeline/client"
	"github.com/ridgeline-kv/ridgeline/ring"
)

// nodesResult is the output of nodes (the list).
type nodesResult struct {
	ClusterID string    `json:"cluster_id"`
	Epoch     uint64    `json:"epoch"`
	Nodes     []nodeRow `json:"nodes"`
}

type nodeRow struct {
	ID         string `json:"id"`
	Addr       string `json:"addr"`
	State      string `json:"state"`    // from the cluster map
	Replicas   int    `json:"replicas"` // the map places on it
	Leaders    int    `json:"leaders"`  // shards it leads, as it reports (0 when unreachable)
	MetaVoter  bool   `json:"meta_voter"`
	MetaLeader bool   `json:"meta_leader"`
	Reachable  bool   `json:"reachable"` // answered NodeStatus; removed nodes are not asked
	Error      string `json:"error,omitempty"`
}

// buildNodes combines the map with each node's status report (or the error
// reaching it). It is pure, for tests.
func buildNodes(m *ring.Map, reports map[string]*client.NodeStatus, errs map[string]error) *nodesResult {
	res := &nodesResult{ClusterID: m.ClusterID, Epoch: m.Epoch, Nodes: []nodeRow{}}
	for _, n := range m.Nodes {
		row := nodeRow{ID: n.ID, Addr: n.Addr, State: n.State.String(), Replicas: len(m.ReplicasOn(n.ID)),
			MetaVoter: slices.Contains(m.MetaVoters, n.ID)}
		if st, ok := reports[n.ID]; ok {
			row.Reachable = true
			for _, r := range st.Replicas {
				switch {
				case r.State != "Leader":
				case r.Meta:
					row.MetaLeader = true
				default:
					row.Leaders++
				}
			}
		} else if err := errs[n.ID]; err != nil {
			row.Error = errorMessage(err)
		}
		res.Nodes = append(res.Nodes, row)
	}
	return res
}

func (r *nodesResult) table(w io.Writer) {
	fmt.Fprintf(w, "cluster %s  epoch %d\n\n", r.ClusterID, r.Epoch)
	fmt.Fprintln(w, "ID\tADDR\tSTATE\tREPLICAS\tLEADERS\tMETA\tREACHABLE")
	for _, n := range r.Nodes {
		meta := "-"
		switch {
		case n.MetaLeader:
			meta = "leader"
		case n.MetaVoter:
			meta = "voter"
		}
		reach, leaders := "yes", fmt.Sprint(n.Leaders)
		switch {
		case n.State == ring.NodeRemoved.String() && !n.Reachable:
			reach, leaders = "-", "-"
		case !n.Reachable:
			reach, leaders = "no", "?"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", n.ID, n.Addr, n.State, n.Replicas, leaders, meta, reach)
	}
	for _, n := range r.Nodes {
		if n.Error != "" {
			fmt.Fprintf(w, "\n%s unreachable: %s\n", n.ID, n.Error)
		}
	}
}

// nodeChangeResult is the output of nodes drain and nodes remove.
type nodeChangeResult struct {
	Node     string `json:"node"`
	State    string `json:"state"`    // draining, drained or removed
	Epoch    uint64 `json:"epoch"`    // map epoch of the change (drained: of the last map seen)
	Replicas int    `json:"replicas"` // replicas it still holds, per the newest map known
}

func (r *nodeChangeResult) table(w io.Writer) {
	switch r.State {
	case "draining":
		fmt.Fprintf(w, "node %s is draining (map epoch %d); %d replicas to move off it\n", r.Node, r.Epoch, r.Replicas)
		fmt.Fprintf(w, "follow with: kvctl nodes drain %s --wait; then: kvctl nodes remove %s\n", r.Node, r.Node)
	case "drained":
		fmt.Fprintf(w, "node %s is drained (map epoch %d): it holds no replicas and placement is balanced\n", r.Node, r.Epoch)
		fmt.Fprintf(w, "remove it with: kvctl nodes remove %s\n", r.Node)
	default:
		fmt.Fprintf(w, "node %s is %s (map epoch %d)\n", r.Node, r.State, r.Epoch)
	}
}

// checkNode reports a usage error when the map has no node id.
func checkNode(m *ring.Map, id string) error {
	if _, ok := m.Node(id); ok {
		return nil
	}
	ids := make([]string, 0, len(m.Nodes))
	for _, n := range m.Nodes {
		ids = append(ids, n.ID)
	}
	return usagef("node %q is not in the cluster map (epoch %d); its nodes are %s (kvctl nodes lists them)", id, m.Epoch, strings.Join(ids, ", "))
}

func newNodesCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "nodes",
		Short: "List nodes; drain and remove them",
		Long: `Without a subcommand, list the nodes of the cluster map with their state
(joining, active, draining, removed, down), the replicas the map places on
each, the shards each leads (as it reports), whether it is a meta voter, and
whether it answered.

To take a node out of the cluster: kvctl nodes drain ID --wait, then
kvctl nodes remove ID.`,
		Args: subcommandArgs("drain", "remove"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				m := c.Map()
				reports, errs := nodeStatuses(ctx, c, m)
				return a.print(buildNodes(m, reports, errs))
			})
		},
	}
	cmd.AddCommand(newNodesDrainCmd(a), newNodesRemoveCmd(a))
	return cmd
}

func newNodesDrainCmd(a *app) *cobra.Command {
	var w waitFlags
	cmd := &cobra.Command{
		Use:   "drain ID",
		Short: "Move every replica and leadership off a node",
		Long: `Mark the node draining: the cluster moves its replicas and leaderships to the
other active nodes. The cluster refuses (exit 1, saying why) when the other
active nodes cannot hold every shard's replicas. Draining a draining node is
harmless, so rerunning with --wait resumes watching.

With --wait, poll until the node holds no replicas and placement is balanced,
printing a progress line to stderr whenever it changes. It exits 0 when done,
1 if not done within --wait-timeout (default 10m; the drain goes on in the
cluster; the global --timeout bounds each request, not the wait), and 3 if
the cluster cannot be reached. A drain makes no progress while rebalancing is
paused (kvctl rebalance resume).`,
		Args: exactArgs(1, "ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := args[0]
			if err := w.validate(); err != nil {
				return err
			}
			return a.withLongClient(cmd, func(c *client.Client) error {
				if err := checkNode(c.Map(), id); err != nil {
					return err
				}
				ctx, cancel := a.reqContextFrom(cmd.Context())
				epoch, err := c.DrainNode(ctx, id)
				if err == nil {
					// Best effort: count the replicas left on a current map;
					// the cached one will do if this fails.
					_, _ = c.RefreshMap(ctx)
				}
				cancel()
				if err != nil {
					return err
				}
				res := &nodeChangeResult{Node: id, State: "draining", Epoch: epoch, Replicas: len(c.Map().ReplicasOn(id))}
				if !w.wait {
					return a.print(res)
				}
				fmt.Fprintf(a.stderr, "node %s is draining (map epoch %d); waiting up to %v for its %d replicas to move\n", id, epoch, w.budget, res.Replicas)
				initial := res.Replicas
				err = a.poll(cmd.Context(), w, fmt.Sprintf("node %s is not drained", id),
					fmt.Sprintf("the drain goes on in the cluster: rerun kvctl nodes drain %s --wait to keep waiting, or see kvctl rebalance status", id),
					func(ctx context.Context) (bool, string, error) {
						m, err := c.RefreshMap(ctx)
						if err != nil {
							return false, "", err
						}
						st, err := c.Rebalance(ctx, client.RebalanceStatusOnly)
						if err != nil {
							return false, "", err
						}
						left := len(m.ReplicasOn(id))
						res.Epoch, res.Replicas = max(m.Epoch, st.Epoch), left
						return left == 0 && st.Balanced, drainProgressLine(id, left, initial, st), nil
					})
				if err != nil {
					return err
				}
				res.State = "drained"
				return a.print(res)
			})
		},
	}
	w.register(cmd, "the node holds no replicas and placement is balanced")
	return cmd
}

// drainProgressLine is the progress line of nodes drain --wait. Progress is
// the share of the node's replicas (when the wait began) moved off it.
func drainProgressLine(id string, left, initial int, st *client.RebalanceStatus) string {
	pct := 100
	if initial > 0 {
		pct = 100 * max(initial-left, 0) / initial
	}
	s := fmt.Sprintf("epoch %d: %s holds %d of %d replicas %s %3d%%  misplaced %d, in flight %d, planned %d, pending shards %d",
		st.Epoch, id, left, initial, progressBar(pct, 20), pct, st.Misplaced, st.MovesInFlight, st.MovesPlanned, st.Pending)
	if left == 0 && !st.Balanced {
		s += ", settling"
	}
	if st.Paused {
		s += " (moves PAUSED: kvctl rebalance resume)"
	}
	return s
}

func newNodesRemoveCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "remove ID",
		Short: "Take a drained or dead node out of the cluster for good",
		Long: `Remove the node from the cluster map. Its ID is never reused and it may not
rejoin with its data. The cluster refuses (exit 1, saying why) while the node
is alive and still holds replicas: drain it first (kvctl nodes drain ID
--wait). A dead node may be removed directly; its replicas are replaced.`,
		Args: exactArgs(1, "ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := args[0]
			return a.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				if err := checkNode(c.Map(), id); err != nil {
					return err
				}
				epoch, err := c.RemoveNode(ctx, id)
				if err != nil {
					return err
				}
				return a.print(&nodeChangeResult{Node: id, State: "removed", Epoch: epoch})
			})
		},
	}
}
