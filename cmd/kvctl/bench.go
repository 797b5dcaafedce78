package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/ridgeline-kv/ridgeline/client"
	"github.com/ridgeline-kv/ridgeline/client/ycsb"
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

func (f *benchFlags) validate() error {
	var errs []error
	if _, ok := ycsb.ReadFraction(f.workload); !ok {
		errs = append(errs, fmt.Errorf("--workload %q: use A (50%% read, 50%% update), B (95/5) or C (read only)", f.workload))
	}
	if f.keys <= 0 {
		errs = append(errs, fmt.Errorf("--keys must be positive, got %d", f.keys))
	}
	if f.distribution != ycsb.Zipfian && f.distribution != ycsb.Uniform {
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

// config is the workload the flags describe.
func (f *benchFlags) config() ycsb.Config {
	return ycsb.Config{
		Workload:     f.workload,
		Keys:         f.keys,
		Distribution: f.distribution,
		ValueSize:    f.valueSize,
		Concurrency:  f.concurrency,
		Duration:     f.duration,
		Preload:      f.preload,
		Seed:         f.seed,
		KeyPrefix:    f.keyPrefix,
		IsNotFound:   func(err error) bool { return errors.Is(err, client.ErrNotFound) },
	}
}

// benchResult is the output of bench.
type benchResult struct{ *ycsb.Result }

func (r benchResult) table(w io.Writer) { r.WriteTable(w) }

// benchStore runs the benchmark's operations as Ridgeline Gets and Puts.
type benchStore struct {
	c       *client.Client
	getOpts []client.Option // client.Stale() with --stale
}

var _ ycsb.Store = (*benchStore)(nil)

func (s *benchStore) Read(ctx context.Context, key string) error {
	_, err := s.c.Get(ctx, key, s.getOpts...)
	return err
}

func (s *benchStore) Update(ctx context.Context, key string, value []byte) error {
	return s.c.Put(ctx, key, value)
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
log-bucketed histogram (within 3.2%).

tools/etcdbench runs the same workloads against etcd with the same flags.`,
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
	def := ycsb.DefaultConfig()
	fl := cmd.Flags()
	fl.StringVar(&f.workload, "workload", def.Workload, "YCSB workload: A (50/50 read/update), B (95/5), C (read only)")
	fl.IntVar(&f.keys, "keys", def.Keys, "number of keys")
	fl.StringVar(&f.distribution, "distribution", def.Distribution, "key distribution: zipfian (YCSB scrambled, theta 0.99) or uniform")
	fl.IntVar(&f.valueSize, "value-size", def.ValueSize, "value size in bytes")
	fl.IntVar(&f.concurrency, "concurrency", def.Concurrency, "concurrent workers")
	fl.DurationVar(&f.duration, "duration", def.Duration, "how long to run")
	fl.BoolVar(&f.preload, "preload", def.Preload, "write every key before the run")
	fl.BoolVar(&f.stale, "stale", false, "serve reads from any replica")
	fl.StringVar(&f.keyPrefix, "key-prefix", def.KeyPrefix, "prefix of the benchmark's keys")
	fl.Uint64Var(&f.seed, "seed", 0, "random seed (0 = random)")
	return cmd
}

// runBench runs the workload f describes against c.
func runBench(ctx context.Context, c *client.Client, f *benchFlags) (benchResult, error) {
	s := &benchStore{c: c}
	if f.stale {
		s.getOpts = []client.Option{client.Stale()}
	}
	res, err := ycsb.Run(ctx, s, f.config())
	if err != nil {
		return benchResult{}, err
	}
	res.Stale = f.stale
	if res.Err != nil {
		res.FirstError = errorMessage(res.Err)
	}
	return benchResult{res}, nil
}
