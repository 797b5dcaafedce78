// Command liftride runs one replica of the lift-ride service (package app):
// flags → app.Config → app.New → Start → wait for SIGINT/SIGTERM →
// Shutdown (stop accepting, finish requests, write gathered queue entries,
// hand queue partitions back).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/ridgeline-kv/ridgeline/app"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "liftride:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	cfg := app.DefaultConfig()
	fs := flag.NewFlagSet("liftride", flag.ContinueOnError)
	flags := map[string]string{} // app.Config field → the flag that sets it
	name := func(field, flag string) string { flags[field] = "--" + flag; return flag }
	fs.StringVar(&cfg.Listen, name("Listen", "listen"), cfg.Listen, "HTTP address to serve the API on (host:port)")
	endpoints := fs.String(name("Endpoints", "endpoints"), os.Getenv("RIDGELINE_ENDPOINTS"), "comma-separated gRPC addresses of Ridgeline nodes (default $RIDGELINE_ENDPOINTS)")
	ingest := fs.String(name("Ingest", "ingest"), string(cfg.Ingest), "queued (201 once the ride is in the queue) or sync (201 once it is applied)")
	fs.DurationVar(&cfg.CacheTTL, name("CacheTTL", "cache-ttl"), cfg.CacheTTL, "how stale cached aggregate reads may be (0 disables the cache)")
	fs.StringVar(&cfg.ReplicaID, name("ReplicaID", "id"), "", "replica name, unique among replicas (default the --listen address)")
	fs.DurationVar(&cfg.RequestTimeout, name("RequestTimeout", "request-timeout"), cfg.RequestTimeout, "bound on the Ridgeline calls of one request")
	fs.DurationVar(&cfg.StatsInterval, name("StatsInterval", "stats-interval"), cfg.StatsInterval, "how often the replica publishes its heartbeat and latency sums")
	fs.IntVar(&cfg.ApplyConcurrency, name("ApplyConcurrency", "apply-concurrency"), cfg.ApplyConcurrency, "Txns in flight to apply rides")
	fs.DurationVar(&cfg.Queue.Linger, name("Queue.Linger", "queue-linger"), cfg.Queue.Linger, "how long concurrent POSTs are gathered into one queue entry")
	fs.IntVar(&cfg.Queue.MaxBatch, name("Queue.MaxBatch", "queue-max-batch"), cfg.Queue.MaxBatch, "most rides per queue entry")
	fs.IntVar(&cfg.Queue.MaxInflight, name("Queue.MaxInflight", "queue-max-inflight"), cfg.Queue.MaxInflight, "queue entry writes in flight")
	fs.IntVar(&cfg.Queue.ConsumeEntries, name("Queue.ConsumeEntries", "queue-consume-entries"), cfg.Queue.ConsumeEntries, "queue entries taken from each partition per consumer batch (at most 127)")
	fs.DurationVar(&cfg.Queue.ConsumeLinger, name("Queue.ConsumeLinger", "queue-consume-linger"), cfg.Queue.ConsumeLinger, "how long consumers let rides accumulate between batches when there is no backlog")
	fs.DurationVar(&cfg.Queue.LeaseTTL, name("Queue.LeaseTTL", "queue-lease-ttl"), cfg.Queue.LeaseTTL, "partition lease lifetime: a dead replica's partitions are taken over after this")
	fs.DurationVar(&cfg.Queue.IdlePoll, name("Queue.IdlePoll", "queue-idle-poll"), cfg.Queue.IdlePoll, "longest wait before an idle consumer looks again")
	debugAddr := fs.String("debug-addr", "", "address for /debug/pprof (empty disables)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	shutdownTimeout := fs.Duration("shutdown-timeout", 15*time.Second, "how long a graceful shutdown may take")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q: all settings are flags (see -h)", fs.Args())
	}
	for _, e := range strings.Split(*endpoints, ",") {
		if e = strings.TrimSpace(e); e != "" {
			cfg.Endpoints = append(cfg.Endpoints, e)
		}
	}
	cfg.Ingest = app.IngestMode(*ingest)
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("--log-level %q: use debug, info, warn or error", *logLevel)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	cfg.Logger = logger

	a, err := app.New(cfg)
	if err != nil {
		return flagErrors(err, flags)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	startCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = a.Start(startCtx)
	cancel()
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "liftride serving on http://%s (ingest %s)\n", a.Addr(), cfg.Ingest)

	var debugSrv *http.Server
	if *debugAddr != "" {
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		debugSrv = &http.Server{Addr: *debugAddr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := debugSrv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				logger.Error("debug server stopped", "err", err)
			}
		}()
	}

	<-ctx.Done()
	stop()
	logger.Info("shutting down", "timeout", *shutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), *shutdownTimeout)
	defer cancel()
	if debugSrv != nil {
		debugSrv.Close()
	}
	if err := a.Shutdown(sctx); err != nil {
		a.Close()
		return err
	}
	return nil
}

// flagErrors restates app.Config's validation errors under liftride's flag
// names (flags maps a Config field to its flag); other errors pass through.
func flagErrors(err error, flags map[string]string) error {
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	lines := make([]string, 0, len(errs))
	for _, e := range errs {
		var fe *app.FieldError
		if !errors.As(e, &fe) {
			return err
		}
		flag, ok := flags[fe.Field]
		if !ok {
			flag = fe.Field
		}
		lines = append(lines, fmt.Sprintf("  %s=%s: %s", flag, fe.Value, fe.Reason))
	}
	return fmt.Errorf("invalid flags (see -h):\n%s", strings.Join(lines, "\n"))
}
