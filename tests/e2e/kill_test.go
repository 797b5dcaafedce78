package e2e

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ridgeline-kv/ridgeline/client"
	"github.com/ridgeline-kv/ridgeline/replication/replicationtest"
	"github.com/ridgeline-kv/ridgeline/ring"
)

const e2eShards = 8

// writeKeys writes n keys and returns them; every write must be acknowledged.
func writeKeys(t *testing.T, cl *client.Client, prefix string, n int) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	want := map[string]string{}
	for i := 0; i < n; i++ {
		k, v := fmt.Sprintf("%s/%04d", prefix, i), fmt.Sprintf("value-%s-%d", prefix, i)
		if err := cl.Put(ctx, k, []byte(v)); err != nil {
			t.Fatalf("put %s: %v", k, err)
		}
		want[k] = v
	}
	return want
}

// readAll checks every key reads back (linearizably) with its value.
func readAll(t *testing.T, cl *client.Client, want map[string]string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for k, v := range want {
		got, err := cl.Get(ctx, k)
		if err != nil {
			t.Fatalf("get %s after kill: %v", k, err)
		}
		if string(got) != v {
			t.Fatalf("get %s after kill: got %q, want %q", k, got, v)
		}
	}
}

func TestKill_EveryAcknowledgedKeySurvivesSIGKILL(t *testing.T) {
	c := startCluster(t, 3, e2eShards, 10)
	cl := c.client(t)
	probe := "probe"
	shard := ring.ShardForKey([]byte(probe), e2eShards)

	for _, tc := range []struct {
		name   string
		victim func() *proc
	}{
		{"leader", func() *proc { return c.leaderOf(t, cl, shard) }},
		{"follower", func() *proc {
			l := c.leaderOf(t, cl, shard)
			for _, p := range c.procs {
				if p != l {
					return p
				}
			}
			return nil
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := writeKeys(t, cl, "kill-"+tc.name, 300)
			v := tc.victim()
			t.Logf("SIGKILL %s (%s of shard %d)", v.id, tc.name, shard)
			v.signal(syscall.SIGKILL)
			readAll(t, cl, want)
			// Writes keep working with one node down.
			more := writeKeys(t, cl, "after-"+tc.name, 50)
			readAll(t, cl, more)
			v.start()
			c.waitReady(60 * time.Second)
		})
	}
}

func TestKill_LeaderUnderConcurrentWritesLosesNothing(t *testing.T) {
	c := startCluster(t, 3, e2eShards, 20)
	cl := c.client(t)
	const writers = 16
	var (
		mu       sync.Mutex
		acked    = map[string]string{}
		failed   atomic.Int64
		afterAck atomic.Int64
		killed   atomic.Bool
	)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				k, v := fmt.Sprintf("w%02d/%06d", w, i), fmt.Sprintf("v%d-%d", w, i)
				wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
				err := cl.Put(wctx, k, []byte(v))
				wcancel()
				switch {
				case err == nil:
					mu.Lock()
					acked[k] = v
					mu.Unlock()
					if killed.Load() {
						afterAck.Add(1)
					}
				case ctx.Err() != nil:
					return
				default:
					failed.Add(1)
					t.Errorf("write %s failed after the client's retries: %v", k, err)
				}
			}
		}()
	}
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }
	waitFor := func(what string, cond func() bool) {
		deadline := time.Now().Add(60 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(20 * time.Millisecond) // polling a counter the writers advance
		}
	}
	waitFor("writes before the kill", func() bool { return count() >= 300 })
	victim := c.leaderOf(t, cl, ring.ShardForKey([]byte("w00/000000"), e2eShards))
	t.Logf("SIGKILL leader %s with %d writes acknowledged", victim.id, count())
	killed.Store(true)
	victim.signal(syscall.SIGKILL)
	waitFor("writes after the election", func() bool { return afterAck.Load() >= 500 })
	cancel()
	wg.Wait()
	if failed.Load() > 0 {
		t.Fatalf("%d writes failed; the client should carry on through an election", failed.Load())
	}
	t.Logf("%d writes acknowledged, %d after the kill; reading all back", count(), afterAck.Load())
	readAll(t, cl, acked)
}

func TestProcess_SIGTERMShutsDownCleanly(t *testing.T) {
	c := startCluster(t, 3, 4, 30)
	p := c.procs[0]
	if err := p.signal(syscall.SIGTERM); err != nil {
		t.Fatalf("kvnode exited with %v after SIGTERM; want exit 0\n%s", err, p.logs())
	}
	if strings.Contains(p.logs(), "panic") || strings.Contains(p.logs(), "FATAL") {
		t.Fatalf("shutdown logged a panic or fatal error:\n%s", p.logs())
	}
	p.start()
	c.waitReady(60 * time.Second)
}

func TestProcess_DataDirOfAnotherClusterIsRefused(t *testing.T) {
	a := startCluster(t, 3, 2, 40)
	b := startCluster(t, 3, 2, 50)
	// Move a node of cluster A (with its data dir) over to cluster B.
	p := a.procs[0]
	p.signal(syscall.SIGKILL)
	p.join = []string{b.procs[0].gossip}
	p.start()
	var err error
	select {
	case err = <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("node with cluster A's data dir kept running against cluster B:\n%s", p.logs())
	}
	p.mu.Lock()
	p.cmd = nil
	p.mu.Unlock()
	var exit interface{ ExitCode() int }
	if !errors.As(err, &exit) || exit.ExitCode() == 0 {
		t.Fatalf("kvnode exit: %v; want a non-zero exit", err)
	}
	if logs := p.logs(); !strings.Contains(logs, "belongs to cluster") {
		t.Fatalf("refusal does not say which cluster the data dir belongs to:\n%s", logs)
	}
	// Cluster B was not disturbed.
	b.waitReady(10 * time.Second)
}

// TestKill_RestartedNodeReplaysUnflushedApplies: a node holds its latest
// applies in memory until its state store flushes (here: not for an hour).
// SIGKILLed with acknowledged writes applied but not flushed, it must come
// back with all of them, replayed from its raft log, and serve them itself.
func TestKill_RestartedNodeReplaysUnflushedApplies(t *testing.T) {
	c := startCluster(t, 3, e2eShards, 70, "--state-flush-interval", "1h")
	cl := c.client(t)
	victim := c.procs[2]
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	local, err := client.New(ctx, client.Config{Endpoints: []string{victim.addr}, LocalAddr: victim.ip})
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()
	// servesAll: the victim itself (stale reads prefer the replica on the
	// client's IP) returns every key with its value.
	servesAll := func(want map[string]string) error {
		for k, v := range want {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			got, err := local.Get(ctx, k, client.Stale())
			cancel()
			if err != nil || string(got) != v {
				return fmt.Errorf("%s on %s: %q, %v; want %q", k, victim.id, got, err, v)
			}
		}
		return nil
	}

	want := writeKeys(t, cl, "replay", 300)
	if err := replicationtest.Eventually(30*time.Second, func() error { return servesAll(want) }); err != nil {
		t.Fatalf("before the kill: %v", err)
	}
	t.Logf("SIGKILL %s with 300 applies not flushed", victim.id)
	_ = victim.signal(syscall.SIGKILL) // "signal: killed"; it waits for the exit
	victim.start()
	c.waitReady(60 * time.Second)
	if err := replicationtest.Eventually(60*time.Second, func() error { return servesAll(want) }); err != nil {
		t.Fatalf("after the restart: %v\n%s", err, victim.logs())
	}
}
