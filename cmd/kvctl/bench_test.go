package main

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/ridgeline-kv/ridgeline/client"
	"github.com/ridgeline-kv/ridgeline/client/ycsb"
)

func testBenchResult() benchResult {
	return benchResult{&ycsb.Result{
		Workload: "A", Distribution: "zipfian", Keys: 10000, ValueSize: 256, Concurrency: 64,
		PreloadSeconds: 1.25, Seconds: 30.0, Ops: 900000, OpsPerSec: 30000, Errors: 2, NotFound: 1,
		PerOp: []ycsb.OpStats{
			{Op: "read", Count: 450000, Errors: 1, MeanMs: 1.5, P50Ms: 1.2, P99Ms: 4.5, P999Ms: 9.75, MaxMs: 20.125},
			{Op: "update", Count: 450000, Errors: 1, MeanMs: 2.5, P50Ms: 2.25, P99Ms: 6, P999Ms: 12, MaxMs: 31},
		},
		FirstError: "unavailable: shard 3 has no leader",
	}}
}

func TestBenchResult_Golden(t *testing.T) {
	for _, format := range []string{"table", "json"} {
		t.Run(format, func(t *testing.T) {
			a := &app{flags: globalFlags{output: format}}
			var buf bytes.Buffer
			a.stdout = &buf
			if err := a.print(testBenchResult()); err != nil {
				t.Fatal(err)
			}
			ext := ".txt"
			if format == "json" {
				ext = ".json"
			}
			golden(t, "bench"+ext, buf.Bytes())
		})
	}
}

func TestBenchFlags_Config(t *testing.T) {
	f := benchFlags{Config: ycsb.Config{Workload: "c", Keys: 10, Distribution: "uniform", ValueSize: 8, Concurrency: 2,
		Duration: time.Second, Preload: true, KeyPrefix: "p/", Seed: 9}, stale: true}
	if err := f.validate(); err != nil {
		t.Fatal(err)
	}
	cfg := f.config()
	if err := cfg.Validate(); err != nil {
		t.Errorf("valid flags gave an invalid config: %v", err)
	}
	got := fmt.Sprintf("%s %d %s %d %d %v %v %d %s", cfg.Workload, cfg.Keys, cfg.Distribution, cfg.ValueSize,
		cfg.Concurrency, cfg.Duration, cfg.Preload, cfg.Seed, cfg.KeyPrefix)
	if want := "c 10 uniform 8 2 1s true 9 p/"; got != want {
		t.Errorf("config() = %s; want %s", got, want)
	}
	for _, tt := range []struct {
		err  error
		want bool
	}{
		{client.ErrNotFound, true},
		{fmt.Errorf("get k: %w", client.ErrNotFound), true},
		{client.ErrUnavailable, false},
		{errors.New("other"), false},
	} {
		if got := cfg.IsNotFound(tt.err); got != tt.want {
			t.Errorf("IsNotFound(%v) = %v; want %v", tt.err, got, tt.want)
		}
	}
}
