package ycsb

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Distributions of keys.
const (
	Zipfian = "zipfian" // YCSB's scrambled zipfian, theta 0.99
	Uniform = "uniform"
)

// workloads maps each workload to the fraction of its operations that are
// reads; the rest are updates.
var workloads = map[string]float64{"A": 0.5, "B": 0.95, "C": 1.0}

// ReadFraction returns the fraction of reads of workload "A" (50% read, 50%
// update), "B" (95/5) or "C" (read only), case-insensitively, and false for
// any other workload.
func ReadFraction(workload string) (float64, bool) {
	f, ok := workloads[strings.ToUpper(workload)]
	return f, ok
}

// Config describes one benchmark run. How reads are served (linearizable or
// stale) is the Store's concern, not the workload's.
type Config struct {
	// Workload is "A", "B" or "C" (see ReadFraction), case-insensitive.
	Workload string
	// Keys is the number of distinct keys.
	Keys int
	// Distribution picks keys: Zipfian or Uniform.
	Distribution string
	// ValueSize is the size in bytes of every value written.
	ValueSize int
	// Concurrency is the number of closed-loop workers.
	Concurrency int
	// Duration is how long the measured run lasts (preload excluded).
	Duration time.Duration
	// Preload writes every key once, with all workers, before the run.
	Preload bool
	// Seed seeds the workers' random sources; 0 picks a random seed.
	Seed uint64
	// KeyPrefix prefixes every key: key i is KeyPrefix + i as 10 digits.
	KeyPrefix string
	// IsNotFound reports whether an error from Store.Read means the key is
	// absent. Such reads are timed and counted in Result.NotFound, not as
	// errors. nil: every error is an error.
	IsNotFound func(error) bool
}

// DefaultConfig returns the configuration of the comparison:
// YCSB-A, 10,000 zipfian keys, 256-byte values, 64 workers for 30 s, with
// preload.
func DefaultConfig() Config {
	return Config{
		Workload:     "A",
		Keys:         10000,
		Distribution: Zipfian,
		ValueSize:    256,
		Concurrency:  64,
		Duration:     30 * time.Second,
		Preload:      true,
		KeyPrefix:    "bench/user",
	}
}

// Validate reports every invalid field.
func (c Config) Validate() error {
	var errs []error
	if _, ok := ReadFraction(c.Workload); !ok {
		errs = append(errs, fmt.Errorf("ycsb: Workload %q: use A (50%% read, 50%% update), B (95/5) or C (read only)", c.Workload))
	}
	if c.Keys <= 0 {
		errs = append(errs, fmt.Errorf("ycsb: Keys must be positive, got %d", c.Keys))
	}
	if c.Distribution != Zipfian && c.Distribution != Uniform {
		errs = append(errs, fmt.Errorf("ycsb: Distribution %q: use %s or %s", c.Distribution, Zipfian, Uniform))
	}
	if c.ValueSize < 0 {
		errs = append(errs, fmt.Errorf("ycsb: ValueSize must not be negative, got %d", c.ValueSize))
	}
	if c.Concurrency <= 0 {
		errs = append(errs, fmt.Errorf("ycsb: Concurrency must be positive, got %d", c.Concurrency))
	}
	if c.Duration <= 0 {
		errs = append(errs, fmt.Errorf("ycsb: Duration must be positive, got %v", c.Duration))
	}
	return errors.Join(errs...)
}
