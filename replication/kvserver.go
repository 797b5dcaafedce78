package replication

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/ridgeline-kv/ridgeline/replication/kvpb"
	"github.com/ridgeline-kv/ridgeline/storage"
)

// kvServer adapts the KV gRPC service to the node: validate, call, map.
type kvServer struct {
	kvpb.UnimplementedKVServer
	n *Node
}

func (s *kvServer) Get(ctx context.Context, req *kvpb.GetRequest) (*kvpb.GetResponse, error) {
	if err := validateGet(req); err != nil {
		return nil, s.n.toStatus(err, 0, nil)
	}
	resp, shard, r, err := s.n.get(ctx, req)
	return resp, s.n.toStatus(err, shard, r)
}

func (s *kvServer) Put(ctx context.Context, req *kvpb.PutRequest) (*kvpb.PutResponse, error) {
	if err := validatePut(req); err != nil {
		return nil, s.n.toStatus(err, 0, nil)
	}
	res, shard, r, err := s.n.write(ctx, req.GetKey(), &kvpb.Command{Write: req.GetWrite(), Op: &kvpb.Command_Put{Put: req}})
	if err != nil {
		return nil, s.n.toStatus(err, shard, r)
	}
	out := res.GetPut()
	if out == nil {
		return nil, s.n.toStatus(rejection(res), shard, r)
	}
	out.Header = s.n.header(r, shard)
	return out, nil
}

func (s *kvServer) Delete(ctx context.Context, req *kvpb.DeleteRequest) (*kvpb.DeleteResponse, error) {
	if err := validateDelete(req); err != nil {
		return nil, s.n.toStatus(err, 0, nil)
	}
	res, shard, r, err := s.n.write(ctx, req.GetKey(), &kvpb.Command{Write: req.GetWrite(), Op: &kvpb.Command_Delete{Delete: req}})
	if err != nil {
		return nil, s.n.toStatus(err, shard, r)
	}
	out := res.GetDelete()
	if out == nil {
		return nil, s.n.toStatus(rejection(res), shard, r)
	}
	out.Header = s.n.header(r, shard)
	return out, nil
}

func (s *kvServer) Txn(ctx context.Context, req *kvpb.TxnRequest) (*kvpb.TxnResponse, error) {
	shards, err := s.n.shardCount()
	if err != nil {
		return nil, s.n.toStatus(err, 0, nil)
	}
	if _, err := validateTxn(req, shards); err != nil {
		return nil, s.n.toStatus(err, 0, nil)
	}
	res, shard, r, err := s.n.write(ctx, txnKey(req), &kvpb.Command{Write: req.GetWrite(), Op: &kvpb.Command_Txn{Txn: req}})
	if err != nil {
		return nil, s.n.toStatus(err, shard, r)
	}
	out := res.GetTxn()
	if out == nil {
		return nil, s.n.toStatus(rejection(res), shard, r)
	}
	out.Header = s.n.header(r, shard)
	return out, nil
}

func (s *kvServer) Scan(ctx context.Context, req *kvpb.ScanRequest) (*kvpb.ScanResponse, error) {
	shards, err := s.n.shardCount()
	if err != nil {
		return nil, s.n.toStatus(err, 0, nil)
	}
	if err := validateScan(req, shards); err != nil {
		return nil, s.n.toStatus(err, req.GetShard(), nil)
	}
	resp, r, err := s.n.scan(ctx, req)
	return resp, s.n.toStatus(err, req.GetShard(), r)
}

// resultError turns a deterministic rejection recorded by the state machine
// into an error for the client.
func rejection(res *kvpb.CommandResult) error {
	if msg := res.GetError(); msg != "" {
		return fmt.Errorf("%w: %s", ErrInvalidArgument, msg)
	}
	return fmt.Errorf("state machine returned an unexpected result %T", res.GetResult())
}

// txnKey returns a key of the transaction: all its keys share one shard.
func txnKey(req *kvpb.TxnRequest) []byte {
	for _, c := range req.GetCompares() {
		return c.GetKey()
	}
	for _, ops := range [][]*kvpb.Op{req.GetSuccess(), req.GetFailure()} {
		for _, op := range ops {
			if k := opKey(op); k != nil {
				return k
			}
		}
	}
	return nil
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

func (n *Node) shardCount() (uint32, error) {
	m := n.currentMap()
	if m == nil {
		return 0, fmt.Errorf("%w: node %s has not joined a cluster yet", ErrNoLeader, n.cfg.NodeID)
	}
	return m.ShardCount, nil
}

// header describes the serving replica for a response.
func (n *Node) header(r *replica, shard uint32) *kvpb.ResponseHeader {
	h := &kvpb.ResponseHeader{Shard: shard, NodeId: n.cfg.NodeID}
	if m := n.currentMap(); m != nil {
		h.Epoch = m.Epoch
	}
	if r != nil {
		h.AppliedIndex = r.fsm.AppliedIndex()
	}
	return h
}

// write proposes cmd on the shard of key, on this node's replica.
func (n *Node) write(ctx context.Context, key []byte, cmd *kvpb.Command) (*kvpb.CommandResult, uint32, *replica, error) {
	shard, err := n.shardForKey(key)
	if err != nil {
		return nil, 0, nil, err
	}
	r, err := n.replicaForShard(shard)
	if err != nil {
		return nil, shard, nil, err
	}
	if !r.isLeader() { // cheap early answer with a hint, before encoding
		return nil, shard, r, ErrNotLeader
	}
	// The leader's clock is the only one the state machine reads (session
	// expiry), stamped into the command so every replica sees the same time.
	cmd.NowUnixNano = time.Now().UnixNano()
	data, err := encodeCommand(cmd)
	if err != nil {
		return nil, shard, r, fmt.Errorf("%w: %v", ErrInvalidArgument, err)
	}
	out, err := r.propose(ctx, data)
	if err != nil {
		return nil, shard, r, err
	}
	switch v := out.(type) {
	case *kvpb.CommandResult:
		return v, shard, r, nil
	case error:
		return nil, shard, r, v
	default:
		return nil, shard, r, fmt.Errorf("state machine returned %T", out)
	}
}

func (n *Node) get(ctx context.Context, req *kvpb.GetRequest) (*kvpb.GetResponse, uint32, *replica, error) {
	shard, err := n.shardForKey(req.GetKey())
	if err != nil {
		return nil, 0, nil, err
	}
	r, err := n.replicaForShard(shard)
	if err != nil {
		return nil, shard, nil, err
	}
	if err := n.readBarrier(ctx, r, req.GetStale()); err != nil {
		return nil, shard, r, err
	}
	resp := &kvpb.GetResponse{Header: n.header(r, shard)}
	if req.GetStale() {
		resp.Header.StalenessMs = r.staleness().Milliseconds()
	}
	err = r.data.View(func(tx *storage.Tx) error {
		if v, ok := tx.Get(req.GetKey()); ok {
			resp.Found = true
			resp.Kv = &kvpb.KeyValue{Key: req.GetKey(), Value: bytes.Clone(v.Data), Version: v.Version}
		}
		return nil
	})
	return resp, shard, r, err
}

// readBarrier makes a read linearizable unless the caller asked for a stale
// read.
func (n *Node) readBarrier(ctx context.Context, r *replica, stale bool) error {
	if stale {
		return nil
	}
	return r.linearizable(ctx)
}

func (n *Node) scan(ctx context.Context, req *kvpb.ScanRequest) (*kvpb.ScanResponse, *replica, error) {
	r, err := n.replicaForShard(req.GetShard())
	if err != nil {
		return nil, nil, err
	}
	if err := n.readBarrier(ctx, r, req.GetStale()); err != nil {
		return nil, r, err
	}
	limit := int(req.GetLimit())
	if limit <= 0 || limit > MaxScanKeys {
		limit = MaxScanKeys
	}
	resp := &kvpb.ScanResponse{Header: n.header(r, req.GetShard())}
	if req.GetStale() {
		resp.Header.StalenessMs = r.staleness().Milliseconds()
	}
	size := 0
	err = r.data.View(func(tx *storage.Tx) error {
		return tx.Scan(storage.ScanOptions{Start: req.GetStart(), End: req.GetEnd(), Prefix: req.GetPrefix()},
			func(key []byte, v storage.Value) bool {
				if len(resp.Kvs) >= limit || (size > 0 && size+len(key)+len(v.Data) > MaxScanBytes) {
					resp.More = true
					resp.NextKey = bytes.Clone(key)
					return false
				}
				kv := &kvpb.KeyValue{Key: bytes.Clone(key), Version: v.Version}
				size += len(key)
				if !req.GetKeysOnly() {
					kv.Value = bytes.Clone(v.Data)
					size += len(v.Data)
				}
				resp.Kvs = append(resp.Kvs, kv)
				return true
			})
	})
	return resp, r, err
}
