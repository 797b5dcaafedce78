package replication_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ridgeline-kv/ridgeline/replication"
	"github.com/ridgeline-kv/ridgeline/replication/kvpb"
	"github.com/ridgeline-kv/ridgeline/replication/replicationtest"
	"github.com/ridgeline-kv/ridgeline/ring"
)

// putAll writes n keys with the given prefix through the current leaders.
func putAll(t *testing.T, c *replicationtest.Cluster, shards uint32, session uint64, prefix string, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for i := 0; i < n; i++ {
		key := fmt.Sprintf("%s-%04d", prefix, i)
		err := onLeader(t, c, shards, key, func(kv kvpb.KVClient) error {
			_, err := kv.Put(ctx, &kvpb.PutRequest{Write: &kvpb.WriteHeader{Session: session, Seq: uint64(i + 1)}, Key: []byte(key), Value: []byte(key)})
			return err
		})
		if err != nil {
			t.Fatalf("put %s: %v", key, err)
		}
	}
}

// staleHas reports how many of the n keys node i serves from its local state.
func staleHas(t *testing.T, c *replicationtest.Cluster, i int, prefix string, n int) int {
	t.Helper()
	kv := rawKV(t, c.Nodes[i].Addr())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	found := 0
	for k := 0; k < n; k++ {
		key := fmt.Sprintf("%s-%04d", prefix, k)
		resp, err := kv.Get(ctx, &kvpb.GetRequest{Key: []byte(key), Stale: true})
		if err == nil && resp.Found && string(resp.Kv.Value) == key {
			found++
		}
	}
	return found
}

func TestNode_RestartRejoinsAndCatchesUp(t *testing.T) {
	const shards = 4
	c := replicationtest.NewCluster(t, replicationtest.Options{Shards: shards})
	putAll(t, c, shards, 1, "before", 50)
	c.Kill(2)
	putAll(t, c, shards, 2, "during", 50)
	c.Restart(2)
	c.WaitReady(30 * time.Second)
	c.Eventually(30*time.Second, "restarted node serves every key locally", func() error {
		if got := staleHas(t, c, 2, "before", 50) + staleHas(t, c, 2, "during", 50); got != 100 {
			return fmt.Errorf("node 3 has %d of 100 keys", got)
		}
		return nil
	})
}

func TestNode_FollowerCatchesUpBySnapshot(t *testing.T) {
	const shards = 1
	c := replicationtest.NewCluster(t, replicationtest.Options{Shards: shards, Configure: func(i int, cfg *replication.Config) {
		snapshotConfig(cfg)
	}})
	leader := c.WaitLeader(0, 10*time.Second)
	victim := (leader + 1) % 3
	c.Kill(victim)
	putAll(t, c, shards, 1, "snap", 300)
	waitLeaderSnapshot(t, c, 200)
	c.Restart(victim)
	waitCaughtUpBySnapshot(t, c, victim, 200, "snap", 300)
}

// snapshotConfig makes shard 0's leader snapshot and truncate its log often,
// so a follower that misses a few hundred writes needs a snapshot.
func snapshotConfig(cfg *replication.Config) {
	cfg.SnapshotThreshold = 32
	cfg.TrailingLogs = 8
	cfg.SnapshotInterval = 50 * time.Millisecond
}

// waitLeaderSnapshot waits until shard 0's leader has snapshotted (and so
// truncated its log) past index.
func waitLeaderSnapshot(t *testing.T, c *replicationtest.Cluster, index uint64) {
	t.Helper()
	c.Eventually(30*time.Second, "leader snapshot", func() error {
		st, err := c.Status(c.WaitLeader(0, 10*time.Second))
		if err != nil {
			return err
		}
		for _, r := range st.Replicas {
			if !r.Meta && r.LastSnapshotIndex >= index {
				return nil
			}
		}
		return fmt.Errorf("no snapshot past index %d yet", index)
	})
}

// waitCaughtUpBySnapshot waits until node victim has installed a snapshot of
// shard 0 past index and serves all n keys with the prefix locally.
func waitCaughtUpBySnapshot(t *testing.T, c *replicationtest.Cluster, victim int, index uint64, prefix string, n int) {
	t.Helper()
	c.Eventually(30*time.Second, "victim installs a snapshot and catches up", func() error {
		st, err := c.Status(victim)
		if err != nil {
			return err
		}
		var snap uint64
		for _, r := range st.Replicas {
			if !r.Meta {
				snap = r.LastSnapshotIndex
			}
		}
		if snap < index {
			return fmt.Errorf("victim's last snapshot index is %d, want ≥ %d (installed from the leader)", snap, index)
		}
		if got := staleHas(t, c, victim, prefix, n); got != n {
			return fmt.Errorf("victim has %d of %d keys", got, n)
		}
		return nil
	})
}

func TestNode_PartitionedLeaderServesNothing(t *testing.T) {
	const shards = 1
	c := replicationtest.NewCluster(t, replicationtest.Options{Shards: shards})
	putAll(t, c, shards, 1, "pre", 5)
	old := c.WaitLeader(0, 10*time.Second)
	others := []int{(old + 1) % 3, (old + 2) % 3}
	c.Partition([]int{old}, others)

	minority := rawKV(t, c.Nodes[old].Addr())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	_, err := minority.Put(ctx, &kvpb.PutRequest{Write: &kvpb.WriteHeader{Session: 9, Seq: 1}, Key: []byte("pre-0000"), Value: []byte("lost")})
	cancel()
	if err == nil {
		t.Fatalf("isolated old leader accepted a write")
	}
	ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
	_, err = minority.Get(ctx, &kvpb.GetRequest{Key: []byte("pre-0000")})
	cancel()
	if err == nil {
		t.Fatalf("isolated old leader served a linearizable read")
	}

	// The majority elects a new leader and serves reads and writes.
	var nl int
	c.Eventually(20*time.Second, "new leader in the majority", func() error {
		for _, i := range others {
			st, err := c.Status(i)
			if err != nil {
				return err
			}
			for _, r := range st.Replicas {
				if !r.Meta && r.State == "Leader" {
					nl = i
					return nil
				}
			}
		}
		return fmt.Errorf("no leader among the majority yet")
	})
	// The majority serves: a write and a read on whichever majority node
	// leads, retried while leadership settles (as a client would).
	_ = nl
	c.Eventually(20*time.Second, "majority serves a write and a linearizable read", func() error {
		var last error
		for _, i := range others {
			kv := rawKV(t, c.Nodes[i].Addr())
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			_, err := kv.Put(ctx, &kvpb.PutRequest{Write: &kvpb.WriteHeader{Session: 10, Seq: 1}, Key: []byte("pre-0000"), Value: []byte("majority")})
			if err == nil {
				var got *kvpb.GetResponse
				got, err = kv.Get(ctx, &kvpb.GetRequest{Key: []byte("pre-0000")})
				if err == nil && string(got.GetKv().GetValue()) != "majority" {
					cancel()
					t.Fatalf("majority read %q after its acknowledged write", got.GetKv().GetValue())
				}
			}
			cancel()
			if err == nil {
				return nil
			}
			last = err
		}
		return last
	})

	// After healing, the old leader follows and has the majority's write.
	c.Heal()
	c.Eventually(20*time.Second, "old leader catches up", func() error {
		resp, err := minority.Get(context.Background(), &kvpb.GetRequest{Key: []byte("pre-0000"), Stale: true})
		if err != nil {
			return err
		}
		if string(resp.GetKv().GetValue()) != "majority" {
			return fmt.Errorf("old leader has %q", resp.GetKv().GetValue())
		}
		return nil
	})
}

func TestNode_LimitsOverTheWire(t *testing.T) {
	const shards = 4
	c := replicationtest.NewCluster(t, replicationtest.Options{Shards: shards})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	w := func(seq uint64) *kvpb.WriteHeader { return &kvpb.WriteHeader{Session: 77, Seq: seq} }
	// Two keys in different shards, for the cross-shard txn.
	a, b := "a", ""
	for i := 0; b == ""; i++ {
		if k := fmt.Sprintf("b%d", i); ring.ShardForKey([]byte(k), shards) != ring.ShardForKey([]byte(a), shards) {
			b = k
		}
	}
	manyOps := make([]*kvpb.Op, 129)
	for i := range manyOps {
		manyOps[i] = &kvpb.Op{Op: &kvpb.Op_Put_{Put: &kvpb.Op_Put{Key: []byte("{t}k"), Value: []byte("v")}}}
	}
	for _, tc := range []struct {
		name    string
		call    func(kv kvpb.KVClient) error
		code    codes.Code
		message string
	}{
		{"empty key", func(kv kvpb.KVClient) error {
			_, err := kv.Put(ctx, &kvpb.PutRequest{Write: w(1), Key: nil, Value: []byte("x")})
			return err
		}, codes.InvalidArgument, "key"},
		{"key over 4 KiB", func(kv kvpb.KVClient) error {
			_, err := kv.Get(ctx, &kvpb.GetRequest{Key: make([]byte, 4097)})
			return err
		}, codes.InvalidArgument, "4 KiB"},
		{"value over 512 KiB", func(kv kvpb.KVClient) error {
			_, err := kv.Put(ctx, &kvpb.PutRequest{Write: w(2), Key: []byte("k"), Value: make([]byte, 512<<10+1)})
			return err
		}, codes.InvalidArgument, "512 KiB"},
		{"request over 1.5 MiB", func(kv kvpb.KVClient) error {
			ops := []*kvpb.Op{}
			for i := 0; i < 4; i++ {
				ops = append(ops, &kvpb.Op{Op: &kvpb.Op_Put_{Put: &kvpb.Op_Put{Key: []byte("{t}k"), Value: make([]byte, 500<<10)}}})
			}
			_, err := kv.Txn(ctx, &kvpb.TxnRequest{Write: w(3), Success: ops})
			return err
		}, codes.ResourceExhausted, "1.5 MiB"},
		{"txn over 128 ops", func(kv kvpb.KVClient) error {
			_, err := kv.Txn(ctx, &kvpb.TxnRequest{Write: w(4), Success: manyOps})
			return err
		}, codes.InvalidArgument, "128"},
		{"txn across shards", func(kv kvpb.KVClient) error {
			_, err := kv.Txn(ctx, &kvpb.TxnRequest{Write: w(5), Success: []*kvpb.Op{
				{Op: &kvpb.Op_Put_{Put: &kvpb.Op_Put{Key: []byte(a), Value: []byte("1")}}},
				{Op: &kvpb.Op_Put_{Put: &kvpb.Op_Put{Key: []byte(b), Value: []byte("2")}}},
			}})
			return err
		}, codes.InvalidArgument, "hash tag"},
		{"scan page over 10000", func(kv kvpb.KVClient) error {
			_, err := kv.Scan(ctx, &kvpb.ScanRequest{Shard: 0, Limit: 10001})
			return err
		}, codes.InvalidArgument, "10000"},
		{"write without session", func(kv kvpb.KVClient) error {
			_, err := kv.Put(ctx, &kvpb.PutRequest{Key: []byte("k"), Value: []byte("v")})
			return err
		}, codes.InvalidArgument, "session"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call(rawKV(t, c.Nodes[0].Addr()))
			st, _ := status.FromError(err)
			if st.Code() != tc.code || !strings.Contains(st.Message(), tc.message) {
				t.Fatalf("got %v, want code %v with a message mentioning %q", err, tc.code, tc.message)
			}
		})
	}
}

func TestNode_ProposalsInFlightLimit(t *testing.T) {
	const shards = 1
	c := replicationtest.NewCluster(t, replicationtest.Options{Shards: shards, Configure: func(i int, cfg *replication.Config) {
		cfg.MaxProposalsInFlight = 1
	}})
	leader := c.WaitLeader(0, 10*time.Second)
	kv := rawKV(t, c.Nodes[leader].Addr())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const writers = 64
	errs := make([]error, writers)
	var wg sync.WaitGroup
	for i := 0; i < writers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = kv.Put(ctx, &kvpb.PutRequest{Write: &kvpb.WriteHeader{Session: uint64(1000 + i), Seq: 1},
				Key: []byte(fmt.Sprintf("inflight-%02d", i)), Value: []byte("v")})
		}()
	}
	wg.Wait()
	rejected := 0
	for i, err := range errs {
		if err == nil {
			continue
		}
		st, _ := status.FromError(err)
		if st.Code() != codes.ResourceExhausted || !strings.Contains(st.Message(), "in flight") {
			t.Fatalf("write %d: got %v, want ResourceExhausted mentioning proposals in flight", i, err)
		}
		rejected++
		// Rejected means not applied.
		got, err := kv.Get(ctx, &kvpb.GetRequest{Key: []byte(fmt.Sprintf("inflight-%02d", i))})
		if err != nil || got.Found {
			t.Fatalf("rejected write %d: get = %v, %v; want not found", i, got, err)
		}
	}
	if rejected == 0 {
		t.Fatalf("64 concurrent writes against a limit of 1 proposal in flight: none rejected")
	}
	t.Logf("%d of %d concurrent writes rejected with ResourceExhausted", rejected, writers)
}

func TestNode_HTTPEndpoints(t *testing.T) {
	c := replicationtest.NewCluster(t, replicationtest.Options{Shards: 2})
	putAll(t, c, 2, 1, "metrics", 5)
	addr := c.Nodes[0].Node().HTTPAddr()
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, path := range []string{"/healthz", "/readyz", "/debug/pprof/"} {
		if code, body := get(path); code != http.StatusOK {
			t.Fatalf("GET %s: %d %s, want 200", path, code, body)
		}
	}
	_, metrics := get("/metrics")
	for _, series := range []string{
		`ridgeline_proposals_total{shard="`, `ridgeline_applies_total{shard="`, `ridgeline_apply_batch_size_bucket{shard="`,
		`ridgeline_leader_changes_total{shard="`, `ridgeline_commit_latency_seconds_bucket{shard="`, `ridgeline_applies_ahead_of_local_log_total{shard="`,
		`ridgeline_storage_commit_seconds_bucket`, `ridgeline_is_leader{shard="meta"}`, `go_goroutines`,
		`ridgeline_transport_peer_connections `, `ridgeline_transport_snapshot_bytes_sent_total`, `ridgeline_rebalance_backlog`,
	} {
		if !strings.Contains(metrics, series) {
			t.Errorf("/metrics has no %s series", series)
		}
	}
}
