package transport

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func heartbeatReq() *raft.AppendEntriesRequest {
	return &raft.AppendEntriesRequest{RPCHeader: testHeader, Term: 2}
}

// TestHeartbeats_ShareOneStream: concurrent heartbeats of several raft groups
// to one peer all travel on one Heartbeats stream, none as a unary call, and
// each gets its own group's answer.
func TestHeartbeats_ShareOneStream(t *testing.T) {
	a := startNode(t, "127.0.0.1", Config{})
	b := startNode(t, "127.0.0.1", Config{})
	target := raft.ServerAddress(b.addr)
	const groups, perGroup = 4, 25
	for g := range groups {
		tb := mustTransport(t, b.mgr, fmt.Sprintf("%d/b/1", g))
		term := uint64(10 + g)
		tb.SetHeartbeatHandler(func(rpc raft.RPC) {
			rpc.Respond(&raft.AppendEntriesResponse{Term: term, Success: true}, nil)
		})
	}
	var wg sync.WaitGroup
	errs := make(chan error, groups*perGroup)
	for g := range groups {
		ta := mustTransport(t, a.mgr, fmt.Sprintf("%d/a/1", g))
		for range perGroup {
			wg.Go(func() {
				var resp raft.AppendEntriesResponse
				err := ta.AppendEntries(raft.ServerID(fmt.Sprintf("%d/b/1", g)), target, heartbeatReq(), &resp)
				if err == nil && (!resp.Success || resp.Term != uint64(10+g)) {
					err = fmt.Errorf("group %d: answer %+v, want success at term %d", g, resp, 10+g)
				}
				errs <- err
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	st := b.mgr.Stats()
	if st.HeartbeatStreams != 1 || st.StreamedHeartbeats != groups*perGroup || st.Heartbeats != groups*perGroup || st.AppendEntries != 0 {
		t.Errorf("stats: %d streams, %d streamed, %d fast-path, %d unary; want 1, %d, %d, 0",
			st.HeartbeatStreams, st.StreamedHeartbeats, st.Heartbeats, st.AppendEntries, groups*perGroup, groups*perGroup)
	}
}

// TestHeartbeats_FailureStaysWithItsRequest: a heartbeat to a replica the
// peer does not have, or to one that does not answer, fails alone: a
// heartbeat to another group meanwhile is answered at once, and the stream
// survives.
func TestHeartbeats_FailureStaysWithItsRequest(t *testing.T) {
	a := startNode(t, "127.0.0.1", Config{RPCTimeout: 2 * time.Second})
	b := startNode(t, "127.0.0.1", Config{RPCTimeout: 2 * time.Second})
	target := raft.ServerAddress(b.addr)
	ta := mustTransport(t, a.mgr, "1/a/1")
	mustTransport(t, b.mgr, "1/b/1") // no heartbeat handler, nobody reads its Consumer: never answers
	tb2 := mustTransport(t, b.mgr, "2/b/1")
	tb2.SetHeartbeatHandler(okHandler)

	var resp raft.AppendEntriesResponse
	if err := ta.AppendEntries("9/b/1", target, heartbeatReq(), &resp); !errors.Is(err, ErrUnknownReplica) {
		t.Fatalf("heartbeat to a replica the peer lacks: %v; want ErrUnknownReplica", err)
	}

	stuck := make(chan error, 1)
	go func() {
		stuck <- ta.AppendEntries("1/b/1", target, heartbeatReq(), new(raft.AppendEntriesResponse))
	}()
	waitFor(t, 5*time.Second, "the stuck heartbeat to reach the peer", func() bool { return b.mgr.Stats().StreamedHeartbeats == 2 })
	start := time.Now()
	if err := ta.AppendEntries("2/b/1", target, heartbeatReq(), &resp); err != nil || !resp.Success {
		t.Fatalf("heartbeat to another group while one is stuck: %+v, %v", resp, err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("heartbeat to another group took %v while one was stuck; want it answered at once", d)
	}
	select {
	case err := <-stuck:
		t.Fatalf("stuck heartbeat returned %v before its deadline", err)
	default:
	}
	if err := <-stuck; status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("stuck heartbeat: %v; want DeadlineExceeded", err)
	}
	if err := ta.AppendEntries("2/b/1", target, heartbeatReq(), &resp); err != nil {
		t.Fatalf("heartbeat after the timeout: %v", err)
	}
	if n := b.mgr.Stats().HeartbeatStreams; n != 1 {
		t.Errorf("%d heartbeat streams; want the first one to survive", n)
	}
}

// TestHeartbeats_PeerRestart: the stream breaks with the peer; heartbeats
// fail (not hang) while it is down and use a new stream once it is back.
func TestHeartbeats_PeerRestart(t *testing.T) {
	a := startNode(t, "127.0.0.1", Config{RPCTimeout: time.Second})
	b := startNode(t, "127.0.0.1:0", Config{})
	addr := b.addr
	target := raft.ServerAddress(addr)
	ta := mustTransport(t, a.mgr, "1/a/1")
	mustTransport(t, b.mgr, "1/b/1").SetHeartbeatHandler(okHandler)
	var resp raft.AppendEntriesResponse
	if err := ta.AppendEntries("1/b/1", target, heartbeatReq(), &resp); err != nil {
		t.Fatalf("heartbeat: %v", err)
	}
	b.stop()
	if err := ta.AppendEntries("1/b/1", target, heartbeatReq(), &resp); err == nil {
		t.Fatal("heartbeat to a stopped peer succeeded")
	}
	b2 := startNode(t, addr, Config{})
	mustTransport(t, b2.mgr, "1/b/1").SetHeartbeatHandler(okHandler)
	waitFor(t, 10*time.Second, "heartbeats to the restarted peer", func() bool {
		return ta.AppendEntries("1/b/1", target, heartbeatReq(), &resp) == nil && resp.Success
	})
	if n := b2.mgr.Stats().HeartbeatStreams; n != 1 {
		t.Errorf("restarted peer accepted %d heartbeat streams; want 1", n)
	}
}

// TestHeartbeats_OnlyHeartbeats: the server refuses an AppendEntries with
// entries on the Heartbeats stream, and the stream goes on.
func TestHeartbeats_OnlyHeartbeats(t *testing.T) {
	a := startNode(t, "127.0.0.1", Config{})
	b := startNode(t, "127.0.0.1", Config{})
	mustTransport(t, b.mgr, "1/b/1").SetHeartbeatHandler(okHandler)
	h, err := a.mgr.heartbeatMux(raft.ServerAddress(b.addr))
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	req := &raft.AppendEntriesRequest{RPCHeader: testHeader, Term: 2, PrevLogEntry: 4, PrevLogTerm: 2, Entries: testEntries(1, 8)}
	if _, err := h.call(ctx, appendEntriesRequestToProto("1/b/1", req)); status.Code(err) != codes.InvalidArgument {
		t.Errorf("entries on the heartbeat stream: %v; want InvalidArgument", err)
	}
	if out, err := h.call(ctx, appendEntriesRequestToProto("1/b/1", heartbeatReq())); err != nil || !out.GetSuccess() {
		t.Errorf("heartbeat after a refused request: %v, %v", out, err)
	}
}

// TestDrainInto: a message takes every heartbeat queued when it is sent, up
// to heartbeatBatchMax, and leaves the rest for the next one.
func TestDrainInto(t *testing.T) {
	q := make(chan int, 2*heartbeatBatchMax)
	for i := range heartbeatBatchMax + 5 {
		q <- i
	}
	first := drainInto([]int{-1}, q)
	if len(first) != heartbeatBatchMax || first[0] != -1 || first[1] != 0 {
		t.Fatalf("first batch: %d heartbeats starting %v; want %d starting [-1 0]", len(first), first[:2], heartbeatBatchMax)
	}
	rest := drainInto(nil, q)
	if len(rest) != 6 || rest[0] != heartbeatBatchMax-1 {
		t.Fatalf("second batch = %v; want the 6 left, from %d", rest, heartbeatBatchMax-1)
	}
	if empty := drainInto(nil, q); len(empty) != 0 {
		t.Fatalf("empty queue gave %v", empty)
	}
}
