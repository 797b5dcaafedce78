package main

import (
	"bytes"
	"testing"
)

func testBenchResult() *benchResult {
	return &benchResult{
		Workload: "A", Distribution: "zipfian", Keys: 10000, ValueSize: 256, Concurrency: 64,
		PreloadSeconds: 1.25, Seconds: 30.0, Ops: 900000, OpsPerSec: 30000, Errors: 2, NotFound: 1,
		PerOp: []opStats{
			{Op: "read", Count: 450000, Errors: 1, MeanMs: 1.5, P50Ms: 1.2, P99Ms: 4.5, P999Ms: 9.75, MaxMs: 20.125},
			{Op: "update", Count: 450000, Errors: 1, MeanMs: 2.5, P50Ms: 2.25, P99Ms: 6, P999Ms: 12, MaxMs: 31},
		},
		FirstError: "unavailable: shard 3 has no leader",
	}
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
