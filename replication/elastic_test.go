package replication_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/ridgeline-kv/ridgeline/replication"

	"github.com/ridgeline-kv/ridgeline/replication/kvpb"
	"github.com/ridgeline-kv/ridgeline/replication/replicationtest"
	"github.com/ridgeline-kv/ridgeline/ring"
)

// clusterMap reads the committed map from node i.
func clusterMap(t *testing.T, c *replicationtest.Cluster, i int) (*ring.Map, error) {
	t.Helper()
	conn, err := grpc.NewClient(c.Nodes[i].Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	resp, err := kvpb.NewAdminClient(conn).ClusterMap(ctx, &kvpb.ClusterMapRequest{})
	if err != nil {
		return nil, err
	}
	return ring.FromProto(resp.GetMap())
}

// placementLive checks that every replica of m runs on its node with the
// raft role the map gives it, and every shard has a leader.
func placementLive(c *replicationtest.Cluster, m *ring.Map) error {
	running := map[string]*kvpb.ReplicaStatus{}
	for i := range c.Nodes {
		st, err := c.Status(i)
		if err != nil {
			continue
		}
		for _, r := range st.Replicas {
			running[r.ReplicaId] = r
		}
	}
	for id, st := range running {
		if st.Meta {
			continue
		}
		if _, _, ok := m.Replica(id); !ok {
			return fmt.Errorf("replica %s still runs but the map (epoch %d) removed it", id, m.Epoch)
		}
	}
	for _, sh := range m.Shards {
		leaders := 0
		for _, rep := range sh.Replicas {
			st, ok := running[rep.ID]
			if !ok {
				return fmt.Errorf("shard %d: replica %s is not running", sh.ID, rep.ID)
			}
			if st.State == "Leader" {
				leaders++
			}
		}
		if leaders != 1 {
			return fmt.Errorf("shard %d: %d leaders among its replicas", sh.ID, leaders)
		}
	}
	return nil
}

func TestCluster_JoinRebalancesOntoNewNode(t *testing.T) {
	const shards = 8
	c := replicationtest.NewCluster(t, replicationtest.Options{Shards: shards})
	putAll(t, c, shards, 1, "before-join", 100)
	newNode := c.AddNode()

	c.Eventually(90*time.Second, "the new node is active and the placement balanced", func() error {
		m, err := clusterMap(t, c, 0)
		if err != nil {
			return err
		}
		nd, ok := m.Node(c.Nodes[newNode].ID)
		if !ok || nd.State != ring.NodeActive {
			return fmt.Errorf("epoch %d: new node is %+v", m.Epoch, nd)
		}
		if res := ring.Plan(m, func(string) bool { return true }, ring.PlanOptions{}); !res.Done() {
			return fmt.Errorf("epoch %d: placement not converged: %d moves, %d pending", m.Epoch, len(res.Moves), len(res.Pending))
		}
		if b := ring.Balance(m); !b.Balanced {
			return fmt.Errorf("epoch %d: not balanced: %+v", m.Epoch, b)
		}
		if len(m.ReplicasOn(nd.ID)) == 0 {
			return fmt.Errorf("epoch %d: no replicas on the new node", m.Epoch)
		}
		return placementLive(c, m)
	})
	m, _ := clusterMap(t, c, 0)
	t.Logf("converged at epoch %d: %d replicas on the new node", m.Epoch, len(m.ReplicasOn(c.Nodes[newNode].ID)))

	// Every acknowledged key is still there, and the new node serves its
	// replicas' keys from local state.
	putAll(t, c, shards, 2, "after-join", 20)
	c.Eventually(30*time.Second, "all keys readable", func() error {
		for _, prefix := range []string{"before-join", "after-join"} {
			n := map[string]int{"before-join": 100, "after-join": 20}[prefix]
			for k := 0; k < n; k++ {
				key := fmt.Sprintf("%s-%04d", prefix, k)
				err := onLeader(t, c, shards, key, func(kv kvpb.KVClient) error {
					resp, err := kv.Get(context.Background(), &kvpb.GetRequest{Key: []byte(key)})
					if err == nil && (!resp.Found || string(resp.Kv.Value) != key) {
						return fmt.Errorf("key %s: found=%v value %q", key, resp.Found, resp.GetKv().GetValue())
					}
					return err
				})
				if err != nil {
					return err
				}
			}
		}
		return nil
	})
}

func adminClient(t *testing.T, addr string) kvpb.AdminClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return kvpb.NewAdminClient(conn)
}

// converged waits until the map has no moves left and its placement runs.
func converged(t *testing.T, c *replicationtest.Cluster, from int, down map[string]bool, check func(m *ring.Map) error) *ring.Map {
	t.Helper()
	var last *ring.Map
	c.Eventually(90*time.Second, "placement converged", func() error {
		m, err := clusterMap(t, c, from)
		if err != nil {
			return err
		}
		last = m
		res := ring.Plan(m, func(string) bool { return true }, ring.PlanOptions{Down: func(id string) bool { return down[id] }})
		if !res.Done() {
			return fmt.Errorf("epoch %d: %d moves, %d pending", m.Epoch, len(res.Moves), len(res.Pending))
		}
		if err := check(m); err != nil {
			return err
		}
		return placementLive(c, m)
	})
	return last
}

func TestCluster_DrainRemoveAndRefuseRestart(t *testing.T) {
	const shards = 8
	c := replicationtest.NewCluster(t, replicationtest.Options{Nodes: 4, Shards: shards})
	putAll(t, c, shards, 1, "drain", 60)
	victim := c.Nodes[3] // not a meta voter (n1..n3 are)
	admin := adminClient(t, victim.Addr())
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()

	if _, err := admin.DrainNode(ctx, &kvpb.DrainNodeRequest{NodeId: victim.ID}); err != nil {
		t.Fatalf("drain %s: %v", victim.ID, err)
	}
	converged(t, c, 0, nil, func(m *ring.Map) error {
		if nd, _ := m.Node(victim.ID); nd.State != ring.NodeDraining || len(m.ReplicasOn(victim.ID)) != 0 {
			return fmt.Errorf("epoch %d: %s is %v with %d replicas", m.Epoch, victim.ID, nd.State, len(m.ReplicasOn(victim.ID)))
		}
		return nil
	})

	// Three active nodes left for RF 3: draining another must be refused.
	_, err := admin.DrainNode(ctx, &kvpb.DrainNodeRequest{NodeId: c.Nodes[0].ID})
	if st, _ := status.FromError(err); st.Code() != codes.FailedPrecondition {
		t.Fatalf("drain below RF: got %v, want FailedPrecondition saying why", err)
	}
	t.Logf("drain below RF refused: %v", err)

	if _, err := admin.RemoveNode(ctx, &kvpb.RemoveNodeRequest{NodeId: victim.ID}); err != nil {
		t.Fatalf("remove %s: %v", victim.ID, err)
	}
	// The removed node stops by itself, and refuses to start on its data.
	select {
	case err := <-victim.Node().Fatal():
		if !strings.Contains(err.Error(), "was removed") {
			t.Fatalf("removed node stopped with %v; want it to say it was removed", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("removed node %s kept running", victim.ID)
	}
	c.Kill(3)
	cfg := replication.DefaultConfig()
	cfg.NodeID, cfg.DataDir, cfg.Addr, cfg.GossipAddr = victim.ID, victim.DataDir, victim.IP+":0", victim.IP+":0"
	if _, err := replication.NewNode(cfg); err == nil || !strings.Contains(err.Error(), "new --id") {
		t.Fatalf("restarting a removed node: got %v; want a refusal that says to use a new --id and empty --data-dir", err)
	}
	c.Nodes = c.Nodes[:3]
	for k := 0; k < 60; k++ {
		key := fmt.Sprintf("drain-%04d", k)
		if err := onLeader(t, c, shards, key, func(kv kvpb.KVClient) error {
			resp, err := kv.Get(ctx, &kvpb.GetRequest{Key: []byte(key)})
			if err == nil && !resp.Found {
				return fmt.Errorf("key %s lost", key)
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestCluster_DeadNodeReplacedThenRejoinsEmpty(t *testing.T) {
	for _, tc := range []struct {
		name   string
		victim int
	}{
		{"data node", 3},  // n4: replicas only
		{"meta voter", 0}, // n1: replicas and a meta voter (maybe the meta leader)
	} {
		t.Run(tc.name, func(t *testing.T) { testDeadNodeReplaced(t, tc.victim) })
	}
}

func testDeadNodeReplaced(t *testing.T, vi int) {
	const shards = 8
	c := replicationtest.NewCluster(t, replicationtest.Options{Nodes: 4, Shards: shards, Configure: func(i int, cfg *replication.Config) {
		cfg.DeadNodeGrace = 2 * time.Second
	}})
	putAll(t, c, shards, 1, "dead", 60)
	victim := c.Nodes[vi]
	live := (vi + 1) % 4
	before, _ := clusterMap(t, c, live)
	old := map[string]bool{}
	for _, ref := range before.ReplicasOn(victim.ID) {
		old[ref.Replica.ID] = true
	}
	c.Kill(vi)
	converged(t, c, live, map[string]bool{victim.ID: true}, func(m *ring.Map) error {
		if n := len(m.ReplicasOn(victim.ID)); n != 0 {
			return fmt.Errorf("epoch %d: dead node still holds %d replicas", m.Epoch, n)
		}
		if containsID(m.MetaVoters, victim.ID) || len(m.MetaVoters) != 3 {
			return fmt.Errorf("epoch %d: meta voters %v, want 3 without %s", m.Epoch, m.MetaVoters, victim.ID)
		}
		for _, s := range m.Shards {
			if len(s.Replicas) != 3 {
				return fmt.Errorf("shard %d has %d replicas, want 3", s.ID, len(s.Replicas))
			}
		}
		return nil
	})
	// Wait until the meta group's raft configuration itself no longer holds
	// the victim (not just the map): a node whose meta replica was removed
	// while it was down hears nothing through it and must still learn newer
	// maps (regression: chaos seed 202, a restarted ex-meta voter stayed on
	// its old map and never became ready).
	c.Eventually(30*time.Second, "meta configuration without the victim", func() error {
		for i := range c.Nodes {
			if i == vi {
				continue
			}
			st, err := c.Status(i)
			if err != nil {
				return err
			}
			for _, r := range st.Replicas {
				if r.Meta && r.Voters != 3 {
					return fmt.Errorf("node %s: meta replica counts %d voters, want 3", st.Node.Id, r.Voters)
				}
			}
		}
		return nil
	})
	c.Restart(vi)
	// It rejoins as an active member; its old replicas (and meta replica)
	// are deleted, not revived.
	c.Eventually(60*time.Second, "old replicas garbage-collected", func() error {
		st, err := c.Status(vi)
		if err != nil {
			return err
		}
		for _, r := range st.Replicas {
			if old[r.ReplicaId] || r.Meta {
				return fmt.Errorf("stale replica %s runs again", r.ReplicaId)
			}
		}
		m, err := clusterMap(t, c, live)
		if err != nil {
			return err
		}
		if nd, _ := m.Node(victim.ID); nd.State != ring.NodeActive {
			return fmt.Errorf("rejoined node is %v", nd.State)
		}
		return nil
	})
	converged(t, c, live, nil, func(*ring.Map) error { return nil })
	for k := 0; k < 60; k++ {
		key := fmt.Sprintf("dead-%04d", k)
		if err := onLeader(t, c, shards, key, func(kv kvpb.KVClient) error {
			resp, err := kv.Get(context.Background(), &kvpb.GetRequest{Key: []byte(key)})
			if err == nil && !resp.Found {
				return fmt.Errorf("key %s lost", key)
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
}

func containsID(ids []string, id string) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

// A node gossip has seen but the map has not admitted yet keeps the cluster
// "not balanced", so an operator waiting for balance after starting a node
// does not return early.
func TestCluster_RebalanceStatusCountsUnadmittedNodes(t *testing.T) {
	c := replicationtest.NewCluster(t, replicationtest.Options{Shards: 4})
	admin := adminClient(t, c.Nodes[0].Addr())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := admin.Rebalance(ctx, &kvpb.RebalanceRequest{Action: kvpb.RebalanceRequest_PAUSE}); err != nil {
		t.Fatal(err)
	}
	st, err := admin.Rebalance(ctx, &kvpb.RebalanceRequest{})
	if err != nil || !st.Paused || !st.Balanced {
		t.Fatalf("before the join: %+v, %v; want paused and balanced", st, err)
	}
	c.AddNode()
	c.Eventually(30*time.Second, "status reports the joining node", func() error {
		st, err := admin.Rebalance(ctx, &kvpb.RebalanceRequest{})
		if err != nil {
			return err
		}
		if st.Balanced {
			return fmt.Errorf("epoch %d: balanced while a node joins (paused rebalancing keeps it unplaced)", st.Epoch)
		}
		return nil
	})
}
