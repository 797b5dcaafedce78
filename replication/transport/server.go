package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc"

	"github.com/ridgeline-kv/ridgeline/replication/kvpb"
)

// server adapts the kvpb.Raft service to the registered Transports: it finds
// the target replica, converts the request, hands it to raft and converts
// the answer. Errors leave through toStatus.
type server struct {
	kvpb.UnimplementedRaftServer
	m *Manager
}

func (s *server) AppendEntries(ctx context.Context, in *kvpb.AppendEntriesRequest) (*kvpb.AppendEntriesResponse, error) {
	s.m.stats.appendEntries.Add(1)
	t, err := s.m.lookup(in.GetHeader().GetTarget())
	if err != nil {
		return nil, toStatus(err)
	}
	req := appendEntriesRequestFromProto(in)
	resp, err := t.dispatch(ctx, 0, req, nil, isHeartbeat(req))
	if err != nil {
		return nil, toStatus(err)
	}
	return appendEntriesResponseToProto(resp.(*raft.AppendEntriesResponse)), nil
}

// AppendEntriesPipeline serves one pipeline stream: requests are handled in
// order and answered in order, one answer each. A raft error for one request
// travels in its response's error field; any other failure ends the stream
// with a status.
//
// Requests that arrived while raft was busy with the previous one (its log
// append waits for a storage commit) and continue it (same leader and term,
// each starting where the one before ends) are handed to raft as one
// AppendEntries: one log append and one commit instead of one each, which
// is what lets a follower under load keep up with its leader. Raft then
// ends in the state the requests one by one would have left: if the first
// fails, those after it would have failed too, and on success the leader
// reads nothing from an answer but its term and success.
func (s *server) AppendEntriesPipeline(stream grpc.BidiStreamingServer[kvpb.AppendEntriesRequest, kvpb.AppendEntriesResponse]) error {
	s.m.stats.pipelineStreams.Add(1)
	ctx := stream.Context()
	type received struct {
		in  *kvpb.AppendEntriesRequest
		err error
	}
	q := make(chan received, pipelineMaxInFlight)
	done := make(chan struct{})
	defer close(done)
	go func() {
		for {
			in, err := stream.Recv()
			select {
			case q <- received{in, err}:
			case <-done:
				return
			}
			if err != nil {
				return
			}
			s.m.stats.pipelineAppends.Add(1) // once queued: a test waits on it
		}
	}()
	var (
		t     *Transport
		next  *received // taken from q, not part of the last batch
		batch []*kvpb.AppendEntriesRequest
	)
	for {
		r := next
		next = nil
		if r == nil {
			got := <-q
			r = &got
		}
		if errors.Is(r.err, io.EOF) {
			return nil
		}
		if r.err != nil {
			return r.err
		}
		batch = append(batch[:0], r.in)
	more:
		for len(batch) < maxCoalescedAppends {
			select {
			case got := <-q:
				if got.err != nil || !continues(batch[len(batch)-1], got.in) {
					next = &got
					break more
				}
				batch = append(batch, got.in)
			default:
				break more
			}
		}
		if target := r.in.GetHeader().GetTarget(); t == nil || string(t.id) != target {
			var err error
			if t, err = s.m.lookup(target); err != nil {
				return toStatus(err)
			}
		}
		req := appendEntriesRequestFromProto(batch[0])
		for _, in := range batch[1:] {
			more := appendEntriesRequestFromProto(in)
			req.Entries = append(req.Entries, more.Entries...)
			req.LeaderCommitIndex = more.LeaderCommitIndex
		}
		if len(batch) > 1 {
			s.m.stats.coalescedAppends.Add(uint64(len(batch) - 1))
		}
		resp, err := t.dispatch(ctx, 0, req, nil, isHeartbeat(req))
		var out *kvpb.AppendEntriesResponse
		switch {
		case err == nil:
			out = appendEntriesResponseToProto(resp.(*raft.AppendEntriesResponse))
		case errors.Is(err, ErrRemote):
			out = &kvpb.AppendEntriesResponse{Error: err.Error()}
		default:
			return toStatus(err)
		}
		for range batch {
			if err := stream.Send(out); err != nil {
				return err
			}
		}
	}
}

// maxCoalescedAppends bounds the pipelined requests handed to raft as one.
const maxCoalescedAppends = 16

// continues reports whether pipelined request b carries the entries right
// after a's, from the same leader in the same term, for the same replica.
func continues(a, b *kvpb.AppendEntriesRequest) bool {
	ae, be := a.GetEntries(), b.GetEntries()
	if len(ae) == 0 || len(be) == 0 {
		return false
	}
	ah, bh := a.GetHeader(), b.GetHeader()
	last := ae[len(ae)-1]
	return ah.GetTarget() == bh.GetTarget() && a.GetTerm() == b.GetTerm() &&
		string(ah.GetId()) == string(bh.GetId()) && string(ah.GetAddr()) == string(bh.GetAddr()) &&
		string(a.GetLeader()) == string(b.GetLeader()) &&
		b.GetPrevLogEntry() == last.GetIndex() && b.GetPrevLogTerm() == last.GetTerm() &&
		be[0].GetIndex() == last.GetIndex()+1
}

func (s *server) RequestVote(ctx context.Context, in *kvpb.RequestVoteRequest) (*kvpb.RequestVoteResponse, error) {
	s.m.stats.requestVotes.Add(1)
	t, err := s.m.lookup(in.GetHeader().GetTarget())
	if err != nil {
		return nil, toStatus(err)
	}
	resp, err := t.dispatch(ctx, 0, requestVoteRequestFromProto(in), nil, false)
	if err != nil {
		return nil, toStatus(err)
	}
	return requestVoteResponseToProto(resp.(*raft.RequestVoteResponse)), nil
}

func (s *server) RequestPreVote(ctx context.Context, in *kvpb.RequestPreVoteRequest) (*kvpb.RequestPreVoteResponse, error) {
	s.m.stats.requestPreVotes.Add(1)
	t, err := s.m.lookup(in.GetHeader().GetTarget())
	if err != nil {
		return nil, toStatus(err)
	}
	resp, err := t.dispatch(ctx, 0, requestPreVoteRequestFromProto(in), nil, false)
	if err != nil {
		return nil, toStatus(err)
	}
	return requestPreVoteResponseToProto(resp.(*raft.RequestPreVoteResponse)), nil
}

func (s *server) TimeoutNow(ctx context.Context, in *kvpb.TimeoutNowRequest) (*kvpb.TimeoutNowResponse, error) {
	s.m.stats.timeoutNows.Add(1)
	t, err := s.m.lookup(in.GetHeader().GetTarget())
	if err != nil {
		return nil, toStatus(err)
	}
	resp, err := t.dispatch(ctx, 0, timeoutNowRequestFromProto(in), nil, false)
	if err != nil {
		return nil, toStatus(err)
	}
	return timeoutNowResponseToProto(resp.(*raft.TimeoutNowResponse)), nil
}

// InstallSnapshot serves one snapshot transfer. Raft reads the data straight
// from the stream, chunk by chunk, through a chunkReader on its own
// goroutine. The handler waits for raft's answer and ends the transfer if
// the sender stalls for longer than RPCTimeout while raft waits for data,
// so a dead sender cannot hold raft's main loop until the whole-transfer
// deadline.
func (s *server) InstallSnapshot(stream grpc.ClientStreamingServer[kvpb.InstallSnapshotChunk, kvpb.InstallSnapshotResponse]) error {
	s.m.stats.snapshotsReceived.Add(1)
	first, err := stream.Recv()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return toStatus(fmt.Errorf("%w: InstallSnapshot stream ended before its request", ErrInvalidRequest))
		}
		return err
	}
	if first.Request == nil {
		return toStatus(fmt.Errorf("%w: the first InstallSnapshot message must carry the request", ErrInvalidRequest))
	}
	t, err := s.m.lookup(first.Request.GetHeader().GetTarget())
	if err != nil {
		return toStatus(err)
	}
	ctx := stream.Context()
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.m.cfg.SnapshotTimeout)
		defer cancel()
	}
	start := time.Now()
	if err := s.m.recvSem.Acquire(ctx, 1); err != nil {
		return toStatus(fmt.Errorf("waited %v for a snapshot receive slot (MaxSnapshotReceives=%d): %w",
			time.Since(start).Round(time.Millisecond), s.m.cfg.MaxSnapshotReceives, err))
	}
	defer s.m.recvSem.Release(1)

	req := installSnapshotRequestFromProto(first.Request)
	s.m.stats.snapshotBytesReceived.Add(uint64(len(first.Data)))
	r := &chunkReader{stream: stream, buf: first.Data, received: &s.m.stats.snapshotBytesReceived}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go r.watch(ctx, cancel, s.m.cfg.RPCTimeout)
	resp, err := t.dispatch(ctx, 0, req, io.LimitReader(r, req.Size), false)
	if err != nil {
		if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, ctx.Err()) {
			err = cause
		}
		return toStatus(err)
	}
	return stream.SendAndClose(installSnapshotResponseToProto(resp.(*raft.InstallSnapshotResponse)))
}

// chunkReader presents the data chunks of an InstallSnapshot stream as an
// io.Reader. Only raft's goroutine calls Read; nothing else touches the
// stream after the first message.
type chunkReader struct {
	received *atomic.Uint64 // snapshot bytes received, node-wide
	stream   grpc.ClientStreamingServer[kvpb.InstallSnapshotChunk, kvpb.InstallSnapshotResponse]
	buf      []byte
	err      error
	// recvSince is the UnixNano time Read started waiting for the sender,
	// or 0 while it is not waiting.
	recvSince atomic.Int64
}

func (r *chunkReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		r.recvSince.Store(time.Now().UnixNano())
		msg, err := r.stream.Recv()
		r.recvSince.Store(0)
		if err != nil {
			if !errors.Is(err, io.EOF) {
				err = fmt.Errorf("transport: receiving snapshot data: %w", err)
			}
			r.err = err
			continue
		}
		r.buf = msg.Data
		r.received.Add(uint64(len(msg.Data)))
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

var errSenderStalled = errors.New("transport: snapshot sender stalled")

// watch cancels ctx when Read has waited longer than idle for the next
// chunk. It returns when ctx ends.
func (r *chunkReader) watch(ctx context.Context, cancel context.CancelCauseFunc, idle time.Duration) {
	tick := time.NewTicker(idle / 4)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			if since := r.recvSince.Load(); since != 0 && now.Sub(time.Unix(0, since)) > idle {
				cancel(fmt.Errorf("%w: no data for %v", errSenderStalled, idle))
				return
			}
		}
	}
}
