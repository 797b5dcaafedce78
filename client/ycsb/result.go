package ycsb

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
)

// OpStats is what a run measured for one operation type. Latency
// percentiles are upper bounds within 3.2%.
type OpStats struct {
	Op     string  `json:"op"`
	Count  uint64  `json:"count"`
	Errors uint64  `json:"errors"`
	MeanMs float64 `json:"mean_ms"`
	P50Ms  float64 `json:"p50_ms"`
	P99Ms  float64 `json:"p99_ms"`
	P999Ms float64 `json:"p999_ms"`
	MaxMs  float64 `json:"max_ms"`
}

// Result is what Run measured. Count and latencies cover successful and
// not-found operations; failed ones count only in Errors.
type Result struct {
	Workload     string `json:"workload"`
	Distribution string `json:"distribution"`
	Keys         int    `json:"keys"`
	ValueSize    int    `json:"value_size"`
	Concurrency  int    `json:"concurrency"`
	// Stale says whether the store served reads that may be stale (not
	// linearizable). Run does not know and leaves it false; the caller
	// that built the Store sets it, so that printed results say so.
	Stale          bool      `json:"stale"`
	PreloadSeconds float64   `json:"preload_seconds,omitempty"`
	PreloadErrors  uint64    `json:"preload_errors,omitempty"`
	Seconds        float64   `json:"seconds"`
	Ops            uint64    `json:"ops"`
	OpsPerSec      float64   `json:"ops_per_sec"`
	Errors         uint64    `json:"errors"`
	NotFound       uint64    `json:"not_found"`
	PerOp          []OpStats `json:"per_op"`
	// FirstError is the message of Err; a caller may reword it.
	FirstError string `json:"first_error,omitempty"`
	// Err is the first operation that failed during the run, if any.
	Err error `json:"-"`
}

// WriteTable writes r as aligned text: a summary, then one row per
// operation type.
func (r *Result) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "workload %s, %s over %d keys, %d B values, concurrency %d, stale reads %v\n",
		r.Workload, r.Distribution, r.Keys, r.ValueSize, r.Concurrency, r.Stale)
	if r.PreloadSeconds > 0 {
		fmt.Fprintf(tw, "preload: %d keys in %.2fs (%.0f keys/s), %d errors\n", r.Keys, r.PreloadSeconds, float64(r.Keys)/r.PreloadSeconds, r.PreloadErrors)
	}
	fmt.Fprintf(tw, "run: %.1fs, %d ops, %.1f ops/s, %d errors, %d not found\n\n", r.Seconds, r.Ops, r.OpsPerSec, r.Errors, r.NotFound)
	fmt.Fprintln(tw, "OP\tCOUNT\tERRORS\tMEAN\tP50\tP99\tP99.9\tMAX")
	for _, s := range r.PerOp {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.3fms\t%.3fms\t%.3fms\t%.3fms\t%.3fms\n", s.Op, s.Count, s.Errors, s.MeanMs, s.P50Ms, s.P99Ms, s.P999Ms, s.MaxMs)
	}
	if r.FirstError != "" {
		fmt.Fprintf(tw, "\nfirst error: %s\n", r.FirstError)
	}
	return tw.Flush()
}

// WriteJSON writes r as indented JSON followed by a newline.
func (r *Result) WriteJSON(w io.Writer) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}
