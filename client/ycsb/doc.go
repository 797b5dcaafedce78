// Package ycsb generates YCSB-style workloads (A/B/C, scrambled zipfian
// theta 0.99 or uniform) and runs them closed-loop against any store with Get
// and Put, measuring throughput and latency percentiles.
//
// The store is anything that implements [Store]: kvctl bench drives a
// Ridgeline *client.Client through it and tools/etcdbench an etcd clientv3,
// so both systems see the same key sequence, value sizes, mix and
// measurement. The package depends only on the standard library.
//
// [Run] is closed-loop: Config.Concurrency workers each issue one operation,
// wait for it, and issue the next, for Config.Duration. Each worker owns its
// random source, value buffer and latency histograms, so the hot path shares
// nothing but a stop flag and does not allocate; keys are built once before
// the run. Latencies come from a log-bucketed histogram whose percentiles
// are upper bounds within 3.2%.
package ycsb
