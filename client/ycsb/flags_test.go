package ycsb

import (
	"flag"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"
)

func TestConfig_RegisterFlags(t *testing.T) {
	c := DefaultConfig()
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c.RegisterFlags(fs)
	err := fs.Parse([]string{"--workload", "C", "--keys", "7", "--distribution", "uniform", "--value-size", "9",
		"--concurrency", "3", "--duration", "2s", "--preload=false", "--key-prefix", "x/", "--seed", "5"})
	if err != nil {
		t.Fatal(err)
	}
	got := Config{Workload: c.Workload, Keys: c.Keys, Distribution: c.Distribution, ValueSize: c.ValueSize,
		Concurrency: c.Concurrency, Duration: c.Duration, Preload: c.Preload, KeyPrefix: c.KeyPrefix, Seed: c.Seed}
	want := Config{Workload: "C", Keys: 7, Distribution: "uniform", ValueSize: 9, Concurrency: 3,
		Duration: 2 * time.Second, Preload: false, KeyPrefix: "x/", Seed: 5}
	if g, w := fmt.Sprintf("%+v", got), fmt.Sprintf("%+v", want); g != w {
		t.Errorf("parsed %s; want %s", g, w)
	}
}

func TestConfig_ValidateFlags(t *testing.T) {
	if err := DefaultConfig().ValidateFlags(1024); err != nil {
		t.Fatalf("default config: %v", err)
	}
	bad := Config{Workload: "Z", Keys: 0, Distribution: "normal", ValueSize: 2048, Concurrency: 0, Duration: 0}
	err := bad.ValidateFlags(1024)
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	for _, flag := range []string{"--workload", "--keys", "--distribution", "--value-size", "--concurrency", "--duration"} {
		if !strings.Contains(err.Error(), flag) {
			t.Errorf("error does not name %s: %v", flag, err)
		}
	}
}
