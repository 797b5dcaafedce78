package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ridgeline-kv/ridgeline/client"
	"github.com/ridgeline-kv/ridgeline/replication/kvpb"
	"github.com/ridgeline-kv/ridgeline/ring"
)

// elasticMap is testMap with a draining, a removed and a down node.
func elasticMap() *ring.Map {
	m := testMap()
	m.Epoch = 12
	m.Nodes = append(m.Nodes,
		ring.Node{ID: "n4", Incarnation: 2, Addr: "127.0.0.4:7001", State: ring.NodeDraining},
		ring.Node{ID: "n5", Incarnation: 1, Addr: "127.0.0.5:7001", State: ring.NodeRemoved},
		ring.Node{ID: "n6", Incarnation: 1, Addr: "127.0.0.6:7001", State: ring.NodeDown},
	)
	m.Shards[1].Replicas = append(m.Shards[1].Replicas, ring.Replica{ID: "1/n4/5", NodeID: "n4"})
	return m
}

func testNodes() *nodesResult {
	reports := map[string]*client.NodeStatus{
		"n1": {NodeID: "n1", Replicas: []client.ReplicaStatus{{Meta: true, State: "Leader"}, {Shard: 0, State: "Leader"}, {Shard: 1, State: "Follower"}}},
		"n2": {NodeID: "n2", Replicas: []client.ReplicaStatus{{Meta: true, State: "Follower"}, {Shard: 0, State: "Follower"}, {Shard: 1, State: "Leader"}}},
		"n3": {NodeID: "n3", Replicas: []client.ReplicaStatus{{Meta: true, State: "Follower"}, {Shard: 0, State: "Follower"}, {Shard: 1, State: "Follower"}}},
		"n4": {NodeID: "n4", Replicas: []client.ReplicaStatus{{Shard: 1, State: "Follower"}}},
	}
	errs := map[string]error{"n6": errors.New("client: unavailable: node n6 at 127.0.0.6:7001 did not answer: context deadline exceeded")}
	return buildNodes(elasticMap(), reports, errs)
}

func testRebalance() *client.RebalanceStatus {
	return &client.RebalanceStatus{Epoch: 14, MovesInFlight: 1, MovesPlanned: 2, MovesDone: 7, Pending: 2, Misplaced: 3,
		MinimumMoves: 3, SnapshotBytes: 1 << 20, PendingReasons: []string{"shard 1: learner 1/n3/9 catching up", "shard 5: waiting for a target node"}}
}

func TestNodesPrinters_Golden(t *testing.T) {
	paused := testRebalance()
	paused.Paused = true
	balanced := &client.RebalanceStatus{Epoch: 20, Balanced: true, MovesDone: 10}
	tests := []goldenCase{
		{"nodes", testNodes()},
		{"nodes_draining", &nodeChangeResult{Node: "n4", State: "draining", Epoch: 13, Replicas: 6}},
		{"nodes_drained", &nodeChangeResult{Node: "n4", State: "drained", Epoch: 20}},
		{"nodes_removed", &nodeChangeResult{Node: "n4", State: "removed", Epoch: 21}},
		{"rebalance_status", newRebalanceResult(testRebalance(), "")},
		{"rebalance_balanced", newRebalanceResult(balanced, "")},
		{"rebalance_pause", newRebalanceResult(paused, "paused")},
	}
	goldenPrints(t, tests)
}

func TestBuildNodes(t *testing.T) {
	res := testNodes()
	want := map[string]nodeRow{
		"n1": {ID: "n1", Addr: "127.0.0.1:7001", State: "active", Replicas: 2, Leaders: 1, MetaVoter: true, MetaLeader: true, Reachable: true},
		"n4": {ID: "n4", Addr: "127.0.0.4:7001", State: "draining", Replicas: 1, Reachable: true},
		"n5": {ID: "n5", Addr: "127.0.0.5:7001", State: "removed"},
		"n6": {ID: "n6", Addr: "127.0.0.6:7001", State: "down", Error: "unavailable: node n6 at 127.0.0.6:7001 did not answer: context deadline exceeded"},
	}
	for _, got := range res.Nodes {
		if w, ok := want[got.ID]; ok && got != w {
			t.Errorf("row %s = %+v; want %+v", got.ID, got, w)
		}
	}
	if len(res.Nodes) != 6 {
		t.Errorf("%d rows; want 6", len(res.Nodes))
	}
}

func TestProgressPercent(t *testing.T) {
	tests := []struct{ done, misplaced, want int }{
		{0, 0, 100}, {5, 0, 100}, {0, 4, 0}, {7, 3, 70}, {1, 2, 33},
	}
	for _, tt := range tests {
		if got := progressPercent(tt.done, tt.misplaced); got != tt.want {
			t.Errorf("progressPercent(%d, %d) = %d; want %d", tt.done, tt.misplaced, got, tt.want)
		}
	}
	if got, want := progressBar(70, 10), "[#######...]"; got != want {
		t.Errorf("progressBar(70, 10) = %q; want %q", got, want)
	}
}

// fakeCluster serves the Admin service on n loopback nodes over one shared
// map and simulates the planner: each Rebalance call moves one replica off a
// draining node (unless moves are paused or stalled).
type fakeCluster struct {
	mu      sync.Mutex
	m       *ring.Map
	done    int
	stalled bool // moves make no progress
	addrs   []string
}

type fakeNode struct {
	kvpb.UnimplementedAdminServer
	id string
	fc *fakeCluster
}

// newFakeCluster starts nodes n1..n{n} holding 4 shards of RF 3.
func newFakeCluster(t *testing.T, n int) *fakeCluster {
	t.Helper()
	fc := &fakeCluster{}
	m := &ring.Map{ClusterID: "c-test", Epoch: 1, ShardCount: 4, RF: 3}
	for i := range n {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		id := fmt.Sprintf("n%d", i+1)
		srv := grpc.NewServer()
		kvpb.RegisterAdminServer(srv, &fakeNode{id: id, fc: fc})
		go srv.Serve(lis)
		t.Cleanup(srv.Stop)
		fc.addrs = append(fc.addrs, lis.Addr().String())
		m.Nodes = append(m.Nodes, ring.Node{ID: id, Incarnation: 1, Addr: lis.Addr().String(), State: ring.NodeActive})
		if i < 3 {
			m.MetaVoters = append(m.MetaVoters, id)
		}
	}
	for s := range m.ShardCount {
		sh := ring.Shard{ID: s}
		for j := range 3 {
			id := fmt.Sprintf("n%d", (int(s)+j)%n+1)
			sh.Replicas = append(sh.Replicas, ring.Replica{ID: ring.ReplicaID(s, id, m.NextReplicaSeq), NodeID: id})
			m.NextReplicaSeq++
		}
		m.Shards = append(m.Shards, sh)
	}
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	fc.m = m
	return fc
}

func (fc *fakeCluster) endpoints() string { return strings.Join(fc.addrs, ",") }

func (fc *fakeCluster) replicasOn(id string) int {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	return len(fc.m.ReplicasOn(id))
}

func (fc *fakeCluster) setNode(id string, s ring.NodeState) uint64 {
	next := fc.m.Clone()
	next.Epoch++
	for i := range next.Nodes {
		if next.Nodes[i].ID == id {
			next.Nodes[i].State = s
		}
	}
	fc.m = next
	return next.Epoch
}

// misplaced counts replicas on nodes that are not active.
func (fc *fakeCluster) misplaced() int {
	n := 0
	for _, nd := range fc.m.Nodes {
		if nd.State != ring.NodeActive {
			n += len(fc.m.ReplicasOn(nd.ID))
		}
	}
	return n
}

// step moves one replica off a non-active node to an active node not in the
// shard.
func (fc *fakeCluster) step() {
	if fc.stalled || fc.m.RebalancePaused {
		return
	}
	next := fc.m.Clone()
	for si, sh := range next.Shards {
		for ri, r := range sh.Replicas {
			if nd, _ := next.Node(r.NodeID); nd.State == ring.NodeActive {
				continue
			}
			for _, to := range next.Nodes {
				if to.State != ring.NodeActive || slices.ContainsFunc(sh.Replicas, func(r ring.Replica) bool { return r.NodeID == to.ID }) {
					continue
				}
				next.Shards[si].Replicas[ri] = ring.Replica{ID: ring.ReplicaID(sh.ID, to.ID, next.NextReplicaSeq), NodeID: to.ID}
				next.NextReplicaSeq++
				next.Epoch++
				fc.m = next
				fc.done++
				return
			}
		}
	}
}

func (nd *fakeNode) ClusterMap(context.Context, *kvpb.ClusterMapRequest) (*kvpb.ClusterMapResponse, error) {
	nd.fc.mu.Lock()
	defer nd.fc.mu.Unlock()
	nd.fc.stepPins()
	leaders := map[uint32]string{}
	for _, s := range nd.fc.m.Shards {
		leaders[s.ID] = s.Replicas[0].NodeID
	}
	return &kvpb.ClusterMapResponse{Map: nd.fc.m.Proto(), Leaders: leaders}, nil
}

func (nd *fakeNode) NodeStatus(context.Context, *kvpb.NodeStatusRequest) (*kvpb.NodeStatusResponse, error) {
	fc := nd.fc
	fc.mu.Lock()
	defer fc.mu.Unlock()
	resp := &kvpb.NodeStatusResponse{Node: &kvpb.NodeInfo{Id: nd.id}, Epoch: fc.m.Epoch, ClusterId: fc.m.ClusterID}
	if nd.id == "n1" {
		resp.Replicas = append(resp.Replicas, &kvpb.ReplicaStatus{Meta: true, State: "Leader"})
	}
	for _, ref := range fc.m.ReplicasOn(nd.id) {
		state := "Follower"
		if fc.m.Shards[ref.Shard].Replicas[0].NodeID == nd.id {
			state = "Leader"
		}
		resp.Replicas = append(resp.Replicas, &kvpb.ReplicaStatus{Shard: ref.Shard, ReplicaId: ref.Replica.ID, State: state})
	}
	return resp, nil
}

func (nd *fakeNode) DrainNode(_ context.Context, req *kvpb.DrainNodeRequest) (*kvpb.MapChangeResponse, error) {
	fc := nd.fc
	fc.mu.Lock()
	defer fc.mu.Unlock()
	n, ok := fc.m.Node(req.GetNodeId())
	switch {
	case !ok:
		return nil, status.Errorf(codes.InvalidArgument, "replication: invalid argument: no node %q in the cluster", req.GetNodeId())
	case n.State == ring.NodeDraining:
		return &kvpb.MapChangeResponse{Epoch: fc.m.Epoch}, nil
	}
	if err := ring.CanDrain(fc.m, n.ID); err != nil {
		return nil, status.Error(codes.FailedPrecondition, "replication: refused: "+err.Error())
	}
	return &kvpb.MapChangeResponse{Epoch: fc.setNode(n.ID, ring.NodeDraining)}, nil
}

func (nd *fakeNode) RemoveNode(_ context.Context, req *kvpb.RemoveNodeRequest) (*kvpb.MapChangeResponse, error) {
	fc := nd.fc
	fc.mu.Lock()
	defer fc.mu.Unlock()
	n, ok := fc.m.Node(req.GetNodeId())
	if !ok {
		return nil, status.Errorf(codes.InvalidArgument, "replication: invalid argument: no node %q in the cluster", req.GetNodeId())
	}
	if held := len(fc.m.ReplicasOn(n.ID)); held > 0 {
		return nil, status.Errorf(codes.FailedPrecondition, "replication: refused: node %q is alive and still holds %d replicas: drain it first (kvctl nodes drain %s --wait)", n.ID, held, n.ID)
	}
	return &kvpb.MapChangeResponse{Epoch: fc.setNode(n.ID, ring.NodeRemoved)}, nil
}

func (nd *fakeNode) Rebalance(_ context.Context, req *kvpb.RebalanceRequest) (*kvpb.RebalanceResponse, error) {
	fc := nd.fc
	fc.mu.Lock()
	defer fc.mu.Unlock()
	if pause := req.GetAction() == kvpb.RebalanceRequest_PAUSE; (pause || req.GetAction() == kvpb.RebalanceRequest_RESUME) && fc.m.RebalancePaused != pause {
		next := fc.m.Clone()
		next.Epoch++
		next.RebalancePaused = pause
		fc.m = next
	}
	if req.GetAction() == kvpb.RebalanceRequest_STATUS {
		fc.step()
	}
	mis := fc.misplaced()
	resp := &kvpb.RebalanceResponse{Epoch: fc.m.Epoch, Paused: fc.m.RebalancePaused, Balanced: mis == 0,
		MovesDone: uint32(fc.done), Misplaced: uint32(mis), MinimumMoves: uint32(mis), Pending: uint32(min(mis, 4))}
	if mis > 0 {
		resp.MovesInFlight, resp.MovesPlanned = 1, uint32(mis-1)
		resp.PendingReasons = []string{"shard 0: replica on a draining node"}
	}
	return resp, nil
}

// kvctl runs the CLI against fc and returns exit code, stdout, stderr.
func kvctl(fc *fakeCluster, args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	if fc != nil {
		args = append([]string{"--endpoints", fc.endpoints(), "--timeout", "2s"}, args...)
	}
	code := run(context.Background(), args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func TestNodes_List(t *testing.T) {
	fc := newFakeCluster(t, 4)
	code, out, errOut := kvctl(fc, "-o", "json", "nodes")
	if code != exitOK {
		t.Fatalf("kvctl nodes: exit %d, stderr %s", code, errOut)
	}
	var res nodesResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("nodes -o json: %v\n%s", err, out)
	}
	if len(res.Nodes) != 4 {
		t.Fatalf("nodes lists %d nodes; want 4:\n%s", len(res.Nodes), out)
	}
	n1 := res.Nodes[0]
	if n1.ID != "n1" || !n1.Reachable || !n1.MetaLeader || n1.Replicas != 3 || n1.Leaders != 1 {
		t.Errorf("n1 row = %+v; want reachable meta leader with 3 replicas leading 1", n1)
	}
}

func TestNodes_DrainWaitRemove(t *testing.T) {
	fc := newFakeCluster(t, 4)
	code, out, errOut := kvctl(fc, "nodes", "drain", "n4", "--wait", "--poll-interval", "5ms")
	if code != exitOK {
		t.Fatalf("nodes drain n4 --wait: exit %d, stderr %s", code, errOut)
	}
	if !strings.Contains(out, "node n4 is drained") || !strings.Contains(out, "kvctl nodes remove n4") {
		t.Errorf("stdout = %q; want the drained message and the next step", out)
	}
	if !strings.Contains(errOut, "n4 holds 3 of 3 replicas [....................]   0%") || !strings.Contains(errOut, "n4 holds 0 of 3 replicas [####################] 100%") {
		t.Errorf("stderr = %q; want progress lines from 3 replicas down to 0", errOut)
	}
	if got := fc.replicasOn("n4"); got != 0 {
		t.Errorf("n4 holds %d replicas after the drain; want 0", got)
	}
	code, out, errOut = kvctl(fc, "nodes", "remove", "n4")
	if code != exitOK || !strings.Contains(out, "node n4 is removed") {
		t.Errorf("nodes remove n4: exit %d, stdout %q, stderr %q; want 0 and removed", code, out, errOut)
	}
}

func TestNodes_Errors(t *testing.T) {
	tests := []struct {
		name  string
		nodes int
		setup func(fc *fakeCluster)
		args  []string
		code  int
		msg   string
	}{
		{"unknown node", 4, nil, []string{"nodes", "drain", "n9"}, exitUsage, `node "n9" is not in the cluster map (epoch 1); its nodes are n1, n2, n3, n4`},
		{"unknown node remove", 4, nil, []string{"nodes", "remove", "n9"}, exitUsage, `node "n9" is not in the cluster map`},
		{"drain refused below RF", 3, nil, []string{"nodes", "drain", "n3"}, exitError,
			`refused: drain node n3: ring: cannot drain node: node "n3": 2 active nodes would remain, fewer than the replication factor 3; add a node first`},
		{"remove before drain", 4, nil, []string{"nodes", "remove", "n4"}, exitError, "drain it first (kvctl nodes drain n4 --wait)"},
		{"drain wait timeout", 4, func(fc *fakeCluster) { fc.stalled = true },
			[]string{"nodes", "drain", "n4", "--wait", "--wait-timeout", "200ms", "--poll-interval", "10ms"}, exitError,
			"node n4 is not drained after waiting 200ms (last seen: epoch 2: n4 holds 3 of 3 replicas"},
		{"rebalance wait timeout", 4, func(fc *fakeCluster) { fc.stalled = true; fc.setNode("n4", ring.NodeDraining) },
			[]string{"rebalance", "status", "--wait", "--wait-timeout", "200ms", "--poll-interval", "10ms"}, exitError,
			"placement is not balanced after waiting 200ms"},
		{"bad wait timeout", 4, nil, []string{"nodes", "drain", "n4", "--wait", "--wait-timeout", "0s"}, exitUsage, "--wait-timeout must be positive"},
		{"drain needs an ID", 4, nil, []string{"nodes", "drain"}, exitUsage, "drain takes 1 argument(s): ID"},
		{"nodes typo", 4, nil, []string{"nodes", "drian", "n4"}, exitUsage, `unknown command "drian" for "kvctl nodes"`},
		{"rebalance without subcommand", 4, nil, []string{"rebalance"}, exitUsage, "needs a subcommand"},
		{"rebalance status args", 4, nil, []string{"rebalance", "status", "x"}, exitUsage, "status takes 0 argument(s)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fc := newFakeCluster(t, tt.nodes)
			if tt.setup != nil {
				fc.mu.Lock()
				tt.setup(fc)
				fc.mu.Unlock()
			}
			code, _, errOut := kvctl(fc, tt.args...)
			if code != tt.code || !strings.Contains(errOut, tt.msg) {
				t.Errorf("kvctl %v: exit %d, stderr %q; want exit %d and %q", tt.args, code, errOut, tt.code, tt.msg)
			}
		})
	}
}

func TestNodes_Unavailable(t *testing.T) {
	for _, args := range [][]string{
		{"nodes"},
		{"nodes", "drain", "n1", "--wait"},
		{"rebalance", "status"},
		{"rebalance", "pause"},
	} {
		code, _, errOut := kvctl(nil, append([]string{"--endpoints", "127.0.0.1:1", "--timeout", "300ms"}, args...)...)
		if code != exitUnavailable || !strings.Contains(errOut, "unavailable") {
			t.Errorf("kvctl %v with no cluster: exit %d, stderr %q; want exit %d, unavailable", args, code, errOut, exitUnavailable)
		}
	}
}
