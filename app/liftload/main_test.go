package liftload

import (
	"bytes"
	"context"
	"testing"
	"time"
)

// testConfig is a small, fast run against urls: no backoff, no ramp.
func testConfig(urls ...string) Config {
	c := DefaultConfig()
	c.URLs = urls
	c.Seed = 42
	c.Total = 2000
	c.LittlesSample = 50
	c.InitialThreads = 4
	c.InitialPerThread = 100
	c.Threads = 3
	c.Skiers = 300
	c.RetryBackoff = 0
	c.AttemptTimeout = 5 * time.Second
	c.GetWorkers = 4
	c.GetIterations = 10
	c.GetRamp = 0
	c.VerifyTimeout = 10 * time.Second
	c.VerifyWorkers = 4
	return c
}

// run runs c and returns its report and printed output.
func run(t *testing.T, c Config) (*Report, string) {
	t.Helper()
	var out bytes.Buffer
	c.Out = &out
	r, err := New(c)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	rep := r.Run(context.Background())
	rep.Print(&out, c)
	t.Logf("seed %d output:\n%s", c.Seed, out.String())
	return rep, out.String()
}
