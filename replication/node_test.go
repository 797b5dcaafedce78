package replication_test

import (
	"context"
	"errors"
	"fmt"
	"net"
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

// rawKV talks to one node without the client's routing, to observe the
// server's own answers.
func rawKV(t *testing.T, addr string) kvpb.KVClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return kvpb.NewKVClient(conn)
}

// onLeader runs call against the current leader of key's shard, again
// while the answer is "not the leader" or "no leader" (leadership may move
// between looking it up and calling).
func onLeader(t *testing.T, c *replicationtest.Cluster, shards uint32, key string, call func(kv kvpb.KVClient) error) error {
	t.Helper()
	var err error
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		i := c.WaitLeader(ring.ShardForKey([]byte(key), shards), 10*time.Second)
		err = call(rawKV(t, c.Nodes[i].Addr()))
		if c := status.Code(err); c != codes.FailedPrecondition && c != codes.Unavailable {
			return err
		}
	}
	return err
}

func TestNode_PutGetAcrossCluster(t *testing.T) {
	c := replicationtest.NewCluster(t, replicationtest.Options{Shards: 4})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := 0; i < 20; i++ {
		key := fmt.Sprintf("key-%d", i)
		var resp *kvpb.PutResponse
		err := onLeader(t, c, 4, key, func(kv kvpb.KVClient) (err error) {
			resp, err = kv.Put(ctx, &kvpb.PutRequest{Write: &kvpb.WriteHeader{Session: 7, Seq: uint64(i + 1)}, Key: []byte(key), Value: []byte("v" + key)})
			return err
		})
		if err != nil {
			t.Fatalf("put %s: %v", key, err)
		}
		if !resp.Succeeded || resp.Version == 0 {
			t.Fatalf("put %s: got %+v, want succeeded with a version", key, resp)
		}
		var got *kvpb.GetResponse
		err = onLeader(t, c, 4, key, func(kv kvpb.KVClient) (err error) {
			got, err = kv.Get(ctx, &kvpb.GetRequest{Key: []byte(key)})
			return err
		})
		if err != nil {
			t.Fatalf("get %s: %v", key, err)
		}
		if !got.Found || string(got.Kv.Value) != "v"+key || got.Kv.Version != resp.Version {
			t.Fatalf("get %s: got %+v, want value %q version %d", key, got, "v"+key, resp.Version)
		}
	}
}

func TestNode_NotLeaderCarriesHint(t *testing.T) {
	c := replicationtest.NewCluster(t, replicationtest.Options{Shards: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	key := "hinted"
	leader := c.WaitLeader(ring.ShardForKey([]byte(key), 2), 10*time.Second)
	follower := (leader + 1) % len(c.Nodes)
	_, err := rawKV(t, c.Nodes[follower].Addr()).Put(ctx, &kvpb.PutRequest{Write: &kvpb.WriteHeader{Session: 1, Seq: 1}, Key: []byte(key), Value: []byte("x")})
	st, _ := status.FromError(err)
	if st.Code() != codes.FailedPrecondition {
		t.Fatalf("put on follower: got %v, want FailedPrecondition", err)
	}
	var hint *kvpb.NotLeader
	for _, d := range st.Details() {
		if nl, ok := d.(*kvpb.NotLeader); ok {
			hint = nl
		}
	}
	if hint == nil || hint.LeaderAddr != c.Nodes[leader].Addr() {
		t.Fatalf("NotLeader hint: got %+v, want leader addr %s", hint, c.Nodes[leader].Addr())
	}
	_ = errors.Is
}

// TestNode_FailedStartReleasesItsPort: a node whose gossip address is taken
// fails to start with an error naming it, and leaves its gRPC port free for
// the next attempt.
func TestNode_FailedStartReleasesItsPort(t *testing.T) {
	taken, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	grpcLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := grpcLis.Addr().String()
	grpcLis.Close()

	cfg := replication.DefaultConfig()
	cfg.NodeID, cfg.DataDir, cfg.Addr, cfg.HTTPAddr = "n1", t.TempDir(), addr, ""
	cfg.GossipAddr = taken.LocalAddr().String()
	n, err := replication.NewNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	err = n.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "gossip on "+cfg.GossipAddr) {
		t.Fatalf("Start with a taken gossip address: %v; want an error naming it", err)
	}
	again, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("gRPC port %s still held after the failed start: %v", addr, err)
	}
	again.Close()
}
