package app

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/ridgeline-kv/ridgeline/client"
)

// consumer applies the queue entries of the partitions this replica holds
// the leases of. Each round it takes the oldest entries of every held
// partition, applies all their rides as one batch (so the batch groups many
// rides per skier bucket and resort-day stripe into few Txns), then, per
// partition, deletes the entries and subtracts their rides from the pending
// counter in one Txn guarded by the entries' versions: two consumers that
// overlap during a lease hand-over subtract each entry once, and the data
// model counts each ride once anyway.
//
// When a round was not full it waits ConsumeLinger before the next, so that
// rides accumulate into larger, cheaper batches: the price is up to that
// much more delay before rides are visible.
type consumer struct {
	store      Store
	apply      *applier
	partitions func() []int
	cfg        QueueConfig
	timeout    time.Duration
	m          *metrics
	log        *slog.Logger
}

// taken is what a round took from one partition.
type taken struct {
	p      int
	kvs    []client.KV
	counts []int64 // rides per entry
}

// run consumes until ctx is done. A failed round is retried: its entries
// stay in the queue until applied.
func (c *consumer) run(ctx context.Context) {
	for ctx.Err() == nil {
		full, oldest, err := c.round(ctx)
		wait := c.cfg.ConsumeLinger
		switch {
		case err != nil && ctx.Err() == nil:
			c.m.applyErrors.Inc()
			c.log.Warn("queue batch failed; retrying", "err", err)
			wait = c.cfg.IdlePoll
		case oldest.IsZero():
			c.m.consumerLag.Set(0)
			wait = max(c.cfg.ConsumeLinger, c.cfg.IdlePoll)
		default:
			c.m.consumerLag.Set(time.Since(oldest).Seconds())
			if full {
				wait = 0
			}
		}
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
			case <-t.C:
			}
		}
	}
}

// round consumes the oldest ConsumeEntries entries of each held partition.
// It reports whether some partition had that many (a backlog) and the
// enqueue time of the oldest entry taken (zero when none).
func (c *consumer) round(ctx context.Context) (full bool, oldest time.Time, err error) {
	parts := c.partitions()
	if len(parts) == 0 {
		return false, time.Time{}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()

	takes := make([]taken, len(parts))
	g, gctx := errgroup.WithContext(ctx)
	for i, p := range parts {
		g.Go(func() error {
			kvs, _, err := c.store.Scan(gctx, queueEntryPrefix(p), "", c.cfg.ConsumeEntries)
			takes[i] = taken{p: p, kvs: kvs}
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return false, time.Time{}, err
	}
	var rides []Ride
	for i := range takes {
		t := &takes[i]
		full = full || len(t.kvs) >= c.cfg.ConsumeEntries
		t.counts = make([]int64, len(t.kvs))
		for j, kv := range t.kvs {
			if ns, ok := entryTime(kv.Key); ok && (oldest.IsZero() || ns < oldest.UnixNano()) {
				oldest = time.Unix(0, ns)
			}
			rs, err := decodeRides(kv.Value)
			if err != nil {
				// It can never be applied; keeping it would stop the partition.
				// Its enqueue added the count in its header to the pending
				// counter: take that back with it, if the header is readable.
				c.m.badEntries.Inc()
				n, ok := rideCount(kv.Value)
				t.counts[j] = n
				c.log.Error("dropping a malformed queue entry", "key", kv.Key, "err", err, "rides", n, "count_readable", ok)
				continue
			}
			t.counts[j] = int64(len(rs))
			rides = append(rides, rs...)
		}
	}
	if len(rides) > 0 {
		res, err := c.apply.Apply(ctx, rides)
		if err != nil {
			return false, oldest, err
		}
		c.m.applied.Add(float64(res.Applied))
		c.m.duplicates.Add(float64(res.Duplicates))
		c.m.applyBatch.Observe(float64(len(rides)))
	}
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for _, t := range takes {
		if len(t.kvs) == 0 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.remove(ctx, t); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return full, oldest, errors.Join(errs...)
}

// remove deletes one partition's consumed entries and subtracts their rides
// from its pending counter, each entry at most once.
func (c *consumer) remove(ctx context.Context, t taken) error {
	txn := Txn{}
	var total int64
	for i, kv := range t.kvs {
		txn.If = append(txn.If, Cond{Kind: VersionIs, Key: kv.Key, Version: kv.Version})
		txn.Then = append(txn.Then, Op{Kind: OpDelete, Key: kv.Key})
		total += t.counts[i]
	}
	txn.Then = append(txn.Then, Op{Kind: OpAdd, Key: queuePendingKey(t.p), Delta: -total})
	res, err := c.store.Commit(ctx, txn)
	if err != nil || res.Succeeded {
		return err
	}
	// Another consumer removed some of them: remove the rest one by one.
	var errs []error
	for i, kv := range t.kvs {
		_, err := c.store.Commit(ctx, Txn{
			If: []Cond{{Kind: VersionIs, Key: kv.Key, Version: kv.Version}},
			Then: []Op{
				{Kind: OpDelete, Key: kv.Key},
				{Kind: OpAdd, Key: queuePendingKey(t.p), Delta: -t.counts[i]},
			},
		})
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
