package liftload

// phasePlan is one POST phase: threads threads, each sending perThread
// POSTs (or, with perThread -1, taking rides until the generator is done).
// want is how many POSTs the phase sends when nothing is cancelled.
type phasePlan struct {
	name      string
	threads   int
	perThread int
	want      int
}

// planPhases splits total POSTs into the warm-up (littles POSTs on one
// thread, counted in total), phase 1 (initialThreads × initialPerThread) and
// phase 2 (threads threads, the rest). Phases with nothing to send are
// left out. It is pure.
func planPhases(total, littles, initialThreads, initialPerThread, threads int) []phasePlan {
	var plans []phasePlan
	left := total
	if n := min(littles, left); n > 0 {
		plans = append(plans, phasePlan{name: "warm-up", threads: 1, perThread: n, want: n})
		left -= n
	}
	if n := min(initialThreads*initialPerThread, left); n > 0 {
		plans = append(plans, phasePlan{name: "phase 1", threads: initialThreads, perThread: initialPerThread, want: n})
		left -= n
	}
	if left > 0 {
		plans = append(plans, phasePlan{name: "phase 2", threads: threads, perThread: -1, want: left})
	}
	return plans
}
