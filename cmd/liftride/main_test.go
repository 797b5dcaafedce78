package main

import (
	"strings"
	"testing"
)

// TestRun_ErrorsNameFlags: invalid settings are refused before anything
// starts, each named by the flag that sets it, never by a Go field.
func TestRun_ErrorsNameFlags(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want []string // lines the error must contain
	}{
		{"values", []string{"--endpoints", "127.0.0.1:7001,nope", "--listen", "bad", "--ingest", "later",
			"--queue-lease-ttl", "1ms", "--queue-consume-entries", "500", "--apply-concurrency", "-1"},
			[]string{`--endpoints="nope": not host:port`, `--listen="bad": not host:port`, `--ingest="later": use "queued" or "sync"`,
				"--queue-lease-ttl=1ms: must be at least 100ms", "--queue-consume-entries=500: must be 1 to 127",
				"--apply-concurrency=-1: must be 1 to 4096"}},
		{"no endpoints", []string{"--endpoints", ""},
			[]string{"--endpoints=[]: give the gRPC address of at least one Ridgeline node"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := run(tc.args)
			if err == nil {
				t.Fatalf("run(%q) accepted invalid flags", tc.args)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			for _, field := range []string{"Queue.", "LeaseTTL", "ConsumeEntries", "ApplyConcurrency", "Endpoints", "Listen", "Ingest", "app:"} {
				if strings.Contains(err.Error(), field) {
					t.Errorf("error %q names the Config field %s", err, field)
				}
			}
		})
	}
}
