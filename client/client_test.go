package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ridgeline-kv/ridgeline/ring"
)

const testShards = 4

func newTestClient(t *testing.T, fc *FakeCluster, mod ...func(*Config)) *Client {
	t.Helper()
	cfg := Config{
		Endpoints:      fc.Endpoints(),
		DialTimeout:    2 * time.Second,
		RequestTimeout: 5 * time.Second,
		AttemptTimeout: 500 * time.Millisecond,
		Logger:         slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	for _, m := range mod {
		m(&cfg)
	}
	c, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// keyInShard returns a key with the given prefix that maps to shard.
func keyInShard(prefix string, shard uint32) string {
	for i := 0; ; i++ {
		k := fmt.Sprintf("%s%d", prefix, i)
		if ring.ShardForKey([]byte(k), testShards) == shard {
			return k
		}
	}
}

// callsOf filters calls by method.
func callsOf(calls []FakeCall, method string) []FakeCall {
	var out []FakeCall
	for _, c := range calls {
		if c.Method == method {
			out = append(out, c)
		}
	}
	return out
}

// waitFor polls cond until it holds or the test's deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestClient_PutGetDelete(t *testing.T) {
	fc := newTestCluster(t, 3, testShards)
	c := newTestClient(t, fc)
	ctx := t.Context()

	if _, err := c.Get(ctx, "a"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get(absent) err = %v; want ErrNotFound", err)
	}
	var v1 uint64
	if err := c.Put(ctx, "a", []byte("1"), WithVersion(&v1)); err != nil || v1 == 0 {
		t.Fatalf("Put = %v, version %d", err, v1)
	}
	var rv uint64
	got, err := c.Get(ctx, "a", WithVersion(&rv))
	if err != nil || string(got) != "1" || rv != v1 {
		t.Fatalf("Get = %q, %d, %v; want 1, %d, nil", got, rv, err, v1)
	}
	// CAS.
	err = c.Put(ctx, "a", []byte("2"), IfVersion(v1+100))
	var vm *VersionMismatchError
	if !errors.As(err, &vm) || !errors.Is(err, ErrVersionMismatch) || vm.Actual != v1 || vm.Expected != v1+100 || vm.Key != "a" {
		t.Fatalf("Put(IfVersion wrong) = %v; want VersionMismatchError{a, %d, %d}", err, v1+100, v1)
	}
	if err := c.Put(ctx, "a", []byte("2"), IfVersion(v1)); err != nil {
		t.Fatalf("Put(IfVersion right) = %v", err)
	}
	if err := c.Put(ctx, "b", []byte("x"), IfVersion(0)); err != nil {
		t.Fatalf("Put(IfVersion 0, absent) = %v", err)
	}
	if err := c.Put(ctx, "b", []byte("x"), IfVersion(0)); !errors.Is(err, ErrVersionMismatch) {
		t.Fatalf("Put(IfVersion 0, present) = %v; want ErrVersionMismatch", err)
	}
	if err := c.Delete(ctx, "a", IfVersion(1)); !errors.Is(err, ErrVersionMismatch) {
		t.Fatalf("Delete(IfVersion wrong) = %v; want ErrVersionMismatch", err)
	}
	if err := c.Delete(ctx, "a"); err != nil {
		t.Fatalf("Delete = %v", err)
	}
	if err := c.Delete(ctx, "a"); err != nil {
		t.Fatalf("Delete(absent) = %v; want nil", err)
	}
	if _, err := c.Get(ctx, "a"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get(deleted) err = %v; want ErrNotFound", err)
	}
}

func TestClient_InvalidInput(t *testing.T) {
	fc := newTestCluster(t, 1, testShards)
	c := newTestClient(t, fc)
	ctx := t.Context()
	tests := []struct {
		name string
		err  error
		want []error
	}{
		{"empty key", c.Put(ctx, "", []byte("v")), []error{ErrInvalidArgument}},
		{"long key", c.Put(ctx, string(make([]byte, MaxKeySize+1)), nil), []error{ErrTooLarge, ErrInvalidArgument}},
		{"big value", c.Put(ctx, "k", make([]byte, MaxValueSize+1)), []error{ErrTooLarge, ErrInvalidArgument}},
		{"scan limit", func() error { _, err := c.Scan(ctx, ScanOptions{Limit: MaxScanLimit + 1}); return err }(), []error{ErrInvalidArgument}},
		{"bad cursor", func() error { _, err := c.Scan(ctx, ScanOptions{Cursor: "!!"}); return err }(), []error{ErrInvalidArgument}},
		{"cross-shard txn", func() error {
			_, err := c.Txn(ctx).Then(OpPut(keyInShard("x", 0), nil), OpPut(keyInShard("x", 1), nil)).Commit()
			return err
		}(), []error{ErrInvalidArgument}},
		{"empty txn", func() error { _, err := c.Txn(ctx).Commit(); return err }(), []error{ErrInvalidArgument}},
	}
	for _, tt := range tests {
		for _, w := range tt.want {
			if !errors.Is(tt.err, w) {
				t.Errorf("%s: err = %v; want errors.Is %v", tt.name, tt.err, w)
			}
		}
	}
	if n := len(fc.Calls()); n != 0 {
		t.Errorf("invalid requests reached the server %d times", n)
	}
}

func TestClient_FollowsNotLeaderHint(t *testing.T) {
	fc := newTestCluster(t, 3, testShards)
	// The map advertises node 1 as leader of every shard, but shard 0 is led
	// by node 3.
	fc.Advertise(map[uint32]string{0: fc.NodeID(0)})
	fc.SetLeader(0, 2)
	c := newTestClient(t, fc)
	key := keyInShard("k", 0)
	for i := range 2 {
		if err := c.Put(t.Context(), key, []byte("v")); err != nil {
			t.Fatalf("Put %d: %v", i, err)
		}
	}
	var nodes []string
	for _, call := range callsOf(fc.Calls(), "Put") {
		nodes = append(nodes, call.Node)
	}
	want := []string{"n1", "n3", "n3"}
	if !slices.Equal(nodes, want) {
		t.Errorf("Put went to %v; want %v (hint followed, then cached)", nodes, want)
	}
}

func TestClient_RetriesUntilLeaderElected(t *testing.T) {
	fc := newTestCluster(t, 3, testShards)
	c := newTestClient(t, fc)
	key := keyInShard("k", 1)
	var n atomic.Int32
	fc.SetHook(func(call FakeCall) (error, bool) {
		switch n.Add(1) {
		case 1, 2, 3:
			return NoLeaderErr(call.Shard), false
		case 4:
			return fc.NotLeaderErr(call.Shard, -1), false // no hint
		}
		return nil, false
	})
	if err := c.Put(t.Context(), key, []byte("v")); err != nil {
		t.Fatalf("Put: %v", err)
	}
	puts := callsOf(fc.Calls(), "Put")
	if len(puts) < 5 {
		t.Fatalf("got %d attempts; want at least 5", len(puts))
	}
	for _, p := range puts {
		if p.Session != puts[0].Session || p.Seq != puts[0].Seq {
			t.Errorf("retry carried (session %d, seq %d); want (%d, %d)", p.Session, p.Seq, puts[0].Session, puts[0].Seq)
		}
	}
}

func TestClient_OutcomeUnknownRetriesSameSession(t *testing.T) {
	fc := newTestCluster(t, 3, testShards)
	c := newTestClient(t, fc)
	key := keyInShard("ctr", 2)
	var n atomic.Int32
	fc.SetHook(func(call FakeCall) (error, bool) {
		if call.Method == "Txn" && n.Add(1) == 1 {
			return OutcomeUnknownErr(call.Shard), true // applied, reply lost
		}
		return nil, false
	})
	got, err := c.Add(t.Context(), key, 5)
	if err != nil || got != 5 {
		t.Fatalf("Add = %d, %v; want 5 (applied once)", got, err)
	}
	txns := callsOf(fc.Calls(), "Txn")
	if len(txns) < 2 {
		t.Fatalf("got %d Txn attempts; want at least 2", len(txns))
	}
	for _, tx := range txns[1:] {
		if txns[0].Session == 0 || tx.Session != txns[0].Session || tx.Seq != txns[0].Seq {
			t.Errorf("attempts carried %d/%d and %d/%d; want the same session and seq", txns[0].Session, txns[0].Seq, tx.Session, tx.Seq)
		}
	}
	// The next write uses the next sequence of a pooled session.
	if _, err := c.Add(t.Context(), key, 1); err != nil {
		t.Fatal(err)
	}
	first := txns[0]
	txns = callsOf(fc.Calls(), "Txn")
	if last := txns[len(txns)-1]; last.Session != first.Session || last.Seq != first.Seq+1 {
		t.Errorf("next write carried %d/%d; want %d/%d", last.Session, last.Seq, first.Session, first.Seq+1)
	}
	if v, err := c.Get(t.Context(), key); err != nil || string(v) != "6" {
		t.Errorf("counter = %q, %v; want 6", v, err)
	}
}

func TestClient_OutcomeUnknownAtDeadline(t *testing.T) {
	fc := newTestCluster(t, 3, testShards)
	c := newTestClient(t, fc)
	fc.SetHook(func(call FakeCall) (error, bool) { return OutcomeUnknownErr(call.Shard), false })
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	err := c.Put(ctx, "k", []byte("v"))
	if !errors.Is(err, ErrOutcomeUnknown) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Put = %v; want ErrOutcomeUnknown and DeadlineExceeded", err)
	}
	// Reads that never got an answer are merely unavailable.
	fc.SetHook(func(call FakeCall) (error, bool) { return NoLeaderErr(call.Shard), false })
	ctx2, cancel2 := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel2()
	if _, err := c.Get(ctx2, "k"); !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrOutcomeUnknown) {
		t.Fatalf("Get = %v; want ErrUnavailable only", err)
	}
	// A write refused by every replica was not applied; its sequence
	// number is reused by the next write. Only if the deadline passed while
	// an attempt was in flight (a slow machine) is the outcome rightly
	// unknown; then the case is run again.
	for try := 1; ; try++ {
		ctx3, cancel3 := context.WithTimeout(t.Context(), 200*time.Millisecond)
		err := c.Put(ctx3, "k", []byte("v"))
		cancel3()
		if errors.Is(err, ErrUnavailable) {
			break
		}
		inFlight := errors.Is(err, ErrOutcomeUnknown) && strings.Contains(err.Error(), "last error: DeadlineExceeded")
		if !inFlight || try == 5 {
			t.Fatalf("Put(no leader), try %d = %v; want ErrUnavailable", try, err)
		}
	}
	fc.SetHook(nil)
	refused := callsOf(fc.Calls(), "Put")
	if err := c.Put(t.Context(), "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	puts := callsOf(fc.Calls(), "Put")
	last, prev := puts[len(puts)-1], refused[len(refused)-1]
	if last.Session != prev.Session || last.Seq != prev.Seq {
		t.Errorf("write after a refused one carried %d/%d; want the refused write's %d/%d", last.Session, last.Seq, prev.Session, prev.Seq)
	}
}

// A caller that cancels a write while an attempt is in flight must not be
// told the write was not applied: the server may apply it after the cancel.
func TestClient_CancelledWriteInFlightIsOutcomeUnknown(t *testing.T) {
	fc := newTestCluster(t, 3, testShards)
	c := newTestClient(t, fc)
	arrived := make(chan struct{}, 16)
	release := make(chan struct{})
	defer close(release)
	fc.SetHook(func(call FakeCall) (error, bool) {
		if call.Method != "Put" {
			return nil, false
		}
		arrived <- struct{}{}
		<-release // the server is slow: the caller gives up first
		return nil, false
	})
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() { errc <- c.Put(ctx, "k", []byte("v")) }()
	select {
	case <-arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("the Put never reached a node")
	}
	cancel()
	var err error
	select {
	case err = <-errc:
	case <-time.After(10 * time.Second):
		t.Fatal("Put did not return after its context was cancelled")
	}
	if !errors.Is(err, ErrOutcomeUnknown) || !errors.Is(err, context.Canceled) || errors.Is(err, ErrUnavailable) {
		t.Fatalf("Put cancelled in flight = %v; want ErrOutcomeUnknown and context.Canceled, not ErrUnavailable", err)
	}

	// A read cancelled in flight changed nothing: it is merely cancelled.
	fc.SetHook(func(call FakeCall) (error, bool) {
		if call.Method == "Get" {
			arrived <- struct{}{}
			<-release
		}
		return nil, false
	})
	ctx2, cancel2 := context.WithCancel(t.Context())
	go func() { _, err := c.Get(ctx2, "k"); errc <- err }()
	select {
	case <-arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("the Get never reached a node")
	}
	cancel2()
	select {
	case err = <-errc:
	case <-time.After(10 * time.Second):
		t.Fatal("Get did not return after its context was cancelled")
	}
	if !errors.Is(err, context.Canceled) || errors.Is(err, ErrOutcomeUnknown) {
		t.Fatalf("Get cancelled in flight = %v; want context.Canceled and not ErrOutcomeUnknown", err)
	}
}

func TestClient_WrongShardRefreshesMap(t *testing.T) {
	fc := newTestCluster(t, 3, testShards)
	c := newTestClient(t, fc)
	before := fc.MapCalls()
	var n atomic.Int32
	fc.SetHook(func(call FakeCall) (error, bool) {
		if n.Add(1) == 1 {
			fc.BumpEpoch()
			return WrongShardErr(call.Shard), false
		}
		return nil, false
	})
	if err := c.Put(t.Context(), "k", []byte("v")); err != nil {
		t.Fatalf("Put: %v", err)
	}
	if fc.MapCalls() == before {
		t.Error("WrongShard did not refresh the map")
	}
	if got := c.Map().Epoch; got != 2 {
		t.Errorf("map epoch = %d; want 2", got)
	}
}

func TestClient_NewerEpochRefreshesInBackground(t *testing.T) {
	fc := newTestCluster(t, 3, testShards)
	c := newTestClient(t, fc)
	fc.BumpEpoch()
	if err := c.Put(t.Context(), "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "map epoch 2", func() bool { return c.Map().Epoch == 2 })
}

func TestClient_NodeDown(t *testing.T) {
	fc := newTestCluster(t, 3, testShards)
	c := newTestClient(t, fc)
	ctx := t.Context()
	keys := []string{keyInShard("k", 0), keyInShard("k", 1), keyInShard("k", 2), keyInShard("k", 3)}
	for _, k := range keys {
		if err := c.Put(ctx, k, []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	// Node 1 dies; its shards elect node 2.
	fc.StopNode(0)
	for s := range uint32(testShards) {
		if s%3 == 0 {
			fc.SetLeader(s, 1)
		}
	}
	for _, k := range keys {
		if err := c.Put(ctx, k, []byte("w")); err != nil {
			t.Fatalf("Put(%s) with a node down: %v", k, err)
		}
		if v, err := c.Get(ctx, k); err != nil || string(v) != "w" {
			t.Fatalf("Get(%s) with a node down = %q, %v", k, v, err)
		}
	}
}

func TestClient_HungNodeCostsOneAttempt(t *testing.T) {
	fc := newTestCluster(t, 3, testShards)
	c := newTestClient(t, fc, func(cfg *Config) { cfg.AttemptTimeout = 100 * time.Millisecond })
	key := keyInShard("k", 0) // led by n1
	hung := make(chan struct{})
	defer close(hung)
	fc.SetHook(func(call FakeCall) (error, bool) {
		if call.Node == "n1" {
			<-hung // SIGSTOP-like: never answers
		}
		return nil, false
	})
	fc.SetLeader(0, 1) // n2 took over, n1 does not know it
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	if err := c.Put(ctx, key, []byte("v")); err != nil {
		t.Fatalf("Put with hung leader: %v", err)
	}
	puts := callsOf(fc.Calls(), "Put")
	if puts[0].Node != "n1" || puts[len(puts)-1].Node != "n2" {
		t.Errorf("attempts went to %v; want n1 first, n2 last", puts)
	}
	for _, p := range puts {
		if p.Seq != puts[0].Seq || p.Session != puts[0].Session {
			t.Errorf("retry after timeout changed session/seq: %+v vs %+v", p, puts[0])
		}
	}
}

func TestClient_StaleReadAnyReplica(t *testing.T) {
	fc := newTestCluster(t, 3, testShards)
	c := newTestClient(t, fc)
	key := keyInShard("k", 1)
	if err := c.Put(t.Context(), key, []byte("v")); err != nil {
		t.Fatal(err)
	}
	fc.SetLeader(1, -1) // no leader: only stale reads work
	fc.StopNode(1)      // and the cached leader is gone
	v, err := c.Get(t.Context(), key, Stale())
	if err != nil || string(v) != "v" {
		t.Fatalf("Get(Stale) = %q, %v", v, err)
	}
}

// TestSessionPool_NeverShared runs concurrent writes and checks that no
// session serves two requests at once and that each session's sequence
// numbers grow.
func TestSessionPool_NeverShared(t *testing.T) {
	fc := newTestCluster(t, 3, testShards)
	c := newTestClient(t, fc)
	var mu sync.Mutex
	inflight := map[uint64]bool{}
	var shared atomic.Int32
	fc.SetHook(func(call FakeCall) (error, bool) {
		if call.Session == 0 {
			return nil, false
		}
		mu.Lock()
		if inflight[call.Session] {
			shared.Add(1)
		}
		inflight[call.Session] = true
		mu.Unlock()
		time.Sleep(time.Millisecond)
		mu.Lock()
		delete(inflight, call.Session)
		mu.Unlock()
		return nil, false
	})
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := range 20 {
				key := fmt.Sprintf("g%d/%d", g, i)
				var err error
				switch i % 3 {
				case 0:
					err = c.Put(t.Context(), key, []byte("v"))
				case 1:
					_, err = c.Add(t.Context(), key, 1)
				default:
					err = c.Delete(t.Context(), key)
				}
				if err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if n := shared.Load(); n != 0 {
		t.Errorf("%d requests shared a session with a request in flight", n)
	}
	last := map[uint64]uint64{}
	for _, call := range fc.Calls() {
		if call.Session == 0 {
			continue
		}
		if call.Seq <= last[call.Session] {
			t.Errorf("session %d: seq %d after %d", call.Session, call.Seq, last[call.Session])
		}
		last[call.Session] = call.Seq
	}
	if len(last) > 16 {
		t.Errorf("%d sessions for 16 concurrent writers; want ≤ 16", len(last))
	}
}

func TestClient_Txn(t *testing.T) {
	fc := newTestCluster(t, 3, testShards)
	c := newTestClient(t, fc)
	ctx := t.Context()
	a, b := "{u1}/a", "{u1}/b"
	res, err := c.Txn(ctx).If(Missing(a)).Then(OpPut(a, []byte("x")), OpAdd(b, 2), OpGet(a)).Else(OpGet(a)).Commit()
	if err != nil {
		t.Fatal(err)
	}
	if !res.Succeeded || len(res.Results) != 3 || res.Results[1].Counter != 2 || string(res.Results[2].Value) != "x" || !res.Results[2].Found {
		t.Fatalf("txn 1 = %+v", res)
	}
	res, err = c.Txn(ctx).If(Missing(a)).Then(OpDelete(a)).Else(OpGet(a)).Commit()
	if err != nil || res.Succeeded || len(res.Results) != 1 || string(res.Results[0].Value) != "x" {
		t.Fatalf("txn 2 = %+v, %v; want the else branch", res, err)
	}
	v := res.Results[0].Version
	res, err = c.Txn(ctx).If(VersionEquals(a, v), VersionGreater(b, 0), VersionLess(a, v+1), VersionNotEquals(a, 0)).Then(OpDelete(a)).Commit()
	if err != nil || !res.Succeeded || !res.Results[0].Found {
		t.Fatalf("txn 3 = %+v, %v", res, err)
	}
}

func TestClient_Close(t *testing.T) {
	fc := newTestCluster(t, 1, testShards)
	c := newTestClient(t, fc)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}
	if err := c.Put(t.Context(), "k", nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Put after Close = %v; want ErrClosed", err)
	}
	if _, err := c.Get(t.Context(), "k"); !errors.Is(err, ErrClosed) {
		t.Errorf("Get after Close = %v; want ErrClosed", err)
	}
}

func TestNew_NoEndpointAnswers(t *testing.T) {
	fc := newTestCluster(t, 1, testShards)
	eps := fc.Endpoints()
	fc.Stop()
	_, err := New(t.Context(), Config{Endpoints: eps, DialTimeout: 300 * time.Millisecond})
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("New = %v; want ErrUnavailable", err)
	}
	if _, err := New(t.Context(), Config{}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("New(empty config) = %v; want ErrInvalidArgument", err)
	}
}

func TestNew_SkipsDeadEndpoint(t *testing.T) {
	fc := newTestCluster(t, 3, testShards)
	fc.StopNode(0)
	c := newTestClient(t, fc)
	if got := len(c.Map().Nodes); got != 3 {
		t.Errorf("map has %d nodes; want 3", got)
	}
}

func TestClient_NodeStatus(t *testing.T) {
	fc := newTestCluster(t, 3, testShards)
	c := newTestClient(t, fc)
	st, err := c.NodeStatus(t.Context(), "n2")
	if err != nil {
		t.Fatal(err)
	}
	if st.NodeID != "n2" || st.State != "active" || len(st.Replicas) != testShards || st.ClusterID != "fake" {
		t.Errorf("NodeStatus = %+v", st)
	}
	fc.StopNode(2)
	if _, err := c.NodeStatus(t.Context(), "n3"); !errors.Is(err, ErrUnavailable) {
		t.Errorf("NodeStatus(down) = %v; want ErrUnavailable", err)
	}
	if _, err := c.NodeStatus(t.Context(), "n9"); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("NodeStatus(unknown) = %v; want ErrInvalidArgument", err)
	}
}
