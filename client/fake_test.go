package client

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"slices"
	"sort"
	"strconv"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/protoadapt"

	"github.com/ridgeline-kv/ridgeline/replication/kvpb"
	"github.com/ridgeline-kv/ridgeline/ring"
)

// FakeCall records one KV request a fake node received.
type FakeCall struct {
	Node    string
	Method  string
	Shard   uint32
	Key     string
	Session uint64
	Seq     uint64
	Stale   bool
}

// FakeHook scripts faults: called for every KV request before it is served.
// A non-nil err is returned to the client; with applyFirst the request is
// applied first (to simulate an outcome that is lost on the way back).
type FakeHook func(c FakeCall) (err error, applyFirst bool)

// FakeCluster is an in-process stand-in for a Ridgeline cluster: n nodes on
// loopback gRPC listeners serving KV and Admin over one shared state, with
// scriptable leaders, faults and epochs. Every node holds a replica of every
// shard.
type FakeCluster struct {
	mu        sync.Mutex
	shards    uint32
	epoch     uint64
	nodes     []*fakeNode
	leaders   []string          // shard → leader node ID ("" = none)
	advertise map[uint32]string // leaders ClusterMap reports (nil = leaders)
	data      []map[string]*kvpb.KeyValue
	index     uint64
	sessions  map[uint64]*fakeSession
	calls     []FakeCall
	hook      FakeHook
	scanMax   int // server page size cap
	mapCalls  int
}

type fakeSession struct {
	seq  uint64
	resp proto.Message
}

type fakeNode struct {
	kvpb.UnimplementedKVServer
	kvpb.UnimplementedAdminServer
	id   string
	addr string
	srv  *grpc.Server
	c    *FakeCluster
}

// NewFakeCluster starts n nodes with the given number of shards; shard s is
// led by node s mod n. Stop it with Stop.
func NewFakeCluster(n int, shards uint32) (*FakeCluster, error) {
	fc := &FakeCluster{shards: shards, epoch: 1, sessions: make(map[uint64]*fakeSession), scanMax: 10000}
	for i := range n {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			fc.Stop()
			return nil, err
		}
		nd := &fakeNode{id: fmt.Sprintf("n%d", i+1), addr: lis.Addr().String(), srv: grpc.NewServer(), c: fc}
		kvpb.RegisterKVServer(nd.srv, nd)
		kvpb.RegisterAdminServer(nd.srv, nd)
		go nd.srv.Serve(lis)
		fc.nodes = append(fc.nodes, nd)
	}
	for s := range shards {
		fc.leaders = append(fc.leaders, fc.nodes[int(s)%n].id)
		fc.data = append(fc.data, make(map[string]*kvpb.KeyValue))
	}
	return fc, nil
}

// newTestCluster starts a fake cluster stopped at the end of the test.
func newTestCluster(t testing.TB, n int, shards uint32) *FakeCluster {
	t.Helper()
	fc, err := NewFakeCluster(n, shards)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fc.Stop)
	return fc
}

// Stop stops every node.
func (fc *FakeCluster) Stop() {
	for _, nd := range fc.nodes {
		nd.srv.Stop()
	}
}

// StopNode stops one node (connections refused from then on).
func (fc *FakeCluster) StopNode(i int) { fc.nodes[i].srv.Stop() }

// Endpoints returns the nodes' addresses.
func (fc *FakeCluster) Endpoints() []string {
	var eps []string
	for _, nd := range fc.nodes {
		eps = append(eps, nd.addr)
	}
	return eps
}

func (fc *FakeCluster) NodeID(i int) string { return fc.nodes[i].id }

// SetHook installs h (nil removes it).
func (fc *FakeCluster) SetHook(h FakeHook) { fc.mu.Lock(); fc.hook = h; fc.mu.Unlock() }

// SetLeader makes node i lead shard ("" for i < 0: no leader).
func (fc *FakeCluster) SetLeader(shard uint32, i int) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	if i < 0 {
		fc.leaders[shard] = ""
	} else {
		fc.leaders[shard] = fc.nodes[i].id
	}
}

// Advertise sets the leaders ClusterMap reports (nil: the real ones).
func (fc *FakeCluster) Advertise(l map[uint32]string) { fc.mu.Lock(); fc.advertise = l; fc.mu.Unlock() }

// BumpEpoch raises the map epoch.
func (fc *FakeCluster) BumpEpoch() { fc.mu.Lock(); fc.epoch++; fc.mu.Unlock() }

func (fc *FakeCluster) SetScanMax(n int) { fc.mu.Lock(); fc.scanMax = n; fc.mu.Unlock() }

// Calls returns the KV requests received so far.
func (fc *FakeCluster) Calls() []FakeCall {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	return slices.Clone(fc.calls)
}

func (fc *FakeCluster) MapCalls() int { fc.mu.Lock(); defer fc.mu.Unlock(); return fc.mapCalls }

func (fc *FakeCluster) nodeByID(id string) *fakeNode {
	for _, nd := range fc.nodes {
		if nd.id == id {
			return nd
		}
	}
	return nil
}

func (fc *FakeCluster) protoMap() *kvpb.ClusterMap {
	m := &kvpb.ClusterMap{ClusterId: "fake", Epoch: fc.epoch, ShardCount: fc.shards, ReplicationFactor: uint32(len(fc.nodes))}
	ids := make([]string, 0, len(fc.nodes))
	for _, nd := range fc.nodes {
		ids = append(ids, nd.id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		nd := fc.nodeByID(id)
		m.Nodes = append(m.Nodes, &kvpb.NodeInfo{Id: nd.id, Incarnation: 1, Addr: nd.addr, State: kvpb.NodeState_NODE_STATE_ACTIVE})
	}
	seq := uint64(0)
	for s := range fc.shards {
		si := &kvpb.ShardInfo{Id: s}
		for j := range fc.nodes {
			nd := fc.nodes[(int(s)+j)%len(fc.nodes)]
			si.Replicas = append(si.Replicas, &kvpb.ReplicaInfo{Id: ring.ReplicaID(s, nd.id, seq), NodeId: nd.id})
			seq++
		}
		m.Shards = append(m.Shards, si)
	}
	m.NextReplicaSeq = seq
	m.MetaVoters = ids
	return m
}

func (nd *fakeNode) ClusterMap(ctx context.Context, _ *kvpb.ClusterMapRequest) (*kvpb.ClusterMapResponse, error) {
	fc := nd.c
	fc.mu.Lock()
	defer fc.mu.Unlock()
	fc.mapCalls++
	resp := &kvpb.ClusterMapResponse{Map: fc.protoMap(), Leaders: map[uint32]string{}}
	if fc.advertise != nil {
		for k, v := range fc.advertise {
			resp.Leaders[k] = v
		}
	} else {
		for s, l := range fc.leaders {
			if l != "" {
				resp.Leaders[uint32(s)] = l
			}
		}
	}
	return resp, nil
}

func (nd *fakeNode) NodeStatus(ctx context.Context, _ *kvpb.NodeStatusRequest) (*kvpb.NodeStatusResponse, error) {
	fc := nd.c
	fc.mu.Lock()
	defer fc.mu.Unlock()
	resp := &kvpb.NodeStatusResponse{
		Node:      &kvpb.NodeInfo{Id: nd.id, Addr: nd.addr, Incarnation: 1, State: kvpb.NodeState_NODE_STATE_ACTIVE},
		Epoch:     fc.epoch,
		ClusterId: "fake",
	}
	for s := range fc.shards {
		state := "Follower"
		if fc.leaders[s] == nd.id {
			state = "Leader"
		}
		resp.Replicas = append(resp.Replicas, &kvpb.ReplicaStatus{Shard: s, State: state, LeaderId: fc.leaders[s], AppliedIndex: fc.index, CommitIndex: fc.index, Keys: uint64(len(fc.data[s]))})
	}
	return resp, nil
}

// statusWith builds a status error with a detail.
func statusWith(code codes.Code, msg string, detail proto.Message) error {
	st := status.New(code, msg)
	if detail != nil {
		if d, err := st.WithDetails(protoadapt.MessageV1Of(detail)); err == nil {
			st = d
		}
	}
	return st.Err()
}

// NotLeaderErr, NoLeaderErr, WrongShardErr, OutcomeUnknownErr are the
// server's routing errors, for hooks.
func (fc *FakeCluster) NotLeaderErr(shard uint32, leader int) error {
	nl := &kvpb.NotLeader{Shard: shard}
	if leader >= 0 {
		nl.LeaderId, nl.LeaderAddr = fc.nodes[leader].id, fc.nodes[leader].addr
	}
	return statusWith(codes.FailedPrecondition, "not the leader of shard "+strconv.Itoa(int(shard)), nl)
}

func NoLeaderErr(shard uint32) error {
	return statusWith(codes.Unavailable, "shard has no leader", &kvpb.NotLeader{Shard: shard})
}

func WrongShardErr(shard uint32) error {
	return statusWith(codes.FailedPrecondition, "shard not on this node", &kvpb.WrongShard{Shard: shard})
}

func OutcomeUnknownErr(shard uint32) error {
	return statusWith(codes.Unavailable, "leadership lost; outcome unknown", &kvpb.OutcomeUnknown{Shard: shard})
}

// begin records the call and applies routing and the hook. It returns
// (resp, err, done): done means answer with resp/err without applying.
// It is called with fc.mu held; run is the request's effect.
func (nd *fakeNode) serve(call FakeCall, write *kvpb.WriteHeader, run func() proto.Message) (proto.Message, error) {
	fc := nd.c
	fc.mu.Lock()
	fc.calls = append(fc.calls, call)
	hook := fc.hook
	fc.mu.Unlock()
	var hookErr error
	applyFirst := false
	if hook != nil {
		hookErr, applyFirst = hook(call)
		if hookErr != nil && !applyFirst {
			return nil, hookErr
		}
	}
	fc.mu.Lock()
	defer fc.mu.Unlock()
	if int(call.Shard) >= len(fc.leaders) {
		return nil, status.Error(codes.InvalidArgument, "no such shard")
	}
	if !call.Stale {
		switch l := fc.leaders[call.Shard]; {
		case l == "":
			return nil, NoLeaderErr(call.Shard)
		case l != nd.id:
			ld := fc.nodeByID(l)
			return nil, statusWith(codes.FailedPrecondition, "not the leader", &kvpb.NotLeader{Shard: call.Shard, LeaderId: ld.id, LeaderAddr: ld.addr, Epoch: fc.epoch})
		}
	}
	var resp proto.Message
	if write != nil {
		if write.GetSession() == 0 || write.GetSeq() == 0 {
			return nil, status.Error(codes.InvalidArgument, "write without session")
		}
		s := fc.sessions[write.GetSession()]
		switch {
		case s != nil && write.GetSeq() == s.seq:
			resp = s.resp
		case s != nil && write.GetSeq() < s.seq:
			return nil, status.Error(codes.Aborted, "sequence superseded")
		default:
			resp = run()
			fc.sessions[write.GetSession()] = &fakeSession{seq: write.GetSeq(), resp: resp}
		}
	} else {
		resp = run()
	}
	if hookErr != nil {
		return nil, hookErr
	}
	return resp, nil
}

func (nd *fakeNode) header(shard uint32) *kvpb.ResponseHeader {
	return &kvpb.ResponseHeader{Epoch: nd.c.epoch, Shard: shard, NodeId: nd.id, AppliedIndex: nd.c.index}
}

func (nd *fakeNode) shardOf(key []byte) uint32 { return ring.ShardForKey(key, nd.c.shards) }

func (nd *fakeNode) Get(ctx context.Context, req *kvpb.GetRequest) (*kvpb.GetResponse, error) {
	shard := nd.shardOf(req.GetKey())
	resp, err := nd.serve(FakeCall{Node: nd.id, Method: "Get", Shard: shard, Key: string(req.GetKey()), Stale: req.GetStale()}, nil, func() proto.Message {
		kv := nd.c.data[shard][string(req.GetKey())]
		return &kvpb.GetResponse{Header: nd.header(shard), Found: kv != nil, Kv: kv}
	})
	if err != nil {
		return nil, err
	}
	return resp.(*kvpb.GetResponse), nil
}

func (nd *fakeNode) Put(ctx context.Context, req *kvpb.PutRequest) (*kvpb.PutResponse, error) {
	shard := nd.shardOf(req.GetKey())
	w := req.GetWrite()
	resp, err := nd.serve(FakeCall{Node: nd.id, Method: "Put", Shard: shard, Key: string(req.GetKey()), Session: w.GetSession(), Seq: w.GetSeq()}, w, func() proto.Message {
		fc := nd.c
		cur := fc.data[shard][string(req.GetKey())]
		if req.ExpectedVersion != nil && req.GetExpectedVersion() != cur.GetVersion() {
			return &kvpb.PutResponse{Header: nd.header(shard), Version: cur.GetVersion()}
		}
		fc.index++
		fc.data[shard][string(req.GetKey())] = &kvpb.KeyValue{Key: req.GetKey(), Value: bytes.Clone(req.GetValue()), Version: fc.index}
		return &kvpb.PutResponse{Header: nd.header(shard), Succeeded: true, Version: fc.index}
	})
	if err != nil {
		return nil, err
	}
	return resp.(*kvpb.PutResponse), nil
}

func (nd *fakeNode) Delete(ctx context.Context, req *kvpb.DeleteRequest) (*kvpb.DeleteResponse, error) {
	shard := nd.shardOf(req.GetKey())
	w := req.GetWrite()
	resp, err := nd.serve(FakeCall{Node: nd.id, Method: "Delete", Shard: shard, Key: string(req.GetKey()), Session: w.GetSession(), Seq: w.GetSeq()}, w, func() proto.Message {
		fc := nd.c
		cur := fc.data[shard][string(req.GetKey())]
		if req.ExpectedVersion != nil && req.GetExpectedVersion() != cur.GetVersion() {
			return &kvpb.DeleteResponse{Header: nd.header(shard), Version: cur.GetVersion(), Existed: cur != nil}
		}
		fc.index++
		delete(fc.data[shard], string(req.GetKey()))
		return &kvpb.DeleteResponse{Header: nd.header(shard), Succeeded: true, Existed: cur != nil, Version: fc.index}
	})
	if err != nil {
		return nil, err
	}
	return resp.(*kvpb.DeleteResponse), nil
}

func opKey(op *kvpb.Op) []byte {
	switch o := op.GetOp().(type) {
	case *kvpb.Op_Put_:
		return o.Put.GetKey()
	case *kvpb.Op_Delete_:
		return o.Delete.GetKey()
	case *kvpb.Op_Add_:
		return o.Add.GetKey()
	case *kvpb.Op_Get_:
		return o.Get.GetKey()
	}
	return nil
}

func (nd *fakeNode) Txn(ctx context.Context, req *kvpb.TxnRequest) (*kvpb.TxnResponse, error) {
	var key []byte
	for _, c := range req.GetCompares() {
		key = c.GetKey()
	}
	for _, op := range append(slices.Clone(req.GetSuccess()), req.GetFailure()...) {
		key = opKey(op)
	}
	shard := nd.shardOf(key)
	w := req.GetWrite()
	resp, err := nd.serve(FakeCall{Node: nd.id, Method: "Txn", Shard: shard, Key: string(key), Session: w.GetSession(), Seq: w.GetSeq()}, w, func() proto.Message {
		fc := nd.c
		data := fc.data[shard]
		ok := true
		for _, c := range req.GetCompares() {
			v := data[string(c.GetKey())].GetVersion()
			switch c.GetOp() {
			case kvpb.Compare_EQUAL:
				ok = ok && v == c.GetVersion()
			case kvpb.Compare_NOT_EQUAL:
				ok = ok && v != c.GetVersion()
			case kvpb.Compare_LESS:
				ok = ok && v < c.GetVersion()
			case kvpb.Compare_GREATER:
				ok = ok && v > c.GetVersion()
			}
		}
		ops := req.GetSuccess()
		if !ok {
			ops = req.GetFailure()
		}
		out := &kvpb.TxnResponse{Header: nd.header(shard), Succeeded: ok}
		fc.index++
		for _, op := range ops {
			k := string(opKey(op))
			r := &kvpb.OpResult{}
			switch o := op.GetOp().(type) {
			case *kvpb.Op_Put_:
				data[k] = &kvpb.KeyValue{Key: []byte(k), Value: bytes.Clone(o.Put.GetValue()), Version: fc.index}
				r.Version = fc.index
			case *kvpb.Op_Delete_:
				r.Found = data[k] != nil
				delete(data, k)
				r.Version = fc.index
			case *kvpb.Op_Add_:
				n, _ := strconv.ParseInt(string(data[k].GetValue()), 10, 64)
				n += o.Add.GetDelta()
				data[k] = &kvpb.KeyValue{Key: []byte(k), Value: []byte(strconv.FormatInt(n, 10)), Version: fc.index}
				r.Version, r.Counter = fc.index, n
			case *kvpb.Op_Get_:
				if kv := data[k]; kv != nil {
					r.Found, r.Value, r.Version = true, kv.GetValue(), kv.GetVersion()
				}
			}
			out.Results = append(out.Results, r)
		}
		return out
	})
	if err != nil {
		return nil, err
	}
	return resp.(*kvpb.TxnResponse), nil
}

func (nd *fakeNode) Scan(ctx context.Context, req *kvpb.ScanRequest) (*kvpb.ScanResponse, error) {
	shard := req.GetShard()
	resp, err := nd.serve(FakeCall{Node: nd.id, Method: "Scan", Shard: shard, Key: string(req.GetStart()), Stale: req.GetStale()}, nil, func() proto.Message {
		fc := nd.c
		var keys []string
		for k := range fc.data[shard] {
			kb := []byte(k)
			if bytes.Compare(kb, req.GetStart()) < 0 || (len(req.GetEnd()) > 0 && bytes.Compare(kb, req.GetEnd()) >= 0) || !bytes.HasPrefix(kb, req.GetPrefix()) {
				continue
			}
			keys = append(keys, k)
		}
		sort.Strings(keys)
		limit := fc.scanMax
		if l := int(req.GetLimit()); l > 0 && l < limit {
			limit = l
		}
		out := &kvpb.ScanResponse{Header: nd.header(shard)}
		for i, k := range keys {
			if i == limit {
				out.More, out.NextKey = true, []byte(k)
				break
			}
			kv := fc.data[shard][k]
			if req.GetKeysOnly() {
				kv = &kvpb.KeyValue{Key: kv.GetKey(), Version: kv.GetVersion()}
			}
			out.Kvs = append(out.Kvs, kv)
		}
		return out
	})
	if err != nil {
		return nil, err
	}
	return resp.(*kvpb.ScanResponse), nil
}
