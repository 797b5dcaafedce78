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
// `make chaos` also runs the long regression replays (TestRegression_*):
// the seeds of the long suite that found a bug, each replayed for as long as
// it took to fail on the code before the fix.
//
// Membership changes run under load too: a node joins, a node is drained,
// removed and retired, and a node is SIGKILLed while a replica move is in
// flight (TestChaos_JoinAndKillDuringMove, and the long suite's menu); the
// map must then put every shard back at RF voters. TestChaos_BrokenBuildIsCaught
// shows the checkers can fail: it builds kvnode with the test-only tag
// ridgeline_ackearly, which acknowledges writes before they commit.
//
// As root, the test binary re-executes itself under `unshare --net`, so every
// process and firewall rule lives in a namespace that vanishes with it.
// Without root, unshare or iptables, the partition scenarios skip.
package chaos
