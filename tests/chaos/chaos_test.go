package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// seedFor returns the seed of a run: SEED from the environment, else random.
func seedFor(t *testing.T) uint64 {
	t.Helper()
	if s := os.Getenv("SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("SEED=%q: want an unsigned integer", s)
		}
		return v
	}
	return rand.Uint64()
}

// run is one chaos run: a cluster, its workloads, a nemesis and the
// artifacts directory, which is kept unless the test passes.
type run struct {
	t     *testing.T
	seed  uint64
	dir   string
	c     *cluster
	w     *workloads
	nem   *nemesis
	start time.Time
}

// runOptions configure newRunWith.
type runOptions struct {
	nodes int
	tags  string   // build tags of the kvnode binary ("" = the normal build)
	extra []string // more kvnode flags
	seed  uint64   // a fixed seed (regression replays); 0 means SEED or random
}

// deadNodeGrace is how long a dead node waits before its replicas are
// replaced in the membership scenarios (kvnode's default is 60s).
var deadNodeGrace = []string{"--dead-node-grace", "3s"}

func newRun(t *testing.T, nodes int) *run {
	t.Helper()
	return newRunWith(t, runOptions{nodes: nodes})
}

func newRunWith(t *testing.T, opts runOptions) *run {
	t.Helper()
	requireKvnode(t)
	bin := kvnodeWithTags(t, opts.tags)
	seed := opts.seed
	if seed == 0 {
		seed = seedFor(t)
	}
	name := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())
	dir, err := os.MkdirTemp("", "ridgeline-chaos-"+name+"-")
	if err != nil {
		t.Fatal(err)
	}
	r := &run{t: t, seed: seed, dir: dir, start: time.Now()}
	replay := fmt.Sprintf("SEED=%d go test ./tests/chaos/ -run '^%s$'", seed, t.Name())
	if *longRun {
		replay += fmt.Sprintf(" -timeout 0 -args -long  # DURATION=%s", os.Getenv("DURATION"))
	}
	netns := "private network namespace"
	if netnsReason != "" {
		netns = "host network (" + netnsReason + ")"
	}
	t.Logf("seed %d (replay: %s); %s; artifacts in %s", seed, replay, netns, dir)
	os.WriteFile(filepath.Join(dir, "seed.txt"), []byte(fmt.Sprintf("seed %d\nreplay: %s\nnetns: %v\n", seed, replay, netnsReason == "")), 0o644)
	t.Cleanup(func() {
		if r.c != nil {
			if r.w != nil && !r.w.stop.Load() {
				r.w.halt()
			}
			if t.Failed() {
				r.c.dumpAll()
			}
			r.c.killAll()
		}
		if r.nem != nil {
			r.nem.writeLog(filepath.Join(dir, "nemesis.log"))
		}
		if t.Failed() {
			if r.w != nil {
				if _, err := os.Stat(filepath.Join(dir, "history.json")); err != nil {
					writeJSON(filepath.Join(dir, "history.json"), r.w.hist.snapshot())
				}
			}
			t.Logf("FAILED with seed %d; artifacts (history, porcupine HTML, node logs with every goroutine's stack at the end, data dirs) kept in %s", seed, dir)
			return
		}
		os.RemoveAll(dir)
	})
	r.c = startCluster(t, dir, clusterOptions{nodes: opts.nodes, bin: bin, extra: opts.extra})
	r.nem = newNemesis(r.c, seed, regKey(0, 0), t.Logf)
	r.w = startWorkloads(r.c.newClient(t, nil), r.c.newClient(t, nil), r.c.newClient(t, nil), seed)
	r.nem.start = r.w.hist.start // one clock for the nemesis log and the history
	return r
}

// faultCycle: traffic, fault held for hold, heal, recovery (writes to every
// shard within 30 s), traffic again.
func (r *run) faultCycle(kind string, hold time.Duration) {
	t := r.t
	t.Helper()
	if err := r.w.waitAcked(150, 30*time.Second); err != nil {
		t.Fatalf("before %s: %v", kind, err)
	}
	if kind != "" {
		if err := r.nem.inject(kind); err != nil {
			r.nem.heal()
			t.Fatalf("fault not applied: %v", err)
		}
		time.Sleep(hold) // hold the fault window open (STYLE 17)
		if err := r.nem.heal(); err != nil {
			t.Fatalf("heal: %v", err)
		}
		if err := r.c.waitReady(60 * time.Second); err != nil {
			t.Fatalf("after %s healed, nodes not ready within 60s: %v", kind, err)
		}
	}
	took, err := writeEveryShard(r.c.admin, "probe/", r.c.shards, 30*time.Second)
	if err != nil {
		t.Fatalf("after %s healed: %v", kind, err)
	}
	r.nem.note("recovered: a write to every shard succeeded %.2fs after heal", took.Seconds())
	if err := r.w.waitAcked(150, 30*time.Second); err != nil {
		t.Fatalf("after %s healed: %v", kind, err)
	}
}

// finish stops the workloads and runs every check.
func (r *run) finish() {
	t := r.t
	t.Helper()
	r.w.halt()
	r.nem.note("workloads stopped")
	if err := r.c.waitReady(60 * time.Second); err != nil {
		t.Errorf("cluster not ready after healing: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	hc := r.checkHistories(ctx, 2*time.Minute)
	for _, v := range hc.violations {
		t.Errorf("%s", v)
	}

	// Convergence: every shard writable, replicas identical.
	if took, err := writeEveryShard(r.c.admin, "final/", r.c.shards, 30*time.Second); err != nil {
		t.Errorf("convergence: %v", err)
	} else {
		r.nem.note("final write to every shard took %.2fs", took.Seconds())
	}
	if summary, err := r.c.checkPlacement(60 * time.Second); err != nil {
		t.Errorf("placement: not every shard back at %d voters within 60s: %v", r.c.rf, err)
	} else {
		r.nem.note("placement: %s", summary)
	}
	if summary, err := r.c.checkConvergence(30 * time.Second); err != nil {
		t.Errorf("convergence: replicas differ 30s after the writes: %v", err)
	} else {
		r.nem.note("converged: %s", summary)
	}

	// Processes: clean shutdown, all reaped, no panics or races logged.
	for _, err := range r.c.shutdown() {
		t.Errorf("process: %v", err)
	}
	for _, line := range r.c.scanLogs() {
		t.Errorf("node log: %s", line)
	}

	faults := r.nem.counts()
	var fl []string
	for k, v := range faults {
		fl = append(fl, fmt.Sprintf("%s×%d", k, v))
	}
	sort.Strings(fl)
	r.w.errMu.Lock()
	var errl []string
	for k, v := range r.w.errKind {
		errl = append(errl, fmt.Sprintf("%d× %s", v, k))
	}
	r.w.errMu.Unlock()
	sort.Strings(errl)
	t.Logf("ran %.1fs: faults %v; %s", time.Since(r.start).Seconds(), fl, hc.summary)
	if len(errl) > 0 {
		t.Logf("client errors seen: %s", strings.Join(errl, "; "))
	}
	r.nem.writeLog(filepath.Join(r.dir, "nemesis.log"))
}

// historyCheck is what the history checkers found: violations (empty when
// the histories are correct) and a summary of what they checked.
type historyCheck struct {
	violations []string
	summary    string
	lin        porcupine.CheckResult
	lostSet    int // acknowledged inserts missing from the set
}

// checkHistories checks the workloads' histories after they stopped: the
// register history with porcupine (within linTimeout), the set for lost or
// invented inserts, the counters against their bounds. It writes the
// artifacts (history, porcupine HTML on a violation, set, counters).
func (r *run) checkHistories(ctx context.Context, linTimeout time.Duration) historyCheck {
	var hc historyCheck
	bad := func(format string, args ...any) { hc.violations = append(hc.violations, fmt.Sprintf(format, args...)) }

	// Register: linearizability per key.
	ops := r.w.hist.snapshot()
	if err := writeJSON(filepath.Join(r.dir, "history.json"), ops); err != nil {
		r.t.Errorf("write history: %v", err)
	}
	counts := map[string]int{}
	for _, op := range ops {
		counts[op.Kind+"/"+op.Status]++
	}
	lin := checkLinearizable(ops, linTimeout)
	hc.lin = lin.Result
	switch lin.Result {
	case porcupine.Ok:
	case porcupine.Illegal:
		html := filepath.Join(r.dir, "linearizability.html")
		if err := lin.writeVisualization(html); err != nil {
			r.t.Errorf("write visualization: %v", err)
		}
		bad("register history of %d operations is NOT linearizable; see %s and history.json", lin.Ops, html)
	default:
		bad("linearizability check of %d operations was inconclusive (%s) within its time limit", lin.Ops, lin.Result)
	}

	// Set: nothing lost, nothing invented.
	r.w.setMu.Lock()
	inserts := r.w.inserts
	r.w.setMu.Unlock()
	final, err := readSet(ctx, r.c.admin)
	setCounts := map[string]int{}
	for _, in := range inserts {
		setCounts[in.Status]++
	}
	if err != nil {
		bad("read the set back: %v", err)
	} else {
		for _, b := range checkSet(inserts, final) {
			if strings.HasPrefix(b, "lost:") {
				hc.lostSet++
			}
			bad("set: %s", b)
		}
	}
	writeJSON(filepath.Join(r.dir, "set.json"), map[string]any{"inserts": inserts, "final": final})

	// Counters: acked ≤ final ≤ acked + unknown.
	var ctrLines []string
	ctrs := map[string]any{}
	for i := range ctrKeys {
		k := ctrKey(i)
		r.w.ctrMu.Lock()
		cr := *r.w.counters[k]
		r.w.ctrMu.Unlock()
		v, err := readCounter(ctx, r.c.admin, k)
		if err != nil {
			bad("read counter %s: %v", k, err)
			continue
		}
		for _, b := range checkCounter(k, cr, v) {
			bad("counter: %s", b)
		}
		ctrs[k] = map[string]any{"final": v, "acked": cr.Acked, "unknown": cr.Unknown, "failed": cr.Failed}
		ctrLines = append(ctrLines, fmt.Sprintf("%s=%d (acked %d, unknown %d, failed %d)", k, v, cr.Acked, cr.Unknown, cr.Failed))
	}
	writeJSON(filepath.Join(r.dir, "counters.json"), ctrs)
	hc.summary = fmt.Sprintf("%d operations (register %v; set %v, %d keys read back; %s); porcupine %s on %d ops",
		r.w.total.Load(), counts, setCounts, len(final), strings.Join(ctrLines, ", "), lin.Result, lin.Ops)
	return hc
}

// The short suite: one fault per scenario, a few seconds each.
func TestChaos(t *testing.T) {
	for _, sc := range []struct {
		name  string
		nodes int
		fault string
		hold  time.Duration
	}{
		{"baseline", 3, "", 0},
		{"kill-leader", 3, faultKillLeader, 2 * time.Second},
		{"kill-follower", 3, faultKillFollower, 2 * time.Second},
		{"pause-leader", 3, faultPauseLeader, 3 * time.Second},
		{"isolate-leader", 3, faultIsolateLeader, 3 * time.Second},
		{"majority-minority", 5, faultMajorityMinor, 3 * time.Second},
		{"bridge", 3, faultBridge, 3 * time.Second},
		{"one-way-from-leader", 3, faultOneWayFromLead, 3 * time.Second},
	} {
		t.Run(sc.name, func(t *testing.T) {
			if partitionFaults[sc.fault] {
				requireNetns(t)
			}
			r := newRun(t, sc.nodes)
			r.faultCycle(sc.fault, sc.hold)
			r.finish()
		})
	}
}

// TestChaosLong injects a random fault every few seconds for DURATION
// (default 10m); it runs only with -args -long.
func TestChaosLong(t *testing.T) {
	if !*longRun {
		t.Skip("the long chaos suite runs with: go test -timeout 0 ./tests/chaos/ -run TestChaosLong -args -long (SEED=, DURATION=)")
	}
	requireNetns(t)
	dur := 10 * time.Minute
	if s := os.Getenv("DURATION"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("DURATION=%q: %v", s, err)
		}
		dur = d
	}
	randomFaults(t, 0, dur)
}

// TestRegression_Seed303DrainFinishes replays the first three minutes of
// long-run seed 303, which found a drain that never finished ("drained n4
// still holds 1 replicas" after 90 s; it failed at 147 s on 36305ba): the
// planner promoted a learner in the cluster map before raft had, the leader
// handed leadership to that replica, which raft still held as a non-voter,
// and the shard stepped down again and again instead of making the
// promotion. Fixed by letting a shard's next move step wait until its raft
// configuration matches the map, and by handing leadership only to raft
// voters (57c6a08). The window is timing-dependent, so the scenario is a
// replay in the long suite; TestPlan_settled pins the planner's half.
func TestRegression_Seed303DrainFinishes(t *testing.T) {
	if !*longRun {
		t.Skip("a long-suite replay (3 min): go test -timeout 0 ./tests/chaos/ -run TestRegression_Seed303DrainFinishes -args -long")
	}
	requireNetns(t)
	randomFaults(t, 303, 3*time.Minute)
}

// randomFaults runs the long suite's schedule on 5 nodes for dur: a random
// fault every few seconds, drawn from seed (0 means SEED or random).
func randomFaults(t *testing.T, seed uint64, dur time.Duration) {
	t.Helper()
	r := newRunWith(t, runOptions{nodes: 5, extra: deadNodeGrace, seed: seed})
	faults := []string{faultKillLeader, faultKillFollower, faultKillRandom, faultPauseLeader, faultPauseRandom,
		faultIsolateLeader, faultIsolateRandom, faultMajorityMinor, faultBridge, faultOneWayFromLead, faultOneWayToLead,
		faultJoin, faultDrain, faultKillDuringMove}
	rng := rand.New(rand.NewPCG(r.seed, 0x6c6f6e67))
	deadline := time.Now().Add(dur)
	for cycle := int64(1); time.Now().Before(deadline); cycle++ {
		kind := r.nem.feasible(faults[rng.IntN(len(faults))])
		hold := time.Duration(1000+rng.IntN(4000)) * time.Millisecond
		r.faultCycle(kind, hold)
		// Fresh register keys each cycle keep porcupine's partitions small.
		r.w.cycle.Store(cycle)
	}
	r.finish()
}
