package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/ridgeline-kv/ridgeline/client"
)

type benchFlags struct {
	workload     string
	keys         int
	distribution string
	valueSize    int
	concurrency  int
	duration     time.Duration
	preload      bool
	stale        bool
	keyPrefix    string
	seed         uint64
}

// workloads: the fraction of operations that are reads (the rest update).
var benchWorkloads = map[string]float64{"A": 0.5, "B": 0.95, "C": 1.0}

func (f *benchFlags) validate() error {
	var errs []error
	if _, ok := benchWorkloads[strings.ToUpper(f.workload)]; !ok {
		errs = append(errs, fmt.Errorf("--workload %q: use A (50%% read, 50%% update), B (95/5) or C (read only)", f.workload))
	}
	if f.keys <= 0 {
		errs = append(errs, fmt.Errorf("--keys must be positive, got %d", f.keys))
	}
	if f.distribution != "zipfian" && f.distribution != "uniform" {
		errs = append(errs, fmt.Errorf("--distribution %q: use zipfian or uniform", f.distribution))
	}
	if f.valueSize < 0 || f.valueSize > client.MaxValueSize {
		errs = append(errs, fmt.Errorf("--value-size %d: use 0 to %d", f.valueSize, client.MaxValueSize))
	}
	if f.concurrency <= 0 {
		errs = append(errs, fmt.Errorf("--concurrency must be positive, got %d", f.concurrency))
	}
	if f.duration <= 0 {
		errs = append(errs, fmt.Errorf("--duration must be positive, got %v", f.duration))
	}
	if err := errors.Join(errs...); err != nil {
		return usageError{err}
	}
	return nil
}

// opStats is the result of one operation type.
type opStats struct {
	Op     string  `json:"op"`
	Count  uint64  `json:"count"`
	Errors uint64  `json:"errors"`
	MeanMs float64 `json:"mean_ms"`
	P50Ms  float64 `json:"p50_ms"`
	P99Ms  float64 `json:"p99_ms"`
	P999Ms float64 `json:"p999_ms"`
	MaxMs  float64 `json:"max_ms"`
}

// benchResult is the output of bench.
type benchResult struct {
	Workload       string    `json:"workload"`
	Distribution   string    `json:"distribution"`
	Keys           int       `json:"keys"`
	ValueSize      int       `json:"value_size"`
	Concurrency    int       `json:"concurrency"`
	Stale          bool      `json:"stale"`
	PreloadSeconds float64   `json:"preload_seconds,omitempty"`
	PreloadErrors  uint64    `json:"preload_errors,omitempty"`
	Seconds        float64   `json:"seconds"`
	Ops            uint64    `json:"ops"`
	OpsPerSec      float64   `json:"ops_per_sec"`
	Errors         uint64    `json:"errors"`
	NotFound       uint64    `json:"not_found"`
	PerOp          []opStats `json:"per_op"`
	FirstError     string    `json:"first_error,omitempty"`
}

func (r *benchResult) table(w io.Writer) {
	fmt.Fprintf(w, "workload %s, %s over %d keys, %d B values, concurrency %d, stale reads %v\n",
		r.Workload, r.Distribution, r.Keys, r.ValueSize, r.Concurrency, r.Stale)
	if r.PreloadSeconds > 0 {
		fmt.Fprintf(w, "preload: %d keys in %.2fs (%.0f keys/s), %d errors\n", r.Keys, r.PreloadSeconds, float64(r.Keys)/r.PreloadSeconds, r.PreloadErrors)
	}
	fmt.Fprintf(w, "run: %.1fs, %d ops, %.1f ops/s, %d errors, %d not found\n\n", r.Seconds, r.Ops, r.OpsPerSec, r.Errors, r.NotFound)
	fmt.Fprintln(w, "OP\tCOUNT\tERRORS\tMEAN\tP50\tP99\tP99.9\tMAX")
	for _, s := range r.PerOp {
		fmt.Fprintf(w, "%s\t%d\t%d\t%.3fms\t%.3fms\t%.3fms\t%.3fms\t%.3fms\n", s.Op, s.Count, s.Errors, s.MeanMs, s.P50Ms, s.P99Ms, s.P999Ms, s.MaxMs)
	}
	if r.FirstError != "" {
		fmt.Fprintf(w, "\nfirst error: %s\n", r.FirstError)
	}
}

func newBenchCmd(a *app) *cobra.Command {
	var f benchFlags
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Run a YCSB-style benchmark",
		Long: `Run a YCSB-style closed-loop benchmark: --concurrency workers issue reads and
updates back to back for --duration. Workloads: A = 50% read / 50% update,
B = 95/5, C = read only. Keys are chosen with YCSB's scrambled zipfian
(theta 0.99) or uniformly. With --preload (default) every key is written first
and the time that took is reported. Latency percentiles come from a
log-bucketed histogram (within 3.2%).`,
		Args: exactArgs(0, "none"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.validate(); err != nil {
				return err
			}
			c, err := a.dial(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			res, err := runBench(cmd.Context(), c, &f)
			if err != nil {
				return err
			}
			return a.print(res)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.workload, "workload", "A", "YCSB workload: A (50/50 read/update), B (95/5), C (read only)")
	fl.IntVar(&f.keys, "keys", 10000, "number of keys")
	fl.StringVar(&f.distribution, "distribution", "zipfian", "key distribution: zipfian (YCSB scrambled, theta 0.99) or uniform")
	fl.IntVar(&f.valueSize, "value-size", 256, "value size in bytes")
	fl.IntVar(&f.concurrency, "concurrency", 64, "concurrent workers")
	fl.DurationVar(&f.duration, "duration", 30*time.Second, "how long to run")
	fl.BoolVar(&f.preload, "preload", true, "write every key before the run")
	fl.BoolVar(&f.stale, "stale", false, "serve reads from any replica")
	fl.StringVar(&f.keyPrefix, "key-prefix", "bench/user", "prefix of the benchmark's keys")
	fl.Uint64Var(&f.seed, "seed", 0, "random seed (0 = random)")
	return cmd
}

// benchWorker is one worker's private state: no sharing on the hot path.
type benchWorker struct {
	rng              *rand.Rand
	value            []byte
	read, update     histogram
	readErr, updErrs uint64
	notFound         uint64
	firstErr         error
}

func runBench(ctx context.Context, c *client.Client, f *benchFlags) (*benchResult, error) {
	workload := strings.ToUpper(f.workload)
	readFrac := benchWorkloads[workload]
	keys := make([]string, f.keys)
	for i := range keys {
		keys[i] = fmt.Sprintf("%s%010d", f.keyPrefix, i)
	}
	var chooser keyChooser = uniform{uint64(f.keys)}
	if f.distribution == "zipfian" {
		chooser = newScrambledZipfian(uint64(f.keys))
	}
	seed := f.seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	workers := make([]*benchWorker, f.concurrency)
	for i := range workers {
		w := &benchWorker{rng: rand.New(rand.NewPCG(seed, uint64(i))), value: make([]byte, f.valueSize)}
		for j := range w.value {
			w.value[j] = 'a' + byte(w.rng.IntN(26))
		}
		workers[i] = w
	}
	res := &benchResult{Workload: workload, Distribution: f.distribution, Keys: f.keys, ValueSize: f.valueSize, Concurrency: f.concurrency, Stale: f.stale}

	if f.preload {
		start := time.Now()
		var next atomic.Int64
		var errs atomic.Uint64
		var firstErr atomic.Pointer[error]
		var wg sync.WaitGroup
		for _, w := range workers {
			wg.Go(func() {
				for {
					i := next.Add(1) - 1
					if i >= int64(len(keys)) || ctx.Err() != nil {
						return
					}
					if err := c.Put(ctx, keys[i], w.value); err != nil {
						errs.Add(1)
						firstErr.CompareAndSwap(nil, &err)
					}
				}
			})
		}
		wg.Wait()
		res.PreloadSeconds = time.Since(start).Seconds()
		res.PreloadErrors = errs.Load()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if p := firstErr.Load(); p != nil && res.PreloadErrors == uint64(len(keys)) {
			return nil, fmt.Errorf("preload failed for every key: %w", *p)
		}
	}

	var stop atomic.Bool
	timer := time.AfterFunc(f.duration, func() { stop.Store(true) })
	defer timer.Stop()
	var getOpts []client.Option
	if f.stale {
		getOpts = []client.Option{client.Stale()}
	}
	start := time.Now()
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Go(func() {
			var counter uint64
			for !stop.Load() && ctx.Err() == nil {
				key := keys[chooser.next(w.rng)]
				if w.rng.Float64() < readFrac {
					t0 := time.Now()
					_, err := c.Get(ctx, key, getOpts...)
					d := time.Since(t0)
					switch {
					case err == nil:
						w.read.record(d)
					case errors.Is(err, client.ErrNotFound):
						w.read.record(d)
						w.notFound++
					case ctx.Err() != nil:
						return
					default:
						w.readErr++
						if w.firstErr == nil {
							w.firstErr = err
						}
					}
					continue
				}
				counter++
				if len(w.value) >= 8 {
					binary.LittleEndian.PutUint64(w.value, counter)
				}
				t0 := time.Now()
				err := c.Put(ctx, key, w.value)
				d := time.Since(t0)
				switch {
				case err == nil:
					w.update.record(d)
				case ctx.Err() != nil:
					return
				default:
					w.updErrs++
					if w.firstErr == nil {
						w.firstErr = err
					}
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}

	var read, update histogram
	var readErrs, updErrs uint64
	for _, w := range workers {
		read.merge(&w.read)
		update.merge(&w.update)
		readErrs += w.readErr
		updErrs += w.updErrs
		res.NotFound += w.notFound
		if w.firstErr != nil && res.FirstError == "" {
			res.FirstError = errorMessage(w.firstErr)
		}
	}
	res.Seconds = elapsed.Seconds()
	res.Ops = read.n + update.n
	res.OpsPerSec = float64(res.Ops) / elapsed.Seconds()
	res.Errors = readErrs + updErrs
	if readFrac > 0 {
		res.PerOp = append(res.PerOp, statsOf("read", &read, readErrs))
	}
	if readFrac < 1 {
		res.PerOp = append(res.PerOp, statsOf("update", &update, updErrs))
	}
	return res, nil
}

func statsOf(op string, h *histogram, errs uint64) opStats {
	ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
	return opStats{
		Op: op, Count: h.n, Errors: errs,
		MeanMs: ms(h.mean()), P50Ms: ms(h.quantile(0.5)), P99Ms: ms(h.quantile(0.99)),
		P999Ms: ms(h.quantile(0.999)), MaxMs: ms(time.Duration(h.max)),
	}
}
