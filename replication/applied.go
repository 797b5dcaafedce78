package replication

import (
	"container/heap"
	"context"
	"sync"
	"sync/atomic"
)

// appliedIndex is a state machine's applied index that goroutines can wait
// on (linearizable reads wait for the commit index they observed). Once the
// state machine has failed it also carries that error, and waiters get it.
// The zero value is ready to use; all methods are safe for concurrent use.
type appliedIndex struct {
	v     atomic.Uint64
	fatal atomic.Pointer[error]

	mu      sync.Mutex
	waiters waiterHeap
}

func (a *appliedIndex) load() uint64 { return a.v.Load() }

// store sets the index without waking anyone (initial load).
func (a *appliedIndex) store(index uint64) { a.v.Store(index) }

// advance publishes a new applied index and wakes the waiters it satisfies.
func (a *appliedIndex) advance(index uint64) {
	a.v.Store(index)
	a.mu.Lock()
	defer a.mu.Unlock()
	for len(a.waiters) > 0 && a.waiters[0].index <= index {
		w := heap.Pop(&a.waiters).(*waiter)
		close(w.ch)
	}
}

// fail records the state machine's fatal error and wakes every waiter with
// it. It reports false if an error was already recorded.
func (a *appliedIndex) fail(err error) bool {
	if !a.fatal.CompareAndSwap(nil, &err) {
		return false
	}
	a.mu.Lock()
	for _, w := range a.waiters {
		w.pos = -1
		close(w.ch)
	}
	a.waiters = nil
	a.mu.Unlock()
	return true
}

// wait blocks until the applied index is at least index, ctx is done
// (returning ctx's error) or the state machine failed (returning that
// error). A waiter costs one heap entry and one channel, and an apply wakes
// only the waiters it satisfies.
func (a *appliedIndex) wait(ctx context.Context, index uint64) error {
	if a.v.Load() >= index {
		return nil
	}
	w := &waiter{index: index, ch: make(chan struct{})}
	a.mu.Lock()
	if errp := a.fatal.Load(); errp != nil {
		a.mu.Unlock()
		return *errp
	}
	// Re-check under the lock: an advance between the first check and here
	// has already woken the heap, which takes the lock.
	if a.v.Load() >= index {
		a.mu.Unlock()
		return nil
	}
	heap.Push(&a.waiters, w)
	a.mu.Unlock()

	select {
	case <-w.ch:
		if errp := a.fatal.Load(); errp != nil && a.v.Load() < index {
			return *errp
		}
		return nil
	case <-ctx.Done():
		a.mu.Lock()
		if w.pos >= 0 {
			heap.Remove(&a.waiters, w.pos)
		}
		a.mu.Unlock()
		if a.v.Load() >= index {
			return nil
		}
		return ctx.Err()
	}
}

type waiter struct {
	index uint64
	ch    chan struct{}
	pos   int // position in the heap; -1 once removed
}

// waiterHeap is a min-heap of waiters by index, guarded by appliedIndex.mu.
type waiterHeap []*waiter

func (h waiterHeap) Len() int           { return len(h) }
func (h waiterHeap) Less(i, j int) bool { return h[i].index < h[j].index }
func (h waiterHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].pos, h[j].pos = i, j
}
func (h *waiterHeap) Push(x any) {
	w := x.(*waiter)
	w.pos = len(*h)
	*h = append(*h, w)
}
func (h *waiterHeap) Pop() any {
	old := *h
	w := old[len(old)-1]
	old[len(old)-1] = nil
	w.pos = -1
	*h = old[:len(old)-1]
	return w
}
