// Command kvnode runs one Ridgeline node: flags → replication.Config →
// NewNode → Start → wait for a signal → Shutdown.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/ridgeline-kv/ridgeline/replication"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "kvnode:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	cl, err := parseFlags(args)
	if err != nil || cl == nil {
		return err
	}
	cfg := cl.cfg
	logger, err := newLogger(cl.logLevel, cl.logFormat)
	if err != nil {
		return err
	}
	cfg.Logger = logger

	if os.Getenv("GOGC") == "" {
		// A node's heap is mostly short-lived request and raft buffers; trading
		// some memory for half the GC work is worth it (RSS stays well under
		// the 200 MiB budget; GOGC in the environment overrides).
		debug.SetGCPercent(200)
	}
	node, err := replication.NewNode(cfg)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := node.Start(ctx); err != nil {
		node.Close()
		return err
	}
	var fatal error
	select {
	case <-ctx.Done():
		logger.Info("signal received; shutting down")
	case fatal = <-node.Fatal():
	}
	sctx, cancel := context.WithTimeout(context.Background(), cl.shutdownTimeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- node.Shutdown(sctx) }()
	var serr error
	select {
	case serr = <-done:
	case <-time.After(cl.shutdownTimeout + 5*time.Second):
		// A stuck shutdown must not keep the process (and its ports and data
		// dir lock) alive; the stacks say where it stuck.
		logger.Error("shutdown did not finish; exiting anyway — goroutine stacks follow")
		pprof.Lookup("goroutine").WriteTo(os.Stderr, 2)
		return fmt.Errorf("shutdown did not finish within %v", cl.shutdownTimeout+5*time.Second)
	}
	if serr != nil && fatal == nil {
		return fmt.Errorf("shutdown: %w", serr)
	}
	if fatal != nil {
		return fmt.Errorf("stopped on a fatal error: %w", fatal)
	}
	logger.Info("stopped cleanly")
	return nil
}

func newLogger(level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}

// cmdline is what kvnode's flags say.
type cmdline struct {
	cfg             replication.Config
	logLevel        string
	logFormat       string
	shutdownTimeout time.Duration
}

// parseFlags turns kvnode's flags into a valid Config; a nil cmdline and
// error mean -h. Invalid settings are reported under their flag names.
func parseFlags(args []string) (*cmdline, error) {
	cl := &cmdline{cfg: replication.DefaultConfig()}
	cfg := &cl.cfg
	fs := flag.NewFlagSet("kvnode", flag.ContinueOnError)
	flags := map[string]string{} // replication.Config field → the flag that sets it
	name := func(field, flag string) string { flags[field] = "--" + flag; return flag }
	fs.StringVar(&cfg.NodeID, name("NodeID", "id"), "", "stable node ID (required)")
	fs.StringVar(&cfg.DataDir, name("DataDir", "data-dir"), "", "data directory (required)")
	fs.StringVar(&cfg.Addr, name("Addr", "addr"), "127.0.0.1:7001", "gRPC address for clients and peers (ip:port)")
	fs.StringVar(&cfg.GossipAddr, name("GossipAddr", "gossip-addr"), "127.0.0.1:7946", "gossip address (ip:port)")
	fs.StringVar(&cfg.HTTPAddr, name("HTTPAddr", "http-addr"), "127.0.0.1:8001", "HTTP address for /metrics, /healthz, /readyz, /debug/pprof; empty disables")
	join := fs.String("join", "", "comma-separated gossip addresses of other nodes")
	fs.IntVar(&cfg.BootstrapExpect, name("BootstrapExpect", "bootstrap-expect"), 0, "form a new cluster once this many nodes (all started with the same value) see each other")
	shards := fs.Uint(name("Shards", "shards"), uint(cfg.Shards), "number of shards of a new cluster (immutable afterwards)")
	replicas := fs.Uint(name("Replicas", "replicas"), uint(cfg.Replicas), "replicas per shard of a new cluster")
	fs.DurationVar(&cfg.HeartbeatTimeout, name("HeartbeatTimeout", "raft-heartbeat-timeout"), cfg.HeartbeatTimeout, "raft heartbeat timeout (the leader lease is half of it)")
	fs.DurationVar(&cfg.ElectionTimeout, name("ElectionTimeout", "raft-election-timeout"), cfg.ElectionTimeout, "raft election timeout")
	fs.Uint64Var(&cfg.SnapshotThreshold, name("SnapshotThreshold", "raft-snapshot-threshold"), cfg.SnapshotThreshold, "log entries between snapshots")
	fs.Uint64Var(&cfg.TrailingLogs, name("TrailingLogs", "raft-trailing-logs"), cfg.TrailingLogs, "log entries kept after a snapshot")
	fs.DurationVar(&cfg.SnapshotInterval, name("SnapshotInterval", "raft-snapshot-interval"), cfg.SnapshotInterval, "how often to check whether to snapshot")
	fs.DurationVar(&cfg.GroupCommitLinger, name("GroupCommitLinger", "group-commit-linger"), cfg.GroupCommitLinger, "under load, how long a storage commit waits for more requests to share its fsync (0 disables)")
	fs.DurationVar(&cfg.StateFlushInterval, name("StateFlushInterval", "state-flush-interval"), cfg.StateFlushInterval, "how often applied writes held in memory are written to the state store (a crash replays at most this much from the raft log)")
	fs.DurationVar(&cfg.DeadNodeGrace, name("DeadNodeGrace", "dead-node-grace"), cfg.DeadNodeGrace, "how long gossip must report a node dead before its replicas are replaced (raise in production)")
	fs.IntVar(&cfg.MaxMovesInFlight, name("MaxMovesInFlight", "max-moves-in-flight"), cfg.MaxMovesInFlight, "cluster-wide cap on shards with a placement move in progress")
	fs.IntVar(&cfg.MaxSnapshotTransfers, name("MaxSnapshotTransfers", "max-snapshot-transfers"), cfg.MaxSnapshotTransfers, "snapshots this node sends (and, separately, receives) at once")
	fs.StringVar(&cl.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&cl.logFormat, "log-format", "text", "text or json")
	fs.DurationVar(&cl.shutdownTimeout, "shutdown-timeout", 15*time.Second, "how long a graceful shutdown may take")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, nil
		}
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q: all settings are flags (see -h)", fs.Args())
	}
	for name, v := range map[string]uint{flags["Shards"]: *shards, flags["Replicas"]: *replicas} {
		if v > math.MaxUint32 {
			return nil, fmt.Errorf("%s=%d: too large", name, v)
		}
	}
	cfg.Shards, cfg.Replicas = uint32(*shards), uint32(*replicas)
	// raft requires the lease within the heartbeat timeout; half of it is
	// raft's own default ratio (1s and 500ms).
	cfg.LeaderLeaseTimeout = cfg.HeartbeatTimeout / 2
	if *join != "" {
		for _, a := range strings.Split(*join, ",") {
			if a = strings.TrimSpace(a); a != "" {
				cfg.Join = append(cfg.Join, a)
			}
		}
	}
	if err := cfg.Validate(); err != nil {
		return nil, flagErrors(err, flags)
	}
	return cl, nil
}

// flagErrors restates Config.Validate's errors under kvnode's flag names
// (flags maps a Config field to its flag).
func flagErrors(err error, flags map[string]string) error {
	flagFor := func(field string) string {
		if f, ok := flags[field]; ok {
			return f
		}
		return field
	}
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	lines := make([]string, 0, len(errs))
	for _, e := range errs {
		var fe *replication.FieldError
		if errors.As(e, &fe) {
			lines = append(lines, "  "+fe.Describe(flagFor))
		} else {
			lines = append(lines, "  "+e.Error())
		}
	}
	return fmt.Errorf("invalid flags (see -h):\n%s", strings.Join(lines, "\n"))
}
