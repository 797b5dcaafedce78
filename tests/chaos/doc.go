// Package chaos runs kvnode processes under real faults — SIGKILL, SIGSTOP,
// and partitions made of iptables rules inside a private network namespace —
// while clients record a history, then checks it: linearizability of
// registers with porcupine, no lost inserts, counters within the bounds
// unknown outcomes allow, and replicas that converge to the same content.
//
// The short suite runs in `go test ./tests/chaos/`; the long one with
//
//	SEED=123 DURATION=10m go test -timeout 0 ./tests/chaos/ -run TestChaosLong -args -long
//
// As root, the test binary re-executes itself under `unshare --net`, so every
// process and firewall rule lives in a namespace that vanishes with it.
// Without root, unshare or iptables, the partition scenarios skip.
package chaos
