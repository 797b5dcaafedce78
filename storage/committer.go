package storage

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

const (
	// maxBatchOps caps the number of requests coalesced into one transaction.
	maxBatchOps = 512
	// queueLen is the capacity of the committer's request queue.
	queueLen = 1024
)

// request is one unit of work for the committer.
type request struct {
	// apply runs inside the shared write transaction on the committer
	// goroutine. If it returns an error that is not a *cleanError, it may have
	// left partial writes behind: the committer rolls the transaction back and
	// re-runs the other requests of the batch without it. apply functions of
	// that kind must therefore be pure functions of the transaction.
	apply func(tx *bolt.Tx) error
	// after, if set, runs on the committer goroutine after a successful
	// commit, before the caller is woken (used to publish caches).
	after func()
	// entries is reported to OnCommit (log entries written).
	entries int
	// solo requests run in a transaction of their own.
	solo bool
	// async, if set, is called on the committer goroutine once the request
	// has been committed or has failed (err is set), instead of waking a
	// caller blocked in do. It must not block.
	async func()

	err  error
	done chan struct{}
}

// wake tells r's submitter that r is finished.
func (r *request) wake() {
	if r.async != nil {
		r.async()
		return
	}
	r.done <- struct{}{}
}

// cleanError reports that apply failed but left the transaction exactly as
// it found it, so the rest of the batch can proceed in the same transaction.
type cleanError struct{ err error }

func (e *cleanError) Error() string { return e.err.Error() }
func (e *cleanError) Unwrap() error { return e.err }

// committer serialises all writes to one bbolt file through one goroutine
// and group-commits them.
type committer struct {
	db       *bolt.DB
	logger   *slog.Logger
	onCommit func(entries, txns int, d time.Duration)
	// rerun: when a request fails leaving the transaction dirty, roll back
	// and re-run the rest of the batch without it (their apply functions are
	// pure). Otherwise the whole batch fails with that request's error.
	rerun bool
	// linger is how long a commit under load waits for more requests.
	linger time.Duration

	mu     sync.RWMutex // held shared while enqueueing, exclusively by close
	closed bool
	reqs   chan *request
	stop   chan struct{}
	exited chan struct{}

	pool sync.Pool
}

func newCommitter(db *bolt.DB, logger *slog.Logger, onCommit func(entries, txns int, d time.Duration)) *committer {
	c := &committer{
		db:       db,
		logger:   logger,
		onCommit: onCommit,
		rerun:    true,
		reqs:     make(chan *request, queueLen),
		stop:     make(chan struct{}),
		exited:   make(chan struct{}),
	}
	c.pool.New = func() any { return &request{done: make(chan struct{}, 1)} }
	go c.run()
	return c
}

// getRequest returns a pooled request; putRequest returns it after use.
func (c *committer) getRequest() *request { return c.pool.Get().(*request) }

func (c *committer) putRequest(r *request) {
	r.apply, r.after, r.entries, r.solo, r.err = nil, nil, 0, false, nil
	c.pool.Put(r)
}

// do submits r and blocks until it has been committed (or failed). It is
// safe for concurrent use.
func (c *committer) do(r *request) error {
	c.mu.RLock()
	if c.closed {
		c.mu.RUnlock()
		return ErrClosed
	}
	c.reqs <- r
	c.mu.RUnlock()
	<-r.done
	return r.err
}

// submit queues r, whose async function is called once it is finished, and
// returns without waiting. It fails (and never calls async) once the
// committer is closed.
func (c *committer) submit(r *request) error {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		return ErrClosed
	}
	c.reqs <- r
	return nil
}

// isClosed reports whether close has been called.
func (c *committer) isClosed() bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.closed
}

// close stops the committer after the batch in flight; queued requests fail
// with ErrClosed. It is idempotent.
func (c *committer) close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		<-c.exited
		return
	}
	c.closed = true
	c.mu.Unlock()
	close(c.stop)
	<-c.exited
}

func (c *committer) run() {
	defer close(c.exited)
	batch := make([]*request, 0, maxBatchOps)
	var held *request // a solo request that must start the next batch
	lastBatch := 0
	for {
		batch = batch[:0]
		select { // once closed, queued requests fail rather than commit
		case <-c.stop:
			if held != nil {
				held.err = ErrClosed
				held.wake()
			}
			c.drain()
			return
		default:
		}
		if held != nil {
			batch = append(batch, held)
			held = nil
		} else {
			select {
			case r := <-c.reqs:
				batch = append(batch, r)
			case <-c.stop:
				c.drain()
				return
			}
		}
		// Everything that queued up while the previous commit was in flight
		// joins this one. Under load (the previous commit was shared), wait
		// up to linger for more: a commit's cost is mostly fixed (two
		// fdatasyncs and the meta page), so fewer, larger commits leave more
		// CPU for everything else. An idle writer never waits.
		if !batch[0].solo {
			var deadline <-chan time.Time
			var timer *time.Timer
			if c.linger > 0 && lastBatch > 1 {
				timer = time.NewTimer(c.linger)
				deadline = timer.C
			}
			// add takes r into the batch, or holds a solo request back for the
			// next one (ending this batch).
			add := func(r *request) bool {
				if r.solo {
					held = r
					return false
				}
				batch = append(batch, r)
				return true
			}
		fill:
			for len(batch) < maxBatchOps {
				select {
				case r := <-c.reqs:
					if !add(r) {
						break fill
					}
					continue
				default:
				}
				if deadline == nil {
					break
				}
				select {
				case r := <-c.reqs:
					if !add(r) {
						break fill
					}
				case <-deadline:
					break fill
				case <-c.stop:
					break fill
				}
			}
			if timer != nil {
				timer.Stop()
			}
		}
		lastBatch = len(batch)
		c.commit(batch)
	}
}

// drain fails every queued request with ErrClosed. Called once closed is set,
// so no request can be enqueued any more.
func (c *committer) drain() {
	for {
		select {
		case r := <-c.reqs:
			r.err = ErrClosed
			r.wake()
		default:
			return
		}
	}
}

// commit runs batch in one transaction and wakes every request.
func (c *committer) commit(batch []*request) {
	live := batch
	var err error
	var dur time.Duration
	for {
		var failed int
		failed, dur, err = c.try(live)
		if failed < 0 {
			break
		}
		// live[failed] left the transaction dirty: it has been rolled back.
		if len(live) == 1 {
			live = live[:0] // alone in its transaction: nobody else affected
			break
		}
		if !c.rerun {
			err = fmt.Errorf("storage: batch aborted after a failed undo: %w", live[failed].err)
			break
		}
		// Fail that request alone and retry the others.
		live = append(live[:failed:failed], live[failed+1:]...)
		if len(live) == 0 {
			break
		}
	}
	if err != nil {
		c.logger.Error("storage: commit failed; the node must stop", "err", err, "requests", len(live))
		for _, r := range live {
			r.err = err
		}
	} else if len(live) > 0 {
		entries := 0
		for _, r := range live {
			if r.after != nil && r.err == nil {
				r.after()
			}
			entries += r.entries
		}
		if c.onCommit != nil {
			c.onCommit(entries, len(live), dur)
		}
	}
	for _, r := range batch {
		r.wake()
	}
}

// try runs reqs in one write transaction. It returns failed >= 0 if
// reqs[failed] returned a dirty error (its err is set and the transaction was
// rolled back); otherwise failed is -1 and err is the commit error.
func (c *committer) try(reqs []*request) (failed int, dur time.Duration, err error) {
	tx, err := c.db.Begin(true)
	if err != nil {
		return -1, 0, fmt.Errorf("storage: begin write transaction: %w", err)
	}
	for i, r := range reqs {
		r.err = nil
		aerr := r.apply(tx)
		if aerr == nil {
			continue
		}
		var ce *cleanError
		if errors.As(aerr, &ce) {
			r.err = ce.err
			continue
		}
		_ = tx.Rollback()
		r.err = aerr
		return i, 0, nil
	}
	start := time.Now()
	if err := tx.Commit(); err != nil {
		return -1, 0, fmt.Errorf("storage: commit: %w", err)
	}
	return -1, time.Since(start), nil
}
