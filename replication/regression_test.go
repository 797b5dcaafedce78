package replication_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

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
	t.Logf("%d ClusterMap calls answered", calls.Load())
}

// hung reports a call that did not answer in time. Any answer, even an
// error (the meta group may lose its leader on a starved machine), shows the
// node is not wedged.
func hung(err error) bool { return status.Code(err) == codes.DeadlineExceeded }
