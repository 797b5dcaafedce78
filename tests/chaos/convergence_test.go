package chaos

import (
	"context"
	"encoding/binary"
	"fmt"
	"github.com/ridgeline-kv/ridgeline/replication/replicationtest"
	"hash/fnv"
	"net"
	"sort"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/ridgeline-kv/ridgeline/client"
	"github.com/ridgeline-kv/ridgeline/replication/kvpb"
	"github.com/ridgeline-kv/ridgeline/ring"
)

// shardKeys returns one key per shard, named after prefix.
func shardKeys(prefix string, shards int) []string {
	keys := make([]string, shards)
	found := 0
	for i := 0; found < shards; i++ {
		k := fmt.Sprintf("%s%d", prefix, i)
		s := ring.ShardForKey([]byte(k), uint32(shards))
		if keys[s] == "" {
			keys[s] = k
			found++
		}
	}
	return keys
}

// writeEveryShard waits until a write to every shard succeeds; it returns
// how long that took.
func writeEveryShard(cl *client.Client, prefix string, shards int, timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	for s, k := range shardKeys(prefix, shards) {
		err := replicationtest.Eventually(timeout-time.Since(start), func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			return cl.Put(ctx, k, []byte(fmt.Sprint(time.Now().UnixNano())))
		})
		if err != nil {
			return time.Since(start), fmt.Errorf("no write to shard %d (key %q) succeeded within %v: %w", s, k, timeout, err)
		}
	}
	return time.Since(start), nil
}

// replicaView is one replica's content as read locally on its node.
type replicaView struct {
	node    string
	applied uint64 // applied index, the same before and after the scan
	keys    int
	hash    uint64
}

// dialNode opens a gRPC connection to one node, from clientIP.
func dialNode(addr string) (*grpc.ClientConn, error) {
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(clientIP)}}
	return grpc.NewClient("passthrough:///"+addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, a string) (net.Conn, error) { return d.DialContext(ctx, "tcp", a) }),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))
}

// scanReplica reads a shard's whole content from one node's local replica
// (a stale scan served by that node only) and hashes it. It fails when the
// replica applied anything during the scan.
func scanReplica(ctx context.Context, kv kvpb.KVClient, nodeID string, shard uint32) (replicaView, error) {
	v := replicaView{node: nodeID}
	h := fnv.New64a()
	var start []byte
	var b [8]byte
	for page := 0; ; page++ {
		resp, err := kv.Scan(ctx, &kvpb.ScanRequest{Header: &kvpb.RequestHeader{}, Shard: shard, Start: start, Stale: true})
		if err != nil {
			return v, err
		}
		if got := resp.GetHeader().GetNodeId(); got != nodeID {
			return v, fmt.Errorf("scan of %s was served by %q", nodeID, got)
		}
		ai := resp.GetHeader().GetAppliedIndex()
		if page == 0 {
			v.applied = ai
		} else if ai != v.applied {
			return v, fmt.Errorf("%s applied %d → %d during the scan of shard %d", nodeID, v.applied, ai, shard)
		}
		for _, e := range resp.GetKvs() {
			for _, f := range [][]byte{e.GetKey(), e.GetValue()} {
				binary.BigEndian.PutUint64(b[:], uint64(len(f)))
				h.Write(b[:])
				h.Write(f)
			}
			binary.BigEndian.PutUint64(b[:], e.GetVersion())
			h.Write(b[:])
			v.keys++
		}
		if !resp.GetMore() {
			break
		}
		start = resp.GetNextKey()
	}
	v.hash = h.Sum64()
	return v, nil
}

// checkConvergence waits until every replica of every shard (and of the meta
// group) reports the same applied index, and every replica of every shard
// holds the same content read locally on its node. NodeStatus has no content
// hash yet, so content is compared by scanning each replica.
func (c *cluster) checkConvergence(timeout time.Duration) (string, error) {
	conns := map[string]kvpb.KVClient{}
	live := c.live()
	for _, nd := range live {
		cc, err := dialNode(nd.addr)
		if err != nil {
			return "", err
		}
		defer cc.Close()
		conns[nd.id] = kvpb.NewKVClient(cc)
	}
	var summary string
	err := replicationtest.Eventually(timeout, func() error {
		sts := c.statuses()
		if len(sts) != len(live) {
			c.admin.RefreshMap(context.Background()) // a joined node is addressed through the map
			return fmt.Errorf("only %d of %d nodes answered NodeStatus", len(sts), len(live))
		}
		hosts := map[uint32][]string{}
		meta := map[string]uint64{}
		for id, st := range sts {
			for _, r := range st.Replicas {
				if r.Meta {
					meta[id] = r.AppliedIndex
				} else {
					hosts[r.Shard] = append(hosts[r.Shard], id)
				}
			}
		}
		if err := sameIndex("meta group", meta); err != nil {
			return err
		}
		var lines []string
		totalKeys := 0
		for s := uint32(0); s < uint32(c.shards); s++ {
			ids := hosts[s]
			sort.Strings(ids)
			if len(ids) < 2 {
				return fmt.Errorf("shard %d is hosted by %v; want every replica", s, ids)
			}
			var views []replicaView
			for _, id := range ids {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				v, err := scanReplica(ctx, conns[id], id, s)
				cancel()
				if err != nil {
					return fmt.Errorf("shard %d on %s: %v", s, id, err)
				}
				views = append(views, v)
			}
			for _, v := range views[1:] {
				if v.applied != views[0].applied {
					return fmt.Errorf("shard %d: %s applied %d, %s applied %d", s, views[0].node, views[0].applied, v.node, v.applied)
				}
				if v.hash != views[0].hash || v.keys != views[0].keys {
					return fmt.Errorf("shard %d at applied index %d: %s holds %d keys (hash %016x), %s holds %d keys (hash %016x)",
						s, v.applied, views[0].node, views[0].keys, views[0].hash, v.node, v.keys, v.hash)
				}
			}
			totalKeys += views[0].keys
			lines = append(lines, fmt.Sprintf("shard %d: %d replicas at %d, %d keys", s, len(views), views[0].applied, views[0].keys))
		}
		summary = fmt.Sprintf("%d keys in %d shards; %s", totalKeys, c.shards, strings.Join(lines, "; "))
		return nil
	})
	return summary, err
}

func sameIndex(what string, idx map[string]uint64) error {
	var first string
	for id, v := range idx {
		if first == "" {
			first = id
			continue
		}
		if v != idx[first] {
			return fmt.Errorf("%s: %s applied %d, %s applied %d", what, first, idx[first], id, v)
		}
	}
	return nil
}

// checkPlacement waits until the cluster map (Admin.ClusterMap, through the
// client) puts every shard at RF voters, with no learner, all on active
// nodes, the meta leader reports no move in flight, and the nodes that report
// a replica of each shard are exactly those the map places it on.
func (c *cluster) checkPlacement(timeout time.Duration) (string, error) {
	var summary string
	err := replicationtest.Eventually(timeout, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		m, err := c.admin.RefreshMap(ctx)
		if err != nil {
			return fmt.Errorf("cluster map: %w", err)
		}
		if err := placementComplete(m, c.rf); err != nil {
			return err
		}
		rb, err := c.admin.Rebalance(ctx, client.RebalanceStatusOnly)
		if err != nil {
			return fmt.Errorf("rebalance status: %w", err)
		}
		if rb.Epoch != m.Epoch || rb.MovesInFlight != 0 || rb.Pending != 0 {
			return fmt.Errorf("epoch %d: meta leader reports epoch %d, %d moves in flight, %d shards pending %v",
				m.Epoch, rb.Epoch, rb.MovesInFlight, rb.Pending, rb.PendingReasons)
		}
		hosts := map[uint32][]string{}
		for id, st := range c.statuses() {
			for _, r := range st.Replicas {
				if !r.Meta {
					hosts[r.Shard] = append(hosts[r.Shard], id)
				}
			}
		}
		var active []string
		for _, nd := range m.Nodes {
			if nd.State == ring.NodeActive {
				active = append(active, nd.ID)
			}
		}
		for _, sh := range m.Shards {
			var want []string
			for _, r := range sh.Replicas {
				want = append(want, r.NodeID)
			}
			got := hosts[sh.ID]
			sort.Strings(want)
			sort.Strings(got)
			if strings.Join(got, ",") != strings.Join(want, ",") {
				return fmt.Errorf("epoch %d: shard %d is placed on %v but hosted by %v", m.Epoch, sh.ID, want, got)
			}
		}
		summary = fmt.Sprintf("epoch %d: %d shards at %d voters on active nodes %v", m.Epoch, len(m.Shards), c.rf, active)
		return nil
	})
	return summary, err
}

// placementComplete checks that every shard of m has rf voters, no learner,
// all on distinct active nodes.
func placementComplete(m *ring.Map, rf int) error {
	for _, sh := range m.Shards {
		seen := map[string]bool{}
		voters := 0
		for _, r := range sh.Replicas {
			nd, ok := m.Node(r.NodeID)
			switch {
			case r.Role != ring.RoleVoter:
				return fmt.Errorf("epoch %d: shard %d has %s replica %s", m.Epoch, sh.ID, r.Role, r.ID)
			case !ok || nd.State != ring.NodeActive:
				return fmt.Errorf("epoch %d: shard %d has replica %s on node %s in state %v", m.Epoch, sh.ID, r.ID, r.NodeID, nd.State)
			case seen[r.NodeID]:
				return fmt.Errorf("epoch %d: shard %d has two replicas on %s", m.Epoch, sh.ID, r.NodeID)
			}
			seen[r.NodeID] = true
			voters++
		}
		if voters != rf {
			return fmt.Errorf("epoch %d: shard %d has %d voters, want %d", m.Epoch, sh.ID, voters, rf)
		}
	}
	return nil
}
