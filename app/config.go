package app

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// IngestMode says when a POSTed ride is acknowledged.
type IngestMode string

// Ingest modes.
const (
	// IngestQueued acknowledges a ride once it is durably in the queue;
	// consumers apply it within moments.
	IngestQueued IngestMode = "queued"
	// IngestSync acknowledges a ride once it and its aggregates are applied.
	IngestSync IngestMode = "sync"
)

// QueueConfig tunes the queue of IngestQueued.
type QueueConfig struct {
	// Linger is how long the enqueuer gathers concurrent POSTs into one
	// entry before writing it (group commit).
	Linger time.Duration
	// MaxBatch is the most rides one entry holds.
	MaxBatch int
	// MaxInflight is the most entry writes in flight per replica; POSTs
	// arriving meanwhile gather into the next entries.
	MaxInflight int
	// ConsumeEntries is how many entries a consumer takes from each
	// partition per batch.
	ConsumeEntries int
	// ConsumeLinger is how long a consumer lets rides accumulate after a
	// batch that found no backlog: larger batches cost fewer Txns per
	// ride; rides become visible up to this much later.
	ConsumeLinger time.Duration
	// LeaseTTL is how long a partition lease lasts without renewal: a dead
	// replica's partitions are taken over after at most this long.
	LeaseTTL time.Duration
	// IdlePoll is the longest a consumer waits before looking at an empty
	// partition again.
	IdlePoll time.Duration
}

// Config configures an App. Zero fields take DefaultConfig's values, except
// that Store and Endpoints cannot both be empty.
type Config struct {
	// Listen is the HTTP address to listen on when Listener is nil.
	Listen string
	// Listener, when set, is used instead of listening on Listen.
	Listener net.Listener
	// Endpoints are gRPC addresses of Ridgeline nodes; used when Store is nil.
	Endpoints []string
	// Store, when set, is used instead of a client of Endpoints. The App
	// does not close it.
	Store Store
	// ReplicaID names this replica in leases, queue entries and
	// statistics; it must differ between replicas. Default: the listening
	// address.
	ReplicaID string
	// Ingest selects how POSTed rides are acknowledged.
	Ingest IngestMode
	// CacheTTL bounds the staleness of cached aggregate reads; 0 disables
	// the cache.
	CacheTTL time.Duration
	// CacheSize is the most aggregate answers cached.
	CacheSize int
	// StatsInterval is how often the replica publishes its heartbeat and
	// latency sums.
	StatsInterval time.Duration
	// RequestTimeout bounds the Ridgeline calls of one HTTP request.
	RequestTimeout time.Duration
	// ApplyConcurrency bounds the Txns a replica has in flight to apply rides.
	ApplyConcurrency int
	Queue            QueueConfig
	// Logger receives the service's logs; nil discards them.
	Logger *slog.Logger
	// Registry receives the service's metrics; nil creates one, served at
	// /metrics either way.
	Registry *prometheus.Registry
}

// DefaultConfig returns the defaults: queued ingest, 1 s cache.
func DefaultConfig() Config {
	return Config{
		Listen:         "127.0.0.1:8080",
		Ingest:         IngestQueued,
		CacheTTL:       time.Second,
		CacheSize:      16384,
		StatsInterval:  time.Second,
		RequestTimeout: 10 * time.Second,
		// 16 against 64 (200,000 POSTs, 256 threads): 3,400 POST/s
		// against 2,300 and p99 160 ms against 470, as the consumers'
		// bursts no longer starve the enqueue writes; the price is lag
		// (about 13 s at the end of that burst, drained at ~3,600 rides/s).
		ApplyConcurrency: 16,
		Queue: QueueConfig{
			// Measured with liftload (60,000 POSTs, 3 kvnodes and 2
			// replicas on 2 cores): 4 ms and 500 ms against 1 ms and 100 ms
			// gave 1.6× the POST rate at 32 threads and 1.8× at 256,
			// because entries and consumer batches grow (fewer Txns per
			// ride) while rides still show within a second or two.
			Linger:         4 * time.Millisecond,
			MaxBatch:       512,
			MaxInflight:    8,
			ConsumeEntries: 127,
			ConsumeLinger:  500 * time.Millisecond,
			LeaseTTL:       5 * time.Second,
			IdlePoll:       100 * time.Millisecond,
		},
	}
}

// withDefaults fills zero fields from DefaultConfig.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Listen == "" && c.Listener == nil {
		c.Listen = d.Listen
	}
	if c.Ingest == "" {
		c.Ingest = d.Ingest
	}
	if c.CacheSize == 0 {
		c.CacheSize = d.CacheSize
	}
	if c.StatsInterval == 0 {
		c.StatsInterval = d.StatsInterval
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = d.RequestTimeout
	}
	if c.ApplyConcurrency == 0 {
		c.ApplyConcurrency = d.ApplyConcurrency
	}
	q, dq := &c.Queue, d.Queue
	if q.Linger == 0 {
		q.Linger = dq.Linger
	}
	if q.MaxBatch == 0 {
		q.MaxBatch = dq.MaxBatch
	}
	if q.MaxInflight == 0 {
		q.MaxInflight = dq.MaxInflight
	}
	if q.ConsumeEntries == 0 {
		q.ConsumeEntries = dq.ConsumeEntries
	}
	if q.ConsumeLinger == 0 {
		q.ConsumeLinger = dq.ConsumeLinger
	}
	if q.LeaseTTL == 0 {
		q.LeaseTTL = dq.LeaseTTL
	}
	if q.IdlePoll == 0 {
		q.IdlePoll = dq.IdlePoll
	}
	return c
}

// FieldError is one invalid Config field. Validate joins them with
// errors.Join; a command line can restate them under its own flag names.
type FieldError struct {
	Field  string // the Config field, e.g. "Queue.LeaseTTL"
	Value  string // the offending value, formatted
	Reason string
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("app: %s = %s: %s", e.Field, e.Value, e.Reason)
}

// Validate reports every invalid field of c with its value, each as a
// *FieldError. Zero fields that take defaults are valid.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	bad := func(field, value, reason string) {
		errs = append(errs, &FieldError{Field: field, Value: value, Reason: reason})
	}
	if c.Store == nil && len(c.Endpoints) == 0 {
		bad("Endpoints", "[]", "give the gRPC address of at least one Ridgeline node (--endpoints or RIDGELINE_ENDPOINTS)")
	}
	for _, ep := range c.Endpoints {
		if _, port, err := net.SplitHostPort(ep); err != nil || port == "" {
			bad("Endpoints", strconv.Quote(ep), "not host:port")
		}
	}
	if c.Listener == nil {
		if _, _, err := net.SplitHostPort(c.Listen); err != nil {
			bad("Listen", strconv.Quote(c.Listen), "not host:port (e.g. 127.0.0.1:8080)")
		}
	}
	if strings.ContainsAny(c.ReplicaID, "{}\n") || len(c.ReplicaID) > 200 {
		bad("ReplicaID", strconv.Quote(c.ReplicaID), "use at most 200 characters and no braces or newlines")
	}
	if c.Ingest != IngestQueued && c.Ingest != IngestSync {
		bad("Ingest", strconv.Quote(string(c.Ingest)), fmt.Sprintf("use %q or %q", IngestQueued, IngestSync))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
		min  time.Duration
	}{
		{"CacheTTL", c.CacheTTL, 0},
		{"StatsInterval", c.StatsInterval, time.Millisecond},
		{"RequestTimeout", c.RequestTimeout, time.Millisecond},
		{"Queue.Linger", c.Queue.Linger, 0},
		{"Queue.ConsumeLinger", c.Queue.ConsumeLinger, 0},
		{"Queue.LeaseTTL", c.Queue.LeaseTTL, 100 * time.Millisecond},
		{"Queue.IdlePoll", c.Queue.IdlePoll, time.Millisecond},
	} {
		if d.v < d.min {
			bad(d.name, d.v.String(), fmt.Sprintf("must be at least %v", d.min))
		}
	}
	for _, n := range []struct {
		name     string
		v        int
		min, max int
	}{
		{"CacheSize", c.CacheSize, 1, 1 << 24},
		{"ApplyConcurrency", c.ApplyConcurrency, 1, 4096},
		{"Queue.MaxBatch", c.Queue.MaxBatch, 1, 10000},
		{"Queue.MaxInflight", c.Queue.MaxInflight, 1, 1024},
		{"Queue.ConsumeEntries", c.Queue.ConsumeEntries, 1, 127},
	} {
		if n.v < n.min || n.v > n.max {
			bad(n.name, strconv.Itoa(n.v), fmt.Sprintf("must be %d to %d", n.min, n.max))
		}
	}
	return errors.Join(errs...)
}
