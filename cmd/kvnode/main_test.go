package main

import (
	"strings"
	"testing"
	"time"
)

func TestParseFlags_ErrorsNameFlags(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		args []string
		want []string // lines the error must contain
	}{
		{"linger", []string{"--id", "n1", "--data-dir", dir, "--group-commit-linger", "5s"},
			[]string{"--group-commit-linger=5s: must be 0..100ms"}},
		{"timeouts", []string{"--id", "n1", "--data-dir", dir, "--raft-heartbeat-timeout", "200ms", "--raft-election-timeout", "100ms"},
			[]string{"--raft-election-timeout=100ms: must be ≥ --raft-heartbeat-timeout"}},
		{"required", []string{"--shards", "0"},
			[]string{"--id=\"\": a stable node ID is required", "--data-dir=\"\": a data directory is required", "--shards=0: must be 1..4096"}},
		{"overflow", []string{"--id", "n1", "--data-dir", dir, "--shards", "4294967297"},
			[]string{"--shards=4294967297: too large"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseFlags(tc.args)
			if err == nil {
				t.Fatalf("parseFlags(%q) accepted invalid flags", tc.args)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			// Only flags are named: a user cannot act on a Go field name,
			// nor on a setting that has no flag.
			for _, field := range []string{"GroupCommitLinger", "HeartbeatTimeout", "ElectionTimeout", "LeaderLeaseTimeout", "NodeID", "DataDir", "Shards="} {
				if strings.Contains(err.Error(), field) {
					t.Errorf("error %q names the Config field %s", err, field)
				}
			}
		})
	}
}

func TestParseFlags_LeaseFollowsHeartbeat(t *testing.T) {
	dir := t.TempDir()
	cl, err := parseFlags([]string{"--id", "n1", "--data-dir", dir, "--raft-heartbeat-timeout", "200ms", "--raft-election-timeout", "400ms"})
	if err != nil {
		t.Fatalf("a heartbeat timeout below the default lease was refused: %v", err)
	}
	if got := cl.cfg.LeaderLeaseTimeout; got != 100*time.Millisecond {
		t.Errorf("LeaderLeaseTimeout = %v, want 100ms (half the heartbeat timeout)", got)
	}
	cl, err = parseFlags([]string{"--id", "n1", "--data-dir", dir})
	if err != nil {
		t.Fatal(err)
	}
	if got := cl.cfg.LeaderLeaseTimeout; got != 500*time.Millisecond {
		t.Errorf("default LeaderLeaseTimeout = %v, want raft's 500ms", got)
	}
	if cl, err := parseFlags([]string{"-h"}); cl != nil || err != nil {
		t.Errorf("-h = %v, %v; want nothing to run and no error", cl, err)
	}
}
