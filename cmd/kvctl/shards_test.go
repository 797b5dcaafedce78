package main

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ridgeline-kv/ridgeline/client"
	"github.com/ridgeline-kv/ridgeline/replication/kvpb"
	"github.com/ridgeline-kv/ridgeline/ring"
)

// stepPins simulates the planner for pinned shards only: one move towards
// a pin per call (the fake's other shards are not at their computed target
// and stay put). Called with fc.mu held.
func (fc *fakeCluster) stepPins() {
	if fc.stalled || fc.m.RebalancePaused || len(fc.m.Pins) == 0 {
		return
	}
	for _, mv := range ring.Plan(fc.m, func(string) bool { return true }, ring.PlanOptions{}).Moves {
		if fc.m.Pins[mv.Shard] == nil {
			continue
		}
		if next, err := fc.m.Apply(mv); err == nil {
			fc.m = next
			fc.done++
		}
		return
	}
}

// pin answers a pinning call as the meta leader does.
func (nd *fakeNode) pin(shard uint32, build func(m *ring.Map) ([]string, error)) (*kvpb.MapChangeResponse, error) {
	fc := nd.fc
	fc.mu.Lock()
	defer fc.mu.Unlock()
	var pin []string
	if build != nil {
		var err error
		if pin, err = build(fc.m); err != nil {
			return nil, status.Error(codes.FailedPrecondition, "replication: refused: "+err.Error())
		}
		if slices.Equal(pin, fc.m.Pins[shard]) {
			return &kvpb.MapChangeResponse{Epoch: fc.m.Epoch}, nil
		}
	}
	fc.m = fc.m.WithPin(shard, pin)
	return &kvpb.MapChangeResponse{Epoch: fc.m.Epoch}, nil
}

func (nd *fakeNode) MoveReplica(_ context.Context, req *kvpb.MoveReplicaRequest) (*kvpb.MapChangeResponse, error) {
	return nd.pin(req.GetShard(), func(m *ring.Map) ([]string, error) {
		return ring.PinMove(m, req.GetShard(), req.GetFromNode(), req.GetToNode())
	})
}

func (nd *fakeNode) TransferLeader(_ context.Context, req *kvpb.TransferLeaderRequest) (*kvpb.MapChangeResponse, error) {
	return nd.pin(req.GetShard(), func(m *ring.Map) ([]string, error) {
		return ring.PinLeader(m, req.GetShard(), req.GetToNode())
	})
}

func (nd *fakeNode) UnpinShard(_ context.Context, req *kvpb.UnpinShardRequest) (*kvpb.MapChangeResponse, error) {
	return nd.pin(req.GetShard(), nil)
}

// testShards lists elasticMap with shard 0 pinned (in force, not reached
// yet), shard 1 pinned onto the draining n4 (ignored) and a pending reason.
func testShards(paused bool) *shardsResult {
	m := elasticMap()
	m.RebalancePaused = paused
	m.Pins = map[uint32][]string{0: {"n2", "n1", "n3"}, 1: {"n2", "n3", "n4"}}
	reports := map[string]*client.NodeStatus{
		"n1": {NodeID: "n1", Replicas: []client.ReplicaStatus{{Meta: true, State: "Leader"}, {Shard: 0, State: "Leader", AppliedIndex: 120}, {Shard: 1, State: "Follower", LeaderID: "n2", AppliedIndex: 80}}},
		"n3": {NodeID: "n3", Replicas: []client.ReplicaStatus{{Meta: true, State: "Follower"}, {Shard: 0, State: "Follower", LeaderID: "n1", AppliedIndex: 118}, {Shard: 1, State: "Follower", LeaderID: "n2", AppliedIndex: 79}}},
	}
	pending := []string{"shard 1: learner 1/n1/6 catching up", "node n7 joins"}
	return buildShards(m, reports, pending, nil)
}

func TestShardsPrinters_Golden(t *testing.T) {
	tests := []goldenCase{
		{"shards", testShards(false)},
		{"shards_paused", testShards(true)},
		{"shards_move", &shardChangeResult{Shard: 3, Action: "move", From: "n1", To: "n4", Epoch: 14, Pin: []string{"n4", "n2", "n3"}, State: "pinned"}},
		{"shards_move_paused", &shardChangeResult{Shard: 3, Action: "move", From: "n1", To: "n4", Epoch: 14, Pin: []string{"n4", "n2", "n3"}, State: "pinned", RebalancePaused: true}},
		{"shards_move_done", &shardChangeResult{Shard: 3, Action: "move", From: "n1", To: "n4", Epoch: 18, Pin: []string{"n4", "n2", "n3"}, State: "done"}},
		{"shards_transfer_leader", &shardChangeResult{Shard: 2, Action: "transfer-leader", To: "n3", Epoch: 15, Pin: []string{"n3", "n1", "n2"}, State: "pinned"}},
		{"shards_transfer_leader_done", &shardChangeResult{Shard: 2, Action: "transfer-leader", To: "n3", Epoch: 16, Pin: []string{"n3", "n1", "n2"}, State: "done"}},
		{"shards_unpin", &shardChangeResult{Shard: 2, Action: "unpin", Epoch: 17, State: "unpinned"}},
	}
	goldenPrints(t, tests)
}

func TestBuildShards(t *testing.T) {
	res := testShards(false)
	if len(res.Shards) != 2 {
		t.Fatalf("%d rows; want 2", len(res.Shards))
	}
	s0, s1 := res.Shards[0], res.Shards[1]
	if s0.Leader != "n1" || s0.AppliedIndex != 120 || !s0.Pinned || s0.PinIgnored != "" || s0.Pending != "moving to its pin" || s0.AtPin {
		t.Errorf("shard 0 row = %+v; want led by n1 at 120, pinned in force, not at its pin", s0)
	}
	// n2 leads shard 1 but did not report: the followers' hint names it.
	if s1.Leader != "n2" || s1.AppliedIndex != 0 || s1.PinIgnored != "node n4 is draining" || s1.Pending != "learner 1/n1/6 catching up" {
		t.Errorf("shard 1 row = %+v; want leader n2 (hint, index unknown), pin ignored for draining n4, pending learner", s1)
	}
	want := []shardReplica{{"n2", "voter"}, {"n3", "voter"}, {"n1", "learner"}, {"n4", "voter"}}
	if !slices.Equal(s1.Replicas, want) {
		t.Errorf("shard 1 replicas %v; want %v", s1.Replicas, want)
	}
}

func TestShards_List(t *testing.T) {
	fc := newFakeCluster(t, 4)
	code, out, errOut := kvctl(fc, "-o", "json", "shards", "list")
	if code != exitOK {
		t.Fatalf("kvctl shards list: exit %d, stderr %s", code, errOut)
	}
	var res shardsResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("shards -o json: %v\n%s", err, out)
	}
	if len(res.Shards) != 4 || res.Shards[2].Leader != "n3" || res.Shards[2].Replicas[0] != (shardReplica{"n3", "voter"}) {
		t.Errorf("shards list = %+v; want 4 shards, shard 2 led by its preferred n3", res.Shards)
	}
	// The bare group lists too.
	if code, out2, _ := kvctl(fc, "-o", "json", "shards"); code != exitOK || out2 != out {
		t.Errorf("kvctl shards: exit %d, output differs from shards list:\n%s", code, out2)
	}
}

func TestShards_MoveWait(t *testing.T) {
	fc := newFakeCluster(t, 4) // shard 0 on n1, n2, n3
	code, out, errOut := kvctl(fc, "shards", "move", "0", "n1", "n4", "--wait", "--poll-interval", "5ms")
	if code != exitOK {
		t.Fatalf("shards move 0 n1 n4 --wait: exit %d, stderr %s", code, errOut)
	}
	if want := "shard 0 moved from n1 to n4 (map epoch "; !strings.Contains(out, want) || !strings.Contains(out, "replicas on n4, n2, n3") {
		t.Errorf("stdout = %q; want %q and the new replicas", out, want)
	}
	if !strings.Contains(errOut, "shard 0 is pinned to n4, n2, n3") || !strings.Contains(errOut, "shard 0 on n4:voter n2:voter n3:voter") {
		t.Errorf("stderr = %q; want progress to the pinned set", errOut)
	}
	// Asking again after the move succeeds (the pin already makes it).
	if code, out, errOut := kvctl(fc, "shards", "move", "0", "n1", "n4", "--wait", "--poll-interval", "5ms"); code != exitOK || !strings.Contains(out, "moved") {
		t.Errorf("repeated move: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if code, out, errOut := kvctl(fc, "shards", "unpin", "0"); code != exitOK || !strings.Contains(out, "shard 0 is unpinned") {
		t.Errorf("unpin: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	fc.mu.Lock()
	pins := fc.m.Pins
	fc.mu.Unlock()
	if pins != nil {
		t.Errorf("pins after unpin: %v", pins)
	}
}

func TestShards_TransferLeaderWait(t *testing.T) {
	fc := newFakeCluster(t, 4) // shard 1 on n2, n3, n4
	code, out, errOut := kvctl(fc, "shards", "transfer-leader", "1", "n4", "--wait", "--poll-interval", "5ms")
	if code != exitOK || !strings.Contains(out, "shard 1 is led by n4") {
		t.Fatalf("shards transfer-leader 1 n4 --wait: exit %d, stdout %q, stderr %s", code, out, errOut)
	}
	if !strings.Contains(errOut, "shard 1 on n4:voter n2:voter n3:voter, led by n4") {
		t.Errorf("stderr = %q; want the final progress line", errOut)
	}
}

func TestShards_Paused(t *testing.T) {
	fc := newFakeCluster(t, 4)
	fc.mu.Lock()
	fc.m.RebalancePaused = true
	fc.mu.Unlock()
	code, out, errOut := kvctl(fc, "shards", "move", "0", "n1", "n4")
	if code != exitOK || !strings.Contains(out, "rebalancing is paused: the change waits for kvctl rebalance resume") {
		t.Errorf("move while paused: exit %d, stdout %q, stderr %q; want success saying it waits for resume", code, out, errOut)
	}
	code, _, errOut = kvctl(fc, "shards", "move", "0", "n1", "n4", "--wait", "--wait-timeout", "1s", "--poll-interval", "10ms")
	if code != exitError || !strings.Contains(errOut, "(moves PAUSED: kvctl rebalance resume)") {
		t.Errorf("move --wait while paused: exit %d, stderr %q; want a timeout that says moves are paused", code, errOut)
	}
}

func TestShards_Errors(t *testing.T) {
	tests := []struct {
		name  string
		setup func(fc *fakeCluster)
		args  []string
		code  int
		msg   string
	}{
		{"shard not a number", nil, []string{"shards", "move", "x", "n1", "n4"}, exitUsage, `SHARD must be a shard number from 0 to 3 (the cluster has 4 shards), got "x"`},
		{"shard negative", nil, []string{"shards", "transfer-leader", "-1", "n1"}, exitUsage, "unknown shorthand flag"},
		{"shard out of range", nil, []string{"shards", "transfer-leader", "4", "n1"}, exitUsage, `got "4"`},
		{"unpin bad shard", nil, []string{"shards", "unpin", "zero"}, exitUsage, `SHARD must be a shard number`},
		{"unknown node", nil, []string{"shards", "move", "0", "n1", "n9"}, exitUsage, `node "n9" is not in the cluster map (epoch 1); its nodes are n1, n2, n3, n4`},
		{"move needs three", nil, []string{"shards", "move", "0", "n1"}, exitUsage, "move takes 3 argument(s): SHARD FROM TO; got 2"},
		{"transfer needs two", nil, []string{"shards", "transfer-leader", "0"}, exitUsage, "transfer-leader takes 2 argument(s): SHARD TO"},
		{"shards typo", nil, []string{"shards", "mvoe"}, exitUsage, `unknown command "mvoe" for "kvctl shards"`},
		{"move to a node with a replica", nil, []string{"shards", "move", "0", "n1", "n2"}, exitError,
			"refused: move shard 0 from n1 to n2: ring: cannot pin shard: node n2 already holds a replica of shard 0 (its replicas are on n1, n2, n3); move it to a node without one"},
		{"move from a node without one", nil, []string{"shards", "move", "0", "n4", "n1"}, exitError, "node n1 already holds a replica"},
		{"move onto itself", nil, []string{"shards", "move", "0", "n1", "n1"}, exitError, "both nodes are n1"},
		{"move to a draining node", func(fc *fakeCluster) { fc.setNode("n4", ring.NodeDraining) }, []string{"shards", "move", "0", "n1", "n4"}, exitError,
			"node n4 is draining; a replica can only move to an active node"},
		{"leader without a replica", nil, []string{"shards", "transfer-leader", "0", "n4"}, exitError, "node n4 holds no replica of shard 0 (its replicas are on n1, n2, n3); move a replica there first"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fc := newFakeCluster(t, 4)
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

func TestShards_Unavailable(t *testing.T) {
	for _, args := range [][]string{
		{"shards"},
		{"shards", "move", "0", "n1", "n4"},
		{"shards", "transfer-leader", "0", "n1", "--wait"},
		{"shards", "unpin", "0"},
	} {
		code, _, errOut := kvctl(nil, append([]string{"--endpoints", "127.0.0.1:1", "--timeout", "300ms"}, args...)...)
		if code != exitUnavailable || !strings.Contains(errOut, "unavailable") {
			t.Errorf("kvctl %v with no cluster: exit %d, stderr %q; want exit %d, unavailable", args, code, errOut, exitUnavailable)
		}
	}
}

// A wait ends with an error, not a timeout, once the pin it waits for is
// replaced or overridden.
func TestPinInForce(t *testing.T) {
	m := elasticMap()
	pin := []string{"n2", "n1", "n3"}
	m.Pins = map[uint32][]string{0: pin, 1: {"n2", "n3", "n4"}}
	if err := pinInForce(m, 0, pin); err != nil {
		t.Errorf("pin in force: %v", err)
	}
	if err := pinInForce(m, 0, []string{"n1", "n2", "n3"}); err == nil || !strings.Contains(err.Error(), "shard 0's pin changed to [n2, n1, n3]") {
		t.Errorf("pin replaced: %v", err)
	}
	if err := pinInForce(m, 1, m.Pins[1]); err == nil || !strings.Contains(err.Error(), "pin is ignored at map epoch 12: node n4 is draining") {
		t.Errorf("pin overridden: %v", err)
	}
}
