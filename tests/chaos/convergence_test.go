package chaos

import (
	"context"
	"encoding/binary"
	"fmt"
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
		err := eventually(timeout-time.Since(start), func() error {
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
	for _, nd := range c.nodes {
		cc, err := dialNode(nd.addr)
		if err != nil {
			return "", err
		}
		defer cc.Close()
		conns[nd.id] = kvpb.NewKVClient(cc)
	}
	var summary string
	err := eventually(timeout, func() error {
		sts := c.statuses()
		if len(sts) != len(c.nodes) {
			return fmt.Errorf("only %d of %d nodes answered NodeStatus", len(sts), len(c.nodes))
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
