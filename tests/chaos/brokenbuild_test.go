package chaos

import (
	"context"
	"testing"
	"time"
)

// TestChaos_BrokenBuildIsCaught shows that the checkers can fail: kvnode
// built with the test-only tag ridgeline_ackearly acknowledges writes before
// they commit (replication/ackearly_on.go). The leader of a shard is
// SIGKILLed while every workload writes to it, so writes acknowledged early
// never commit; the checkers must report a violation. The test fails if
// they do not.
func TestChaos_BrokenBuildIsCaught(t *testing.T) {
	r := newRunWith(t, runOptions{nodes: 3, tags: "ridgeline_ackearly"})
	if err := r.w.waitAcked(300, 20*time.Second); err != nil {
		t.Fatalf("before the fault: %v", err)
	}
	// Kill while writes are in flight; early acknowledgements keep the
	// workers writing as fast as the leader takes proposals.
	if err := r.nem.inject(faultKillLeader); err != nil {
		r.nem.heal()
		t.Fatalf("fault not applied: %v", err)
	}
	time.Sleep(time.Second) // hold the fault window open (STYLE 17)
	if err := r.nem.heal(); err != nil {
		t.Fatalf("heal: %v", err)
	}
	if err := r.c.waitReady(30 * time.Second); err != nil {
		t.Fatalf("nodes not ready after the restart: %v", err)
	}
	if err := r.w.waitAcked(100, 20*time.Second); err != nil {
		t.Fatalf("after heal: %v", err)
	}
	r.w.halt()
	r.nem.note("workloads stopped")

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	hc := r.checkHistories(ctx, 20*time.Second)
	t.Logf("ran %.1fs; %s", time.Since(r.start).Seconds(), hc.summary)
	if len(hc.violations) == 0 {
		t.Fatalf("the checkers found nothing wrong with a build that acknowledges writes before they commit; artifacts in %s", r.dir)
	}
	t.Logf("caught, as it must be: porcupine %s, %d acknowledged inserts lost, %d violations in all; the first:", hc.lin, hc.lostSet, len(hc.violations))
	for _, v := range hc.violations[:min(5, len(hc.violations))] {
		t.Logf("  %s", v)
	}
}
