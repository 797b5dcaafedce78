package liftload

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is the outcome of a run.
type Report struct {
	// Posts are the POST phases in order (warm-up, phase 1, phase 2).
	Posts []PhaseResult
	// PostTotal sums every POST, warm-up included, over the POST wall time.
	PostTotal Summary
	// SingleThreadMean is the warm-up's mean latency, the W of Little's law.
	SingleThreadMean time.Duration
	// Gets are the GET phase's endpoints in order (7, 2, 3).
	Gets []PhaseResult
	// Verify is nil when verification did not run.
	Verify *VerifyResult
	// PostCPU and GetCPU are this process's CPU time during the POST
	// phases and the GET phase: the load client's own cost.
	PostCPU, GetCPU cpuUsage
	// Records holds every POST and GET-phase request.
	Records []Record
	// Start is when the run started, Unix nanoseconds.
	Start int64
	// Err is why the run stopped early, if it did.
	Err error
}

// OK reports whether every request succeeded, verification (if run)
// passed, and nothing stopped the run.
func (r *Report) OK() bool {
	if r.Err != nil || r.PostTotal.Failures > 0 {
		return false
	}
	for _, g := range r.Gets {
		if g.Summary.Failures > 0 {
			return false
		}
	}
	return r.Verify == nil || r.Verify.Pass()
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%.2f", float64(d.Microseconds())/1000)
}

// oneLine is a progress line of a phase's figures.
func oneLine(s Summary) string {
	return fmt.Sprintf("%d ok, %d failed in %v, %.0f req/s, mean %s ms, p99 %s ms",
		s.Successes, s.Failures, s.Wall.Round(time.Millisecond), s.Throughput, ms(s.Mean), ms(s.P99))
}

// Print writes the report's tables and verdict to w.
func (r *Report) Print(w io.Writer, c Config) {
	if len(r.Posts) > 0 {
		fmt.Fprintf(w, "\nPOST results (the %d-request single-thread warm-up is counted in the total of %d):\n",
			c.LittlesSample, c.Total)
		printTable(w, append(r.Posts, PhaseResult{Name: "all POSTs", Threads: 0, Summary: r.PostTotal}), true)
		if r.SingleThreadMean > 0 {
			fmt.Fprintf(w, "Little's law: predicted = threads / single-thread mean latency (W = %s ms); a measured figure well below the prediction means requests queue in the service.\n",
				ms(r.SingleThreadMean))
		} else {
			fmt.Fprintln(w, "Little's law: no warm-up (--littles-sample 0), no prediction.")
		}
		printCPU(w, r.PostCPU, r.PostTotal.Requests, r.PostTotal.Wall)
	}
	if len(r.Gets) > 0 {
		fmt.Fprintf(w, "\nGET phase (%d workers × %d iterations each, %v ramp; a 404 is a valid answer and counts as success):\n",
			c.GetWorkers, c.GetIterations, c.GetRamp)
		printTable(w, r.Gets, false)
		n, wall := 0, time.Duration(0)
		for _, g := range r.Gets {
			n += g.Summary.Requests
			wall += g.Summary.Wall
		}
		printCPU(w, r.GetCPU, n, wall)
	}
	if v := r.Verify; v != nil {
		fmt.Fprintln(w)
		verdict := "PASS"
		if !v.Pass() {
			verdict = "FAIL"
		}
		fmt.Fprintf(w, "VERIFY %s: %d checks, %d mismatches; %d rides generated, %d distinct; endpoint 2 checked for %d of %d skier-days\n",
			verdict, v.Checks, v.MismatchCount, v.Generated, v.Distinct, v.SkierDaysChecked, v.SkierDays)
		for _, m := range v.Mismatches {
			fmt.Fprintf(w, "  mismatch: %s\n", m)
		}
		if v.MismatchCount > len(v.Mismatches) {
			fmt.Fprintf(w, "  … and %d more\n", v.MismatchCount-len(v.Mismatches))
		}
	}
	if r.Err != nil {
		fmt.Fprintf(w, "\nrun stopped: %v\n", r.Err)
	}
	verdict := "OK"
	if !r.OK() {
		verdict = "FAILED"
	}
	fmt.Fprintf(w, "\nRESULT %s\n", verdict)
}

// printCPU prints the load client's own CPU cost of n requests over wall.
func printCPU(w io.Writer, u cpuUsage, n int, wall time.Duration) {
	if u.user+u.sys == 0 || wall <= 0 {
		return
	}
	fmt.Fprintf(w, "load client CPU: %v user + %v sys = %.1f µs per request, %.0f%% of one core on average\n",
		u.user.Round(time.Millisecond), u.sys.Round(time.Millisecond),
		float64(u.perRequest(n).Nanoseconds())/1000, 100*(u.user+u.sys).Seconds()/wall.Seconds())
}

func printTable(w io.Writer, rows []PhaseResult, littles bool) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	head := "phase\tthreads\tok\tfailed\twall\treq/s\tmean ms\tmedian ms\tp99 ms\tmin ms\tmax ms\t"
	if littles {
		head += "predicted req/s\tL=X·R\t"
	}
	fmt.Fprintln(tw, head)
	for _, p := range rows {
		s := p.Summary
		threads := fmt.Sprint(p.Threads)
		if p.Threads == 0 {
			threads = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%v\t%.0f\t%s\t%s\t%s\t%s\t%s\t", p.Name, threads, s.Successes, s.Failures,
			s.Wall.Round(time.Millisecond), s.Throughput, ms(s.Mean), ms(s.Median), ms(s.P99), ms(s.Min), ms(s.Max))
		if littles {
			pred := "-"
			if p.Predicted > 0 {
				pred = fmt.Sprintf("%.0f", p.Predicted)
			}
			// Little's law on the measured figures: concurrency = X × R.
			fmt.Fprintf(tw, "%s\t%.1f\t", pred, s.Throughput*s.Mean.Seconds())
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
}

// params is the run's parameters as a replayable command line.
func params(c Config) string {
	var b strings.Builder
	fmt.Fprintf(&b, "liftload --urls %s --seed %d --total %d --initial-threads %d --initial-per-thread %d --threads %d --littles-sample %d",
		strings.Join(c.URLs, ","), c.Seed, c.Total, c.InitialThreads, c.InitialPerThread, c.Threads, c.LittlesSample)
	fmt.Fprintf(&b, " --season %d --days %d --resorts %d --skiers %d --lifts %d --minutes %d --retries %d --retry-backoff %v --timeout %v",
		c.Season, c.Days, c.Resorts, c.Skiers, c.Lifts, c.Minutes, c.Retries, c.RetryBackoff, c.AttemptTimeout)
	if c.SkipPost {
		b.WriteString(" --skip-post")
	}
	if c.GetPhase {
		fmt.Fprintf(&b, " --get-phase --get-workers %d --get-iterations %d --get-ramp %v", c.GetWorkers, c.GetIterations, c.GetRamp)
	}
	if c.Verify {
		skiers := "all"
		if c.VerifySkiers != VerifyAllSkiers {
			skiers = fmt.Sprint(c.VerifySkiers)
		}
		fmt.Fprintf(&b, " --verify --verify-timeout %v --verify-skiers %s --verify-workers %d", c.VerifyTimeout, skiers, c.VerifyWorkers)
	}
	if c.CSVPath != "" {
		fmt.Fprintf(&b, " --csv %s", c.CSVPath)
	}
	if c.ChartPath != "" {
		fmt.Fprintf(&b, " --chart %s", c.ChartPath)
	}
	return b.String()
}
