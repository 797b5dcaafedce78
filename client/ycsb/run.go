package ycsb

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Run preloads the keys if cfg.Preload, then runs cfg's workload closed-loop
// against store for cfg.Duration and returns what it measured. It blocks
// until the run ends. Failed operations are counted, not fatal; Run fails
// only on an invalid cfg, when ctx ends (returning ctx.Err()), or when the
// preload failed for every key.
func Run(ctx context.Context, store Store, cfg Config) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := newRunner(store, cfg)
	res := &Result{
		Workload: r.workload, Distribution: cfg.Distribution, Keys: cfg.Keys,
		ValueSize: cfg.ValueSize, Concurrency: cfg.Concurrency,
	}
	if cfg.Preload {
		start := time.Now()
		errs, err := r.preload(ctx)
		res.PreloadSeconds = time.Since(start).Seconds()
		res.PreloadErrors = errs
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if err != nil && errs == uint64(len(r.keys)) {
			return nil, fmt.Errorf("preload failed for every key: %w", err)
		}
	}

	timer := time.AfterFunc(cfg.Duration, func() { r.stop.Store(true) })
	defer timer.Stop()
	start := time.Now()
	var wg sync.WaitGroup
	for _, w := range r.workers {
		wg.Go(func() {
			for !r.stop.Load() && r.step(ctx, w) {
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	r.summarize(res, elapsed)
	return res, nil
}

// runner is the state of one Run shared by its workers; it is read-only
// during the run except for stop.
type runner struct {
	store      Store
	workload   string
	readFrac   float64
	keys       []string
	chooser    keyChooser
	isNotFound func(error) bool
	workers    []*worker
	stop       atomic.Bool
}

// worker is one worker's private state: nothing on the hot path is shared.
type worker struct {
	rng                  *rand.Rand
	value                []byte
	updates              uint64 // stamped into value so each update differs
	read, update         histogram
	readErrs, updateErrs uint64
	notFound             uint64
	firstErr             error
}

func newRunner(store Store, cfg Config) *runner {
	readFrac, _ := ReadFraction(cfg.Workload)
	r := &runner{
		store:      store,
		workload:   strings.ToUpper(cfg.Workload),
		readFrac:   readFrac,
		keys:       make([]string, cfg.Keys),
		chooser:    uniform{uint64(cfg.Keys)},
		isNotFound: cfg.IsNotFound,
		workers:    make([]*worker, cfg.Concurrency),
	}
	if r.isNotFound == nil {
		r.isNotFound = func(error) bool { return false }
	}
	for i := range r.keys {
		r.keys[i] = fmt.Sprintf("%s%010d", cfg.KeyPrefix, i)
	}
	if cfg.Distribution == Zipfian {
		r.chooser = newScrambledZipfian(uint64(cfg.Keys))
	}
	seed := cfg.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	for i := range r.workers {
		w := &worker{rng: rand.New(rand.NewPCG(seed, uint64(i))), value: make([]byte, cfg.ValueSize)}
		for j := range w.value {
			w.value[j] = 'a' + byte(w.rng.IntN(26))
		}
		r.workers[i] = w
	}
	return r
}

// preload writes every key once, spreading the keys over the workers. It
// returns the number of failed writes and the first failure.
func (r *runner) preload(ctx context.Context) (uint64, error) {
	var next atomic.Int64
	var errs atomic.Uint64
	var firstErr atomic.Pointer[error]
	var wg sync.WaitGroup
	for _, w := range r.workers {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(len(r.keys)) || ctx.Err() != nil {
					return
				}
				if err := r.store.Update(ctx, r.keys[i], w.value); err != nil {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, &err)
				}
			}
		})
	}
	wg.Wait()
	if p := firstErr.Load(); p != nil {
		return errs.Load(), *p
	}
	return errs.Load(), nil
}

// step runs one operation on w and records it. It returns false when ctx
// has ended.
func (r *runner) step(ctx context.Context, w *worker) bool {
	key := r.keys[r.chooser.next(w.rng)]
	if w.rng.Float64() < r.readFrac {
		t0 := time.Now()
		err := r.store.Read(ctx, key)
		d := time.Since(t0)
		switch {
		case err == nil:
			w.read.record(d)
		case r.isNotFound(err):
			w.read.record(d)
			w.notFound++
		case ctx.Err() != nil:
			return false
		default:
			w.readErrs++
			w.firstErr = firstOf(w.firstErr, err)
		}
		return true
	}
	w.updates++
	if len(w.value) >= 8 {
		binary.LittleEndian.PutUint64(w.value, w.updates)
	}
	t0 := time.Now()
	err := r.store.Update(ctx, key, w.value)
	d := time.Since(t0)
	switch {
	case err == nil:
		w.update.record(d)
	case ctx.Err() != nil:
		return false
	default:
		w.updateErrs++
		w.firstErr = firstOf(w.firstErr, err)
	}
	return true
}

// firstOf keeps the first error.
func firstOf(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

// summarize merges the workers' measurements into res.
func (r *runner) summarize(res *Result, elapsed time.Duration) {
	var read, update histogram
	var readErrs, updateErrs uint64
	for _, w := range r.workers {
		read.merge(&w.read)
		update.merge(&w.update)
		readErrs += w.readErrs
		updateErrs += w.updateErrs
		res.NotFound += w.notFound
		if res.Err == nil {
			res.Err = w.firstErr
		}
	}
	if res.Err != nil {
		res.FirstError = res.Err.Error()
	}
	res.Seconds = elapsed.Seconds()
	res.Ops = read.n + update.n
	res.OpsPerSec = float64(res.Ops) / elapsed.Seconds()
	res.Errors = readErrs + updateErrs
	if r.readFrac > 0 {
		res.PerOp = append(res.PerOp, statsOf("read", &read, readErrs))
	}
	if r.readFrac < 1 {
		res.PerOp = append(res.PerOp, statsOf("update", &update, updateErrs))
	}
}

func statsOf(op string, h *histogram, errs uint64) OpStats {
	ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
	return OpStats{
		Op: op, Count: h.n, Errors: errs,
		MeanMs: ms(h.mean()), P50Ms: ms(h.quantile(0.5)), P99Ms: ms(h.quantile(0.99)),
		P999Ms: ms(h.quantile(0.999)), MaxMs: ms(time.Duration(h.max)),
	}
}
