package storage

import (
	"errors"
	"fmt"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

const (
	// DefaultFlushInterval is how often a StateDB writes the applies of its
	// shards to bbolt (etcd's backend commits every 100 ms too). A crash
	// loses at most this much of applies, which raft replays from its log.
	DefaultFlushInterval = 100 * time.Millisecond
	// flushBytes starts a flush early once this much is held in memory.
	flushBytes = 4 << 20
)

// flusher writes the layers published by ShardStore.Apply to bbolt,
// through the committer: every FlushInterval, when flushBytes are held,
// and on demand (Flush). A flush shares its commit with whatever else the
// committer has queued (raft log appends on a node's combined DB).
type flusher struct {
	d        *StateDB
	interval time.Duration

	mu      sync.Mutex
	cond    *sync.Cond // signalled when durable or err changes
	dirty   map[*ShardStore]struct{}
	seq     uint64 // applies published
	durable uint64 // applies flushed (seq as of the last successful flush)
	bytes   int    // held since the last flush began
	err     error  // sticky: a flush failed (or the store closed)

	kick   chan struct{}
	stop   chan struct{}
	exited chan struct{}
}

func newFlusher(d *StateDB, interval time.Duration) *flusher {
	if interval <= 0 {
		interval = DefaultFlushInterval
	}
	f := &flusher{
		d: d, interval: interval,
		dirty:  make(map[*ShardStore]struct{}),
		kick:   make(chan struct{}, 1),
		stop:   make(chan struct{}),
		exited: make(chan struct{}),
	}
	f.cond = sync.NewCond(&f.mu)
	go f.run()
	return f
}

func (f *flusher) run() {
	defer close(f.exited)
	t := time.NewTicker(f.interval)
	defer t.Stop()
	for {
		select {
		case <-f.stop:
			return
		case <-t.C:
		case <-f.kick:
		}
		f.flush()
	}
}

// published records that s published a layer of size bytes.
func (f *flusher) published(s *ShardStore, size int) {
	f.mu.Lock()
	f.seq++
	f.dirty[s] = struct{}{}
	f.bytes += size
	full := f.bytes >= flushBytes
	f.mu.Unlock()
	if full {
		f.poke()
	}
}

func (f *flusher) poke() {
	select {
	case f.kick <- struct{}{}:
	default:
	}
}

// failure returns the sticky flush error, nil while healthy.
func (f *flusher) failure() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

// wait blocks until every apply published before the call is durable.
func (f *flusher) wait() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	target := f.seq
	for f.durable < target && f.err == nil {
		f.poke()
		f.cond.Wait()
	}
	if f.durable >= target {
		return nil
	}
	return f.err
}

// flush writes every dirty shard's layers in one committer request.
func (f *flusher) flush() {
	f.mu.Lock()
	idle := len(f.dirty) == 0 || f.err != nil
	f.mu.Unlock()
	if idle {
		return
	}
	var target uint64
	var flushed []*ShardStore
	r := f.d.c.getRequest()
	defer f.d.c.putRequest(r)
	r.apply = func(tx *bolt.Tx) error {
		f.mu.Lock()
		shards := f.dirty
		f.dirty = make(map[*ShardStore]struct{}, len(shards))
		target, f.bytes = f.seq, 0
		f.mu.Unlock()
		flushed = flushed[:0]
		for s := range shards {
			v := s.freeze()
			if len(v) == 0 {
				continue
			}
			flushed = append(flushed, s)
			if err := s.write(tx, v); err != nil {
				return err
			}
		}
		return nil
	}
	r.after = func() {
		for _, s := range flushed {
			s.thaw()
		}
	}
	err := f.d.c.do(r)
	f.mu.Lock()
	defer f.mu.Unlock()
	if err != nil {
		if f.err == nil {
			if !errors.Is(err, ErrClosed) {
				f.d.logger.Error("storage: flush of applied state failed; the node must stop", "err", err)
			}
			f.err = fmt.Errorf("storage: flush applied state: %w", err)
		}
	} else if target > f.durable {
		f.durable = target
	}
	f.cond.Broadcast()
}

// close flushes what is held, stops the flusher goroutine and fails later
// calls with ErrClosed. It returns the final flush's error.
func (f *flusher) close() error {
	err := f.wait()
	select {
	case <-f.stop:
	default:
		close(f.stop)
	}
	<-f.exited
	f.mu.Lock()
	if f.err == nil {
		f.err = ErrClosed
	}
	f.cond.Broadcast()
	f.mu.Unlock()
	return err
}
