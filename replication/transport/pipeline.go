package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ridgeline-kv/ridgeline/replication/kvpb"
)

// pipelineMaxInFlight bounds the AppendEntries requests outstanding on one
// pipeline; AppendEntries blocks beyond it (back-pressure).
const pipelineMaxInFlight = 64

var errPipelineBroken = errors.New("pipeline stream ended by the peer")

var (
	_ raft.AppendPipeline = (*pipeline)(nil)
	_ raft.AppendFuture   = (*appendFuture)(nil)
)

// pipeline is raft's AppendPipeline over one AppendEntriesPipeline stream.
// The server answers requests in order, so one receive goroutine matches
// responses to futures FIFO, like raft's netPipeline.
type pipeline struct {
	t      *Transport
	id     raft.ServerID
	addr   raft.ServerAddress
	stream grpc.BidiStreamingClient[kvpb.AppendEntriesRequest, kvpb.AppendEntriesResponse]
	cancel context.CancelFunc

	inflight   chan *appendFuture
	doneCh     chan raft.AppendFuture
	shutdownCh chan struct{}
	recvDone   chan struct{}
	closeOnce  sync.Once
}

// AppendEntriesPipeline opens a pipeline stream to the target replica on the
// shared peer connection. Each request on it has its own deadline (see
// Config.RPCTimeout); one missed deadline ends the stream.
func (t *Transport) AppendEntriesPipeline(id raft.ServerID, target raft.ServerAddress) (raft.AppendPipeline, error) {
	c, err := t.client(target)
	if err != nil {
		return nil, fromStatus(err, "AppendEntriesPipeline", id, target)
	}
	ctx, cancel := context.WithCancel(t.ctx)
	// The stream lives until Close, but opening it must not wait longer than
	// an RPC (it waits while the connection is being established).
	openTimer := time.AfterFunc(t.m.cfg.RPCTimeout, cancel)
	stream, err := c.AppendEntriesPipeline(ctx)
	if !openTimer.Stop() && err == nil {
		err = status.Error(codes.DeadlineExceeded, "opening the pipeline stream timed out")
	}
	if err != nil {
		cancel()
		return nil, fromStatus(err, "AppendEntriesPipeline", id, target)
	}
	p := &pipeline{
		t:          t,
		id:         id,
		addr:       target,
		stream:     stream,
		cancel:     cancel,
		inflight:   make(chan *appendFuture, pipelineMaxInFlight),
		doneCh:     make(chan raft.AppendFuture, pipelineMaxInFlight),
		shutdownCh: make(chan struct{}),
		recvDone:   make(chan struct{}),
	}
	go p.receive()
	return p, nil
}

// AppendEntries queues a request on the pipeline. It blocks while
// pipelineMaxInFlight requests are outstanding. Raft calls it from one
// goroutine.
func (p *pipeline) AppendEntries(args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) (raft.AppendFuture, error) {
	now := time.Now()
	f := &appendFuture{
		start:    now,
		deadline: now.Add(p.t.m.appendTimeout(args.Entries)),
		req:      args,
		resp:     resp,
		done:     make(chan struct{}),
	}
	select {
	case <-p.shutdownCh:
		return nil, raft.ErrPipelineShutdown
	case <-p.t.ctx.Done():
		return nil, raft.ErrPipelineShutdown
	default:
	}
	// Queue before sending, so the receive goroutine's deadline covers a
	// Send blocked on flow control. Once the Transport is closed the receive
	// goroutine has stopped draining the queue: waiting for room then would
	// hold raft's replication goroutine, and so raft's Shutdown, forever.
	select {
	case p.inflight <- f:
	case <-p.shutdownCh:
		return nil, raft.ErrPipelineShutdown
	case <-p.t.ctx.Done():
		return nil, raft.ErrPipelineShutdown
	}
	if err := p.stream.Send(p.t.appendRequest(p.id, args)); err != nil {
		// The stream is broken; the receive goroutine fails f and every
		// later future with the stream's status.
		p.cancel()
		if errors.Is(err, io.EOF) {
			err = errPipelineBroken
		}
		return nil, fromStatus(err, "AppendEntriesPipeline", p.id, p.addr)
	}
	return f, nil
}

// Consumer returns the channel of completed futures, in request order.
func (p *pipeline) Consumer() <-chan raft.AppendFuture { return p.doneCh }

// Close ends the stream and waits for the receive goroutine. Futures still
// outstanding fail with raft.ErrPipelineShutdown. Idempotent.
func (p *pipeline) Close() error {
	p.closeOnce.Do(func() {
		close(p.shutdownCh)
		p.cancel()
		<-p.recvDone
		for {
			select {
			case f := <-p.inflight:
				f.complete(raft.ErrPipelineShutdown)
			default:
				return
			}
		}
	})
	return nil
}

// receive matches responses to futures in order and enforces each
// request's deadline by cancelling the stream when it passes.
func (p *pipeline) receive() {
	defer close(p.recvDone)
	timedOut := false
	timer := time.AfterFunc(time.Hour, func() { p.cancel() })
	timer.Stop()
	defer timer.Stop()
	var streamErr error
	for {
		var f *appendFuture
		select {
		case f = <-p.inflight:
		case <-p.shutdownCh:
			return
		case <-p.t.ctx.Done():
			return
		}
		if streamErr == nil {
			timer.Reset(time.Until(f.deadline))
			out, err := p.stream.Recv()
			if !timer.Stop() {
				timedOut = true
			}
			switch {
			case err != nil && timedOut:
				streamErr = fromStatus(status.Errorf(codes.DeadlineExceeded,
					"no response within %v", f.deadline.Sub(f.start).Round(time.Millisecond)),
					"AppendEntriesPipeline", p.id, p.addr)
			case err != nil:
				streamErr = fromStatus(err, "AppendEntriesPipeline", p.id, p.addr)
			case out.Error != "":
				f.complete(fromStatus(remoteError{msg: out.Error}, "AppendEntriesPipeline", p.id, p.addr))
			default:
				appendEntriesResponseFromProto(out, f.resp)
				p.t.acked(p.id, f.req, f.resp)
				f.complete(nil)
			}
			if streamErr == nil && timedOut {
				// The response beat the timer but the stream is cancelled.
				streamErr = fmt.Errorf("transport: AppendEntriesPipeline to %s at %s: stream cancelled after a deadline", p.id, p.addr)
			}
			if streamErr != nil {
				p.cancel()
			}
		}
		if streamErr != nil {
			f.complete(streamErr)
		}
		select {
		case p.doneCh <- f:
		case <-p.shutdownCh:
			return
		case <-p.t.ctx.Done():
			return
		}
	}
}

// appendFuture is a pipelined AppendEntries. Only the receive goroutine (or
// Close, after it exits) completes it.
type appendFuture struct {
	start, deadline time.Time
	req             *raft.AppendEntriesRequest
	resp            *raft.AppendEntriesResponse
	err             error
	done            chan struct{}
	completed       bool
}

func (f *appendFuture) complete(err error) {
	if f.completed {
		return
	}
	f.completed = true
	f.err = err
	close(f.done)
}

// Error blocks until the response arrived or the request failed.
func (f *appendFuture) Error() error {
	<-f.done
	return f.err
}

func (f *appendFuture) Start() time.Time                      { return f.start }
func (f *appendFuture) Request() *raft.AppendEntriesRequest   { return f.req }
func (f *appendFuture) Response() *raft.AppendEntriesResponse { return f.resp }
