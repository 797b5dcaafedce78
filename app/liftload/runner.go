package liftload

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// maxPrintedFailures is how many failed requests a run describes.
const maxPrintedFailures = 10

// Runner runs the load test of one Config.
type Runner struct {
	cfg Config
	hc  *httpClient

	outMu    sync.Mutex
	out      io.Writer
	failures atomic.Int64
}

// New validates cfg and returns a Runner. It starts nothing.
func New(cfg Config) (*Runner, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	out := cfg.Out
	if out == nil {
		out = io.Discard
	}
	return &Runner{cfg: cfg, hc: newHTTPClient(cfg), out: out}, nil
}

// Run runs the test: seasons, the POST phases, verification and the GET
// phase as configured, then writes the CSV and chart. It blocks until done
// or ctx is done (the report then holds what ran, and Err says why it
// stopped). It prints progress and the parameters to Config.Out but not the
// final tables: call Report.Print.
func (r *Runner) Run(ctx context.Context) *Report {
	defer r.hc.close()
	c := r.cfg
	rep := &Report{Start: time.Now().UnixNano()}
	r.printf("%s\n", params(c))

	if !c.SkipPost {
		if err := r.ensureSeasons(ctx); err != nil {
			rep.Err = err
			return rep
		}
		r.printf("seasons: %d added to resorts 1..%d\n", c.Season, c.Resorts)
		plans := planPhases(c.Total, c.LittlesSample, c.InitialThreads, c.InitialPerThread, c.Threads)
		cpu0 := processCPU()
		posts, recs := r.runPosts(ctx, plans)
		rep.PostCPU = processCPU().sub(cpu0)
		rep.Posts = posts
		rep.Records = recs
		var wall time.Duration
		for _, p := range posts {
			wall += p.Summary.Wall
			if p.Name == "warm-up" {
				rep.SingleThreadMean = p.Summary.Mean
			}
		}
		rep.PostTotal = summarize(recs, wall)
	}
	if c.Verify && ctx.Err() == nil {
		rep.Verify = r.verify(ctx)
	}
	if c.GetPhase && ctx.Err() == nil {
		cpu0 := processCPU()
		gets, recs := r.runGets(ctx)
		rep.GetCPU = processCPU().sub(cpu0)
		rep.Gets = gets
		rep.Records = append(rep.Records, recs...)
	}
	if err := ctx.Err(); err != nil && rep.Err == nil {
		rep.Err = fmt.Errorf("liftload: interrupted: %w", err)
	}
	if c.CSVPath != "" {
		if err := writeCSVFile(c.CSVPath, rep.Records); err != nil {
			rep.Err = err
		} else {
			r.printf("csv: %d requests written to %s\n", len(rep.Records), c.CSVPath)
		}
	}
	if c.ChartPath != "" {
		title := fmt.Sprintf("liftload seed %d: %d POSTs, %d threads", c.Seed, c.Total, c.Threads)
		if err := writeChartFile(c.ChartPath, rep.Records, rep.Start, title); err != nil {
			rep.Err = err
		} else {
			r.printf("chart: throughput per second drawn to %s\n", c.ChartPath)
		}
	}
	return rep
}

// printf writes a line of progress; safe for concurrent use.
func (r *Runner) printf(format string, args ...any) {
	r.outMu.Lock()
	defer r.outMu.Unlock()
	fmt.Fprintf(r.out, format, args...)
}

// noteFailure prints the first failed requests of the run.
func (r *Runner) noteFailure(kind Kind, path string, err error) {
	n := r.failures.Add(1)
	if n <= maxPrintedFailures {
		r.printf("failed %s %s: %v\n", kind, path, err)
	}
	if n == maxPrintedFailures {
		r.printf("(further failures are counted, not printed)\n")
	}
}
