package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"

	"github.com/ridgeline-kv/ridgeline/client"
	"github.com/ridgeline-kv/ridgeline/replication/kvpb"
	"github.com/ridgeline-kv/ridgeline/ring"
)

// adminFake is a tiny in-process cluster serving only the Admin service:
// n nodes over one shared cluster map, with scriptable failures per node.
// It answers DrainNode, RemoveNode and Rebalance the way the meta leader
// does (any node answers; the fake has no forwarding to model).
type adminFake struct {
	mu    sync.Mutex
	m     *ring.Map
	calls map[string]int                  // "node/Method" -> count
	fail  func(node, method string) error // nil error: serve
	rebal func(*kvpb.RebalanceResponse)   // adjusts Rebalance answers
	addrs []string
	srvs  []*grpc.Server
}

type adminFakeNode struct {
	kvpb.UnimplementedAdminServer
	id string
	f  *adminFake
}

// newAdminFake starts n nodes n1..n{n}, 2 shards, RF min(n, 3), every node
// active and a meta voter of the first three.
func newAdminFake(t testing.TB, n int) *adminFake {
	t.Helper()
	f := &adminFake{calls: map[string]int{}}
	m := &ring.Map{ClusterID: "fake", Epoch: 1, ShardCount: 2, RF: uint32(min(n, 3))}
	for i := range n {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		id := fmt.Sprintf("n%d", i+1)
		srv := grpc.NewServer()
		kvpb.RegisterAdminServer(srv, &adminFakeNode{id: id, f: f})
		go srv.Serve(lis)
		t.Cleanup(srv.Stop)
		f.srvs = append(f.srvs, srv)
		f.addrs = append(f.addrs, lis.Addr().String())
		m.Nodes = append(m.Nodes, ring.Node{ID: id, Incarnation: 1, Addr: lis.Addr().String(), State: ring.NodeActive})
		if i < 3 {
			m.MetaVoters = append(m.MetaVoters, id)
		}
	}
	for s := range m.ShardCount {
		sh := ring.Shard{ID: s}
		for j := range int(m.RF) {
			id := fmt.Sprintf("n%d", (int(s)+j)%n+1)
			sh.Replicas = append(sh.Replicas, ring.Replica{ID: ring.ReplicaID(s, id, m.NextReplicaSeq), NodeID: id})
			m.NextReplicaSeq++
		}
		m.Shards = append(m.Shards, sh)
	}
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	f.m = m
	return f
}

func (f *adminFake) count(node, method string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[node+"/"+method]
}

func (f *adminFake) setFail(fn func(node, method string) error) {
	f.mu.Lock()
	f.fail = fn
	f.mu.Unlock()
}

// setNodeState commits a map with node id in state s.
func (f *adminFake) setNodeState(id string, s ring.NodeState) uint64 {
	next := f.m.Clone()
	next.Epoch++
	for i := range next.Nodes {
		if next.Nodes[i].ID == id {
			next.Nodes[i].State = s
		}
	}
	f.m = next
	return next.Epoch
}

// enter records a call and returns the scripted failure, with f.mu held on
// success (the caller unlocks).
func (nd *adminFakeNode) enter(method string) error {
	f := nd.f
	f.mu.Lock()
	f.calls[nd.id+"/"+method]++
	if f.fail != nil {
		if err := f.fail(nd.id, method); err != nil {
			f.mu.Unlock()
			return err
		}
	}
	return nil
}

func (nd *adminFakeNode) ClusterMap(context.Context, *kvpb.ClusterMapRequest) (*kvpb.ClusterMapResponse, error) {
	if err := nd.enter("ClusterMap"); err != nil {
		return nil, err
	}
	defer nd.f.mu.Unlock()
	return &kvpb.ClusterMapResponse{Map: nd.f.m.Proto()}, nil
}

func (nd *adminFakeNode) DrainNode(_ context.Context, req *kvpb.DrainNodeRequest) (*kvpb.MapChangeResponse, error) {
	if err := nd.enter("DrainNode"); err != nil {
		return nil, err
	}
	f := nd.f
	defer f.mu.Unlock()
	n, ok := f.m.Node(req.GetNodeId())
	switch {
	case !ok:
		return nil, status.Errorf(codes.InvalidArgument, "replication: invalid argument: no node %q in the cluster (kvctl nodes lists them)", req.GetNodeId())
	case n.State == ring.NodeDraining:
		return &kvpb.MapChangeResponse{Epoch: f.m.Epoch}, nil
	}
	if err := ring.CanDrain(f.m, n.ID); err != nil {
		return nil, status.Error(codes.FailedPrecondition, "replication: refused: "+err.Error())
	}
	return &kvpb.MapChangeResponse{Epoch: f.setNodeState(n.ID, ring.NodeDraining)}, nil
}

func (nd *adminFakeNode) RemoveNode(_ context.Context, req *kvpb.RemoveNodeRequest) (*kvpb.MapChangeResponse, error) {
	if err := nd.enter("RemoveNode"); err != nil {
		return nil, err
	}
	f := nd.f
	defer f.mu.Unlock()
	n, ok := f.m.Node(req.GetNodeId())
	switch {
	case !ok:
		return nil, status.Errorf(codes.InvalidArgument, "replication: invalid argument: no node %q in the cluster", req.GetNodeId())
	case n.State == ring.NodeRemoved:
		return &kvpb.MapChangeResponse{Epoch: f.m.Epoch}, nil
	}
	if held := len(f.m.ReplicasOn(n.ID)); held > 0 {
		return nil, status.Errorf(codes.FailedPrecondition, "replication: refused: node %q is alive and still holds %d replicas: drain it first (kvctl nodes drain %s --wait)", n.ID, held, n.ID)
	}
	return &kvpb.MapChangeResponse{Epoch: f.setNodeState(n.ID, ring.NodeRemoved)}, nil
}

func (nd *adminFakeNode) Rebalance(_ context.Context, req *kvpb.RebalanceRequest) (*kvpb.RebalanceResponse, error) {
	if err := nd.enter("Rebalance"); err != nil {
		return nil, err
	}
	f := nd.f
	defer f.mu.Unlock()
	if pause := req.GetAction() == kvpb.RebalanceRequest_PAUSE; (pause || req.GetAction() == kvpb.RebalanceRequest_RESUME) && f.m.RebalancePaused != pause {
		next := f.m.Clone()
		next.Epoch++
		next.RebalancePaused = pause
		f.m = next
	}
	resp := &kvpb.RebalanceResponse{Epoch: f.m.Epoch, Paused: f.m.RebalancePaused, Balanced: true}
	if f.rebal != nil {
		f.rebal(resp)
	}
	return resp, nil
}

// pin answers a pinning call as the meta leader does: build the pin from
// the map, refuse (FailedPrecondition) when it does not apply.
func (nd *adminFakeNode) pin(method string, shard uint32, build func(m *ring.Map) ([]string, error)) (*kvpb.MapChangeResponse, error) {
	if err := nd.enter(method); err != nil {
		return nil, err
	}
	f := nd.f
	defer f.mu.Unlock()
	var pin []string
	if build != nil {
		var err error
		if pin, err = build(f.m); err != nil {
			return nil, status.Error(codes.FailedPrecondition, "replication: refused: "+err.Error())
		}
	}
	f.m = f.m.WithPin(shard, pin)
	return &kvpb.MapChangeResponse{Epoch: f.m.Epoch}, nil
}

func (nd *adminFakeNode) MoveReplica(_ context.Context, req *kvpb.MoveReplicaRequest) (*kvpb.MapChangeResponse, error) {
	return nd.pin("MoveReplica", req.GetShard(), func(m *ring.Map) ([]string, error) {
		return ring.PinMove(m, req.GetShard(), req.GetFromNode(), req.GetToNode())
	})
}

func (nd *adminFakeNode) TransferLeader(_ context.Context, req *kvpb.TransferLeaderRequest) (*kvpb.MapChangeResponse, error) {
	return nd.pin("TransferLeader", req.GetShard(), func(m *ring.Map) ([]string, error) {
		return ring.PinLeader(m, req.GetShard(), req.GetToNode())
	})
}

func (nd *adminFakeNode) UnpinShard(_ context.Context, req *kvpb.UnpinShardRequest) (*kvpb.MapChangeResponse, error) {
	return nd.pin("UnpinShard", req.GetShard(), nil)
}

func newAdminClient(t *testing.T, f *adminFake) *client.Client {
	t.Helper()
	c, err := client.New(t.Context(), client.Config{
		Endpoints:      f.addrs,
		DialTimeout:    2 * time.Second,
		RequestTimeout: 3 * time.Second,
		AttemptTimeout: 300 * time.Millisecond,
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// noMetaLeader is the server's answer while the meta group elects.
func noMetaLeader() error {
	st, err := status.New(codes.Unavailable, "shard 0 has no leader right now (replication: no leader); retry shortly").
		WithDetails(protoadapt.MessageV1Of(&kvpb.NotLeader{}))
	if err != nil {
		panic(err)
	}
	return st.Err()
}

func TestClient_DrainNode(t *testing.T) {
	tests := []struct {
		name      string
		nodes     int
		node      string
		pre       func(f *adminFake) // called with f.mu held
		fail      func(node, method string) error
		wantErr   error  // nil: success
		wantMsg   string // in the error text
		wantState ring.NodeState
	}{
		{name: "drains", nodes: 4, node: "n4", wantState: ring.NodeDraining},
		{name: "already draining is fine", nodes: 4, node: "n4", wantState: ring.NodeDraining,
			pre: func(f *adminFake) { f.setNodeState("n4", ring.NodeDraining) }},
		{name: "refused below RF", nodes: 3, node: "n3", wantErr: client.ErrRefused,
			wantMsg: "2 active nodes would remain, fewer than the replication factor 3", wantState: ring.NodeActive},
		{name: "unknown node", nodes: 4, node: "n9", wantErr: client.ErrInvalidArgument, wantMsg: `no node "n9"`},
		{name: "retries past unreachable and leaderless nodes", nodes: 4, node: "n4", wantState: ring.NodeDraining,
			fail: func(node, method string) error {
				switch {
				case method != "DrainNode":
					return nil
				case node == "n1":
					return status.Error(codes.Unavailable, "connection refused")
				case node == "n2":
					return noMetaLeader()
				}
				return nil
			}},
		{name: "not-leader routing error is not a refusal", nodes: 4, node: "n4", wantState: ring.NodeDraining,
			fail: func(node, method string) error {
				if method == "DrainNode" && node == "n1" {
					st, _ := status.New(codes.FailedPrecondition, "not the meta leader").WithDetails(protoadapt.MessageV1Of(&kvpb.NotLeader{LeaderId: "n2"}))
					return st.Err()
				}
				return nil
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newAdminFake(t, tt.nodes)
			c := newAdminClient(t, f)
			f.mu.Lock()
			f.fail = tt.fail
			if tt.pre != nil {
				tt.pre(f)
			}
			f.mu.Unlock()
			epoch, err := c.DrainNode(t.Context(), tt.node)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.wantMsg) {
					t.Fatalf("DrainNode(%s) = %d, %v; want an error matching %v containing %q", tt.node, epoch, err, tt.wantErr, tt.wantMsg)
				}
			} else if err != nil {
				t.Fatalf("DrainNode(%s) = %v; want success", tt.node, err)
			}
			if tt.wantState == 0 {
				return
			}
			m, err := c.RefreshMap(t.Context())
			if err != nil {
				t.Fatalf("RefreshMap: %v", err)
			}
			n, _ := m.Node(tt.node)
			if n.State != tt.wantState {
				t.Errorf("after DrainNode(%s): state %v; want %v", tt.node, n.State, tt.wantState)
			}
			if tt.wantErr == nil && epoch != m.Epoch {
				t.Errorf("DrainNode(%s) epoch = %d; want the map's %d", tt.node, epoch, m.Epoch)
			}
		})
	}
}

func TestClient_DrainNode_RetriesOnAnotherNode(t *testing.T) {
	f := newAdminFake(t, 4)
	c := newAdminClient(t, f)
	f.srvs[0].Stop() // n1 refuses connections from now on
	if _, err := c.DrainNode(t.Context(), "n4"); err != nil {
		t.Fatalf("DrainNode with n1 down: %v", err)
	}
	if got := f.count("n2", "DrainNode") + f.count("n3", "DrainNode") + f.count("n4", "DrainNode"); got != 1 {
		t.Errorf("live nodes got %d DrainNode calls; want 1", got)
	}
}

func TestClient_DrainNode_Unavailable(t *testing.T) {
	f := newAdminFake(t, 4)
	c := newAdminClient(t, f)
	f.setFail(func(node, method string) error {
		if method == "DrainNode" {
			return noMetaLeader()
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.DrainNode(ctx, "n4")
	if !errors.Is(err, client.ErrUnavailable) || !strings.Contains(err.Error(), "no node answered drain node n4") {
		t.Fatalf("DrainNode without a meta leader = %v; want ErrUnavailable naming the call", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("DrainNode gave up after %v; want about the 500ms deadline", d)
	}
	if f.count("n1", "DrainNode") < 2 {
		t.Errorf("n1 got %d DrainNode calls; want retries across rounds", f.count("n1", "DrainNode"))
	}
}

func TestClient_RemoveNode(t *testing.T) {
	f := newAdminFake(t, 4)
	c := newAdminClient(t, f)
	_, err := c.RemoveNode(t.Context(), "n4")
	if !errors.Is(err, client.ErrRefused) || !strings.Contains(err.Error(), "drain it first") {
		t.Fatalf("RemoveNode(n4 holding replicas) = %v; want ErrRefused saying drain it first", err)
	}
	if strings.Contains(err.Error(), "replication: refused") {
		t.Errorf("error %q repeats the server's prefix", err)
	}

	// Empty n4 (as a finished drain would), then remove it.
	f.mu.Lock()
	next := f.m.Clone()
	next.Epoch++
	for i := range next.Shards {
		var keep []ring.Replica
		for _, r := range next.Shards[i].Replicas {
			if r.NodeID != "n4" {
				keep = append(keep, r)
			}
		}
		next.Shards[i].Replicas = keep
	}
	f.m = next
	f.mu.Unlock()
	epoch, err := c.RemoveNode(t.Context(), "n4")
	if err != nil {
		t.Fatalf("RemoveNode(empty n4) = %v", err)
	}
	m, err := c.RefreshMap(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := m.Node("n4"); n.State != ring.NodeRemoved || m.Epoch != epoch {
		t.Errorf("after RemoveNode: n4 %v at epoch %d; want removed at epoch %d", n.State, m.Epoch, epoch)
	}
}

func TestClient_PinShard(t *testing.T) {
	f := newAdminFake(t, 4) // shard 0 on n1, n2, n3
	c := newAdminClient(t, f)
	ctx := t.Context()
	pinned := func(shard uint32, epoch uint64, want []string) {
		t.Helper()
		m, err := c.RefreshMap(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got := m.Pin(shard); m.Epoch != epoch || !slices.Equal(got, want) {
			t.Errorf("map at epoch %d pins shard %d to %v; want epoch %d, pin %v", m.Epoch, shard, got, epoch, want)
		}
	}

	epoch, err := c.MoveReplica(ctx, 0, "n1", "n4")
	if err != nil {
		t.Fatalf("MoveReplica(0, n1, n4) = %v", err)
	}
	pinned(0, epoch, []string{"n4", "n2", "n3"})

	epoch, err = c.TransferLeader(ctx, 0, "n3")
	if err != nil {
		t.Fatalf("TransferLeader(0, n3) = %v", err)
	}
	pinned(0, epoch, []string{"n3", "n1", "n2"})

	epoch, err = c.UnpinShard(ctx, 0)
	if err != nil {
		t.Fatalf("UnpinShard(0) = %v", err)
	}
	pinned(0, epoch, nil)

	for _, tt := range []struct {
		name string
		call func() error
		want string
	}{
		{"move from a node without a replica", func() error { _, err := c.MoveReplica(ctx, 0, "n4", "n2"); return err },
			"refused: move shard 0 from n4 to n2: ring: cannot pin shard: node n2 already holds a replica of shard 0"},
		{"move onto the same node", func() error { _, err := c.MoveReplica(ctx, 0, "n1", "n1"); return err }, "both nodes are n1"},
		{"move of a shard that does not exist", func() error { _, err := c.MoveReplica(ctx, 7, "n1", "n4"); return err }, "shard 7 does not exist"},
		{"leader without a replica", func() error { _, err := c.TransferLeader(ctx, 0, "n4"); return err }, "node n4 holds no replica of shard 0"},
	} {
		err := tt.call()
		if !errors.Is(err, client.ErrRefused) || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "replication: refused") {
			t.Errorf("%s: %v; want ErrRefused saying %q", tt.name, err, tt.want)
		}
	}
}

func TestClient_Rebalance(t *testing.T) {
	f := newAdminFake(t, 4)
	c := newAdminClient(t, f)
	f.mu.Lock()
	f.rebal = func(r *kvpb.RebalanceResponse) {
		r.Balanced = false
		r.MovesInFlight, r.MovesPlanned, r.MovesDone = 1, 2, 3
		r.Pending, r.Misplaced, r.MinimumMoves = 4, 5, 6
		r.SnapshotBytes = 7
		r.PendingReasons = []string{"shard 1: waiting for a learner to catch up"}
	}
	f.mu.Unlock()
	tests := []struct {
		action     client.RebalanceAction
		wantPaused bool
	}{
		{client.RebalanceStatusOnly, false},
		{client.RebalancePause, true},
		{client.RebalanceStatusOnly, true},
		{client.RebalancePause, true},
		{client.RebalanceResume, false},
	}
	for _, tt := range tests {
		st, err := c.Rebalance(t.Context(), tt.action)
		if err != nil {
			t.Fatalf("Rebalance(%v): %v", tt.action, err)
		}
		want := client.RebalanceStatus{Epoch: st.Epoch, Paused: tt.wantPaused, MovesInFlight: 1, MovesPlanned: 2, MovesDone: 3,
			Pending: 4, Misplaced: 5, MinimumMoves: 6, SnapshotBytes: 7, PendingReasons: []string{"shard 1: waiting for a learner to catch up"}}
		if fmt.Sprint(*st) != fmt.Sprint(want) {
			t.Errorf("Rebalance(%v) = %+v; want %+v", tt.action, *st, want)
		}
	}
	if _, err := c.Rebalance(t.Context(), client.RebalanceAction(9)); !errors.Is(err, client.ErrInvalidArgument) {
		t.Errorf("Rebalance(9) = %v; want ErrInvalidArgument", err)
	}
}

func TestClient_RefreshMap(t *testing.T) {
	f := newAdminFake(t, 4)
	c := newAdminClient(t, f)
	f.mu.Lock()
	epoch := f.setNodeState("n4", ring.NodeDown)
	f.mu.Unlock()
	if got := c.Map().Epoch; got == epoch {
		t.Fatalf("cached map already at epoch %d", got)
	}
	m, err := c.RefreshMap(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if m.Epoch != epoch || c.Map().Epoch != epoch {
		t.Errorf("RefreshMap epoch %d, Map epoch %d; want %d", m.Epoch, c.Map().Epoch, epoch)
	}

	c.Close()
	if _, err := c.RefreshMap(t.Context()); !errors.Is(err, client.ErrClosed) {
		t.Errorf("RefreshMap after Close = %v; want ErrClosed", err)
	}
	if _, err := c.DrainNode(t.Context(), "n4"); !errors.Is(err, client.ErrClosed) {
		t.Errorf("DrainNode after Close = %v; want ErrClosed", err)
	}
}

// Draining needs somewhere for the replicas to go: in a 3-node cluster with
// 3 replicas per shard the cluster refuses, and says why.
func ExampleClient_DrainNode() {
	endpoints, stop := startExampleCluster()
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.New(ctx, client.Config{Endpoints: endpoints})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	_, err = c.DrainNode(ctx, "n3")
	fmt.Println(errors.Is(err, client.ErrRefused))

	// Wait until the cluster reports balanced, as `kvctl rebalance status
	// --wait` does (a cluster that has just formed may still be admitting
	// its members).
	for {
		st, err := c.Rebalance(ctx, client.RebalanceStatusOnly)
		if err != nil {
			log.Fatal(err)
		}
		if st.Balanced || ctx.Err() != nil {
			fmt.Println("balanced:", st.Balanced, "misplaced:", st.Misplaced)
			break
		}
		time.Sleep(100 * time.Millisecond) // poll interval
	}
	// Output:
	// true
	// balanced: true misplaced: 0
}
