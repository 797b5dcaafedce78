package liftload

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"
)

// PhaseResult is the outcome of one phase.
type PhaseResult struct {
	Name    string
	Threads int
	Summary Summary
	// Predicted is the Little's-law throughput from the single-thread
	// warm-up (0 when there is none).
	Predicted float64
}

// ensureSeasons adds the run's season to every resort the generator uses.
func (r *Runner) ensureSeasons(ctx context.Context) error {
	body := []byte(`{"year":"` + strconv.Itoa(r.cfg.Season) + `"}`)
	for resort := 1; resort <= r.cfg.Resorts; resort++ {
		cl := call{method: "POST", path: "/resorts/" + strconv.Itoa(resort) + "/seasons", body: body}
		if _, _, err := r.hc.do(ctx, cl); err != nil {
			return fmt.Errorf("%w: POST %s: %w", ErrSetup, cl.path, err)
		}
	}
	return nil
}

// runPosts runs the POST phases of plans with one generator goroutine
// feeding every thread. It returns each phase's result and all records.
func (r *Runner) runPosts(ctx context.Context, plans []phasePlan) ([]PhaseResult, []Record) {
	total := 0
	for _, p := range plans {
		total += p.want
	}
	events := make(chan Event, 8192)
	ctx, cancel := context.WithCancel(ctx)
	var gen sync.WaitGroup
	gen.Go(func() { generate(ctx, r.cfg, total, events) })
	defer func() {
		cancel()
		for range events { // unblock the generator if a phase stopped early
		}
		gen.Wait()
	}()

	var results []PhaseResult
	all := make([]Record, 0, total)
	var w time.Duration
	for _, p := range plans {
		recs, wall := r.postPhase(ctx, p, events)
		s := summarize(recs, wall)
		res := PhaseResult{Name: p.name, Threads: p.threads, Summary: s}
		if p.name == "warm-up" {
			w = s.Mean
			res.Predicted = LittlesPrediction(1, w)
		} else {
			res.Predicted = LittlesPrediction(p.threads, w)
		}
		results = append(results, res)
		all = append(all, recs...)
		r.printf("%-8s %7d POSTs on %3d threads: %s\n", p.name, s.Requests, p.threads, oneLine(s))
		if ctx.Err() != nil {
			break
		}
	}
	return results, all
}

// postPhase runs one phase and returns its records and wall time.
func (r *Runner) postPhase(ctx context.Context, p phasePlan, events <-chan Event) ([]Record, time.Duration) {
	per := make([][]Record, p.threads)
	capacity := p.perThread
	if capacity < 0 {
		capacity = p.want/p.threads + 1
	}
	var wg sync.WaitGroup
	start := time.Now()
	for i := range p.threads {
		wg.Go(func() {
			per[i] = r.postThread(ctx, events, p.perThread, make([]Record, 0, capacity))
		})
	}
	wg.Wait()
	wall := time.Since(start)
	n := 0
	for _, recs := range per {
		n += len(recs)
	}
	out := make([]Record, 0, n)
	for _, recs := range per {
		out = append(out, recs...)
	}
	return out, wall
}

// postThread sends events one after another, limit of them (all when
// limit < 0), appending a record per request to recs.
func (r *Runner) postThread(ctx context.Context, events <-chan Event, limit int, recs []Record) []Record {
	for i := 0; limit < 0 || i < limit; i++ {
		ev, ok := <-events
		if !ok || ctx.Err() != nil {
			break
		}
		start := time.Now()
		code, attempts, err := r.hc.do(ctx, call{method: "POST", path: ev.Path, body: ev.Body})
		recs = append(recs, recordOf(KindPost, start, code, attempts, err))
		if err != nil {
			r.noteFailure(KindPost, ev.Path, err)
		}
	}
	return recs
}
