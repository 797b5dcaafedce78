package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/ridgeline-kv/ridgeline/replication/kvpb"
)

var (
	_ raft.Transport   = (*Transport)(nil)
	_ raft.WithPreVote = (*Transport)(nil)
	_ raft.WithClose   = (*Transport)(nil)
)

// Transport is the raft transport of one local replica. It shares its
// Manager's peer connections with every other local replica. Its methods are
// safe for concurrent use; raft calls them from several goroutines.
type Transport struct {
	m         *Manager
	id        raft.ServerID
	consumeCh chan raft.RPC
	heartbeat atomic.Pointer[func(raft.RPC)]
	// commitLimit bounds the commit index sent to followers (SetCommitLimit).
	commitLimit atomic.Pointer[func() uint64]
	// appendAck is told of every successful AppendEntries (SetAppendAck).
	appendAck atomic.Pointer[func(raft.ServerID, uint64, uint64)]

	// ctx is cancelled by Close and ends the replica's pipeline streams.
	ctx        context.Context
	cancel     context.CancelFunc
	shutdownCh chan struct{}
	closeOnce  sync.Once
}

func newTransport(m *Manager, id raft.ServerID) *Transport {
	ctx, cancel := context.WithCancel(context.Background())
	return &Transport{
		m:          m,
		id:         id,
		consumeCh:  make(chan raft.RPC),
		ctx:        ctx,
		cancel:     cancel,
		shutdownCh: make(chan struct{}),
	}
}

// ID is the ServerID this Transport was registered for.
func (t *Transport) ID() raft.ServerID { return t.id }

// Consumer returns the channel of incoming RPCs for this replica. Raft reads
// it from its main loop and must answer every RPC on its RespChan.
func (t *Transport) Consumer() <-chan raft.RPC { return t.consumeCh }

// LocalAddr returns the node's advertise address, shared by all its replicas.
func (t *Transport) LocalAddr() raft.ServerAddress { return raft.ServerAddress(t.m.cfg.LocalAddr) }

// EncodePeer encodes a peer's address (the ID travels separately in raft's
// configuration).
func (t *Transport) EncodePeer(_ raft.ServerID, addr raft.ServerAddress) []byte {
	return []byte(addr)
}

// DecodePeer decodes what EncodePeer returned.
func (t *Transport) DecodePeer(b []byte) raft.ServerAddress { return raft.ServerAddress(b) }

// SetHeartbeatHandler sets the fast path for heartbeats: they are handed to
// cb on the gRPC handler goroutine instead of queueing behind log appends on
// the Consumer channel. cb must answer on the RPC's RespChan.
func (t *Transport) SetHeartbeatHandler(cb func(rpc raft.RPC)) {
	if cb == nil {
		t.heartbeat.Store(nil)
		return
	}
	t.heartbeat.Store(&cb)
}

// SetCommitLimit bounds the leader commit index of every AppendEntries this
// replica sends by limit() (its log's durable end, when the leader's appends
// return before they are durable: storage.LogStore.ReturnEarly), so that no
// follower applies an entry the leader could still lose.
func (t *Transport) SetCommitLimit(limit func() uint64) {
	t.commitLimit.Store(&limit)
}

// SetAppendAck sets ack to be called, on a transport goroutine, with the
// follower, the leader's term and the index up to which the follower's log
// now matches the leader's, for every AppendEntries (not heartbeat) the
// follower accepted. A follower accepts only once it has stored the entries
// durably. ack must be quick and must not block.
func (t *Transport) SetAppendAck(ack func(follower raft.ServerID, term, index uint64)) {
	t.appendAck.Store(&ack)
}

// acked reports a successful AppendEntries to the SetAppendAck callback.
func (t *Transport) acked(follower raft.ServerID, req *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) {
	ack := t.appendAck.Load()
	if ack == nil || !resp.Success || resp.Term != req.Term || isHeartbeat(req) {
		return // a heartbeat's success says nothing about the follower's log
	}
	index := req.PrevLogEntry
	if n := len(req.Entries); n > 0 {
		index = req.Entries[n-1].Index
	}
	(*ack)(follower, req.Term, index)
}

// appendRequest converts args to its wire form, with the commit limit.
func (t *Transport) appendRequest(target raft.ServerID, args *raft.AppendEntriesRequest) *kvpb.AppendEntriesRequest {
	p := appendEntriesRequestToProto(target, args)
	if limit := t.commitLimit.Load(); limit != nil {
		p.LeaderCommitIndex = min(p.LeaderCommitIndex, (*limit)())
	}
	return p
}

// Close unregisters the replica: incoming RPCs for it then fail with
// codes.NotFound, RPCs waiting for it fail with codes.Unavailable, and its
// pipelines end. It is idempotent; raft calls it on Shutdown.
func (t *Transport) Close() error {
	t.closeOnce.Do(func() {
		t.m.unregister(t)
		close(t.shutdownCh)
		t.cancel()
	})
	return nil
}

func (t *Transport) client(target raft.ServerAddress) (kvpb.RaftClient, error) {
	select {
	case <-t.shutdownCh:
		return nil, ErrClosed
	default:
	}
	return t.m.client(target)
}

// AppendEntries sends one AppendEntries RPC and waits for the answer.
// Heartbeats travel on the peer's shared Heartbeats stream.
func (t *Transport) AppendEntries(id raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	c, err := t.client(target)
	if err != nil {
		return fromStatus(err, "AppendEntries", id, target)
	}
	ctx, cancel := context.WithTimeout(context.Background(), t.m.appendTimeout(args.Entries))
	defer cancel()
	var out *kvpb.AppendEntriesResponse
	if isHeartbeat(args) {
		var h *heartbeatMux
		if h, err = t.m.heartbeatMux(target); err == nil {
			out, err = h.call(ctx, t.appendRequest(id, args))
		}
	} else {
		out, err = c.AppendEntries(ctx, t.appendRequest(id, args))
	}
	if err != nil {
		return fromStatus(err, "AppendEntries", id, target)
	}
	if out.Error != "" {
		return fromStatus(remoteError{out.Error}, "AppendEntries", id, target)
	}
	appendEntriesResponseFromProto(out, resp)
	t.acked(id, args, resp)
	return nil
}

// RequestVote sends one RequestVote RPC and waits for the answer.
func (t *Transport) RequestVote(id raft.ServerID, target raft.ServerAddress, args *raft.RequestVoteRequest, resp *raft.RequestVoteResponse) error {
	c, err := t.client(target)
	if err != nil {
		return fromStatus(err, "RequestVote", id, target)
	}
	ctx, cancel := context.WithTimeout(context.Background(), t.m.cfg.RPCTimeout)
	defer cancel()
	out, err := c.RequestVote(ctx, requestVoteRequestToProto(id, args))
	if err != nil {
		return fromStatus(err, "RequestVote", id, target)
	}
	requestVoteResponseFromProto(out, resp)
	return nil
}

// RequestPreVote sends one RequestPreVote RPC and waits for the answer.
func (t *Transport) RequestPreVote(id raft.ServerID, target raft.ServerAddress, args *raft.RequestPreVoteRequest, resp *raft.RequestPreVoteResponse) error {
	c, err := t.client(target)
	if err != nil {
		return fromStatus(err, "RequestPreVote", id, target)
	}
	ctx, cancel := context.WithTimeout(context.Background(), t.m.cfg.RPCTimeout)
	defer cancel()
	out, err := c.RequestPreVote(ctx, requestPreVoteRequestToProto(id, args))
	if err != nil {
		return fromStatus(err, "RequestPreVote", id, target)
	}
	requestPreVoteResponseFromProto(out, resp)
	return nil
}

// TimeoutNow sends one TimeoutNow RPC and waits for the answer.
func (t *Transport) TimeoutNow(id raft.ServerID, target raft.ServerAddress, args *raft.TimeoutNowRequest, resp *raft.TimeoutNowResponse) error {
	c, err := t.client(target)
	if err != nil {
		return fromStatus(err, "TimeoutNow", id, target)
	}
	ctx, cancel := context.WithTimeout(context.Background(), t.m.cfg.RPCTimeout)
	defer cancel()
	out, err := c.TimeoutNow(ctx, timeoutNowRequestToProto(id, args))
	if err != nil {
		return fromStatus(err, "TimeoutNow", id, target)
	}
	timeoutNowResponseFromProto(out, resp)
	return nil
}

// InstallSnapshot streams a snapshot to the target replica: the request,
// then data in chunks of Config.SnapshotChunkSize read from data. It first
// waits for one of the node's MaxSnapshotSends slots; slot wait and transfer
// together are bounded by Config.SnapshotTimeout.
func (t *Transport) InstallSnapshot(id raft.ServerID, target raft.ServerAddress, args *raft.InstallSnapshotRequest, resp *raft.InstallSnapshotResponse, data io.Reader) error {
	if err := t.installSnapshot(id, target, args, resp, data); err != nil {
		return fromStatus(err, "InstallSnapshot", id, target)
	}
	t.m.stats.snapshotsSent.Add(1)
	return nil
}

func (t *Transport) installSnapshot(id raft.ServerID, target raft.ServerAddress, args *raft.InstallSnapshotRequest, resp *raft.InstallSnapshotResponse, data io.Reader) error {
	c, err := t.client(target)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(t.ctx, t.m.cfg.SnapshotTimeout)
	defer cancel()
	start := time.Now()
	if err := t.m.sendSem.Acquire(ctx, 1); err != nil {
		return fmt.Errorf("waited %v for a snapshot send slot (MaxSnapshotSends=%d): %w",
			time.Since(start).Round(time.Millisecond), t.m.cfg.MaxSnapshotSends, err)
	}
	defer t.m.sendSem.Release(1)

	stream, err := c.InstallSnapshot(ctx)
	if err != nil {
		return err
	}
	// A Send error of io.EOF means the server already ended the stream;
	// CloseAndRecv then returns its status.
	err = stream.Send(&kvpb.InstallSnapshotChunk{Request: installSnapshotRequestToProto(id, args)})
	var sent int64
	for err == nil {
		// A fresh buffer per chunk: gRPC does not allow modifying a message
		// after SendMsg (stats handlers may read it lazily).
		buf := make([]byte, t.m.cfg.SnapshotChunkSize)
		n, rerr := io.ReadFull(data, buf)
		if n > 0 {
			err = stream.Send(&kvpb.InstallSnapshotChunk{Data: buf[:n]})
			sent += int64(n)
			t.m.stats.snapshotBytesSent.Add(uint64(n))
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return fmt.Errorf("reading snapshot after %d of %d bytes: %w", sent, args.Size, rerr)
		}
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	out, err := stream.CloseAndRecv()
	if err != nil {
		return err
	}
	installSnapshotResponseFromProto(out, resp)
	return nil
}

// dispatch hands an incoming RPC to raft and waits for its answer, ctx,
// timeout (if > 0) or Close. Heartbeats take the fast path when raft has set
// one; raft's fast path answers before it returns (unless it is shutting
// down), so a heartbeat costs no timer.
func (t *Transport) dispatch(ctx context.Context, timeout time.Duration, cmd any, r io.Reader, heartbeat bool) (any, error) {
	respCh := make(chan raft.RPCResponse, 1)
	rpc := raft.RPC{Command: cmd, Reader: r, RespChan: respCh}
	fast := t.heartbeat.Load()
	if !heartbeat {
		fast = nil
	}
	if fast != nil {
		t.m.stats.heartbeats.Add(1)
		(*fast)(rpc)
		select {
		case resp := <-respCh:
			return rpcResult(resp)
		default:
		}
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	if fast == nil {
		select {
		case t.consumeCh <- rpc:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-t.shutdownCh:
			return nil, fmt.Errorf("%w: replica %s is shutting down", ErrClosed, t.id)
		}
	}
	select {
	case resp := <-respCh:
		return rpcResult(resp)
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-t.shutdownCh:
		return nil, fmt.Errorf("%w: replica %s is shutting down", ErrClosed, t.id)
	}
}

func rpcResult(resp raft.RPCResponse) (any, error) {
	if resp.Error != nil {
		return resp.Response, remoteError{msg: resp.Error.Error()}
	}
	return resp.Response, nil
}
