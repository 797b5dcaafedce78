package transport

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/ridgeline-kv/ridgeline/replication/kvpb"
)

func TestConfig_Validate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"ok", Config{LocalAddr: "127.0.0.2:7001"}, ""},
		{"hostname", Config{LocalAddr: "node-a:7001"}, ""},
		{"no port", Config{LocalAddr: "127.0.0.1"}, "LocalAddr"},
		{"port 0", Config{LocalAddr: "127.0.0.1:0"}, "port"},
		{"no host", Config{LocalAddr: ":7001"}, "no host"},
		{"unspecified", Config{LocalAddr: "0.0.0.0:7001"}, "unspecified"},
		{"negative timeout", Config{LocalAddr: "127.0.0.1:1", RPCTimeout: -1}, "RPCTimeout"},
		{"huge chunk", Config{LocalAddr: "127.0.0.1:1", SnapshotChunkSize: MaxMessageSize}, "SnapshotChunkSize"},
		{"negative sends", Config{LocalAddr: "127.0.0.1:1", MaxSnapshotSends: -1}, "MaxSnapshotSends"},
		{"negative receives", Config{LocalAddr: "127.0.0.1:1", MaxSnapshotReceives: -1}, "MaxSnapshotReceives"},
		{"negative snapshot timeout", Config{LocalAddr: "127.0.0.1:1", SnapshotTimeout: -1}, "SnapshotTimeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate() = %v, want an error mentioning %q", err, tt.wantErr)
			}
		})
	}
	// Every violation is reported.
	err := (&Config{LocalAddr: "x", RPCTimeout: -1, MaxSnapshotSends: -1}).Validate()
	for _, want := range []string{"LocalAddr", "RPCTimeout", "MaxSnapshotSends"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to mention %s", err, want)
		}
	}
}

func TestManager_Transport(t *testing.T) {
	n := startNode(t, "127.0.0.1", Config{})
	tr := mustTransport(t, n.mgr, "1/a/1")
	if _, err := n.mgr.Transport("1/a/1"); !errors.Is(err, ErrAlreadyRegistered) {
		t.Fatalf("second Transport(1/a/1) = %v, want ErrAlreadyRegistered", err)
	}
	if _, err := n.mgr.Transport(""); err == nil {
		t.Fatal("Transport(\"\") succeeded, want an error")
	}
	if got, want := tr.LocalAddr(), raft.ServerAddress(n.addr); got != want {
		t.Errorf("LocalAddr() = %q, want %q", got, want)
	}
	if got := tr.DecodePeer(tr.EncodePeer("x", "10.0.0.1:7")); got != "10.0.0.1:7" {
		t.Errorf("DecodePeer(EncodePeer) = %q", got)
	}
	_ = tr.Close()
	_ = tr.Close() // idempotent
	if _, err := n.mgr.Transport("1/a/1"); err != nil {
		t.Fatalf("Transport(1/a/1) after Close = %v, want a fresh registration", err)
	}
	if err := n.mgr.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := n.mgr.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := n.mgr.Transport("1/a/2"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Transport after Close = %v, want ErrClosed", err)
	}
}

func TestTransport_UnaryRPCs(t *testing.T) {
	a := startNode(t, "127.0.0.1", Config{})
	b := startNode(t, "127.0.0.1", Config{})
	ta := mustTransport(t, a.mgr, "1/a/1")
	tb := mustTransport(t, b.mgr, "1/b/1")
	var mu sync.Mutex
	var got []any
	serve(t, tb, func(rpc raft.RPC) {
		mu.Lock()
		got = append(got, rpc.Command)
		mu.Unlock()
		okHandler(rpc)
	})
	target := raft.ServerAddress(b.addr)

	ae := &raft.AppendEntriesRequest{RPCHeader: testHeader, Term: 3, PrevLogEntry: 99, PrevLogTerm: 3, Entries: testEntries(4, 10), LeaderCommitIndex: 99}
	var aeResp raft.AppendEntriesResponse
	if err := ta.AppendEntries("1/b/1", target, ae, &aeResp); err != nil {
		t.Fatalf("AppendEntries: %v", err)
	}
	if !aeResp.Success || aeResp.LastLog != 103 || aeResp.Term != 3 {
		t.Errorf("AppendEntries response = %+v, want success, LastLog 103, term 3", aeResp)
	}
	var rvResp raft.RequestVoteResponse
	if err := ta.RequestVote("1/b/1", target, &raft.RequestVoteRequest{RPCHeader: testHeader, Term: 4}, &rvResp); err != nil || !rvResp.Granted || rvResp.Term != 4 {
		t.Errorf("RequestVote = %+v, %v; want granted in term 4", rvResp, err)
	}
	var pvResp raft.RequestPreVoteResponse
	if err := ta.RequestPreVote("1/b/1", target, &raft.RequestPreVoteRequest{RPCHeader: testHeader, Term: 5}, &pvResp); err != nil || !pvResp.Granted || pvResp.Term != 5 {
		t.Errorf("RequestPreVote = %+v, %v; want granted in term 5", pvResp, err)
	}
	var tnResp raft.TimeoutNowResponse
	if err := ta.TimeoutNow("1/b/1", target, &raft.TimeoutNowRequest{RPCHeader: testHeader}, &tnResp); err != nil {
		t.Errorf("TimeoutNow: %v", err)
	}

	mu.Lock()
	defer mu.Unlock()
	if len(got) != 4 {
		t.Fatalf("handler saw %d RPCs, want 4", len(got))
	}
	if r, ok := got[0].(*raft.AppendEntriesRequest); !ok || len(r.Entries) != 4 || !bytes.Equal(r.Entries[3].Data, ae.Entries[3].Data) || !bytes.Equal(r.Addr, testHeader.Addr) {
		t.Errorf("handler got %+v, want the AppendEntries sent", got[0])
	}
	st := b.mgr.Stats()
	if st.AppendEntries != 1 || st.RequestVotes != 1 || st.RequestPreVotes != 1 || st.TimeoutNows != 1 {
		t.Errorf("server stats = %+v, want one of each unary RPC", st)
	}
}

func TestTransport_UnknownTarget(t *testing.T) {
	a := startNode(t, "127.0.0.1", Config{})
	b := startNode(t, "127.0.0.1", Config{})
	ta := mustTransport(t, a.mgr, "1/a/1")
	tb := mustTransport(t, b.mgr, "1/b/1")
	serve(t, tb, okHandler)
	target := raft.ServerAddress(b.addr)

	check := func(name string, err error, id string) {
		t.Helper()
		if !errors.Is(err, ErrUnknownReplica) || status.Code(err) != codes.NotFound {
			t.Errorf("%s: err = %v (code %v), want ErrUnknownReplica and NotFound", name, err, status.Code(err))
		}
		if want := "no replica " + id + " on this node"; err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v, want it to say %q", name, err, want)
		}
	}
	var resp raft.RequestVoteResponse
	check("RequestVote", ta.RequestVote("9/b/1", target, &raft.RequestVoteRequest{Term: 1}, &resp), "9/b/1")
	check("AppendEntries", ta.AppendEntries("9/b/1", target, &raft.AppendEntriesRequest{Term: 1}, new(raft.AppendEntriesResponse)), "9/b/1")
	check("InstallSnapshot", ta.InstallSnapshot("9/b/1", target, &raft.InstallSnapshotRequest{Size: 3}, new(raft.InstallSnapshotResponse), strings.NewReader("abc")), "9/b/1")

	// A closed replica is unregistered.
	_ = tb.Close()
	check("after Close", ta.RequestVote("1/b/1", target, &raft.RequestVoteRequest{Term: 1}, &resp), "1/b/1")
}

func TestTransport_RemoteError(t *testing.T) {
	a := startNode(t, "127.0.0.1", Config{})
	b := startNode(t, "127.0.0.1", Config{})
	ta := mustTransport(t, a.mgr, "1/a/1")
	tb := mustTransport(t, b.mgr, "1/b/1")
	serve(t, tb, func(rpc raft.RPC) { rpc.Respond(nil, errors.New("disk on fire")) })
	err := ta.RequestVote("1/b/1", raft.ServerAddress(b.addr), &raft.RequestVoteRequest{Term: 1}, new(raft.RequestVoteResponse))
	if !errors.Is(err, ErrRemote) || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("err = %v, want ErrRemote carrying the handler's message", err)
	}
}

func TestTransport_HeartbeatFastPath(t *testing.T) {
	a := startNode(t, "127.0.0.1", Config{})
	b := startNode(t, "127.0.0.1", Config{})
	ta := mustTransport(t, a.mgr, "1/a/1")
	tb := mustTransport(t, b.mgr, "1/b/1")
	var viaConsumer, viaHeartbeat atomic.Int64
	serve(t, tb, func(rpc raft.RPC) { viaConsumer.Add(1); okHandler(rpc) })
	tb.SetHeartbeatHandler(func(rpc raft.RPC) { viaHeartbeat.Add(1); okHandler(rpc) })
	target := raft.ServerAddress(b.addr)
	var resp raft.AppendEntriesResponse
	if err := ta.AppendEntries("1/b/1", target, &raft.AppendEntriesRequest{RPCHeader: testHeader, Term: 2}, &resp); err != nil || !resp.Success {
		t.Fatalf("heartbeat: %+v, %v", resp, err)
	}
	if err := ta.AppendEntries("1/b/1", target, &raft.AppendEntriesRequest{RPCHeader: testHeader, Term: 2, LeaderCommitIndex: 5}, &resp); err != nil {
		t.Fatalf("append: %v", err)
	}
	if viaHeartbeat.Load() != 1 || viaConsumer.Load() != 1 {
		t.Errorf("heartbeat handler saw %d, consumer saw %d; want 1 and 1", viaHeartbeat.Load(), viaConsumer.Load())
	}
	if st := b.mgr.Stats(); st.Heartbeats != 1 {
		t.Errorf("Stats().Heartbeats = %d, want 1", st.Heartbeats)
	}
}

// raft's fast path answers a heartbeat before it returns, except while it
// shuts down: an answer that comes later still reaches the leader, and one
// that never comes fails the heartbeat at the RPC timeout instead of hanging.
func TestTransport_HeartbeatFastPathAnsweredLate(t *testing.T) {
	a := startNode(t, "127.0.0.1", Config{RPCTimeout: 500 * time.Millisecond})
	b := startNode(t, "127.0.0.1", Config{RPCTimeout: 500 * time.Millisecond})
	ta := mustTransport(t, a.mgr, "1/a/1")
	tb := mustTransport(t, b.mgr, "1/b/1")
	serve(t, tb, okHandler)
	var answer atomic.Bool
	answer.Store(true)
	tb.SetHeartbeatHandler(func(rpc raft.RPC) {
		if answer.Load() {
			go func() { time.Sleep(20 * time.Millisecond); okHandler(rpc) }()
		}
	})
	target := raft.ServerAddress(b.addr)
	var resp raft.AppendEntriesResponse
	if err := ta.AppendEntries("1/b/1", target, &raft.AppendEntriesRequest{RPCHeader: testHeader, Term: 2}, &resp); err != nil || !resp.Success {
		t.Fatalf("heartbeat answered late: %+v, %v; want success", resp, err)
	}
	answer.Store(false)
	done := make(chan error, 1)
	go func() {
		_, err := tb.dispatch(context.Background(), 100*time.Millisecond, &raft.AppendEntriesRequest{RPCHeader: testHeader, Term: 2}, nil, true)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("heartbeat never answered: %v; want DeadlineExceeded", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("heartbeat never answered still waits after 10s")
	}
}

func TestTransport_NoAnswer(t *testing.T) {
	a := startNode(t, "127.0.0.1", Config{RPCTimeout: 200 * time.Millisecond})
	b := startNode(t, "127.0.0.1", Config{})
	ta := mustTransport(t, a.mgr, "1/a/1")
	tb := mustTransport(t, b.mgr, "1/b/1") // nobody reads its Consumer
	target := raft.ServerAddress(b.addr)

	// Deadline: the RPC gives up.
	err := ta.RequestVote("1/b/1", target, &raft.RequestVoteRequest{Term: 1}, new(raft.RequestVoteResponse))
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("err = %v, want DeadlineExceeded", err)
	}

	// Close while an RPC waits for the replica: Unavailable, not a hang.
	tc := mustTransport(t, a.mgr, "1/a/2")
	tc.m.cfg.RPCTimeout = time.Minute
	errc := make(chan error, 1)
	go func() {
		errc <- tc.RequestVote("1/b/1", target, &raft.RequestVoteRequest{Term: 1}, new(raft.RequestVoteResponse))
	}()
	waitFor(t, 5*time.Second, "the RPC to reach the server", func() bool { return b.mgr.Stats().RequestVotes == 2 })
	_ = tb.Close()
	if err := <-errc; status.Code(err) != codes.Unavailable {
		t.Fatalf("err = %v, want Unavailable", err)
	}
}

func TestManager_OneConnectionPerPeer(t *testing.T) {
	a := startNode(t, "127.0.0.1", Config{})
	b := startNode(t, "127.0.0.1", Config{})
	const groups = 10
	var wg sync.WaitGroup
	for g := range groups {
		ta := mustTransport(t, a.mgr, fmt.Sprintf("%d/a/1", g))
		tb := mustTransport(t, b.mgr, fmt.Sprintf("%d/b/1", g))
		serve(t, tb, okHandler)
		wg.Go(func() {
			for range 5 {
				if err := ta.RequestVote(tb.ID(), raft.ServerAddress(b.addr), &raft.RequestVoteRequest{Term: 1}, new(raft.RequestVoteResponse)); err != nil {
					t.Errorf("RequestVote: %v", err)
				}
			}
			p, err := ta.AppendEntriesPipeline(tb.ID(), raft.ServerAddress(b.addr))
			if err != nil {
				t.Errorf("pipeline: %v", err)
				return
			}
			_ = p.Close()
		})
	}
	wg.Wait()
	if got := b.lis.accepted.Load(); got != 1 {
		t.Errorf("server accepted %d connections from %d groups, want 1", got, groups)
	}
	if got := a.mgr.Stats().Conns; got != 1 {
		t.Errorf("client pool holds %d connections, want 1", got)
	}
}

func TestManager_SourceAddressBinding(t *testing.T) {
	probe, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Skipf("127.0.0.2 not usable here: %v", err)
	}
	probe.Close()

	var mu sync.Mutex
	var peers []string
	record := func(ctx context.Context) {
		if p, ok := peer.FromContext(ctx); ok {
			mu.Lock()
			peers = append(peers, p.Addr.(*net.TCPAddr).IP.String())
			mu.Unlock()
		}
	}
	srv := startNode(t, "127.0.0.1", Config{},
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			record(ctx)
			return h(ctx, req)
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			record(ss.Context())
			return h(srv, ss)
		}))
	m, err := New(Config{LocalAddr: "127.0.0.2:7001", Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	tr := mustTransport(t, m, "1/src/1")
	err = tr.RequestVote("1/none/1", raft.ServerAddress(srv.addr), &raft.RequestVoteRequest{Term: 1}, new(raft.RequestVoteResponse))
	if status.Code(err) != codes.NotFound {
		t.Fatalf("RequestVote = %v, want NotFound", err)
	}
	_ = tr.InstallSnapshot("1/none/1", raft.ServerAddress(srv.addr), &raft.InstallSnapshotRequest{}, new(raft.InstallSnapshotResponse), strings.NewReader(""))
	mu.Lock()
	defer mu.Unlock()
	if len(peers) != 2 {
		t.Fatalf("server saw %d calls, want 2", len(peers))
	}
	for _, ip := range peers {
		if ip != "127.0.0.2" {
			t.Errorf("server saw peer IP %s, want 127.0.0.2", ip)
		}
	}
}

// recvCounter counts messages received on server streams.
type recvCounter struct {
	grpc.ServerStream
	n *atomic.Int64
}

func (s recvCounter) RecvMsg(m any) error {
	err := s.ServerStream.RecvMsg(m)
	if err == nil {
		s.n.Add(1)
	}
	return err
}

func TestTransport_InstallSnapshot(t *testing.T) {
	var msgs atomic.Int64
	a := startNode(t, "127.0.0.1", Config{SnapshotChunkSize: 64 << 10})
	b := startNode(t, "127.0.0.1", Config{}, grpc.ChainStreamInterceptor(
		func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			return h(srv, recvCounter{ss, &msgs})
		}))
	ta := mustTransport(t, a.mgr, "1/a/1")
	tb := mustTransport(t, b.mgr, "1/b/1")

	data := make([]byte, 1<<20+3)
	for i := range data {
		data[i] = byte(i * 7)
	}
	var gotSum [32]byte
	var gotReq *raft.InstallSnapshotRequest
	serve(t, tb, func(rpc raft.RPC) {
		gotReq = rpc.Command.(*raft.InstallSnapshotRequest)
		h := sha256.New()
		// Small reads, as raft's sink might do.
		n, err := io.CopyBuffer(h, rpc.Reader, make([]byte, 1000))
		h.Sum(gotSum[:0])
		rpc.Respond(&raft.InstallSnapshotResponse{Term: gotReq.Term, Success: err == nil && n == gotReq.Size}, err)
	})
	req := &raft.InstallSnapshotRequest{RPCHeader: testHeader, SnapshotVersion: 1, Term: 7, LastLogIndex: 500, LastLogTerm: 6,
		Configuration: []byte("conf"), ConfigurationIndex: 450, Size: int64(len(data))}
	var resp raft.InstallSnapshotResponse
	if err := ta.InstallSnapshot("1/b/1", raft.ServerAddress(b.addr), req, &resp, bytes.NewReader(data)); err != nil {
		t.Fatalf("InstallSnapshot: %v", err)
	}
	if !resp.Success || resp.Term != 7 {
		t.Errorf("response = %+v, want success in term 7", resp)
	}
	if gotSum != sha256.Sum256(data) {
		t.Error("received snapshot data differs from what was sent")
	}
	if gotReq.LastLogIndex != 500 || string(gotReq.Configuration) != "conf" {
		t.Errorf("received request %+v", gotReq)
	}
	if want := int64(1 + (len(data)+64<<10-1)/(64<<10)); msgs.Load() != want {
		t.Errorf("server received %d messages, want %d (request + 64 KiB chunks)", msgs.Load(), want)
	}
	if a.mgr.Stats().SnapshotsSent != 1 || b.mgr.Stats().SnapshotsReceived != 1 {
		t.Errorf("stats: sent %d, received %d; want 1, 1", a.mgr.Stats().SnapshotsSent, b.mgr.Stats().SnapshotsReceived)
	}
}

func TestTransport_SnapshotReceiveLimit(t *testing.T) {
	a := startNode(t, "127.0.0.1", Config{})
	b := startNode(t, "127.0.0.1", Config{MaxSnapshotReceives: 1})
	ta := mustTransport(t, a.mgr, "1/a/1")
	tb := mustTransport(t, b.mgr, "1/b/1")
	release := make(chan struct{})
	var active, maxActive atomic.Int64
	serve(t, tb, func(rpc raft.RPC) {
		// raft handles RPCs one at a time; run snapshots concurrently here
		// to observe the limit.
		go func() {
			n := active.Add(1)
			for m := maxActive.Load(); n > m && !maxActive.CompareAndSwap(m, n); m = maxActive.Load() {
			}
			<-release
			active.Add(-1)
			okHandler(rpc)
		}()
	})
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			var resp raft.InstallSnapshotResponse
			if err := ta.InstallSnapshot("1/b/1", raft.ServerAddress(b.addr), &raft.InstallSnapshotRequest{Size: 4}, &resp, strings.NewReader("abcd")); err != nil || !resp.Success {
				t.Errorf("InstallSnapshot = %+v, %v", resp, err)
			}
		})
	}
	waitFor(t, 5*time.Second, "both transfers to reach the server", func() bool { return b.mgr.Stats().SnapshotsReceived == 2 })
	waitFor(t, 5*time.Second, "one transfer to reach raft", func() bool { return active.Load() == 1 })
	close(release)
	wg.Wait()
	if maxActive.Load() != 1 {
		t.Errorf("%d snapshots were received at once, want at most MaxSnapshotReceives=1", maxActive.Load())
	}
}

func TestTransport_SnapshotSendLimit(t *testing.T) {
	a := startNode(t, "127.0.0.1", Config{MaxSnapshotSends: 1, SnapshotTimeout: 300 * time.Millisecond})
	b := startNode(t, "127.0.0.1", Config{})
	ta := mustTransport(t, a.mgr, "1/a/1")
	// Hold the only send slot.
	if err := a.mgr.sendSem.Acquire(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	defer a.mgr.sendSem.Release(1)
	err := ta.InstallSnapshot("1/b/1", raft.ServerAddress(b.addr), &raft.InstallSnapshotRequest{}, new(raft.InstallSnapshotResponse), strings.NewReader(""))
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "send slot") {
		t.Fatalf("err = %v, want a deadline waiting for a send slot", err)
	}
}

func TestTransport_SnapshotSenderStalls(t *testing.T) {
	b := startNode(t, "127.0.0.1", Config{RPCTimeout: 200 * time.Millisecond})
	tb := mustTransport(t, b.mgr, "1/b/1")
	readErr := make(chan error, 1)
	serve(t, tb, func(rpc raft.RPC) {
		_, err := io.Copy(io.Discard, rpc.Reader)
		readErr <- err
		rpc.Respond(&raft.InstallSnapshotResponse{}, err)
	})
	cc, err := grpc.NewClient("passthrough:///"+b.addr, grpc.WithTransportCredentials(insecureCreds()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	stream, err := kvpb.NewRaftClient(cc).InstallSnapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	req := installSnapshotRequestToProto("1/b/1", &raft.InstallSnapshotRequest{Size: 1 << 20})
	if err := stream.Send(&kvpb.InstallSnapshotChunk{Request: req, Data: []byte("first")}); err != nil {
		t.Fatal(err)
	}
	// Now stall: send nothing more and wait for the server's verdict.
	var resp kvpb.InstallSnapshotResponse
	err = stream.RecvMsg(&resp)
	if status.Code(err) != codes.DeadlineExceeded || !strings.Contains(err.Error(), "stalled") {
		t.Fatalf("server ended the stream with %v, want DeadlineExceeded for a stalled sender", err)
	}
	if err := <-readErr; err == nil {
		t.Fatal("raft's reader returned no error for a stalled transfer")
	}
}

func TestPipeline(t *testing.T) {
	_, b, p := openPipeline(t, Config{}, okHandler)
	const n = 300
	go func() {
		for i := range n {
			req := &raft.AppendEntriesRequest{RPCHeader: testHeader, Term: 2, PrevLogEntry: uint64(i), PrevLogTerm: 2,
				Entries: []*raft.Log{{Index: uint64(i + 1), Term: 2, Data: []byte("x")}}}
			if _, err := p.AppendEntries(req, new(raft.AppendEntriesResponse)); err != nil {
				t.Errorf("AppendEntries %d: %v", i, err)
				return
			}
		}
	}()
	for i := range n {
		f := <-p.Consumer()
		if err := f.Error(); err != nil {
			t.Fatalf("future %d: %v", i, err)
		}
		// Requests queued behind a busy follower share its answer, whose
		// LastLog is the last of them; the leader reads only Success.
		if idx := f.Request().Entries[0].Index; idx != uint64(i+1) || f.Response().LastLog < idx || !f.Response().Success {
			t.Fatalf("future %d: response %+v for request %d, want in-order success", i, f.Response(), idx)
		}
	}
	if st := b.mgr.Stats(); st.PipelineStreams != 1 || st.PipelineAppends != n {
		t.Errorf("server stats %+v, want 1 stream with %d appends", st, n)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := p.AppendEntries(&raft.AppendEntriesRequest{}, new(raft.AppendEntriesResponse)); !errors.Is(err, raft.ErrPipelineShutdown) {
		t.Errorf("AppendEntries after Close = %v, want ErrPipelineShutdown", err)
	}
}

// TestPipeline_CoalescesQueuedAppends: requests that queue while the
// follower's raft is busy reach it as one AppendEntries carrying all their
// entries, and each request still gets its answer, in order.
func TestPipeline_CoalescesQueuedAppends(t *testing.T) {
	a := startNode(t, "127.0.0.1", Config{})
	b := startNode(t, "127.0.0.1", Config{})
	ta := mustTransport(t, a.mgr, "1/a/1")
	tb := mustTransport(t, b.mgr, "1/b/1")
	const n = 5
	var got [][]uint64 // entry indexes of each AppendEntries raft saw
	var mu sync.Mutex
	serve(t, tb, func(rpc raft.RPC) {
		req := rpc.Command.(*raft.AppendEntriesRequest)
		if len(got) == 0 {
			// Busy with the first until the rest have arrived.
			waitFor(t, 10*time.Second, "the other requests to arrive", func() bool { return b.mgr.Stats().PipelineAppends == n })
		}
		var idx []uint64
		for _, e := range req.Entries {
			idx = append(idx, e.Index)
		}
		mu.Lock()
		got = append(got, idx)
		mu.Unlock()
		if req.LeaderCommitIndex != idx[len(idx)-1]-1 { // each request commits up to its previous entry
			t.Errorf("commit index %d with entries %v; want the last request's, %d", req.LeaderCommitIndex, idx, idx[len(idx)-1]-1)
		}
		okHandler(rpc)
	})
	p, err := ta.AppendEntriesPipeline("1/b/1", raft.ServerAddress(b.addr))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for i := range uint64(n) {
		req := &raft.AppendEntriesRequest{RPCHeader: testHeader, Term: 2, PrevLogEntry: i, PrevLogTerm: 2, LeaderCommitIndex: i,
			Entries: []*raft.Log{{Index: i + 1, Term: 2, Data: []byte("x")}}}
		if _, err := p.AppendEntries(req, new(raft.AppendEntriesResponse)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		f := <-p.Consumer()
		if err := f.Error(); err != nil || !f.Response().Success || f.Request().Entries[0].Index != uint64(i+1) {
			t.Fatalf("future %d: %v, %+v for request %d; want in-order success", i, err, f.Response(), f.Request().Entries[0].Index)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	// Whatever had arrived when raft took the first AppendEntries went with
	// it; all the others arrived while raft was busy, and went together.
	if all := slices.Concat(got...); len(got) > 2 || !slices.Equal(all, []uint64{1, 2, 3, 4, 5}) {
		t.Fatalf("raft saw %v; want entries 1..5 in at most two AppendEntries", got)
	}
	if st := b.mgr.Stats(); st.CoalescedAppends != uint64(n-len(got)) {
		t.Errorf("CoalescedAppends = %d; want %d", st.CoalescedAppends, n-len(got))
	}
}

// TestContinues: only a request that carries the entries right after the
// previous one's, from the same leader in the same term, joins it.
func TestContinues(t *testing.T) {
	mk := func(term, prev, prevTerm uint64, entries ...uint64) *kvpb.AppendEntriesRequest {
		r := &kvpb.AppendEntriesRequest{Header: &kvpb.RPCHeader{Target: "1/b/1", Id: []byte("1/a/1"), Addr: []byte("a")},
			Term: term, PrevLogEntry: prev, PrevLogTerm: prevTerm}
		for _, e := range entries {
			r.Entries = append(r.Entries, &kvpb.RaftLog{Index: e, Term: term})
		}
		return r
	}
	first := mk(3, 4, 3, 5, 6)
	other := mk(3, 6, 3, 7)
	other.Header.Id = []byte("1/c/1")
	tests := []struct {
		name string
		b    *kvpb.AppendEntriesRequest
		want bool
	}{
		{"next", mk(3, 6, 3, 7, 8), true},
		{"gap", mk(3, 7, 3, 8), false},
		{"overlap", mk(3, 5, 3, 6), false},
		{"new term", mk(4, 6, 3, 7), false},
		{"no entries", mk(3, 6, 3), false},
		{"other leader", other, false},
	}
	for _, tt := range tests {
		if got := continues(first, tt.b); got != tt.want {
			t.Errorf("%s: continues = %v; want %v", tt.name, got, tt.want)
		}
	}
}

func TestPipeline_Errors(t *testing.T) {
	a := startNode(t, "127.0.0.1", Config{RPCTimeout: 300 * time.Millisecond})
	b := startNode(t, "127.0.0.1", Config{})
	ta := mustTransport(t, a.mgr, "1/a/1")
	tb := mustTransport(t, b.mgr, "1/b/1")
	tc := mustTransport(t, b.mgr, "1/c/1")
	serve(t, tb, func(rpc raft.RPC) { rpc.Respond(nil, errors.New("log gap")) })
	_ = tc // nobody answers 1/c/1

	tests := []struct {
		name    string
		target  raft.ServerID
		wantErr func(error) bool
	}{
		{"remote error", "1/b/1", func(err error) bool { return errors.Is(err, ErrRemote) && strings.Contains(err.Error(), "log gap") }},
		{"unknown replica", "1/zz/1", func(err error) bool { return errors.Is(err, ErrUnknownReplica) }},
		{"deadline", "1/c/1", func(err error) bool { return status.Code(err) == codes.DeadlineExceeded }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ta.AppendEntriesPipeline(tt.target, raft.ServerAddress(b.addr))
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			resp := new(raft.AppendEntriesResponse)
			if _, err := p.AppendEntries(&raft.AppendEntriesRequest{Term: 1, PrevLogEntry: 1}, resp); err != nil {
				t.Fatalf("AppendEntries: %v", err)
			}
			f := <-p.Consumer()
			if err := f.Error(); !tt.wantErr(err) {
				t.Fatalf("future error = %v", err)
			}
			if f.Response().Success {
				t.Error("a failed future reports success")
			}
		})
	}
}

func TestManager_ReconnectsAfterPeerRestart(t *testing.T) {
	a := startNode(t, "127.0.0.1", Config{RPCTimeout: time.Second})
	b := startNode(t, "127.0.0.1", Config{})
	ta := mustTransport(t, a.mgr, "1/a/1")
	serve(t, mustTransport(t, b.mgr, "1/b/1"), okHandler)
	vote := func() error {
		return ta.RequestVote("1/b/1", raft.ServerAddress(b.addr), &raft.RequestVoteRequest{Term: 1}, new(raft.RequestVoteResponse))
	}
	if err := vote(); err != nil {
		t.Fatal(err)
	}
	b.stop()
	// Let the connection fail a few times so gRPC's reconnect backoff grows.
	for range 5 {
		if err := vote(); status.Code(err) != codes.Unavailable {
			t.Fatalf("RequestVote to a stopped node = %v, want Unavailable", err)
		}
	}
	b2 := startNode(t, b.addr, Config{})
	serve(t, mustTransport(t, b2.mgr, "1/b/1"), okHandler)
	start := time.Now()
	waitFor(t, 5*time.Second, "the restarted peer to be reachable", func() bool { return vote() == nil })
	t.Logf("reconnected %v after the restart", time.Since(start).Round(time.Millisecond))
	if got := a.mgr.Stats().Conns; got != 1 {
		t.Errorf("pool holds %d connections after the restart, want 1", got)
	}
}

// TestTransport_CommitLimit: with a commit limit set, the leader commit index
// a follower receives, by unary AppendEntries and on a pipeline, is never
// above the limit; below it, it passes unchanged.
func TestTransport_CommitLimit(t *testing.T) {
	a := startNode(t, "127.0.0.1", Config{})
	b := startNode(t, "127.0.0.1", Config{})
	ta := mustTransport(t, a.mgr, "1/a/1")
	tb := mustTransport(t, b.mgr, "1/b/1")
	commits := make(chan uint64, 8)
	serve(t, tb, func(rpc raft.RPC) {
		commits <- rpc.Command.(*raft.AppendEntriesRequest).LeaderCommitIndex
		okHandler(rpc)
	})
	var limit atomic.Uint64
	ta.SetCommitLimit(limit.Load)
	target := raft.ServerAddress(b.addr)
	p, err := ta.AppendEntriesPipeline("1/b/1", target)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for i, tc := range []struct{ commit, limit, want uint64 }{
		{commit: 10, limit: 7, want: 7},
		{commit: 10, limit: math.MaxUint64, want: 10},
		{commit: 10, limit: 10, want: 10},
	} {
		limit.Store(tc.limit)
		req := func() *raft.AppendEntriesRequest {
			return &raft.AppendEntriesRequest{RPCHeader: testHeader, Term: 2, PrevLogEntry: uint64(i), PrevLogTerm: 2,
				Entries: []*raft.Log{{Index: uint64(i + 1), Term: 2}}, LeaderCommitIndex: tc.commit}
		}
		if err := ta.AppendEntries("1/b/1", target, req(), new(raft.AppendEntriesResponse)); err != nil {
			t.Fatal(err)
		}
		if got := <-commits; got != tc.want {
			t.Errorf("unary: commit %d, limit %d: follower got %d; want %d", tc.commit, tc.limit, got, tc.want)
		}
		r := req()
		f, err := p.AppendEntries(r, new(raft.AppendEntriesResponse))
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Error(); err != nil {
			t.Fatal(err)
		}
		if got := <-commits; got != tc.want {
			t.Errorf("pipeline: commit %d, limit %d: follower got %d; want %d", tc.commit, tc.limit, got, tc.want)
		}
		if r.LeaderCommitIndex != tc.commit {
			t.Errorf("the request raft passed was changed: commit %d; want %d", r.LeaderCommitIndex, tc.commit)
		}
	}
}

// TestTransport_AppendAck: every AppendEntries a follower accepts, by unary
// call or on a pipeline, is reported with the follower, the request's term
// and the last index it covered; refusals, failures and heartbeats are not.
func TestTransport_AppendAck(t *testing.T) {
	ta, b, p := openPipeline(t, Config{}, func(rpc raft.RPC) {
		req := rpc.Command.(*raft.AppendEntriesRequest)
		switch {
		case req.PrevLogEntry == 99: // a log that does not match
			rpc.Respond(&raft.AppendEntriesResponse{Term: req.Term, Success: false}, nil)
		case req.PrevLogEntry == 98: // the follower's term is newer
			rpc.Respond(&raft.AppendEntriesResponse{Term: req.Term + 1, Success: true}, nil)
		case req.PrevLogEntry == 97:
			rpc.Respond(nil, errors.New("disk full"))
		default:
			okHandler(rpc)
		}
	})
	type ack struct {
		id          raft.ServerID
		term, index uint64
	}
	acks := make(chan ack, 16)
	ta.SetAppendAck(func(id raft.ServerID, term, index uint64) { acks <- ack{id, term, index} })
	target := raft.ServerAddress(b.addr)
	entries := func(from, to uint64) []*raft.Log {
		var ls []*raft.Log
		for i := from; i <= to; i++ {
			ls = append(ls, &raft.Log{Index: i, Term: 3})
		}
		return ls
	}
	send := func(how string, req *raft.AppendEntriesRequest) {
		t.Helper()
		req.RPCHeader = testHeader
		resp := new(raft.AppendEntriesResponse)
		if how == "unary" {
			_ = ta.AppendEntries("1/b/1", target, req, resp)
			return
		}
		f, err := p.AppendEntries(req, resp)
		if err != nil {
			t.Fatal(err)
		}
		_ = f.Error()
	}
	for _, how := range []string{"unary", "pipeline"} {
		send(how, &raft.AppendEntriesRequest{Term: 3, PrevLogEntry: 4, PrevLogTerm: 3, Entries: entries(5, 7), LeaderCommitIndex: 4})
		send(how, &raft.AppendEntriesRequest{Term: 3, PrevLogEntry: 99, PrevLogTerm: 3, Entries: entries(100, 101)})
		send(how, &raft.AppendEntriesRequest{Term: 3, PrevLogEntry: 98, PrevLogTerm: 3, Entries: entries(99, 99)})
		if how == "unary" { // a failed call would end the pipeline stream
			send(how, &raft.AppendEntriesRequest{Term: 3, PrevLogEntry: 97, PrevLogTerm: 3, Entries: entries(98, 98)})
		}
		send(how, &raft.AppendEntriesRequest{Term: 3, Leader: []byte("a")}) // a heartbeat
		send(how, &raft.AppendEntriesRequest{Term: 4, PrevLogEntry: 7, PrevLogTerm: 3, LeaderCommitIndex: 7})
		for _, want := range []ack{{"1/b/1", 3, 7}, {"1/b/1", 4, 7}} {
			select {
			case got := <-acks:
				if got != want {
					t.Errorf("%s: acknowledgement %+v; want %+v", how, got, want)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("%s: no acknowledgement %+v", how, want)
			}
		}
		select {
		case got := <-acks:
			t.Errorf("%s: unexpected acknowledgement %+v", how, got)
		default:
		}
	}
}

// TestTransport_CloseUnblocksAFullPipeline: raft's replication goroutine
// blocked in AppendEntries on a full pipeline returns once the Transport is
// closed. (The replica closes its Transport before raft's Shutdown, which
// waits for that goroutine: a node's reconcile loop once hung there for good,
// stopping every later replica start and removal on the node.)
func TestTransport_CloseUnblocksAFullPipeline(t *testing.T) {
	ta, _, p := openPipeline(t, Config{RPCTimeout: time.Minute}, okHandler)
	send := func(i int) error {
		req := &raft.AppendEntriesRequest{RPCHeader: testHeader, Term: 1, PrevLogEntry: uint64(i), PrevLogTerm: 1,
			Entries: []*raft.Log{{Index: uint64(i + 1), Term: 1}}}
		_, err := p.AppendEntries(req, new(raft.AppendEntriesResponse))
		return err
	}
	// Nobody consumes the completed futures (raft would): the receive
	// goroutine fills Consumer(), then holds one more, then the queue of
	// requests in flight fills. That is room for 2*pipelineMaxInFlight+1.
	for i := 0; i < 2*pipelineMaxInFlight+1; i++ {
		if err := send(i); err != nil {
			t.Fatalf("AppendEntries %d: %v", i, err)
		}
	}
	blocked := make(chan error, 1)
	go func() { blocked <- send(2*pipelineMaxInFlight + 1) }()
	ta.Close()
	select {
	case err := <-blocked:
		if !errors.Is(err, raft.ErrPipelineShutdown) {
			t.Errorf("AppendEntries on the full pipeline after Close = %v; want raft.ErrPipelineShutdown", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("AppendEntries on a full pipeline still blocked 10s after the Transport was closed")
	}
}
