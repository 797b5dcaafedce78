package ycsb

import (
	"context"
	"errors"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var errFakeNotFound = errors.New("fake: not found")

// fakeStore is an in-memory Store that counts calls and can fail them.
type fakeStore struct {
	mu      sync.Mutex
	data    map[string][]byte
	reads   atomic.Uint64
	updates atomic.Uint64
	readErr func(key string) error // nil: reads of absent keys are not found
	updErr  error
}

func newFakeStore() *fakeStore { return &fakeStore{data: map[string][]byte{}} }

func (s *fakeStore) Read(_ context.Context, key string) error {
	s.reads.Add(1)
	if s.readErr != nil {
		return s.readErr(key)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.data[key]; !ok {
		return errFakeNotFound
	}
	return nil
}

func (s *fakeStore) Update(_ context.Context, key string, value []byte) error {
	s.updates.Add(1)
	if s.updErr != nil {
		return s.updErr
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.data[key] = append([]byte(nil), value...)
	return nil
}

var _ Store = (*fakeStore)(nil)

func isFakeNotFound(err error) bool { return errors.Is(err, errFakeNotFound) }

func testConfig() Config {
	cfg := DefaultConfig()
	cfg.Keys = 500
	cfg.ValueSize = 32
	cfg.Concurrency = 4
	cfg.Duration = 50 * time.Millisecond
	cfg.Seed = 1
	cfg.KeyPrefix = "t/"
	cfg.IsNotFound = isFakeNotFound
	return cfg
}

func TestRun_Workloads(t *testing.T) {
	tests := []struct {
		workload, dist string
		wantOps        []string
	}{
		{"A", Zipfian, []string{"read", "update"}},
		{"b", Uniform, []string{"read", "update"}},
		{"C", Zipfian, []string{"read"}},
	}
	for _, tt := range tests {
		t.Run(tt.workload+"/"+tt.dist, func(t *testing.T) {
			cfg := testConfig()
			cfg.Workload, cfg.Distribution = tt.workload, tt.dist
			s := newFakeStore()
			res, err := Run(t.Context(), s, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if len(s.data) != cfg.Keys {
				t.Errorf("store holds %d keys after preload; want %d", len(s.data), cfg.Keys)
			}
			for k, v := range s.data {
				if !strings.HasPrefix(k, "t/") || len(k) != len("t/")+10 || len(v) != cfg.ValueSize {
					t.Fatalf("key %q with %d-byte value; want t/ and 10 digits, %d bytes", k, len(v), cfg.ValueSize)
				}
			}
			if res.Workload != strings.ToUpper(tt.workload) || res.Keys != cfg.Keys || res.Concurrency != cfg.Concurrency || res.PreloadSeconds <= 0 {
				t.Errorf("result header %+v does not match config %+v", res, cfg)
			}
			if res.Ops == 0 || res.Errors != 0 || res.NotFound != 0 || res.FirstError != "" {
				t.Fatalf("ops %d, errors %d, not found %d, first error %q; want ops and nothing else", res.Ops, res.Errors, res.NotFound, res.FirstError)
			}
			var got []string
			var sum uint64
			for _, o := range res.PerOp {
				got = append(got, o.Op)
				sum += o.Count
				if o.Count > 0 && (o.P50Ms > o.P99Ms || o.P99Ms > o.P999Ms || o.P999Ms > o.MaxMs) {
					t.Errorf("%s percentiles not monotone: %+v", o.Op, o)
				}
			}
			if strings.Join(got, ",") != strings.Join(tt.wantOps, ",") || sum != res.Ops {
				t.Errorf("per-op %v summing to %d; want %v summing to %d", got, sum, tt.wantOps, res.Ops)
			}
			readFrac, _ := ReadFraction(tt.workload)
			if gotFrac := float64(res.PerOp[0].Count) / float64(res.Ops); math.Abs(gotFrac-readFrac) > 0.05 {
				t.Errorf("read fraction %.3f; want about %.2f", gotFrac, readFrac)
			}
			if want := uint64(cfg.Keys) + res.Ops - res.PerOp[0].Count; s.updates.Load() != want {
				t.Errorf("store saw %d updates; want %d (preload + run)", s.updates.Load(), want)
			}
		})
	}
}

func TestRun_CountsNotFoundAndErrors(t *testing.T) {
	cfg := testConfig()
	cfg.Preload = false
	s := newFakeStore() // empty: every read is not found
	s.updErr = errors.New("fake: disk full")
	res, err := Run(t.Context(), s, cfg)
	if err != nil {
		t.Fatal(err)
	}
	read, update := res.PerOp[0], res.PerOp[1]
	if res.NotFound != read.Count || read.Count == 0 || read.Errors != 0 {
		t.Errorf("reads: %d counted, %d not found, %d errors; want all counted as not found", read.Count, res.NotFound, read.Errors)
	}
	if update.Count != 0 || update.Errors == 0 || res.Errors != update.Errors {
		t.Errorf("updates: %d counted, %d errors (total %d); want all errors", update.Count, update.Errors, res.Errors)
	}
	if !errors.Is(res.Err, s.updErr) || res.FirstError != s.updErr.Error() {
		t.Errorf("first error %v (%q); want %v", res.Err, res.FirstError, s.updErr)
	}
	if res.Ops != read.Count {
		t.Errorf("ops %d; want %d (failed updates excluded)", res.Ops, read.Count)
	}
}

func TestRun_WithoutIsNotFoundEveryReadErrorIsAnError(t *testing.T) {
	cfg := testConfig()
	cfg.Workload, cfg.Preload, cfg.IsNotFound = "C", false, nil
	res, err := Run(t.Context(), newFakeStore(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.NotFound != 0 || res.Errors == 0 || res.Ops != 0 {
		t.Errorf("not found %d, errors %d, ops %d; want only errors", res.NotFound, res.Errors, res.Ops)
	}
}

func TestRun_PreloadFailsForEveryKey(t *testing.T) {
	s := newFakeStore()
	s.updErr = errors.New("fake: read-only")
	_, err := Run(t.Context(), s, testConfig())
	if !errors.Is(err, s.updErr) || !strings.Contains(err.Error(), "preload failed for every key") {
		t.Errorf("Run = %v; want the preload failure wrapping %v", err, s.updErr)
	}
}

func TestRun_ContextEnded(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cfg := testConfig()
	cfg.Duration = time.Hour
	s := newFakeStore()
	s.readErr = func(string) error { cancel(); return ctx.Err() }
	if _, err := Run(ctx, s, cfg); !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v; want %v", err, context.Canceled)
	}
}

func TestConfig_Validate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Errorf("DefaultConfig().Validate() = %v", err)
	}
	bad := Config{Workload: "Z", Distribution: "hot", ValueSize: -1}
	err := bad.Validate()
	for _, want := range []string{`Workload "Z"`, "Keys must be positive, got 0", `Distribution "hot"`, "ValueSize must not be negative", "Concurrency must be positive", "Duration must be positive"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v; want it to mention %q", err, want)
		}
	}
	if _, err := Run(t.Context(), newFakeStore(), bad); err == nil {
		t.Error("Run with an invalid config succeeded")
	}
}

// recordingStore records the sequence of operations.
type recordingStore struct{ ops []string }

func (s *recordingStore) Read(_ context.Context, key string) error {
	s.ops = append(s.ops, "r "+key)
	return nil
}

func (s *recordingStore) Update(_ context.Context, key string, value []byte) error {
	s.ops = append(s.ops, "u "+key+" "+string(value))
	return nil
}

func TestRunner_SameSeedSameOperations(t *testing.T) {
	seq := func(seed uint64) []string {
		cfg := testConfig()
		cfg.Seed = seed
		s := &recordingStore{}
		r := newRunner(s, cfg)
		for range 1000 {
			r.step(t.Context(), r.workers[2])
		}
		return s.ops
	}
	a, b, c := seq(7), seq(7), seq(8)
	if strings.Join(a, "\n") != strings.Join(b, "\n") {
		t.Error("the same seed gave different operations")
	}
	if strings.Join(a, "\n") == strings.Join(c, "\n") {
		t.Error("different seeds gave the same operations")
	}
}

type nopStore struct{}

func (nopStore) Read(context.Context, string) error           { return nil }
func (nopStore) Update(context.Context, string, []byte) error { return nil }

func TestRunner_StepDoesNotAllocate(t *testing.T) {
	cfg := testConfig()
	cfg.Keys = 10000
	r := newRunner(nopStore{}, cfg)
	ctx := t.Context()
	if n := testing.AllocsPerRun(1000, func() { r.step(ctx, r.workers[0]) }); n != 0 {
		t.Errorf("step allocates %v times per operation; want 0", n)
	}
}

func BenchmarkRunner_Step(b *testing.B) {
	cfg := DefaultConfig()
	r := newRunner(nopStore{}, cfg)
	ctx := b.Context()
	b.ReportAllocs()
	for b.Loop() {
		r.step(ctx, r.workers[0])
	}
}
