package replication_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ridgeline-kv/ridgeline/replication"
	"github.com/ridgeline-kv/ridgeline/replication/kvpb"
	"github.com/ridgeline-kv/ridgeline/replication/replicationtest"
)

// Regression for a deadlock the long chaos run found (seed 202, a node
// joining under load stopped answering): Admin.ClusterMap held the node's
// read lock while taking it again, and a map update queued for the write lock
// in between wedged the node. Here clients poll ClusterMap while map
// updates (rebalance pause/resume) keep the write lock busy; every call must
// answer.
func TestRegression_ClusterMapUnderMapUpdatesDoesNotDeadlock(t *testing.T) {
	c := replicationtest.NewCluster(t, replicationtest.Options{Shards: 8})
	admin := adminClient(t, c.Nodes[0].Addr())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var calls atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 8 {
		wg.Go(func() {
			for ctx.Err() == nil {
				cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
				_, err := admin.ClusterMap(cctx, &kvpb.ClusterMapRequest{})
				ccancel()
				if hung(err) && ctx.Err() == nil {
					errs <- err
					return
				}
				calls.Add(1)
			}
		})
	}
	wg.Go(func() {
		actions := []kvpb.RebalanceRequest_Action{kvpb.RebalanceRequest_PAUSE, kvpb.RebalanceRequest_RESUME}
		for i := 0; ctx.Err() == nil; i++ {
			cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, err := admin.Rebalance(cctx, &kvpb.RebalanceRequest{Action: actions[i%2]})
			ccancel()
			if hung(err) && ctx.Err() == nil {
				errs <- err
				return
			}
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("a call did not answer within 5s while maps changed (deadlock?): %v", err)
	}
	// A deadlock in the last seconds of the load wedges the node for good.
	cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer ccancel()
	if _, err := admin.ClusterMap(cctx, &kvpb.ClusterMapRequest{}); hung(err) {
		t.Fatalf("ClusterMap did not answer within 10s after the map updates stopped (deadlock?): %v", err)
	}
	t.Logf("%d ClusterMap calls answered", calls.Load())
}

// hung reports a call that did not answer in time. Any answer, even an
// error (the meta group may lose its leader on a starved machine), shows the
// node is not wedged.
func hung(err error) bool { return status.Code(err) == codes.DeadlineExceeded }

// Regression for a hang the long chaos run found (seed 202, a drained node
// never exited): one of the node's replicas was streaming a snapshot to a peer
// that had stopped reading it, and the replica's shutdown stopped raft before
// the transport, so it waited for that send — bounded only by the 10-minute
// snapshot deadline. Here the peer stops reading at the first snapshot
// message (the send blocks the way gRPC flow control blocks it, until the
// stream is cancelled); closing the sending node must not wait for it, and
// the peer must catch up once it reads again.
func TestRegression_ShutdownDoesNotWaitForStalledSnapshotSend(t *testing.T) {
	const shards = 1
	stall := newSnapshotStall()
	c := replicationtest.NewCluster(t, replicationtest.Options{Shards: shards, Configure: func(i int, cfg *replication.Config) {
		snapshotConfig(cfg)
		cfg.RaftDialOptions = append(cfg.RaftDialOptions, stall.dialOption(i))
	}})
	leader := c.WaitLeader(0, 10*time.Second)
	victim := (leader + 1) % 3
	c.Kill(victim)
	putAll(t, c, shards, 1, "snap", 300)
	waitLeaderSnapshot(t, c, 200)

	stall.armed.Store(true)
	c.Restart(victim)
	var sender int
	select {
	case sender = <-stall.stalled:
	case <-time.After(30 * time.Second):
		t.Fatalf("no snapshot send to the restarted n%d began within 30s", victim+1)
	}
	closed := make(chan struct{})
	go func() { c.Kill(sender); close(closed) }()
	select {
	case <-closed:
	case <-time.After(30 * time.Second):
		t.Fatalf("closing n%d did not finish within 30s: its shutdown waits for a snapshot send to a peer that stopped reading", sender+1)
	}

	stall.armed.Store(false)
	c.Restart(sender)
	waitCaughtUpBySnapshot(t, c, victim, 200, "snap", 300)
}

// snapshotStall makes raft InstallSnapshot streams, while armed, behave as if
// the receiving peer had stopped reading: every send blocks until the stream
// ends. It reports the index of the node whose send stalled.
type snapshotStall struct {
	armed   atomic.Bool
	stalled chan int
}

func newSnapshotStall() *snapshotStall { return &snapshotStall{stalled: make(chan int, 1)} }

func (s *snapshotStall) dialOption(node int) grpc.DialOption {
	return grpc.WithChainStreamInterceptor(func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		cs, err := streamer(ctx, desc, cc, method, opts...)
		if err != nil || method != kvpb.Raft_InstallSnapshot_FullMethodName || !s.armed.Load() {
			return cs, err
		}
		return &stalledStream{ClientStream: cs, onStall: func() {
			select {
			case s.stalled <- node:
			default:
			}
		}}, nil
	})
}

type stalledStream struct {
	grpc.ClientStream
	onStall func()
}

func (s *stalledStream) SendMsg(any) error {
	s.onStall()
	<-s.Context().Done()
	return s.Context().Err()
}
