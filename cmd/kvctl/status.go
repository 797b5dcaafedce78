package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"

	"github.com/spf13/cobra"

	"github.com/ridgeline-kv/ridgeline/client"
	"github.com/ridgeline-kv/ridgeline/ring"
)

// statusResult is the output of status.
type statusResult struct {
	ClusterID string         `json:"cluster_id"`
	Epoch     uint64         `json:"epoch"`
	Shards    uint32         `json:"shard_count"`
	RF        uint32         `json:"replication_factor"`
	Members   []memberStatus `json:"members"`
	ShardRows []shardStatus  `json:"shards"`
}

type memberStatus struct {
	ID        string `json:"id"`
	Addr      string `json:"addr"`
	State     string `json:"state"`
	Reachable bool   `json:"reachable"`
	Error     string `json:"error,omitempty"`
	Replicas  int    `json:"replicas"`
	Leaders   int    `json:"leaders"`
	Meta      string `json:"meta,omitempty"` // "leader", "voter" or ""
	Epoch     uint64 `json:"epoch,omitempty"`
}

type replicaStatus struct {
	Node         string `json:"node"`
	Role         string `json:"role"`
	State        string `json:"state,omitempty"` // raft state; empty when unreachable
	AppliedIndex uint64 `json:"applied_index"`
	Reachable    bool   `json:"reachable"`
}

type shardStatus struct {
	Shard    uint32          `json:"shard"`
	Leader   string          `json:"leader"`
	Replicas []replicaStatus `json:"replicas"`
	Lag      uint64          `json:"lag"` // highest minus lowest applied index of reachable replicas
}

// buildStatus combines the map with each node's status report (or the error
// reaching it). It is pure, for tests.
func buildStatus(m *ring.Map, reports map[string]*client.NodeStatus, errs map[string]error) *statusResult {
	res := &statusResult{ClusterID: m.ClusterID, Epoch: m.Epoch, Shards: m.ShardCount, RF: m.RF, Members: []memberStatus{}, ShardRows: []shardStatus{}}
	type key struct {
		node  string
		shard uint32
	}
	replicas := map[key]client.ReplicaStatus{}
	metaLeader := ""
	for id, st := range reports {
		for _, r := range st.Replicas {
			if r.Meta {
				if r.State == "Leader" {
					metaLeader = id
				}
				continue
			}
			replicas[key{id, r.Shard}] = r
		}
	}
	for _, n := range m.Nodes {
		ms := memberStatus{ID: n.ID, Addr: n.Addr, State: n.State.String(), Replicas: len(m.ReplicasOn(n.ID))}
		if st, ok := reports[n.ID]; ok {
			ms.Reachable, ms.Epoch = true, st.Epoch
			for _, r := range st.Replicas {
				if !r.Meta && r.State == "Leader" {
					ms.Leaders++
				}
			}
		} else if err := errs[n.ID]; err != nil {
			ms.Error = errorMessage(err)
		}
		if slices.Contains(m.MetaVoters, n.ID) {
			ms.Meta = "voter"
			if metaLeader == n.ID {
				ms.Meta = "leader"
			}
		}
		res.Members = append(res.Members, ms)
	}
	for _, s := range m.Shards {
		row := shardStatus{Shard: s.ID, Replicas: []replicaStatus{}}
		var lo, hi uint64
		first := true
		for _, r := range s.Replicas {
			rs := replicaStatus{Node: r.NodeID, Role: r.Role.String()}
			if st, ok := replicas[key{r.NodeID, s.ID}]; ok {
				rs.Reachable, rs.State, rs.AppliedIndex = true, st.State, st.AppliedIndex
				if st.State == "Leader" {
					row.Leader = r.NodeID
				}
				if row.Leader == "" && st.LeaderID != "" {
					row.Leader = st.LeaderID
				}
				if first || st.AppliedIndex < lo {
					lo = st.AppliedIndex
				}
				if first || st.AppliedIndex > hi {
					hi = st.AppliedIndex
				}
				first = false
			}
			row.Replicas = append(row.Replicas, rs)
		}
		row.Lag = hi - lo
		res.ShardRows = append(res.ShardRows, row)
	}
	return res
}

func (r *statusResult) table(w io.Writer) {
	fmt.Fprintf(w, "cluster %s  epoch %d  shards %d  replication factor %d\n\n", r.ClusterID, r.Epoch, r.Shards, r.RF)
	fmt.Fprintln(w, "MEMBER\tADDR\tSTATE\tHEALTH\tREPLICAS\tLEADERS\tMETA")
	for _, m := range r.Members {
		health := "ok"
		if !m.Reachable {
			health = "unreachable"
		}
		meta := m.Meta
		if meta == "" {
			meta = "-"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%d\t%s\n", m.ID, m.Addr, m.State, health, m.Replicas, m.Leaders, meta)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "SHARD\tLEADER\tREPLICAS (applied index)\tLAG")
	for _, s := range r.ShardRows {
		parts := make([]string, 0, len(s.Replicas))
		for _, rp := range s.Replicas {
			p := rp.Node + "="
			if rp.Reachable {
				p += fmt.Sprint(rp.AppliedIndex)
			} else {
				p += "?"
			}
			if rp.Role != "voter" {
				p += "(" + rp.Role + ")"
			}
			parts = append(parts, p)
		}
		leader := s.Leader
		if leader == "" {
			leader = "none"
		}
		fmt.Fprintf(w, "%d\t%s\t%s\t%d\n", s.Shard, leader, strings.Join(parts, " "), s.Lag)
	}
	for _, m := range r.Members {
		if m.Error != "" {
			fmt.Fprintf(w, "\n%s unreachable: %s\n", m.ID, m.Error)
		}
	}
}

func newStatusCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show members, shards, leaders and replication lag",
		Long: `Show the cluster map (members and their states, shards and their replicas)
together with what every node reports: which replicas lead and each replica's
applied index. Unreachable nodes are shown as such.`,
		Args: exactArgs(0, "none"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				m := c.Map()
				reports, errs := nodeStatuses(ctx, c, m)
				return a.print(buildStatus(m, reports, errs))
			})
		},
	}
}

// nodeStatuses asks every node of m for its status, concurrently.
func nodeStatuses(ctx context.Context, c *client.Client, m *ring.Map) (map[string]*client.NodeStatus, map[string]error) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	reports := map[string]*client.NodeStatus{}
	errs := map[string]error{}
	for _, n := range m.Nodes {
		if n.State == ring.NodeRemoved {
			continue
		}
		wg.Go(func() {
			st, err := c.NodeStatus(ctx, n.ID)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs[n.ID] = err
			} else {
				reports[n.ID] = st
			}
		})
	}
	wg.Wait()
	return reports, errs
}
