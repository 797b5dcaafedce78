package main

import (
	"io"
	"strings"
	"testing"
	"time"
)

func TestParseFlags(t *testing.T) {
	f, err := parseFlags([]string{"--endpoints", " a:1, ,b:2", "--workload", "c", "--concurrency", "8",
		"--duration", "5s", "--serializable", "--clients", "3", "-o", "json", "--preload=false"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	b := f.bench
	got := strings.Join(f.endpointList(), ",")
	if got != "a:1,b:2" || b.Workload != "c" || b.Concurrency != 8 || b.Duration != 5*time.Second || b.Preload ||
		!f.serializable || f.clients != 3 || f.output != "json" || b.Keys != 10000 || b.ValueSize != 256 || b.Distribution != "zipfian" {
		t.Errorf("parsed %+v (endpoints %q); want the flags given and kvctl bench's defaults", f, got)
	}

	_, err = parseFlags([]string{"--endpoints", "", "--clients", "0", "--keys", "0", "-o", "yaml", "extra"}, io.Discard)
	for _, want := range []string{"--endpoints is empty", "--clients must be positive", "Keys must be positive", `--output "yaml"`, "unexpected arguments"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("parseFlags = %v; want it to mention %q", err, want)
		}
	}
}
