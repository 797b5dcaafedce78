package replication_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

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
