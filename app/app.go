package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ridgeline-kv/ridgeline/client"
)

// App is one replica of the lift-ride service. New validates and builds it,
// Start connects, seeds the resorts and serves, Shutdown stops it
// gracefully and Close stops it at once. It is safe for concurrent use.
type App struct {
	cfg     Config
	log     *slog.Logger
	reg     *prometheus.Registry
	m       *metrics
	stats   *routeStats
	handler http.Handler

	// Set by Start before serving; read-only afterwards.
	store   Store
	cl      *client.Client // owned: created by Start when Config.Store is nil
	catalog *catalog
	read    reader
	cache   *aggCache
	apply   *applier
	enq     *enqueuer // nil with IngestSync
	syncB   *enqueuer // gathers concurrent POSTs into one Apply; nil with IngestQueued
	pub     *statsPublisher
	ln      net.Listener
	srv     *http.Server

	ready    chan struct{}
	started  atomic.Bool
	bgCancel context.CancelFunc
	bg       sync.WaitGroup
	release  atomic.Bool // leases are handed back at stop (graceful)
	stopOnce sync.Once
	stopErr  error
}

// New validates cfg and builds an App; it starts nothing.
func New(cfg Config) (*App, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	a := &App{cfg: cfg, log: cfg.Logger, reg: cfg.Registry, stats: newRouteStats(), ready: make(chan struct{})}
	if a.log == nil {
		a.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if a.reg == nil {
		a.reg = prometheus.NewRegistry()
	}
	a.m = newMetrics(a.reg)
	a.handler = a.routes()
	return a, nil
}

// Start connects to Ridgeline (unless Config.Store is set), seeds the
// resorts, starts the queue's enqueuer and consumers and the statistics
// publisher, and serves HTTP. It returns once the App serves, or with the
// first error. Call it once.
func (a *App) Start(ctx context.Context) error {
	if !a.started.CompareAndSwap(false, true) {
		return errors.New("app: Start called twice; build a new App with New")
	}
	cfg := a.cfg
	a.store = cfg.Store
	if a.store == nil {
		cl, err := client.New(ctx, client.Config{Endpoints: cfg.Endpoints, Logger: a.log.With("component", "client")})
		if err != nil {
			return fmt.Errorf("app: connecting to Ridgeline at %v: %w", cfg.Endpoints, err)
		}
		a.cl, a.store = cl, ClientStore{C: cl}
	}
	a.ln = cfg.Listener
	if a.ln == nil {
		ln, err := net.Listen("tcp", cfg.Listen)
		if err != nil {
			a.closeClient()
			return fmt.Errorf("app: listening on %s: %w; choose another --listen address", cfg.Listen, err)
		}
		a.ln = ln
	}
	replica := cfg.ReplicaID
	if replica == "" {
		replica = a.ln.Addr().String()
	}
	a.log = a.log.With("replica", replica)

	a.catalog = &catalog{store: a.store}
	a.read = reader{store: a.store}
	a.cache = newAggCache(cfg.CacheSize, cfg.CacheTTL, cfg.RequestTimeout, a.m)
	a.apply = newApplier(a.store, cfg.ApplyConcurrency)
	a.pub = &statsPublisher{store: a.store, replica: replica, interval: cfg.StatsInterval, stats: a.stats, log: a.log}
	if cfg.Ingest == IngestQueued {
		a.enq = newEnqueuer(a.store, cfg.Queue, replica, cfg.RequestTimeout, a.m, a.log)
	} else {
		a.syncB = newApplyBatcher(a.apply, cfg.Queue, cfg.RequestTimeout, a.m, a.log)
	}
	leases := &leaseManager{
		store: a.store, replica: replica, cfg: cfg.Queue, timeout: cfg.RequestTimeout,
		live: a.pub.liveReplicas, m: a.m, log: a.log,
		refresh: a.refreshQueueGauges,
	}
	cons := &consumer{
		store: a.store, apply: a.apply, partitions: leases.partitions,
		cfg: cfg.Queue, timeout: cfg.RequestTimeout, m: a.m, log: a.log,
	}

	if err := a.catalog.seed(ctx); err != nil {
		a.ln.Close()
		a.closeClient()
		return fmt.Errorf("app: seeding the resorts: %w", err)
	}

	bgCtx, cancel := context.WithCancel(context.Background())
	a.bgCancel = cancel
	a.goAttach(func() { a.pub.run(bgCtx) })
	a.goAttach(func() { leases.run(bgCtx, a.release.Load) })
	a.goAttach(func() { cons.run(bgCtx) })
	if a.enq != nil {
		a.goAttach(a.enq.run)
	}
	if a.syncB != nil {
		a.goAttach(a.syncB.run)
	}
	a.srv = &http.Server{
		Handler:           a.handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelWarn),
	}
	a.goAttach(func() {
		if err := a.srv.Serve(a.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("HTTP server stopped", "err", err)
		}
	})
	a.log.Info("lift-ride service serving", "addr", a.ln.Addr().String(), "ingest", cfg.Ingest)
	close(a.ready)
	return nil
}

// goAttach runs f in a goroutine the App waits for when it stops.
func (a *App) goAttach(f func()) {
	a.bg.Add(1)
	go func() {
		defer a.bg.Done()
		f()
	}()
}

// Ready is closed once the App serves.
func (a *App) Ready() <-chan struct{} { return a.ready }

// Addr is the address the App serves on; valid once Ready.
func (a *App) Addr() string { return a.ln.Addr().String() }

// Handler is the App's HTTP handler (all endpoints, instrumented). It may
// be used once Start returned.
func (a *App) Handler() http.Handler { return a.handler }

// Registry is the registry of the App's metrics.
func (a *App) Registry() *prometheus.Registry { return a.reg }

// Shutdown stops the App gracefully: it stops accepting requests and waits
// for those in progress, writes the rides gathered for the queue, stops
// the consumers and hands their partitions back so other replicas take over
// at once. If ctx ends first, it closes what is left. Idempotent.
func (a *App) Shutdown(ctx context.Context) error {
	a.stop(ctx, true)
	return a.stopErr
}

// Close stops the App at once: open connections are closed and the
// partitions it consumed are left to expire, as if the replica died
// (rides it acknowledged are in the queue and are applied by others).
// Idempotent.
func (a *App) Close() error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	a.stop(ctx, false)
	return a.stopErr
}

func (a *App) stop(ctx context.Context, graceful bool) {
	a.stopOnce.Do(func() {
		if !a.started.Load() || a.srv == nil {
			return
		}
		var errs []error
		if graceful {
			if err := a.srv.Shutdown(ctx); err != nil {
				errs = append(errs, fmt.Errorf("app: waiting for requests in progress: %w", err))
				a.srv.Close()
			}
		} else {
			a.srv.Close()
		}
		if a.enq != nil {
			a.enq.stop()
		}
		if a.syncB != nil {
			a.syncB.stop()
		}
		a.release.Store(graceful)
		a.bgCancel()
		a.bg.Wait()
		a.closeClient()
		a.stopErr = errors.Join(errs...)
		a.log.Info("lift-ride service stopped", "graceful", graceful)
	})
}

func (a *App) closeClient() {
	if a.cl != nil {
		a.cl.Close()
	}
}

// refreshQueueGauges sets the cluster-wide queue gauges.
func (a *App) refreshQueueGauges(ctx context.Context) {
	st, err := readQueueState(ctx, a.store)
	if err != nil {
		return
	}
	a.m.queuePending.Set(float64(st.Pending))
	a.m.queueOldest.Set(st.Oldest)
}
