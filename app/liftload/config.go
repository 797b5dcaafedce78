package liftload

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// Defaults of the standard load test (liftride-api.md).
const (
	DefaultRidesPerDay      = 200_000
	DefaultInitialThreads   = 32
	DefaultInitialPerThread = 1000
	DefaultThreads          = 64
	DefaultLittlesSample    = 500
	DefaultSeason           = 2025
	DefaultResorts          = 10
	DefaultSkiers           = 100_000
	DefaultLifts            = 40
	DefaultMinutes          = 360
	DefaultRetries          = 5
	DefaultRetryBackoff     = 100 * time.Millisecond
	DefaultAttemptTimeout   = 10 * time.Second
	DefaultGetWorkers       = 128
	DefaultGetIterations    = 500
	DefaultGetRamp          = 10 * time.Second
	DefaultVerifyTimeout    = 2 * time.Minute
	DefaultVerifyWorkers    = 32
	// VerifyAllSkiers as Config.VerifySkiers checks every skier-day.
	VerifyAllSkiers = -1
)

// maxBackoff caps the doubling retry backoff.
const maxBackoff = 2 * time.Second

// Config configures a Runner. Build one with DefaultConfig and change fields.
type Config struct {
	// URLs are the base URLs of the service replicas (http://host:port);
	// requests go round-robin over them. At least one.
	URLs []string
	// Seed makes the generated rides and the GET phase's draws.
	Seed uint64

	// Total is the number of POSTs, the warm-up included.
	Total int
	// InitialThreads × InitialPerThread POSTs make phase 1.
	InitialThreads   int
	InitialPerThread int
	// Threads send the rest of Total in phase 2.
	Threads int
	// LittlesSample POSTs are sent by one thread first to measure the
	// single-thread latency for the Little's-law prediction; 0 skips it.
	LittlesSample int

	// Generated data: season Season, days 1..Days, resorts 1..Resorts,
	// skiers 1..Skiers, lifts 1..Lifts, times 1..Minutes.
	Season  int
	Days    int
	Resorts int
	Skiers  int
	Lifts   int
	Minutes int

	// Retries is how many times a failed request is retried.
	Retries int
	// RetryBackoff is the wait before the first retry, doubled for each
	// further retry (capped at 2 s); 0 retries at once.
	RetryBackoff time.Duration
	// AttemptTimeout bounds one attempt's wait for the response headers
	// (and a connection's dial, at most 5 s). With a custom Transport the
	// transport's own timeouts apply instead.
	AttemptTimeout time.Duration

	// SkipPost skips seasons setup and the POST phases.
	SkipPost bool
	// GetPhase runs the GET phase: endpoints 7, 2 and 3 in turn, each with
	// GetWorkers workers × GetIterations requests, started over GetRamp.
	GetPhase      bool
	GetWorkers    int
	GetIterations int
	GetRamp       time.Duration

	// Verify checks the service's answers against the generated rides
	// after the POST phases (or, with SkipPost, the rides Seed generates).
	Verify bool
	// VerifyTimeout bounds the wait for the queue to drain.
	VerifyTimeout time.Duration
	// VerifySkiers is how many skier-days endpoint 2 is checked for (a
	// seeded sample); VerifyAllSkiers checks every one.
	VerifySkiers int
	// VerifyWorkers is the verifier's concurrency.
	VerifyWorkers int

	// CSVPath, when set, receives one line per request.
	CSVPath string
	// ChartPath, when set, receives a PNG of throughput per second.
	ChartPath string

	// Out receives the report; nil means io.Discard.
	Out io.Writer
	// Transport, when set, replaces the tuned keep-alive transport.
	Transport http.RoundTripper
}

// DefaultConfig returns the standard load test against one local replica.
func DefaultConfig() Config {
	return Config{
		URLs:             []string{"http://127.0.0.1:8080"},
		Seed:             1,
		Total:            DefaultRidesPerDay,
		InitialThreads:   DefaultInitialThreads,
		InitialPerThread: DefaultInitialPerThread,
		Threads:          DefaultThreads,
		LittlesSample:    DefaultLittlesSample,
		Season:           DefaultSeason,
		Days:             1,
		Resorts:          DefaultResorts,
		Skiers:           DefaultSkiers,
		Lifts:            DefaultLifts,
		Minutes:          DefaultMinutes,
		Retries:          DefaultRetries,
		RetryBackoff:     DefaultRetryBackoff,
		AttemptTimeout:   DefaultAttemptTimeout,
		GetWorkers:       DefaultGetWorkers,
		GetIterations:    DefaultGetIterations,
		GetRamp:          DefaultGetRamp,
		VerifyTimeout:    DefaultVerifyTimeout,
		VerifySkiers:     VerifyAllSkiers,
		VerifyWorkers:    DefaultVerifyWorkers,
	}
}

// Validate reports every invalid field of c, each with its value; the
// result matches ErrInvalidConfig.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf(format, args...))
	}
	if len(c.URLs) == 0 {
		bad("URLs is empty: give at least one http://host:port")
	}
	for i, u := range c.URLs {
		p, err := url.Parse(u)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			bad("URLs[%d] = %q is not http://host:port", i, u)
		}
	}
	atLeast := func(name string, v, lo int) {
		if v < lo {
			bad("%s = %d, want >= %d", name, v, lo)
		}
	}
	if !c.SkipPost {
		atLeast("Total", c.Total, 1)
		atLeast("InitialThreads", c.InitialThreads, 1)
		atLeast("InitialPerThread", c.InitialPerThread, 0)
		atLeast("Threads", c.Threads, 1)
		atLeast("LittlesSample", c.LittlesSample, 0)
	}
	if c.SkipPost && !c.GetPhase && !c.Verify {
		bad("SkipPost without GetPhase or Verify leaves nothing to do")
	}
	if c.Verify {
		atLeast("Total", c.Total, 1)
	}
	if c.Season < 1000 || c.Season > 9999 {
		bad("Season = %d, want a 4-digit year", c.Season)
	}
	if c.Days < 1 || c.Days > 366 {
		bad("Days = %d, want 1..366", c.Days)
	}
	if c.Resorts < 1 || c.Resorts > 255 {
		bad("Resorts = %d, want 1..255", c.Resorts)
	}
	if c.Skiers < 1 || c.Skiers >= 1<<24 {
		bad("Skiers = %d, want 1..%d", c.Skiers, 1<<24-1)
	}
	if c.Lifts < 1 || c.Lifts > 255 {
		bad("Lifts = %d, want 1..255", c.Lifts)
	}
	if c.Minutes < 1 || c.Minutes > 1440 {
		bad("Minutes = %d, want 1..1440", c.Minutes)
	}
	if c.Retries < 0 || c.Retries > 100 {
		bad("Retries = %d, want 0..100", c.Retries)
	}
	if c.RetryBackoff < 0 {
		bad("RetryBackoff = %v, want >= 0", c.RetryBackoff)
	}
	if c.AttemptTimeout <= 0 {
		bad("AttemptTimeout = %v, want > 0", c.AttemptTimeout)
	}
	if c.GetPhase {
		atLeast("GetWorkers", c.GetWorkers, 1)
		atLeast("GetIterations", c.GetIterations, 1)
		if c.GetRamp < 0 {
			bad("GetRamp = %v, want >= 0", c.GetRamp)
		}
	}
	if c.Verify {
		if c.VerifyTimeout <= 0 {
			bad("VerifyTimeout = %v, want > 0", c.VerifyTimeout)
		}
		if c.VerifySkiers < VerifyAllSkiers {
			bad("VerifySkiers = %d, want >= 0 or VerifyAllSkiers", c.VerifySkiers)
		}
		atLeast("VerifyWorkers", c.VerifyWorkers, 1)
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrInvalidConfig, errors.Join(errs...))
}

// maxConcurrency is the most requests the run has in flight at once.
func (c Config) maxConcurrency() int {
	n := max(c.InitialThreads, c.Threads, 1)
	if c.GetPhase {
		n = max(n, c.GetWorkers)
	}
	if c.Verify {
		n = max(n, c.VerifyWorkers)
	}
	return n
}
