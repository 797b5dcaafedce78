package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/ridgeline-kv/ridgeline/replication/kvpb"
	"github.com/ridgeline-kv/ridgeline/replication/replicationtest"
	"github.com/ridgeline-kv/ridgeline/ring"
)

func adminAt(t *testing.T, addr string) kvpb.AdminClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return kvpb.NewAdminClient(conn)
}

// waitPlacement waits until the map read from addr satisfies cond and its
// placement has converged (no moves left, balanced).
func waitPlacement(t *testing.T, c *procCluster, addr string, what string, down map[string]bool, cond func(m *ring.Map) error) *ring.Map {
	t.Helper()
	admin := adminAt(t, addr)
	var last *ring.Map
	err := replicationtest.Eventually(180*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		resp, err := admin.ClusterMap(ctx, &kvpb.ClusterMapRequest{})
		if err != nil {
			return err
		}
		m, err := ring.FromProto(resp.GetMap())
		if err != nil {
			return err
		}
		last = m
		if res := ring.Plan(m, func(string) bool { return true }, ring.PlanOptions{Down: func(id string) bool { return down[id] }}); !res.Done() {
			return fmt.Errorf("epoch %d: %d moves, %d pending", m.Epoch, len(res.Moves), len(res.Pending))
		}
		if b := ring.Balance(m); !b.Balanced {
			return fmt.Errorf("epoch %d: not balanced (max/avg replicas %.2f, max leaders %d of %d)", m.Epoch, b.ReplicaRatio, b.MaxLeaders, b.LeaderLimit)
		}
		return cond(m)
	})
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	t.Logf("%s: epoch %d", what, last.Epoch)
	return last
}

func TestElastic_JoinDrainKillUnderLoad(t *testing.T) {
	c := startCluster(t, 3, e2eShards, 60)
	for _, p := range c.procs {
		p.extra = []string{"--dead-node-grace", "3s"}
	}
	cl := c.client(t)
	want := writeKeys(t, cl, "elastic", 200)

	// A workload runs throughout; every acknowledged write must survive.
	var (
		mu     sync.Mutex
		acked  = map[string]string{}
		failed atomic.Int64
	)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil && i < 2500; i++ { // bounded: read back at the end
				k, v := fmt.Sprintf("load%d/%06d", w, i), fmt.Sprintf("v%d", i)
				wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
				err := cl.Put(wctx, k, []byte(v))
				wcancel()
				if err == nil {
					mu.Lock()
					acked[k] = v
					mu.Unlock()
				} else if ctx.Err() == nil {
					failed.Add(1)
					t.Errorf("write %s failed after the client's retries: %v", k, err)
				}
			}
		}()
	}
	defer func() { cancel(); wg.Wait() }()

	// Two nodes join (no --bootstrap-expect).
	root := filepath.Dir(c.procs[0].dataDir)
	for i := 3; i < 5; i++ {
		ip := fmt.Sprintf("127.0.0.%d", 60+i)
		ports := freePorts(t, ip, 3)
		p := &proc{t: t, id: fmt.Sprintf("n%d", i+1), ip: ip, dataDir: filepath.Join(root, fmt.Sprintf("n%d", i+1)),
			addr: ports[0], gossip: ports[1], http: ports[2], shards: e2eShards,
			join: []string{c.procs[0].gossip, c.procs[1].gossip}, extra: []string{"--dead-node-grace", "3s"}}
		c.procs = append(c.procs, p)
		p.start()
	}
	waitPlacement(t, c, c.procs[0].addr, "two nodes joined and the cluster is balanced", nil, func(m *ring.Map) error {
		for _, p := range c.procs {
			if nd, ok := m.Node(p.id); !ok || nd.State != ring.NodeActive || len(m.ReplicasOn(p.id)) == 0 {
				return fmt.Errorf("epoch %d: node %s is %+v with %d replicas", m.Epoch, p.id, nd, len(m.ReplicasOn(p.id)))
			}
		}
		return nil
	})

	// Drain an original node, wait until it is empty, stop it.
	drained, killed := c.procs[0], c.procs[1]
	actx, acancel := context.WithTimeout(context.Background(), 10*time.Second)
	if _, err := adminAt(t, c.procs[2].addr).DrainNode(actx, &kvpb.DrainNodeRequest{NodeId: drained.id}); err != nil {
		t.Fatalf("drain %s: %v", drained.id, err)
	}
	acancel()
	waitPlacement(t, c, c.procs[2].addr, "drained node is empty", nil, func(m *ring.Map) error {
		if n := len(m.ReplicasOn(drained.id)); n != 0 {
			return fmt.Errorf("epoch %d: %s still holds %d replicas", m.Epoch, drained.id, n)
		}
		if containsMeta(m, drained.id) {
			return fmt.Errorf("epoch %d: %s is still a meta voter", m.Epoch, drained.id)
		}
		return nil
	})
	if err := drained.signal(syscall.SIGTERM); err != nil {
		t.Fatalf("stop drained node: %v", err)
	}

	// SIGKILL another original node; its replicas are replaced after the grace period.
	killed.signal(syscall.SIGKILL)
	waitPlacement(t, c, c.procs[2].addr, "every shard back at RF voters without the killed node", map[string]bool{killed.id: true}, func(m *ring.Map) error {
		if n := len(m.ReplicasOn(killed.id)); n != 0 {
			return fmt.Errorf("epoch %d: killed node still holds %d replicas", m.Epoch, n)
		}
		for _, s := range m.Shards {
			voters := 0
			for _, r := range s.Replicas {
				if r.Role == ring.RoleVoter {
					voters++
				}
			}
			if voters != 3 {
				return fmt.Errorf("epoch %d: shard %d has %d voters", m.Epoch, s.ID, voters)
			}
		}
		return nil
	})
	cancel()
	wg.Wait()
	if failed.Load() > 0 {
		t.Fatalf("%d writes failed during the changes", failed.Load())
	}
	mu.Lock()
	for k, v := range acked {
		want[k] = v
	}
	mu.Unlock()
	t.Logf("reading back %d acknowledged keys", len(want))
	readAll(t, cl, want)
}

func containsMeta(m *ring.Map, id string) bool {
	for _, v := range m.MetaVoters {
		if v == id {
			return true
		}
	}
	return false
}
