package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/ridgeline-kv/ridgeline/ring"
)

func TestRebalance_StatusWait(t *testing.T) {
	fc := newFakeCluster(t, 4)
	fc.mu.Lock()
	fc.setNode("n4", ring.NodeDraining)
	fc.mu.Unlock()

	code, out, errOut := kvctl(fc, "-o", "json", "rebalance", "status", "--wait", "--poll-interval", "5ms")
	if code != exitOK {
		t.Fatalf("rebalance status --wait: exit %d, stderr %s", code, errOut)
	}
	var res rebalanceResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("rebalance status -o json: %v\n%s", err, out)
	}
	if !res.Balanced || res.Misplaced != 0 || res.ProgressPercent != 100 || res.MovesDone == 0 {
		t.Errorf("final status = %+v; want balanced, nothing misplaced, 100%%, moves done", res)
	}
	if lines := strings.Count(errOut, "\n"); lines < 2 || !strings.Contains(errOut, "balanced") {
		t.Errorf("stderr = %q; want progress lines ending balanced", errOut)
	}
}

func TestRebalance_PauseResume(t *testing.T) {
	fc := newFakeCluster(t, 4)
	fc.mu.Lock()
	fc.setNode("n4", ring.NodeDraining)
	fc.mu.Unlock()

	steps := []struct {
		args []string
		want string
	}{
		{[]string{"rebalance", "pause"}, "rebalancing paused"},
		{[]string{"rebalance", "pause"}, "rebalancing paused"}, // idempotent
		{[]string{"rebalance", "status"}, "moves are paused: run kvctl rebalance resume"},
		{[]string{"rebalance", "resume"}, "rebalancing resumed"},
		{[]string{"rebalance", "status"}, "running"},
	}
	for _, s := range steps {
		code, out, errOut := kvctl(fc, s.args...)
		if code != exitOK || !strings.Contains(out, s.want) {
			t.Errorf("kvctl %v: exit %d, stdout %q, stderr %q; want 0 and %q", s.args, code, out, errOut, s.want)
		}
	}
	fc.mu.Lock()
	paused := fc.m.RebalancePaused
	fc.mu.Unlock()
	if paused {
		t.Error("map still paused after resume")
	}
}
