package liftload

import (
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// ErrHelp is returned by ParseFlags when -h or --help was given.
var ErrHelp = flag.ErrHelp

// ParseFlags parses the command line of cmd/liftload into a Config. Without
// --seed the seed is drawn from the clock (and printed by the run, so it can
// be replayed); without --total the total is 200,000 × --days. Usage and
// errors go to stderr.
func ParseFlags(args []string, stderr io.Writer) (Config, error) {
	c := DefaultConfig()
	fs := flag.NewFlagSet("liftload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	urls := fs.String("urls", strings.Join(c.URLs, ","), "comma-separated base URLs of the service replicas; requests go round-robin")
	fs.Uint64Var(&c.Seed, "seed", 0, "seed of the generated rides (default: from the clock, printed)")
	fs.IntVar(&c.Total, "total", DefaultRidesPerDay, "POSTs in the run, warm-up included (default 200000 × --days)")
	fs.IntVar(&c.InitialThreads, "initial-threads", c.InitialThreads, "phase 1 threads")
	fs.IntVar(&c.InitialPerThread, "initial-per-thread", c.InitialPerThread, "POSTs per phase 1 thread")
	fs.IntVar(&c.Threads, "threads", c.Threads, "phase 2 threads, sending the rest of --total")
	fs.IntVar(&c.LittlesSample, "littles-sample", c.LittlesSample, "single-thread warm-up POSTs for the Little's-law prediction, counted in --total (0 skips)")
	fs.IntVar(&c.Season, "season", c.Season, "season (year) of every ride")
	fs.IntVar(&c.Days, "days", c.Days, "rides go to days 1..N")
	fs.IntVar(&c.Resorts, "resorts", c.Resorts, "rides go to resorts 1..N")
	fs.IntVar(&c.Skiers, "skiers", c.Skiers, "skier IDs 1..N")
	fs.IntVar(&c.Lifts, "lifts", c.Lifts, "lift IDs 1..N")
	fs.IntVar(&c.Minutes, "minutes", c.Minutes, "ride times 1..N")
	fs.IntVar(&c.Retries, "retries", c.Retries, "retries of a request that got a 4xx/5xx or a transport error")
	fs.DurationVar(&c.RetryBackoff, "retry-backoff", c.RetryBackoff, "wait before the first retry, doubled per retry up to 2s (0: retry at once)")
	fs.DurationVar(&c.AttemptTimeout, "timeout", c.AttemptTimeout, "timeout of one attempt")
	fs.BoolVar(&c.SkipPost, "skip-post", false, "skip seasons setup and the POST phases")
	fs.BoolVar(&c.GetPhase, "get-phase", false, "run the GET phase (endpoints 7, 2, 3)")
	fs.IntVar(&c.GetWorkers, "get-workers", c.GetWorkers, "GET phase workers per endpoint")
	fs.IntVar(&c.GetIterations, "get-iterations", c.GetIterations, "GETs per worker")
	fs.DurationVar(&c.GetRamp, "get-ramp", c.GetRamp, "workers' starts are spread evenly over this")
	fs.BoolVar(&c.Verify, "verify", false, "after the POSTs, wait for the queue to drain and check exact answers")
	fs.DurationVar(&c.VerifyTimeout, "verify-timeout", c.VerifyTimeout, "how long to wait for GET /queue to report 0 pending events")
	verifySkiers := fs.String("verify-skiers", "all", `skier-days checked with endpoint 2: "all" or a sample size N`)
	fs.IntVar(&c.VerifyWorkers, "verify-workers", c.VerifyWorkers, "verification concurrency")
	fs.StringVar(&c.CSVPath, "csv", "", "write one line per request to this file")
	fs.StringVar(&c.ChartPath, "chart", "", "draw throughput per second to this PNG file")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("liftload: unexpected arguments %q: all settings are flags (see -h)", fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if !set["seed"] {
		c.Seed = uint64(time.Now().UnixNano())
	}
	if !set["total"] {
		c.Total = DefaultRidesPerDay * c.Days
	}
	c.URLs = nil
	for u := range strings.SplitSeq(*urls, ",") {
		if u = strings.TrimSpace(u); u != "" {
			c.URLs = append(c.URLs, u)
		}
	}
	if *verifySkiers == "all" {
		c.VerifySkiers = VerifyAllSkiers
	} else {
		n, err := strconv.Atoi(*verifySkiers)
		if err != nil || n < 0 {
			return c, fmt.Errorf("liftload: --verify-skiers %q: want \"all\" or a count >= 0", *verifySkiers)
		}
		c.VerifySkiers = n
	}
	if err := c.Validate(); err != nil {
		return c, err
	}
	return c, nil
}
