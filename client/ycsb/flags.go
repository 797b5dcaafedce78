package ycsb

import (
	"errors"
	"fmt"
	"time"
)

// FlagSet is what RegisterFlags needs of a flag set; the standard library's
// *flag.FlagSet and spf13/pflag's *FlagSet both satisfy it.
type FlagSet interface {
	StringVar(p *string, name, value, usage string)
	IntVar(p *int, name string, value int, usage string)
	DurationVar(p *time.Duration, name string, value time.Duration, usage string)
	BoolVar(p *bool, name string, value bool, usage string)
	Uint64Var(p *uint64, name string, value uint64, usage string)
}

// RegisterFlags defines the workload flags every YCSB driver shares
// (--workload, --keys, --distribution, --value-size, --concurrency,
// --duration, --preload, --key-prefix, --seed), with c's values as defaults.
func (c *Config) RegisterFlags(fs FlagSet) {
	fs.StringVar(&c.Workload, "workload", c.Workload, "YCSB workload: A (50/50 read/update), B (95/5), C (read only)")
	fs.IntVar(&c.Keys, "keys", c.Keys, "number of keys")
	fs.StringVar(&c.Distribution, "distribution", c.Distribution, "key distribution: zipfian (YCSB scrambled, theta 0.99) or uniform")
	fs.IntVar(&c.ValueSize, "value-size", c.ValueSize, "value size in bytes")
	fs.IntVar(&c.Concurrency, "concurrency", c.Concurrency, "concurrent workers")
	fs.DurationVar(&c.Duration, "duration", c.Duration, "how long to run")
	fs.BoolVar(&c.Preload, "preload", c.Preload, "write every key before the run")
	fs.StringVar(&c.KeyPrefix, "key-prefix", c.KeyPrefix, "prefix of the benchmark's keys")
	fs.Uint64Var(&c.Seed, "seed", c.Seed, "random seed (0 = random)")
}

// ValidateFlags is Validate for a Config set by RegisterFlags: every problem
// is reported by its flag name, with maxValue bounding --value-size (0 = no
// bound).
func (c Config) ValidateFlags(maxValue int) error {
	var errs []error
	if _, ok := ReadFraction(c.Workload); !ok {
		errs = append(errs, fmt.Errorf("--workload %q: use A (50%% read, 50%% update), B (95/5) or C (read only)", c.Workload))
	}
	if c.Keys <= 0 {
		errs = append(errs, fmt.Errorf("--keys must be positive, got %d", c.Keys))
	}
	if c.Distribution != Zipfian && c.Distribution != Uniform {
		errs = append(errs, fmt.Errorf("--distribution %q: use %s or %s", c.Distribution, Zipfian, Uniform))
	}
	if c.ValueSize < 0 || (maxValue > 0 && c.ValueSize > maxValue) {
		errs = append(errs, fmt.Errorf("--value-size %d: use 0 to %d", c.ValueSize, maxValue))
	}
	if c.Concurrency <= 0 {
		errs = append(errs, fmt.Errorf("--concurrency must be positive, got %d", c.Concurrency))
	}
	if c.Duration <= 0 {
		errs = append(errs, fmt.Errorf("--duration must be positive, got %v", c.Duration))
	}
	return errors.Join(errs...)
}
