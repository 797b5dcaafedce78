package liftload

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
)

func TestPlanPhases(t *testing.T) {
	for _, tc := range []struct {
		total, littles, it, ipt, threads int
		want                             []int // POSTs per phase
	}{
		{200_000, 500, 32, 1000, 64, []int{500, 32_000, 167_500}},
		{200_000, 0, 32, 1000, 64, []int{32_000, 168_000}},
		{600_000, 500, 32, 1000, 8, []int{500, 32_000, 567_500}},
		{1000, 500, 32, 1000, 64, []int{500, 500}},
		{100, 500, 32, 1000, 64, []int{100}},
	} {
		var got []int
		for _, p := range planPhases(tc.total, tc.littles, tc.it, tc.ipt, tc.threads) {
			got = append(got, p.want)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("planPhases(%d, %d, %d, %d, %d) = %v, want %v", tc.total, tc.littles, tc.it, tc.ipt, tc.threads, got, tc.want)
		}
	}
}

func TestRunner_PhaseAccounting(t *testing.T) {
	f := newFakeService()
	srv := f.start(t)
	c := testConfig(srv.URL)
	rep, _ := run(t, c)
	if !rep.OK() {
		t.Fatalf("run not OK: %v", rep.Err)
	}
	var names []string
	var counts []int
	for _, p := range rep.Posts {
		names = append(names, p.Name)
		counts = append(counts, p.Summary.Requests)
	}
	if want := []int{50, 400, 1550}; !slices.Equal(counts, want) {
		t.Errorf("phases %v sent %v, want %v", names, counts, want)
	}
	if rep.PostTotal.Successes != 2000 || rep.PostTotal.Failures != 0 || len(rep.Records) != 2000 {
		t.Errorf("total: %d ok, %d failed, %d records; want 2000, 0, 2000", rep.PostTotal.Successes, rep.PostTotal.Failures, len(rep.Records))
	}
	if f.posts != 2000 {
		t.Errorf("server accepted %d POSTs, want exactly 2000", f.posts)
	}
	// The server holds exactly the rides the seed generates.
	want := map[Ride]bool{}
	for _, r := range Rides(c, c.Total) {
		want[r] = true
	}
	if !maps.Equal(f.rides, want) {
		t.Errorf("server holds %d distinct rides, generator made %d; sets differ", len(f.rides), len(want))
	}
	for _, p := range rep.Posts[1:] {
		if want := LittlesPrediction(p.Threads, rep.SingleThreadMean); p.Predicted != want || want <= 0 {
			t.Errorf("%s predicted %.1f req/s, want %d / %v = %.1f", p.Name, p.Predicted, p.Threads, rep.SingleThreadMean, want)
		}
	}
}

func TestRunner_RetriedPostsCountOnce(t *testing.T) {
	f := newFakeService()
	f.failFirst = 2
	srv := f.start(t)
	c := testConfig(srv.URL)
	c.Total, c.LittlesSample = 600, 0
	rep, _ := run(t, c)
	if rep.PostTotal.Successes != 600 || rep.PostTotal.Failures != 0 {
		t.Fatalf("%d ok, %d failed; want 600, 0", rep.PostTotal.Successes, rep.PostTotal.Failures)
	}
	// Identical generated rides share a request id, so only the first of
	// them needs three attempts.
	three := 0
	for _, r := range rep.Records {
		if r.Attempts == 3 {
			three++
		}
	}
	if three < 590 {
		t.Errorf("%d of 600 records show 3 attempts, want nearly all", three)
	}
}

func TestRunner_FailedPostsFailTheRun(t *testing.T) {
	f := newFakeService()
	f.failFirst = 6
	srv := f.start(t)
	c := testConfig(srv.URL)
	c.Total, c.LittlesSample, c.InitialThreads, c.InitialPerThread = 20, 0, 2, 5
	rep, out := run(t, c)
	if rep.OK() || rep.PostTotal.Failures != 20 {
		t.Fatalf("OK %v with %d failures; want a failed run with 20 failures", rep.OK(), rep.PostTotal.Failures)
	}
	if !strings.Contains(out, "RESULT FAILED") {
		t.Errorf("output lacks RESULT FAILED")
	}
}

func TestRunner_SeasonSetupFails(t *testing.T) {
	c := testConfig("http://127.0.0.1:1") // nothing listens on port 1
	c.Retries = 0
	rep, _ := run(t, c)
	if !errors.Is(rep.Err, ErrSetup) || rep.OK() || len(rep.Records) != 0 {
		t.Fatalf("Err %v, OK %v, %d records; want ErrSetup, not OK, no records", rep.Err, rep.OK(), len(rep.Records))
	}
}

func TestRunner_Cancelled(t *testing.T) {
	f := newFakeService()
	srv := f.start(t)
	c := testConfig(srv.URL)
	r, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rep := r.Run(ctx)
	if rep.Err == nil || rep.OK() {
		t.Fatalf("cancelled run: Err %v, OK %v; want an error", rep.Err, rep.OK())
	}
}

func TestRunner_GetPhase(t *testing.T) {
	f := newFakeService()
	srv := f.start(t)
	c := testConfig(srv.URL)
	c.Total, c.LittlesSample = 500, 0
	c.GetPhase = true
	rep, _ := run(t, c)
	if !rep.OK() {
		t.Fatalf("run not OK: %v", rep.Err)
	}
	var kinds []string
	for _, g := range rep.Gets {
		kinds = append(kinds, g.Name)
		if g.Summary.Successes != c.GetWorkers*c.GetIterations || g.Summary.Failures != 0 {
			t.Errorf("%s: %d ok, %d failed; want %d, 0 (404 counts as success)", g.Name, g.Summary.Successes, g.Summary.Failures, c.GetWorkers*c.GetIterations)
		}
	}
	if want := []string{"GET7", "GET2", "GET3"}; !slices.Equal(kinds, want) {
		t.Errorf("GET phase ran %v, want %v", kinds, want)
	}
	if got, want := len(rep.Records), 500+3*c.GetWorkers*c.GetIterations; got != want {
		t.Errorf("%d records, want %d", got, want)
	}
	var bad []string
	f.getPaths.Range(func(k, _ any) bool {
		p := k.(string)
		if !strings.Contains(p, "/seasons/2025/") && !strings.Contains(p, "&season=2025") {
			bad = append(bad, p)
		}
		return true
	})
	if len(bad) > 0 {
		t.Errorf("GETs without the run's season: %v", bad)
	}
}

func TestRunner_SkipPostGetOnly(t *testing.T) {
	f := newFakeService()
	srv := f.start(t)
	c := testConfig(srv.URL)
	c.SkipPost, c.GetPhase = true, true
	rep, _ := run(t, c)
	if !rep.OK() || len(rep.Posts) != 0 || f.posts != 0 || len(rep.Gets) != 3 {
		t.Fatalf("OK %v, %d POST phases, %d POSTs served, %d GET endpoints; want OK, 0, 0, 3", rep.OK(), len(rep.Posts), f.posts, len(rep.Gets))
	}
}
