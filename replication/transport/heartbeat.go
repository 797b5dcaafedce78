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
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ridgeline-kv/ridgeline/replication/kvpb"
)

const (
	// heartbeatQueueLen bounds the heartbeats waiting to be written on one
	// stream; a caller beyond it waits (within its deadline).
	heartbeatQueueLen = 256
	// heartbeatBatchMax bounds the heartbeats (or responses) in one message.
	heartbeatBatchMax = 128
)

var errHeartbeatStreamEnded = errors.New("heartbeat stream ended by the peer")

// heartbeatMux carries the heartbeats of every local replica to one peer node
// on one Heartbeats stream. A unary AppendEntries costs a gRPC stream of its
// own (headers both ways, trailers, a server goroutine); heartbeats are most
// of a node's raft RPCs, since every linearizable read confirms leadership
// with one per follower. The stream is opened on first use and again after
// it breaks.
type heartbeatMux struct {
	m    *Manager
	addr raft.ServerAddress

	mu  sync.Mutex
	cur *heartbeatStream
}

// heartbeatStream is one open Heartbeats stream: a sender goroutine writes
// queued requests, a receiver goroutine hands each response to the caller
// waiting for its id.
type heartbeatStream struct {
	stream grpc.BidiStreamingClient[kvpb.HeartbeatBatch, kvpb.HeartbeatResponseBatch]
	cancel context.CancelFunc
	sendq  chan *kvpb.HeartbeatRequest
	done   chan struct{} // closed once the stream is broken; err says why

	lastRecv atomic.Int64 // unix nanoseconds of the last response

	mu      sync.Mutex
	err     error
	next    uint64
	waiting map[uint64]chan *kvpb.HeartbeatResponse
}

// call sends one heartbeat and waits for its answer until ctx ends.
func (h *heartbeatMux) call(ctx context.Context, req *kvpb.AppendEntriesRequest) (*kvpb.AppendEntriesResponse, error) {
	s, err := h.stream()
	if err != nil {
		return nil, err
	}
	sent := time.Now()
	id, ch, err := s.register()
	if err != nil {
		return nil, err
	}
	select {
	case s.sendq <- &kvpb.HeartbeatRequest{Id: id, Request: req}:
	case <-ctx.Done():
		s.unregister(id)
		return nil, status.FromContextError(ctx.Err()).Err()
	case <-s.done:
		return nil, s.failure()
	}
	select {
	case resp := <-ch:
		if c := codes.Code(resp.GetCode()); c != codes.OK {
			return nil, status.Error(c, resp.GetMessage())
		}
		return resp.GetResponse(), nil
	case <-ctx.Done():
		s.unregister(id)
		// Nothing at all came back since this heartbeat was sent: the stream
		// (or the peer) is stuck, so the next heartbeat opens a new one.
		if s.lastRecv.Load() < sent.UnixNano() {
			s.fail(fmt.Errorf("no heartbeat answered within %v", time.Since(sent).Round(time.Millisecond)))
		}
		return nil, status.FromContextError(ctx.Err()).Err()
	case <-s.done:
		return nil, s.failure()
	}
}

// stream returns the open stream, opening one if there is none or the last
// one broke. Opening waits at most RPCTimeout (it waits while the connection
// is being established).
func (h *heartbeatMux) stream() (*heartbeatStream, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cur != nil && !h.cur.broken() {
		return h.cur, nil
	}
	c, err := h.m.client(h.addr)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	openTimer := time.AfterFunc(h.m.cfg.RPCTimeout, cancel)
	st, err := c.Heartbeats(ctx)
	if !openTimer.Stop() && err == nil {
		err = status.Error(codes.DeadlineExceeded, "opening the heartbeat stream timed out")
	}
	if err != nil {
		cancel()
		return nil, err
	}
	s := &heartbeatStream{
		stream:  st,
		cancel:  cancel,
		sendq:   make(chan *kvpb.HeartbeatRequest, heartbeatQueueLen),
		done:    make(chan struct{}),
		waiting: make(map[uint64]chan *kvpb.HeartbeatResponse),
	}
	go s.send()
	go s.receive()
	h.cur = s
	return s, nil
}

// close ends the open stream, if any; calls waiting on it fail.
func (h *heartbeatMux) close() {
	h.mu.Lock()
	s := h.cur
	h.cur = nil
	h.mu.Unlock()
	if s != nil {
		s.fail(ErrClosed)
	}
}

func (s *heartbeatStream) register() (uint64, chan *kvpb.HeartbeatResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return 0, nil, s.err
	}
	s.next++
	ch := make(chan *kvpb.HeartbeatResponse, 1)
	s.waiting[s.next] = ch
	return s.next, ch, nil
}

func (s *heartbeatStream) unregister(id uint64) {
	s.mu.Lock()
	delete(s.waiting, id)
	s.mu.Unlock()
}

func (s *heartbeatStream) broken() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

func (s *heartbeatStream) failure() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// fail marks the stream broken with err (the first error wins), wakes every
// caller waiting on it and cancels it.
func (s *heartbeatStream) fail(err error) {
	s.mu.Lock()
	if s.err == nil {
		s.err = err
		s.waiting = nil
		close(s.done)
	}
	s.mu.Unlock()
	s.cancel()
}

// send writes the queued heartbeats, as many per message as are queued.
func (s *heartbeatStream) send() {
	batch := &kvpb.HeartbeatBatch{}
	for {
		select {
		case r := <-s.sendq:
			batch.Requests = drainInto(append(batch.Requests[:0], r), s.sendq)
			// Send marshals before it returns, so batch can be reused.
			if err := s.stream.Send(batch); err != nil {
				if errors.Is(err, io.EOF) {
					err = errHeartbeatStreamEnded // the real error comes from Recv
				}
				s.fail(err)
				return
			}
		case <-s.done:
			return
		}
	}
}

// drainInto appends to batch what q holds, up to heartbeatBatchMax in all.
func drainInto[T any](batch []T, q <-chan T) []T {
	for len(batch) < heartbeatBatchMax {
		select {
		case r := <-q:
			batch = append(batch, r)
		default:
			return batch
		}
	}
	return batch
}

func (s *heartbeatStream) receive() {
	for {
		in, err := s.stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = errHeartbeatStreamEnded
			}
			s.fail(err)
			return
		}
		s.lastRecv.Store(time.Now().UnixNano())
		for _, resp := range in.GetResponses() {
			s.mu.Lock()
			ch := s.waiting[resp.GetId()]
			delete(s.waiting, resp.GetId())
			s.mu.Unlock()
			if ch != nil {
				ch <- resp // buffered: never blocks
			}
		}
	}
}

// heartbeatMux returns the heartbeat multiplexer for a peer node, creating
// it on first use.
func (m *Manager) heartbeatMux(addr raft.ServerAddress) (*heartbeatMux, error) {
	return perPeer(m, &m.heartbeats, addr, func() (*heartbeatMux, error) {
		return &heartbeatMux{m: m, addr: addr}, nil
	})
}

// Heartbeats serves one Heartbeats stream: each request is handled on its
// own goroutine (a slow replica delays only its own answer) and answered
// with its id; one sender goroutine writes the answers, as many per message
// as are ready. Failures travel as a status in the response.
func (s *server) Heartbeats(stream grpc.BidiStreamingServer[kvpb.HeartbeatBatch, kvpb.HeartbeatResponseBatch]) error {
	s.m.stats.heartbeatStreams.Add(1)
	ctx := stream.Context()
	out := make(chan *kvpb.HeartbeatResponse, heartbeatQueueLen)
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		batch := &kvpb.HeartbeatResponseBatch{}
		failed := false
		for r := range out {
			batch.Responses = drainInto(append(batch.Responses[:0], r), out)
			if !failed {
				// A broken stream also fails Recv, which ends the handler;
				// until then the answers are dropped.
				failed = stream.Send(batch) != nil
			}
		}
	}()
	var wg sync.WaitGroup
	defer func() {
		// Send must not be called once the handler has returned.
		wg.Wait()
		close(out)
		<-sent
	}()
	for {
		in, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		for _, req := range in.GetRequests() {
			s.m.stats.streamedHeartbeats.Add(1)
			wg.Go(func() { out <- s.heartbeat(ctx, req) })
		}
	}
}

// heartbeat handles one request of a Heartbeats stream.
func (s *server) heartbeat(ctx context.Context, in *kvpb.HeartbeatRequest) *kvpb.HeartbeatResponse {
	fail := func(err error) *kvpb.HeartbeatResponse {
		st := status.Convert(toStatus(err))
		return &kvpb.HeartbeatResponse{Id: in.GetId(), Code: uint32(st.Code()), Message: st.Message()}
	}
	t, err := s.m.lookup(in.GetRequest().GetHeader().GetTarget())
	if err != nil {
		return fail(err)
	}
	req := appendEntriesRequestFromProto(in.GetRequest())
	if !isHeartbeat(req) {
		return fail(fmt.Errorf("%w: an AppendEntries with entries or log positions is not a heartbeat: send it with AppendEntries", ErrInvalidRequest))
	}
	resp, err := t.dispatch(ctx, s.m.cfg.RPCTimeout, req, nil, true)
	if err != nil {
		return fail(err)
	}
	return &kvpb.HeartbeatResponse{Id: in.GetId(), Response: appendEntriesResponseToProto(resp.(*raft.AppendEntriesResponse))}
}
