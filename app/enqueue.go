package app

import (
	"context"
	"hash/fnv"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// enqueuer writes POSTed rides to the queue with group commit: it gathers
// the rides of concurrent POSTs for up to Linger (or MaxBatch rides) and
// writes them as one entry, together with the partition's pending counter,
// in one Txn. Up to MaxInflight entry writes run at once; every POST waits
// for the write holding its ride.
//
// Enqueue is safe for concurrent use. stop flushes what was gathered and
// waits for every write in flight.
type enqueuer struct {
	store   Store
	cfg     QueueConfig
	replica string
	timeout time.Duration
	m       *metrics
	log     *slog.Logger

	// flush writes one gathered batch: put (a queue entry) for the queue,
	// an Apply for synchronous ingest (newApplyBatcher).
	flush    func(rides []Ride) error
	in       chan *enqueueReq
	slots    chan struct{}
	seq      atomic.Uint64
	next     atomic.Uint64 // round-robin partition
	stopping chan struct{}
	exited   chan struct{}
	stopOnce sync.Once
}

type enqueueReq struct {
	ride Ride
	done chan error // buffered 1
}

func newEnqueuer(store Store, cfg QueueConfig, replica string, timeout time.Duration, m *metrics, log *slog.Logger) *enqueuer {
	h := fnv.New64a()
	h.Write([]byte(replica))
	e := &enqueuer{
		store: store, cfg: cfg, replica: replica, timeout: timeout, m: m, log: log,
		in:       make(chan *enqueueReq, cfg.MaxBatch*cfg.MaxInflight),
		slots:    make(chan struct{}, cfg.MaxInflight),
		stopping: make(chan struct{}),
		exited:   make(chan struct{}),
	}
	e.next.Store(h.Sum64() % Partitions) // replicas start on different partitions
	e.flush = e.put
	return e
}

// newApplyBatcher returns an enqueuer that applies each gathered batch at
// once instead of queuing it (IngestSync): concurrent POSTs share one Apply
// (a few Txns) instead of two Txns each, and a POST still returns only once
// its ride and aggregates are durable.
func newApplyBatcher(apply *applier, cfg QueueConfig, timeout time.Duration, m *metrics, log *slog.Logger) *enqueuer {
	e := newEnqueuer(nil, cfg, "", timeout, m, log)
	e.flush = func(rides []Ride) error {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		_, err := apply.Apply(ctx, rides)
		return err
	}
	return e
}

// Enqueue blocks until ride is durably in the queue, ctx is done or the
// enqueuer stops. A nil error means the ride will be applied. After an
// error the ride may or may not be in the queue; enqueuing it again is safe.
func (e *enqueuer) Enqueue(ctx context.Context, ride Ride) error {
	req := &enqueueReq{ride: ride, done: make(chan error, 1)}
	select {
	case e.in <- req:
	case <-e.stopping:
		return ErrShuttingDown
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-req.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-e.exited:
		select {
		case err := <-req.done:
			return err
		default:
			return ErrShuttingDown // never taken into an entry
		}
	}
}

// run gathers and writes entries until stop. Call once, in its own goroutine.
func (e *enqueuer) run() {
	var writes sync.WaitGroup
	defer close(e.exited)
	defer writes.Wait()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		batch := make([]*enqueueReq, 0, 64)
		select {
		case r := <-e.in:
			batch = append(batch, r)
		case <-e.stopping:
			e.drain(&writes)
			return
		}
		timer.Reset(e.cfg.Linger)
	gather:
		for len(batch) < e.cfg.MaxBatch {
			select {
			case r := <-e.in:
				batch = append(batch, r)
			case <-timer.C:
				break gather
			case <-e.stopping:
				break gather
			}
		}
		timer.Stop()
		e.slots <- struct{}{}
		writes.Add(1)
		go func() {
			defer writes.Done()
			defer func() { <-e.slots }()
			e.write(batch)
		}()
	}
}

// drain writes whatever is still queued in e.in at stop.
func (e *enqueuer) drain(writes *sync.WaitGroup) {
	for {
		batch := make([]*enqueueReq, 0, 64)
	fill:
		for len(batch) < e.cfg.MaxBatch {
			select {
			case r := <-e.in:
				batch = append(batch, r)
			default:
				break fill
			}
		}
		if len(batch) == 0 {
			return
		}
		e.slots <- struct{}{}
		writes.Add(1)
		go func() {
			defer writes.Done()
			defer func() { <-e.slots }()
			e.write(batch)
		}()
	}
}

// write writes one entry and answers its requests.
func (e *enqueuer) write(batch []*enqueueReq) {
	rides := make([]Ride, len(batch))
	for i, r := range batch {
		rides[i] = r.ride
	}
	err := e.flush(rides)
	if err != nil {
		e.m.enqueueErrors.Inc()
		e.log.Warn("enqueue failed; the POSTs get 503 and may be retried", "rides", len(rides), "err", err)
	} else {
		e.m.enqueueBatch.Observe(float64(len(rides)))
	}
	for _, r := range batch {
		r.done <- err
	}
}

// put writes rides as one entry of the next partition.
func (e *enqueuer) put(rides []Ride) error {
	ctx, cancel := context.WithTimeout(context.Background(), e.timeout)
	defer cancel()
	value := encodeRides(make([]byte, 0, 16*len(rides)+8), rides)
	p := int(e.next.Add(1) % Partitions)
	for {
		key := queueEntryKey(p, time.Now().UnixNano(), e.replica, e.seq.Add(1))
		res, err := e.store.Commit(ctx, Txn{
			If: []Cond{Absent(key)},
			Then: []Op{
				{Kind: OpPut, Key: key, Value: value},
				{Kind: OpAdd, Key: queuePendingKey(p), Delta: int64(len(rides))},
			},
		})
		if err != nil {
			return err
		}
		if res.Succeeded {
			return nil
		}
		// The key exists (two replicas with one ID): take another.
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// stop stops gathering, writes what was gathered and waits for every write.
func (e *enqueuer) stop() {
	e.stopOnce.Do(func() { close(e.stopping) })
	<-e.exited
}
