package main

import (
	"context"
	"errors"
	"io"

	"github.com/spf13/cobra"

	"github.com/ridgeline-kv/ridgeline/client"
	"github.com/ridgeline-kv/ridgeline/client/ycsb"
)

type benchFlags struct {
	ycsb.Config
	stale bool
}

func (f *benchFlags) validate() error {
	if err := f.ValidateFlags(client.MaxValueSize); err != nil {
		return usageError{err}
	}
	return nil
}

// config is the workload the flags describe.
func (f *benchFlags) config() ycsb.Config {
	c := f.Config
	c.IsNotFound = func(err error) bool { return errors.Is(err, client.ErrNotFound) }
	return c
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
	f.Config = ycsb.DefaultConfig()
	f.RegisterFlags(cmd.Flags())
	cmd.Flags().BoolVar(&f.stale, "stale", false, "serve reads from any replica")
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
