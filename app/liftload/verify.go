package liftload

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// maxListedMismatches is how many mismatches a VerifyResult keeps.
const maxListedMismatches = 20

// queuePoll is how often the verifier polls GET /queue.
const queuePoll = 200 * time.Millisecond

// VerifyResult is the outcome of verification.
type VerifyResult struct {
	// Generated, Distinct and Duplicates count the generated rides.
	Generated, Distinct, Duplicates int
	// QueueDrained: GET /queue reported 0 pending events in time.
	QueueDrained bool
	// Checks is how many answers were compared.
	Checks int
	// SkierDaysChecked of SkierDays (endpoint 2).
	SkierDaysChecked, SkierDays int
	// MismatchCount counts every mismatch; Mismatches lists the first 20.
	MismatchCount int
	Mismatches    []string
}

// Pass reports whether the queue drained and every answer matched.
func (v *VerifyResult) Pass() bool {
	return v != nil && v.QueueDrained && v.MismatchCount == 0
}

// mismatches collects mismatches from many goroutines.
type mismatches struct {
	mu     sync.Mutex
	count  int
	listed []string
}

func (m *mismatches) add(format string, args ...any) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.count++
	if len(m.listed) < maxListedMismatches {
		m.listed = append(m.listed, fmt.Sprintf(format, args...))
	}
}

// verify waits for the queue to drain and checks the service's answers
// against the rides c.Seed generates for c.Total POSTs.
func (r *Runner) verify(ctx context.Context) *VerifyResult {
	rides := Rides(r.cfg, r.cfg.Total)
	e := buildExpected(rides, r.cfg.Resorts, r.cfg.Days)
	res := &VerifyResult{Generated: len(rides), Distinct: e.Rides, Duplicates: e.Duplicates, SkierDays: len(e.SkierDays)}
	r.printf("verify: %d rides generated, %d distinct (%d duplicates counted once), total vertical %d\n",
		len(rides), e.Rides, e.Duplicates, e.Vert)
	var mm mismatches
	defer func() { res.MismatchCount, res.Mismatches = mm.count, mm.listed }()

	if err := r.waitQueue(ctx); err != nil {
		mm.add("queue: %v", err)
		return res
	}
	res.QueueDrained = true

	season := strconv.Itoa(r.cfg.Season)
	var buf bytes.Buffer
	var sumVert int64
	for _, rd := range e.ResortDays {
		prefix := "/resorts/" + strconv.Itoa(rd.Resort) + "/seasons/" + season + "/day/" + strconv.Itoa(rd.Day)

		var day struct {
			NumSkiers *int `json:"numSkiers"`
		}
		res.Checks++
		if found, err := r.getJSON(ctx, prefix+"/skiers", &buf, &day); err != nil {
			mm.add("GET %s/skiers: %v", prefix, err)
		} else if found && day.NumSkiers == nil {
			mm.add("GET %s/skiers: answer %q lacks numSkiers", prefix, truncate(buf.String(), 200))
		} else if got := valueOr(day.NumSkiers); got != rd.Skiers {
			mm.add("GET %s/skiers: numSkiers = %d, want %d distinct skiers", prefix, got, rd.Skiers)
		}

		var tot struct {
			NumRides  *int   `json:"numRides"`
			TotalVert *int64 `json:"totalVert"`
		}
		res.Checks++
		if found, err := r.getJSON(ctx, prefix+"/vertical", &buf, &tot); err != nil {
			mm.add("GET %s/vertical: %v", prefix, err)
		} else if found && (tot.NumRides == nil || tot.TotalVert == nil) {
			mm.add("GET %s/vertical: answer %q lacks numRides or totalVert", prefix, truncate(buf.String(), 200))
		} else {
			rides, vert := valueOr(tot.NumRides), valueOr(tot.TotalVert)
			sumVert += vert
			if rides != rd.Rides || vert != rd.Vert {
				mm.add("GET %s/vertical: numRides = %d, totalVert = %d, want %d, %d", prefix, rides, vert, rd.Rides, rd.Vert)
			}
		}
	}
	res.Checks++
	if sumVert != e.Vert {
		mm.add("sum of totalVert over resort-days = %d, want %d (sum of liftID×10 over distinct generated rides)", sumVert, e.Vert)
	}

	days := r.sampleSkierDays(e.SkierDays)
	res.SkierDaysChecked = len(days)
	r.printf("verify: %d resort-days checked; checking endpoint 2 for %d of %d skier-days with %d workers\n",
		len(e.ResortDays), len(days), len(e.SkierDays), r.cfg.VerifyWorkers)
	skierSum, checked := r.verifySkierDays(ctx, days, &mm)
	res.Checks += checked
	if len(days) == len(e.SkierDays) && checked == len(days) {
		res.Checks++
		if skierSum != e.Vert {
			mm.add("sum of every skier's vertical (endpoint 2) = %d, want %d (sum of liftID×10 over distinct generated rides)", skierSum, e.Vert)
		}
	}
	return res
}

// valueOr is *p, or 0 when p is nil (a 404: nothing recorded there).
func valueOr[T int | int64](p *T) T {
	if p == nil {
		return 0
	}
	return *p
}

// sampleSkierDays returns all of days or a seeded sample of VerifySkiers.
func (r *Runner) sampleSkierDays(days []skierDay) []skierDay {
	n := r.cfg.VerifySkiers
	if n == VerifyAllSkiers || n >= len(days) {
		return days
	}
	s := slices.Clone(days)
	rng := rand.New(rand.NewPCG(r.cfg.Seed, 0x7e41f1))
	for i := range n {
		j := i + rng.IntN(len(s)-i)
		s[i], s[j] = s[j], s[i]
	}
	return s[:n]
}

// verifySkierDays checks endpoint 2 for every skier-day of days with
// VerifyWorkers workers. It returns the sum of the answers and how many
// answers were read.
func (r *Runner) verifySkierDays(ctx context.Context, days []skierDay, mm *mismatches) (int64, int) {
	season := strconv.Itoa(r.cfg.Season)
	var next, sum, read atomic.Int64
	var wg sync.WaitGroup
	for range r.cfg.VerifyWorkers {
		wg.Go(func() {
			var buf bytes.Buffer
			var path []byte
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= len(days) {
					return
				}
				sd := days[i]
				path = getPath(path[:0], KindGet2, season, sd.Resort, sd.Day, sd.Skier)
				var got int64
				found, err := r.getJSON(ctx, string(path), &buf, &got)
				if err != nil {
					mm.add("GET %s: %v", path, err)
					continue
				}
				read.Add(1)
				if !found {
					got = 0
				}
				sum.Add(got)
				if got != sd.Vert {
					mm.add("GET %s: vertical = %d, want %d", path, got, sd.Vert)
				}
			}
		})
	}
	wg.Wait()
	return sum.Load(), int(read.Load())
}

// getJSON GETs path with Cache-Control: no-cache and decodes the answer
// into v. found is false (and v untouched) on a 404.
func (r *Runner) getJSON(ctx context.Context, path string, buf *bytes.Buffer, v any) (found bool, err error) {
	code, _, err := r.hc.do(ctx, call{method: "GET", path: path, ok404: true, noCache: true, into: buf})
	if err != nil {
		return false, err
	}
	if code == 404 {
		return false, nil
	}
	if err := json.Unmarshal(buf.Bytes(), v); err != nil {
		return true, fmt.Errorf("decoding %q: %w", truncate(buf.String(), 200), err)
	}
	return true, nil
}

// waitQueue polls GET /queue until pendingEvents is 0, printing progress,
// for at most VerifyTimeout.
func (r *Runner) waitQueue(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.VerifyTimeout)
	defer cancel()
	var buf bytes.Buffer
	start := time.Now()
	var lastPrint time.Time
	for {
		var q struct {
			Mode          string   `json:"mode"`
			PendingEvents *int64   `json:"pendingEvents"`
			OldestAge     *float64 `json:"oldestAgeSeconds"`
		}
		found, err := r.getJSON(ctx, "/queue", &buf, &q)
		switch {
		case err == nil && !found:
			err = errors.New("GET /queue: 404")
		case err == nil && q.PendingEvents == nil:
			err = errors.New("GET /queue: no pendingEvents in answer")
		case err == nil && *q.PendingEvents == 0:
			r.printf("verify: queue drained (mode %q) after %v\n", q.Mode, time.Since(start).Round(time.Millisecond))
			return nil
		}
		if time.Since(lastPrint) >= time.Second {
			lastPrint = time.Now()
			if err != nil {
				r.printf("verify: waiting for the queue: %v\n", err)
			} else {
				r.printf("verify: waiting for the queue: %d pending events (mode %q)\n", *q.PendingEvents, q.Mode)
			}
		}
		if werr := wait(ctx, queuePoll); werr != nil {
			if err == nil {
				err = fmt.Errorf("%d events still pending", *q.PendingEvents)
			}
			return fmt.Errorf("not drained within %v: %w", r.cfg.VerifyTimeout, err)
		}
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
