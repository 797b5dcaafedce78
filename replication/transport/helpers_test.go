package transport

import (
	"context"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// countingListener counts accepted connections.
type countingListener struct {
	net.Listener
	accepted atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.accepted.Add(1)
	}
	return c, err
}

// testNode is one node: a Manager serving on its own listener.
type testNode struct {
	addr   string
	mgr    *Manager
	srv    *grpc.Server
	lis    *countingListener
	served chan struct{}
	once   sync.Once
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// startNode starts a node listening on ip:0 (or on ip if it is "ip:port").
// cfg.LocalAddr is set to the listener's address. The node is stopped at
// cleanup.
func startNode(t testing.TB, ip string, cfg Config, srvOpts ...grpc.ServerOption) *testNode {
	t.Helper()
	addr := ip
	if _, _, err := net.SplitHostPort(ip); err != nil {
		addr = net.JoinHostPort(ip, "0")
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen on %s: %v", ip, err)
	}
	cfg.LocalAddr = l.Addr().String()
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	m, err := New(cfg)
	if err != nil {
		l.Close()
		t.Fatalf("New(%+v): %v", cfg, err)
	}
	n := &testNode{
		addr:   cfg.LocalAddr,
		mgr:    m,
		srv:    grpc.NewServer(append(ServerOptions(), srvOpts...)...),
		lis:    &countingListener{Listener: l},
		served: make(chan struct{}),
	}
	m.Register(n.srv)
	go func() {
		defer close(n.served)
		_ = n.srv.Serve(n.lis)
	}()
	t.Cleanup(n.stop)
	return n
}

// stop is a hard stop: server, then Manager. Idempotent.
func (n *testNode) stop() {
	n.once.Do(func() {
		n.srv.Stop()
		<-n.served
		_ = n.mgr.Close()
	})
}

// serve answers every RPC of tr with handle until the test ends or tr
// closes.
func serve(t testing.TB, tr *Transport, handle func(rpc raft.RPC)) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case rpc := <-tr.Consumer():
				handle(rpc)
			case <-ctx.Done():
				return
			case <-tr.shutdownCh:
				return
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
}

// okHandler answers every RPC with a successful response of the right type,
// draining snapshot data.
func okHandler(rpc raft.RPC) {
	switch req := rpc.Command.(type) {
	case *raft.AppendEntriesRequest:
		var last uint64
		if n := len(req.Entries); n > 0 {
			last = req.Entries[n-1].Index
		}
		rpc.Respond(&raft.AppendEntriesResponse{Term: req.Term, LastLog: last, Success: true}, nil)
	case *raft.RequestVoteRequest:
		rpc.Respond(&raft.RequestVoteResponse{Term: req.Term, Granted: true}, nil)
	case *raft.RequestPreVoteRequest:
		rpc.Respond(&raft.RequestPreVoteResponse{Term: req.Term, Granted: true}, nil)
	case *raft.TimeoutNowRequest:
		rpc.Respond(&raft.TimeoutNowResponse{}, nil)
	case *raft.InstallSnapshotRequest:
		n, err := io.Copy(io.Discard, rpc.Reader)
		rpc.Respond(&raft.InstallSnapshotResponse{Term: req.Term, Success: err == nil && n == req.Size}, err)
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func mustTransport(t testing.TB, m *Manager, id string) *Transport {
	t.Helper()
	tr, err := m.Transport(raft.ServerID(id))
	if err != nil {
		t.Fatalf("Transport(%q): %v", id, err)
	}
	t.Cleanup(func() { _ = tr.Close() })
	return tr
}

func insecureCreds() credentials.TransportCredentials { return insecure.NewCredentials() }

func (m *Manager) hasConn(addr raft.ServerAddress) bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	_, ok := m.conns[addr]
	return ok
}

// openPipeline starts two nodes with cfg, serves replica "1/b/1" on the
// second (returned) with handle and opens a pipeline to it from replica
// "1/a/1" (returned) on the first, closed when the test ends.
func openPipeline(t *testing.T, cfg Config, handle func(raft.RPC)) (*Transport, *testNode, raft.AppendPipeline) {
	t.Helper()
	a := startNode(t, "127.0.0.1", cfg)
	b := startNode(t, "127.0.0.1", cfg)
	ta := mustTransport(t, a.mgr, "1/a/1")
	serve(t, mustTransport(t, b.mgr, "1/b/1"), handle)
	p, err := ta.AppendEntriesPipeline("1/b/1", raft.ServerAddress(b.addr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return ta, b, p
}
