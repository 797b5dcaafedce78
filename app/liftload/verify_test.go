package liftload

import (
	"strings"
	"testing"
	"time"
)

func TestBuildExpected_Duplicates(t *testing.T) {
	rides := []Ride{
		{Resort: 1, Day: 1, Skier: 5, Lift: 2, Time: 10},
		{Resort: 1, Day: 1, Skier: 5, Lift: 2, Time: 10}, // duplicate
		{Resort: 1, Day: 1, Skier: 5, Lift: 3, Time: 10},
		{Resort: 1, Day: 1, Skier: 6, Lift: 1, Time: 10},
		{Resort: 2, Day: 2, Skier: 5, Lift: 4, Time: 20},
	}
	e := buildExpected(rides, 2, 2)
	if e.Rides != 4 || e.Duplicates != 1 || e.Vert != 100 {
		t.Errorf("rides %d, duplicates %d, vert %d; want 4, 1, 100", e.Rides, e.Duplicates, e.Vert)
	}
	wantDays := []resortDay{
		{Resort: 1, Day: 1, Skiers: 2, Rides: 3, Vert: 60},
		{Resort: 1, Day: 2},
		{Resort: 2, Day: 1},
		{Resort: 2, Day: 2, Skiers: 1, Rides: 1, Vert: 40},
	}
	for i, want := range wantDays {
		if e.ResortDays[i] != want {
			t.Errorf("ResortDays[%d] = %+v, want %+v", i, e.ResortDays[i], want)
		}
	}
	wantSkiers := []skierDay{{1, 1, 5, 50}, {1, 1, 6, 10}, {2, 2, 5, 40}}
	if len(e.SkierDays) != len(wantSkiers) {
		t.Fatalf("SkierDays = %+v, want %+v", e.SkierDays, wantSkiers)
	}
	for i, want := range wantSkiers {
		if e.SkierDays[i] != want {
			t.Errorf("SkierDays[%d] = %+v, want %+v", i, e.SkierDays[i], want)
		}
	}
}

func TestRunner_VerifyPasses(t *testing.T) {
	f := newFakeService()
	f.pending = 3 // drains over three polls
	srv := f.start(t)
	c := testConfig(srv.URL)
	c.Days = 2
	c.Verify = true
	rep, out := run(t, c)
	if !rep.OK() || !rep.Verify.Pass() {
		t.Fatalf("verification failed on a correct service")
	}
	v := rep.Verify
	if v.SkierDaysChecked != v.SkierDays || v.SkierDays == 0 || v.Checks < 2*c.Resorts*c.Days+v.SkierDays {
		t.Errorf("checked %d of %d skier-days in %d checks", v.SkierDaysChecked, v.SkierDays, v.Checks)
	}
	if f.noCache.Load() < int64(v.Checks-1) {
		t.Errorf("%d requests sent Cache-Control: no-cache, want every verification read (%d)", f.noCache.Load(), v.Checks-1)
	}
	if !strings.Contains(out, "VERIFY PASS") {
		t.Errorf("output lacks VERIFY PASS")
	}
}

func TestRunner_VerifyCountsDuplicatesOnce(t *testing.T) {
	f := newFakeService()
	srv := f.start(t)
	c := testConfig(srv.URL)
	c.Skiers, c.Resorts, c.Lifts, c.Minutes = 3, 2, 2, 2 // 24 possible rides
	c.Total, c.LittlesSample = 500, 0
	c.Verify = true
	rep, _ := run(t, c)
	if !rep.Verify.Pass() || rep.Verify.Duplicates < 400 {
		t.Fatalf("pass %v with %d duplicates; want a pass with hundreds of duplicates", rep.Verify.Pass(), rep.Verify.Duplicates)
	}
}

func TestRunner_VerifyCatchesWrongAnswers(t *testing.T) {
	for _, tc := range []struct {
		name    string
		corrupt func(path string, v int64) int64
		want    string
	}{
		{"skier vertical", func(p string, v int64) int64 {
			if strings.HasPrefix(p, "/skiers/3/") {
				return v + 10
			}
			return v
		}, "vertical = "},
		{"unique skiers", func(p string, v int64) int64 {
			if p == "/resorts/2/seasons/2025/day/1/skiers" {
				return v - 1
			}
			return v
		}, "numSkiers = "},
		{"day totals", func(p string, v int64) int64 {
			if strings.HasSuffix(p, "/vertical") && strings.HasPrefix(p, "/resorts/7/") {
				return v * 2
			}
			return v
		}, "totalVert = "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeService()
			f.corrupt = tc.corrupt
			srv := f.start(t)
			c := testConfig(srv.URL)
			c.Verify = true
			rep, out := run(t, c)
			if rep.OK() || rep.Verify.Pass() || rep.Verify.MismatchCount == 0 {
				t.Fatalf("verification passed on a wrong service")
			}
			if !strings.Contains(out, "VERIFY FAIL") || !strings.Contains(out, tc.want) {
				t.Errorf("output lacks VERIFY FAIL and a %q mismatch", tc.want)
			}
			if len(rep.Verify.Mismatches) > maxListedMismatches {
				t.Errorf("%d mismatches listed, want at most %d", len(rep.Verify.Mismatches), maxListedMismatches)
			}
		})
	}
}

func TestRunner_VerifySample(t *testing.T) {
	f := newFakeService()
	srv := f.start(t)
	c := testConfig(srv.URL)
	c.Verify, c.VerifySkiers = true, 25
	rep, _ := run(t, c)
	if !rep.Verify.Pass() || rep.Verify.SkierDaysChecked != 25 {
		t.Fatalf("pass %v, %d skier-days checked; want a pass with 25", rep.Verify.Pass(), rep.Verify.SkierDaysChecked)
	}
}

func TestRunner_VerifyQueueNeverDrains(t *testing.T) {
	f := newFakeService()
	f.pending = 1 << 30
	srv := f.start(t)
	c := testConfig(srv.URL)
	c.Total, c.LittlesSample = 100, 0
	c.Verify, c.VerifyTimeout = true, 500*time.Millisecond
	rep, out := run(t, c)
	if rep.Verify.Pass() || rep.Verify.QueueDrained || !strings.Contains(out, "not drained") {
		t.Fatalf("verification passed although the queue never drained")
	}
}
