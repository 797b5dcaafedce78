package app

import (
	"context"
	"encoding/json"
	"errors"
	"hash/fnv"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/ridgeline-kv/ridgeline/client"
)

// leaseManager holds the leases of queue partitions for this replica; the
// replica's consumer consumes the partitions it holds. Every tick (LeaseTTL/4) it
// renews its leases, takes expired or free ones while it holds fewer than
// its fair share (Partitions / live replicas, rounded up) and hands back
// leases above its share, so replicas share the partitions and a dead
// replica's partitions are taken over once its leases expire.
//
// A lease is {q:p}/lease = {"owner":…,"expires":unix nanos}, written with a
// version compare, so two replicas never both think they took it. Expiry
// compares the writer's clock with the reader's: clocks must agree to well
// within LeaseTTL for hand-overs to be prompt; an overlap is harmless
// (consuming is idempotent).
type leaseManager struct {
	store   Store
	replica string
	cfg     QueueConfig
	timeout time.Duration
	live    func() int                // live replicas, ≥ 1
	refresh func(ctx context.Context) // refreshes the queue gauges
	m       *metrics
	log     *slog.Logger

	mu   sync.Mutex
	held map[int]uint64 // partition → version of our lease; written by run's goroutine only
}

type leaseValue struct {
	Owner   string `json:"owner"`
	Expires int64  `json:"expires"` // unix nanoseconds
}

// run manages leases until ctx is done, then releases its leases if release
// says so (a graceful stop) or leaves them to expire (a hard stop). Call it
// after the consumer stopped, or concurrently with a consumer that stops
// when ctx is done: a lease released while a batch is in flight only lets
// another replica consume the same entries, which is harmless.
func (l *leaseManager) run(ctx context.Context, release func() bool) {
	tick := time.NewTicker(l.cfg.LeaseTTL / 4)
	defer tick.Stop()
	for {
		l.tick(ctx)
		select {
		case <-ctx.Done():
			if release() {
				l.releaseAll()
			}
			return
		case <-tick.C:
		}
	}
}

func (l *leaseManager) tick(parent context.Context) {
	opTimeout := min(l.timeout, l.cfg.LeaseTTL/2)
	live := max(1, l.live())
	share := (Partitions + live - 1) / live

	// Read every lease at once; a slow read must not delay the renewal of
	// the other partitions' leases.
	type lease struct {
		val     []byte
		version uint64
		err     error
	}
	var leases [Partitions]lease
	var wg sync.WaitGroup
	for p := range Partitions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(parent, opTimeout)
			defer cancel()
			ls := &leases[p]
			ls.val, ls.version, ls.err = l.store.Get(ctx, queueLeaseKey(p))
		}()
	}
	wg.Wait()

	h := fnv.New32a()
	h.Write([]byte(l.replica))
	offset := int(h.Sum32() % Partitions)
	for i := range Partitions {
		if parent.Err() != nil {
			return
		}
		p := (offset + i) % Partitions
		ls := leases[p]
		if ls.err != nil && !errors.Is(ls.err, client.ErrNotFound) {
			l.log.Debug("reading a lease failed", "partition", p, "err", ls.err)
			continue
		}
		ctx, cancel := context.WithTimeout(parent, opTimeout)
		l.manage(ctx, p, share, ls.val, ls.version)
		cancel()
	}
	l.m.partitions.Set(float64(len(l.held)))
	if l.refresh != nil {
		ctx, cancel := context.WithTimeout(parent, opTimeout)
		l.refresh(ctx)
		cancel()
	}
}

// manage renews, takes, hands back or gives up the lease of partition p,
// whose value and version were just read.
func (l *leaseManager) manage(ctx context.Context, p, share int, val []byte, version uint64) {
	key := queueLeaseKey(p)
	var cur leaseValue
	if version != 0 && json.Unmarshal(val, &cur) != nil {
		cur = leaseValue{}
	}
	heldVersion, held := l.held[p]
	if held && heldVersion != version {
		if version != 0 && cur.Owner == l.replica {
			// Our own renewal, whose reply was lost (a timeout).
			l.setHeld(p, version)
		} else {
			l.log.Warn("lost a queue partition lease", "partition", p, "owner", cur.Owner)
			l.drop(p)
			held = false
		}
	}
	if held && len(l.held) > share {
		l.drop(p)
		l.releaseLease(ctx, p, version)
		l.log.Info("handed back a queue partition to balance", "partition", p, "share", share)
		return
	}
	if !held {
		if version != 0 && cur.Owner != l.replica && time.Now().UnixNano() < cur.Expires {
			return // someone else's, live
		}
		if len(l.held) >= share {
			return
		}
	}
	next, _ := json.Marshal(leaseValue{Owner: l.replica, Expires: time.Now().Add(l.cfg.LeaseTTL).UnixNano()})
	res, err := l.store.Commit(ctx, Txn{
		If:   []Cond{{Kind: VersionIs, Key: key, Version: version}},
		Then: []Op{{Kind: OpPut, Key: key, Value: next}},
	})
	switch {
	case err != nil:
		l.log.Debug("writing a lease failed", "partition", p, "err", err)
	case !res.Succeeded && held:
		l.log.Warn("lost a queue partition lease", "partition", p)
		l.drop(p)
	case !res.Succeeded:
	case held:
		l.setHeld(p, res.Results[0].Version)
	default:
		l.log.Info("took a queue partition", "partition", p)
		l.setHeld(p, res.Results[0].Version)
	}
}

func (l *leaseManager) setHeld(p int, version uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.held == nil {
		l.held = make(map[int]uint64)
	}
	l.held[p] = version
}

func (l *leaseManager) drop(p int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.held, p)
}

// partitions returns the partitions this replica holds, ascending. Safe
// for concurrent use (the consumer calls it).
func (l *leaseManager) partitions() []int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Sorted(maps.Keys(l.held))
}

func (l *leaseManager) releaseLease(ctx context.Context, p int, version uint64) {
	key := queueLeaseKey(p)
	_, err := l.store.Commit(ctx, Txn{
		If:   []Cond{{Kind: VersionIs, Key: key, Version: version}},
		Then: []Op{{Kind: OpDelete, Key: key}},
	})
	if err != nil {
		l.log.Debug("releasing a lease failed; it will expire", "partition", p, "err", err)
	}
}

// releaseAll hands every held lease back so other replicas take over at once.
func (l *leaseManager) releaseAll() {
	ctx, cancel := context.WithTimeout(context.Background(), min(l.timeout, 2*time.Second))
	defer cancel()
	var wg sync.WaitGroup
	for p, version := range l.held {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.releaseLease(ctx, p, version)
		}()
	}
	wg.Wait()
	l.mu.Lock()
	l.held = nil
	l.mu.Unlock()
	l.m.partitions.Set(0)
}
