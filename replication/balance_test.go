package replication_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/ridgeline-kv/ridgeline/replication"
	"github.com/ridgeline-kv/ridgeline/replication/replicationtest"
)

// Elections put leaders wherever they happen to fall; the balancer moves each
// shard's leadership to its preferred replica (the first in the map), so the
// leaders spread over the nodes.
func TestBalance_LeadersMoveToPreferredReplicas(t *testing.T) {
	c := replicationtest.NewCluster(t, replicationtest.Options{Shards: 12, Configure: func(i int, cfg *replication.Config) {
		cfg.ControlInterval = 100 * time.Millisecond
	}})
	c.WaitReady(30 * time.Second)
	c.Eventually(60*time.Second, "every shard led by its preferred replica", func() error {
		preferred := map[uint32]string{}
		led := map[uint32]string{}
		for i := range c.Nodes {
			st, err := c.Status(i)
			if err != nil {
				return err
			}
			for _, r := range st.Replicas {
				if r.Meta {
					continue
				}
				if r.State == "Leader" {
					led[r.Shard] = st.Node.Id
				}
			}
			if i == 0 {
				m, err := clusterMap(t, c, 0)
				if err != nil {
					return err
				}
				for s, sh := range m.Shards {
					preferred[uint32(s)] = sh.Replicas[0].NodeID
				}
			}
		}
		leaders := map[string]int{}
		for s, want := range preferred {
			if led[s] != want {
				return fmt.Errorf("shard %d led by %q, preferred replica on %q", s, led[s], want)
			}
			leaders[want]++
		}
		if len(leaders) != len(c.Nodes) {
			return fmt.Errorf("leaders per node %v: want every node to lead some shard", leaders)
		}
		return nil
	})
}
