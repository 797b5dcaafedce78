package liftload

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestParseFlags(t *testing.T) {
	for _, tc := range []struct {
		args  []string
		check func(c Config) bool
		desc  string
	}{
		{nil, func(c Config) bool {
			return c.Total == 200_000 && c.InitialThreads == 32 && c.InitialPerThread == 1000 && c.Retries == 5 &&
				c.LittlesSample == 500 && c.Season == 2025 && c.Days == 1 && c.VerifySkiers == VerifyAllSkiers
		}, "defaults"},
		{[]string{"--days", "3"}, func(c Config) bool { return c.Total == 600_000 }, "total scales with days"},
		{[]string{"--days", "3", "--total", "1000"}, func(c Config) bool { return c.Total == 1000 }, "--total wins"},
		{[]string{"--seed", "9"}, func(c Config) bool { return c.Seed == 9 }, "seed"},
		{[]string{"--urls", "http://a:1, http://b:2"}, func(c Config) bool {
			return len(c.URLs) == 2 && c.URLs[1] == "http://b:2"
		}, "urls"},
		{[]string{"--verify", "--verify-skiers", "100"}, func(c Config) bool { return c.VerifySkiers == 100 }, "sample"},
		{[]string{"--get-phase", "--get-ramp", "0s"}, func(c Config) bool { return c.GetPhase && c.GetRamp == 0 }, "get"},
	} {
		c, err := ParseFlags(tc.args, io.Discard)
		if err != nil || !tc.check(c) {
			t.Errorf("%s: ParseFlags(%q) = %+v, %v", tc.desc, tc.args, c, err)
		}
	}
}

func TestParseFlags_Bad(t *testing.T) {
	for _, args := range [][]string{
		{"--threads", "0"},
		{"--urls", "localhost:8080"},
		{"--urls", ""},
		{"--verify-skiers", "some"},
		{"--days", "400"},
		{"--skip-post"},
		{"--bogus"},
		{"extra"},
		{"--season", "25"},
	} {
		var stderr bytes.Buffer
		if code := Main(context.Background(), args, io.Discard, &stderr); code != ExitBadFlags {
			t.Errorf("Main(%q) = %d, want %d; stderr %s", args, code, ExitBadFlags, stderr.String())
		}
	}
	_, err := ParseFlags([]string{"--threads", "0", "--lifts", "0"}, io.Discard)
	if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "Threads = 0") || !strings.Contains(err.Error(), "Lifts = 0") {
		t.Errorf("err = %v, want ErrInvalidConfig naming Threads and Lifts", err)
	}
}

func TestMain_ExitCodes(t *testing.T) {
	f := newFakeService()
	srv := f.start(t)
	args := []string{"--urls", srv.URL, "--seed", "3", "--total", "300", "--initial-threads", "2",
		"--initial-per-thread", "50", "--threads", "2", "--littles-sample", "20", "--skiers", "50",
		"--retry-backoff", "0", "--verify"}
	var out bytes.Buffer
	if code := Main(context.Background(), args, &out, io.Discard); code != ExitOK {
		t.Fatalf("Main = %d, want %d; output:\n%s", code, ExitOK, out.String())
	}
	if !strings.Contains(out.String(), "--seed 3 --total 300") {
		t.Errorf("output does not print the replayable parameters:\n%s", out.String())
	}
	f.corrupt = func(string, int64) int64 { return 1 }
	if code := Main(context.Background(), args, io.Discard, io.Discard); code != ExitFailed {
		t.Errorf("Main with a wrong service = %d, want %d", code, ExitFailed)
	}
}
