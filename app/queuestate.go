package app

import (
	"context"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
)

// queueState is the queue as GET /queue reports it.
type queueState struct {
	Mode    IngestMode `json:"mode"`
	Pending int64      `json:"pendingEvents"`
	Oldest  float64    `json:"oldestAgeSeconds"`
}

// readQueueState sums the partitions' pending counters and finds the
// oldest entry: 2 × Partitions reads, concurrently. Every replica gets the
// same answer; it is exact at the moment of each partition's reads.
func readQueueState(ctx context.Context, s Store) (queueState, error) {
	q := reader{store: s}
	var mu sync.Mutex
	st := queueState{Mode: IngestQueued}
	var oldest int64
	g, gctx := errgroup.WithContext(ctx)
	for p := range Partitions {
		g.Go(func() error {
			n, err := q.counter(gctx, queuePendingKey(p))
			if err != nil {
				return err
			}
			kvs, _, err := s.Scan(gctx, queueEntryPrefix(p), "", 1)
			if err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			st.Pending += n
			if len(kvs) > 0 {
				if ns, ok := entryTime(kvs[0].Key); ok && (oldest == 0 || ns < oldest) {
					oldest = ns
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return queueState{}, err
	}
	if oldest != 0 {
		st.Oldest = max(0, time.Since(time.Unix(0, oldest)).Seconds())
	}
	return st, nil
}
