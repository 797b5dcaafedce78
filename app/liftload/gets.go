package liftload

import (
	"context"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"
)

// getEndpoints are the GET phase's endpoints, in the order they run.
var getEndpoints = []Kind{KindGet7, KindGet2, KindGet3}

// runGets runs the GET phase: for each endpoint, GetWorkers workers each
// send GetIterations GETs of random resorts, days and skiers in the
// generated ranges, the workers' starts spread evenly over GetRamp.
func (r *Runner) runGets(ctx context.Context) ([]PhaseResult, []Record) {
	var results []PhaseResult
	var all []Record
	for _, kind := range getEndpoints {
		recs, wall := r.getPhase(ctx, kind)
		s := summarize(recs, wall)
		results = append(results, PhaseResult{Name: kind.String(), Threads: r.cfg.GetWorkers, Summary: s})
		all = append(all, recs...)
		r.printf("%-8s %7d GETs  on %3d workers: %s\n", kind, s.Requests, r.cfg.GetWorkers, oneLine(s))
		if ctx.Err() != nil {
			break
		}
	}
	return results, all
}

func (r *Runner) getPhase(ctx context.Context, kind Kind) ([]Record, time.Duration) {
	workers := r.cfg.GetWorkers
	per := make([][]Record, workers)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range workers {
		delay := time.Duration(int64(r.cfg.GetRamp) * int64(i) / int64(workers))
		wg.Go(func() {
			if wait(ctx, time.Until(start.Add(delay))) != nil {
				return
			}
			rng := rand.New(rand.NewPCG(r.cfg.Seed, uint64(kind)<<32|uint64(i)))
			per[i] = r.getWorker(ctx, kind, rng)
		})
	}
	wg.Wait()
	wall := time.Since(start)
	var out []Record
	for _, recs := range per {
		out = append(out, recs...)
	}
	return out, wall
}

func (r *Runner) getWorker(ctx context.Context, kind Kind, rng *rand.Rand) []Record {
	recs := make([]Record, 0, r.cfg.GetIterations)
	season := strconv.Itoa(r.cfg.Season)
	var buf []byte
	for range r.cfg.GetIterations {
		if ctx.Err() != nil {
			break
		}
		resort := 1 + rng.IntN(r.cfg.Resorts)
		day := 1 + rng.IntN(r.cfg.Days)
		skier := 1 + rng.IntN(r.cfg.Skiers)
		buf = getPath(buf[:0], kind, season, resort, day, skier)
		start := time.Now()
		code, attempts, err := r.hc.do(ctx, call{method: "GET", path: string(buf), ok404: true})
		recs = append(recs, recordOf(kind, start, code, attempts, err))
		if err != nil {
			r.noteFailure(kind, string(buf), err)
		}
	}
	return recs
}

// getPath appends the path of a GET of kind to b.
func getPath(b []byte, kind Kind, season string, resort, day, skier int) []byte {
	switch kind {
	case KindGet7:
		b = append(b, "/resorts/"...)
		b = strconv.AppendInt(b, int64(resort), 10)
		b = append(b, "/seasons/"...)
		b = append(b, season...)
		b = append(b, "/day/"...)
		b = strconv.AppendInt(b, int64(day), 10)
		b = append(b, "/skiers"...)
	case KindGet2:
		b = append(b, "/skiers/"...)
		b = strconv.AppendInt(b, int64(resort), 10)
		b = append(b, "/seasons/"...)
		b = append(b, season...)
		b = append(b, "/days/"...)
		b = strconv.AppendInt(b, int64(day), 10)
		b = append(b, "/skiers/"...)
		b = strconv.AppendInt(b, int64(skier), 10)
	case KindGet3:
		b = append(b, "/skiers/"...)
		b = strconv.AppendInt(b, int64(skier), 10)
		b = append(b, "/vertical?resort="...)
		b = strconv.AppendInt(b, int64(resort), 10)
		b = append(b, "&season="...)
		b = append(b, season...)
	}
	return b
}
