package replication_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ridgeline-kv/ridgeline/replication"
	"github.com/ridgeline-kv/ridgeline/replication/kvpb"
	"github.com/ridgeline-kv/ridgeline/replication/replicationtest"
	"github.com/ridgeline-kv/ridgeline/ring"
)

// Manual placement (kvctl shards move / transfer-leader): the meta leader
// pins a shard's replicas in the map and the planner carries the pin out.

// shardNodes returns the nodes of shard's voters (preference order) and
// learners in m.
func shardNodes(m *ring.Map, shard uint32) (voters, learners []string) {
	for _, r := range m.Shards[shard].Replicas {
		if r.Role == ring.RoleLearner {
			learners = append(learners, r.NodeID)
		} else {
			voters = append(voters, r.NodeID)
		}
	}
	return voters, learners
}

// runningMaps returns the cluster maps of the running nodes that answer,
// newest epoch first.
func runningMaps(t *testing.T, c *replicationtest.Cluster) []*ring.Map {
	var maps []*ring.Map
	for i, tn := range c.Nodes {
		if tn.Node() == nil {
			continue
		}
		if m, err := clusterMap(t, c, i); err == nil {
			maps = append(maps, m)
		}
	}
	slices.SortFunc(maps, func(a, b *ring.Map) int { return cmp.Compare(b.Epoch, a.Epoch) })
	return maps
}

// nodeIndex is the index in c.Nodes of the node with the given ID.
func nodeIndex(c *replicationtest.Cluster, id string) int {
	return slices.IndexFunc(c.Nodes, func(tn *replicationtest.TestNode) bool { return tn.ID == id })
}

// shardLeader returns the status of the replica that leads shard, as its
// node reports it, and the node's index.
func shardLeader(c *replicationtest.Cluster, shard uint32) (*kvpb.ReplicaStatus, int, error) {
	for i := range c.Nodes {
		st, err := c.Status(i)
		if err != nil {
			continue
		}
		for _, r := range st.Replicas {
			if !r.Meta && r.Shard == shard && r.State == "Leader" {
				return r, i, nil
			}
		}
	}
	return nil, -1, fmt.Errorf("shard %d has no leader", shard)
}

// raftMatchesMap checks that shard's leader runs exactly the map's voters
// and learners in its raft configuration.
func raftMatchesMap(c *replicationtest.Cluster, m *ring.Map, shard uint32) error {
	st, _, err := shardLeader(c, shard)
	if err != nil {
		return err
	}
	var voters, learners []string
	for _, r := range m.Shards[shard].Replicas {
		if r.Role == ring.RoleLearner {
			learners = append(learners, r.ID)
		} else {
			voters = append(voters, r.ID)
		}
	}
	if !sameSet(st.ConfigVoters, voters) || !sameSet(st.ConfigLearners, learners) {
		return fmt.Errorf("shard %d: raft voters %v learners %v; map (epoch %d) voters %v learners %v",
			shard, st.ConfigVoters, st.ConfigLearners, m.Epoch, voters, learners)
	}
	return nil
}

func sameSet(a, b []string) bool {
	return slices.Equal(slices.Sorted(slices.Values(a)), slices.Sorted(slices.Values(b)))
}

// readAll checks that the n keys with prefix (written by putAll) read back.
func readAll(t *testing.T, c *replicationtest.Cluster, shards uint32, prefix string, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for k := 0; k < n; k++ {
		key := fmt.Sprintf("%s-%04d", prefix, k)
		err := onLeader(t, c, shards, key, func(kv kvpb.KVClient) error {
			resp, err := kv.Get(ctx, &kvpb.GetRequest{Key: []byte(key)})
			if err == nil && (!resp.Found || string(resp.Kv.Value) != key) {
				return fmt.Errorf("key %s: found=%v value %q", key, resp.Found, resp.GetKv().GetValue())
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// atNodes reports whether voters are the nodes of want, want[0] first.
func atNodes(voters, want []string) bool {
	return len(voters) > 0 && len(want) > 0 && voters[0] == want[0] && sameSet(voters, want)
}

// settledShard waits until shard's replicas in the map are want (all
// voters, want[0] the preferred leader; the planner does not order the
// others) and its raft configuration and running replicas match.
func settledShard(t *testing.T, c *replicationtest.Cluster, from int, shard uint32, want []string) *ring.Map {
	t.Helper()
	var m *ring.Map
	c.Eventually(60*time.Second, fmt.Sprintf("shard %d on %v", shard, want), func() error {
		var err error
		if m, err = clusterMap(t, c, from); err != nil {
			return err
		}
		voters, learners := shardNodes(m, shard)
		if !atNodes(voters, want) || len(learners) > 0 {
			return fmt.Errorf("epoch %d: shard %d voters %v learners %v", m.Epoch, shard, voters, learners)
		}
		if err := raftMatchesMap(c, m, shard); err != nil {
			return err
		}
		return placementLive(c, m)
	})
	return m
}

func wantRefused(t *testing.T, what string, err error, msg string) {
	t.Helper()
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(status.Convert(err).Message(), "replication: refused: ") ||
		!strings.Contains(err.Error(), msg) {
		t.Errorf("%s: got %v; want FailedPrecondition, refused, saying %q", what, err, msg)
	}
}

// fastControl shortens the placement loops so each move step takes about
// 300ms rather than a second.
func fastControl(_ int, cfg *replication.Config) { cfg.ControlInterval = 300 * time.Millisecond }

func TestCluster_MoveReplicaAndTransferLeader(t *testing.T) {
	const shards = 4
	c := replicationtest.NewCluster(t, replicationtest.Options{Nodes: 4, Shards: shards, Configure: fastControl})
	m := converged(t, c, 0, nil, func(*ring.Map) error { return nil })
	putAll(t, c, shards, 1, "pin", 40)
	admin := adminClient(t, c.Nodes[3].Addr()) // not a meta voter: requests are forwarded
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	const shard = 1
	voters, _ := shardNodes(m, shard)
	var to string
	for _, n := range m.Nodes {
		if !slices.Contains(voters, n.ID) {
			to = n.ID
		}
	}
	from := voters[1] // a follower's replica; ring tests cover moving the preferred leader's
	want := slices.Clone(voters)
	want[1] = to

	t.Run("refused", func(t *testing.T) {
		for _, tt := range []struct {
			name string
			call func() error
			msg  string
		}{
			{"no such shard", func() error {
				_, err := admin.MoveReplica(ctx, &kvpb.MoveReplicaRequest{Shard: 99, FromNode: from, ToNode: to})
				return err
			}, "shard 99 does not exist: the cluster has 4 shards (0-3)"},
			{"same node", func() error {
				_, err := admin.MoveReplica(ctx, &kvpb.MoveReplicaRequest{Shard: shard, FromNode: from, ToNode: from})
				return err
			}, "both nodes are " + from},
			{"to unknown", func() error {
				_, err := admin.MoveReplica(ctx, &kvpb.MoveReplicaRequest{Shard: shard, FromNode: to, ToNode: "n9"})
				return err
			}, `node "n9" is not in the cluster map`},
			{"to holds one", func() error {
				_, err := admin.MoveReplica(ctx, &kvpb.MoveReplicaRequest{Shard: shard, FromNode: from, ToNode: voters[0]})
				return err
			}, "node " + voters[0] + " already holds a replica of shard 1"},
			{"from holds none", func() error {
				_, err := admin.MoveReplica(ctx, &kvpb.MoveReplicaRequest{Shard: shard, FromNode: "n9", ToNode: to})
				return err
			}, "node n9 holds no replica of shard 1"},
			{"leader without replica", func() error {
				_, err := admin.TransferLeader(ctx, &kvpb.TransferLeaderRequest{Shard: shard, ToNode: to})
				return err
			}, "node " + to + " holds no replica of shard 1"},
			{"unpin no such shard", func() error {
				_, err := admin.UnpinShard(ctx, &kvpb.UnpinShardRequest{Shard: 4})
				return err
			}, "shard 4 does not exist"},
		} {
			wantRefused(t, tt.name, tt.call(), tt.msg)
		}
	})

	resp, err := admin.MoveReplica(ctx, &kvpb.MoveReplicaRequest{Shard: shard, FromNode: from, ToNode: to})
	if err != nil {
		t.Fatalf("MoveReplica(%d, %s, %s): %v", shard, from, to, err)
	}
	t.Logf("shard %d: moving %s -> %s, pinned at epoch %d", shard, from, to, resp.Epoch)
	m = settledShard(t, c, 0, shard, want)
	if got := m.Pin(shard); !slices.Equal(got, want) || !m.AtPin(shard) {
		t.Errorf("pin %v (carried out: %v); want %v", got, m.AtPin(shard), want)
	}
	readAll(t, c, shards, "pin", 40)

	// Transfer leadership to a follower: raft leadership moves there and
	// stays (the balance loop follows the pin, the planner keeps it).
	voters, _ = shardNodes(m, shard)
	leaderTo := voters[2]
	if _, err := admin.TransferLeader(ctx, &kvpb.TransferLeaderRequest{Shard: shard, ToNode: leaderTo}); err != nil {
		t.Fatalf("TransferLeader(%d, %s): %v", shard, leaderTo, err)
	}
	wantLeader := []string{leaderTo, voters[0], voters[1]}
	settledShard(t, c, 0, shard, wantLeader)
	c.Eventually(30*time.Second, "raft leadership on "+leaderTo, func() error {
		_, i, err := shardLeader(c, shard)
		if err != nil || c.Nodes[i].ID != leaderTo {
			return fmt.Errorf("shard %d leader at %d (%v); want %s", shard, i, err, leaderTo)
		}
		return nil
	})
	// Hold: over several control (300ms) and balance (600ms) rounds,
	// nothing moves leadership or the replicas back.
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); {
		if _, i, err := shardLeader(c, shard); err == nil && c.Nodes[i].ID != leaderTo {
			t.Fatalf("shard %d leadership moved back to %s", shard, c.Nodes[i].ID)
		}
		m, err := clusterMap(t, c, 0)
		if err != nil {
			t.Fatal(err)
		}
		if v, _ := shardNodes(m, shard); !slices.Equal(v, wantLeader) || !m.AtPin(shard) {
			t.Fatalf("epoch %d: shard %d replicas changed to %v; want %v", m.Epoch, shard, v, wantLeader)
		}
		time.Sleep(200 * time.Millisecond) // observation interval of a hold, not synchronisation
	}
	readAll(t, c, shards, "pin", 40)

	// Asking again is idempotent; unpinning hands the shard back to the
	// planner.
	again, err := admin.TransferLeader(ctx, &kvpb.TransferLeaderRequest{Shard: shard, ToNode: leaderTo})
	if m, _ := clusterMap(t, c, 0); err != nil || again.Epoch != m.Epoch {
		t.Errorf("repeated TransferLeader: %v, %v; want success without a new epoch", again, err)
	}
	if _, err := admin.UnpinShard(ctx, &kvpb.UnpinShardRequest{Shard: shard}); err != nil {
		t.Fatalf("UnpinShard: %v", err)
	}
	converged(t, c, 0, nil, func(m *ring.Map) error {
		if m.Pins != nil {
			return fmt.Errorf("epoch %d: pins %v after unpin", m.Epoch, m.Pins)
		}
		return nil
	})
	readAll(t, c, shards, "pin", 40)
}

// TestCluster_MoveReplicaKilledAtEachStep: a node killed during each step
// of a move (before promote, after promote, during the leadership transfer,
// before the remove) leaves no shard without quorum once it is back, and
// the move completes. One cluster; each step moves the preferred leader's
// replica of another shard (so the move has all four steps: add learner,
// promote, transfer the preference, remove). Rebalancing is paused while
// the test kills a node and writes, so the planner does not run ahead.
func TestCluster_MoveReplicaKilledAtEachStep(t *testing.T) {
	const shards = 4
	c := replicationtest.NewCluster(t, replicationtest.Options{Nodes: 4, Shards: shards, Configure: fastControl})
	converged(t, c, 0, nil, func(*ring.Map) error { return nil })
	putAll(t, c, shards, 1, "before", 40)

	type move struct {
		shard    uint32
		from, to string
		pin      []string
	}
	leaderOf := func(shard uint32) string {
		if _, i, err := shardLeader(c, shard); err == nil {
			return c.Nodes[i].ID
		}
		return ""
	}
	// adminOn returns an Admin client on a running node other than skip.
	adminOn := func(t *testing.T, skip string) kvpb.AdminClient {
		for _, tn := range c.Nodes {
			if tn.ID != skip && tn.Node() != nil {
				return adminClient(t, tn.Addr())
			}
		}
		t.Fatal("no running node")
		return nil
	}
	rebalance := func(t *testing.T, skip string, action kvpb.RebalanceRequest_Action) {
		t.Helper()
		c.Eventually(30*time.Second, "rebalance "+action.String(), func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, err := adminOn(t, skip).Rebalance(ctx, &kvpb.RebalanceRequest{Action: action})
			return err
		})
	}

	for i, tt := range []struct {
		name string
		// reached reports whether the move is at the step (m is the
		// current map, raft the shard leader's status, nil unless
		// needsRaft: collecting it takes every node's status, which under
		// load can outlast a step).
		reached   func(mv move, m *ring.Map, raft *kvpb.ReplicaStatus) bool
		needsRaft bool
		victim    func(mv move) string
	}{
		{"before promote", func(mv move, m *ring.Map, raft *kvpb.ReplicaStatus) bool {
			_, learners := shardNodes(m, mv.shard)
			return slices.Equal(learners, []string{mv.to}) && len(raft.ConfigLearners) == 1
		}, true, func(mv move) string { return mv.to }},
		{"after promote", func(mv move, m *ring.Map, raft *kvpb.ReplicaStatus) bool {
			voters, _ := shardNodes(m, mv.shard)
			return len(voters) == 4 && len(raft.ConfigVoters) == 4
		}, true, func(mv move) string { return mv.from }},
		{"during leadership transfer", func(mv move, m *ring.Map, _ *kvpb.ReplicaStatus) bool {
			voters, _ := shardNodes(m, mv.shard)
			return voters[0] == mv.to && slices.Contains(voters, mv.from)
		}, false, func(mv move) string { return leaderOf(mv.shard) }},
		{"before remove", func(mv move, m *ring.Map, _ *kvpb.ReplicaStatus) bool {
			voters, _ := shardNodes(m, mv.shard)
			return !slices.Contains(voters, mv.from)
		}, false, func(mv move) string { return leaderOf(mv.shard) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			maps := runningMaps(t, c)
			if len(maps) == 0 {
				t.Fatal("no node answered ClusterMap")
			}
			m := maps[0] // the newest: a lagging node's map may name an old preferred leader
			mv := move{shard: uint32(i)}
			voters, _ := shardNodes(m, mv.shard)
			mv.from = voters[0]
			for _, n := range m.Nodes {
				if !slices.Contains(voters, n.ID) {
					mv.to = n.ID
				}
			}
			mv.pin = append([]string{mv.to}, voters[1:]...)

			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			rebalance(t, "", kvpb.RebalanceRequest_PAUSE)
			if _, err := adminOn(t, "").MoveReplica(ctx, &kvpb.MoveReplicaRequest{Shard: mv.shard, FromNode: mv.from, ToNode: mv.to}); err != nil {
				t.Fatalf("MoveReplica(%d, %s, %s): %v", mv.shard, mv.from, mv.to, err)
			}
			rebalance(t, "", kvpb.RebalanceRequest_RESUME)

			// Watch the shard's map and raft configuration closely (a step
			// can last less than one of Eventually's backed-off polls); at
			// the step, pause and kill.
			var at *ring.Map
			victim := ""
			err := replicationtest.Watch(60*time.Second, 2*time.Millisecond, func() error {
				// Every running node's map: one that catches up applies
				// several epochs at once and may skip the step.
				maps := runningMaps(t, c)
				if len(maps) == 0 {
					return errors.New("no node answered ClusterMap")
				}
				var st *kvpb.ReplicaStatus
				if tt.needsRaft {
					var err error
					if st, _, err = shardLeader(c, mv.shard); err != nil {
						return err
					}
				}
				i := slices.IndexFunc(maps, func(m *ring.Map) bool { return tt.reached(mv, m, st) })
				if i < 0 {
					v, l := shardNodes(maps[0], mv.shard)
					return fmt.Errorf("epoch %d: shard %d voters %v learners %v; raft voters %v learners %v", maps[0].Epoch, mv.shard, v, l, st.GetConfigVoters(), st.GetConfigLearners())
				}
				m := maps[i]
				if victim = tt.victim(mv); victim == "" {
					return fmt.Errorf("shard %d leader unknown", mv.shard)
				}
				at = m
				return nil
			})
			if err != nil {
				t.Fatalf("step %q never reached: %v", tt.name, err)
			}
			rebalance(t, "", kvpb.RebalanceRequest_PAUSE)
			vi := nodeIndex(c, victim)
			v, l := shardNodes(at, mv.shard)
			t.Logf("shard %d, %s -> %s: at epoch %d (voters %v, learners %v) killing %s", mv.shard, mv.from, mv.to, at.Epoch, v, l, victim)
			c.Kill(vi)

			// Every shard keeps a quorum: writes succeed with the victim down.
			during := fmt.Sprintf("during-%d", i)
			putAll(t, c, shards, uint64(10+i), during, 20)

			rebalance(t, victim, kvpb.RebalanceRequest_RESUME)
			c.Restart(vi)

			m = settledShard(t, c, (vi+1)%len(c.Nodes), mv.shard, mv.pin)
			if n := len(m.Shards[mv.shard].Replicas); n != int(m.RF) {
				t.Errorf("shard %d has %d replicas; want RF %d", mv.shard, n, m.RF)
			}
			for _, s := range m.Shards {
				if err := raftMatchesMap(c, m, s.ID); err != nil {
					t.Error(err)
				}
			}
			readAll(t, c, shards, during, 20)
			t.Logf("%s: done in %v", tt.name, time.Since(start).Round(100*time.Millisecond))
		})
	}
	readAll(t, c, shards, "before", 40)
}
