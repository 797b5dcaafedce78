package ycsb_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/ridgeline-kv/ridgeline/client/ycsb"
)

// mapStore is a Store over a map; a real one wraps a database client.
type mapStore struct{ m sync.Map }

func (s *mapStore) Read(_ context.Context, key string) error {
	if _, ok := s.m.Load(key); !ok {
		return errNotFound
	}
	return nil
}

func (s *mapStore) Update(_ context.Context, key string, value []byte) error {
	s.m.Store(key, string(value)) // copy: Run reuses value
	return nil
}

var errNotFound = fmt.Errorf("not found")

func ExampleRun() {
	cfg := ycsb.DefaultConfig()
	cfg.Workload = "B"
	cfg.Concurrency = 4
	cfg.Duration = 20 * time.Millisecond
	cfg.IsNotFound = func(err error) bool { return err == errNotFound }
	res, err := ycsb.Run(context.Background(), &mapStore{}, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	// res.WriteTable(os.Stdout) prints the summary and per-op latencies.
	fmt.Println(res.Workload, res.Ops > 0, res.Errors, res.NotFound)
	// Output: B true 0 0
}
