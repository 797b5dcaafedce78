package app

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the service's Prometheus metrics, registered on the App's
// own registry (no globals).
type metrics struct {
	requests *prometheus.HistogramVec

	enqueueBatch  prometheus.Histogram
	enqueueErrors prometheus.Counter
	queuePending  prometheus.Gauge
	queueOldest   prometheus.Gauge
	consumerLag   prometheus.Gauge
	partitions    prometheus.Gauge
	applied       prometheus.Counter
	duplicates    prometheus.Counter
	applyBatch    prometheus.Histogram
	applyErrors   prometheus.Counter
	badEntries    prometheus.Counter

	cacheHits   prometheus.Counter
	cacheMisses prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	sizes := prometheus.ExponentialBuckets(1, 2, 14) // 1 .. 8192
	m := &metrics{
		requests: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "liftride_http_request_duration_seconds",
			Help:    "HTTP request latency by route template, method and status code.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route", "method", "code"}),
		enqueueBatch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "liftride_enqueue_batch_rides", Help: "Rides per queue entry written (group commit size).", Buckets: sizes,
		}),
		enqueueErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "liftride_enqueue_errors_total", Help: "Queue entry writes that failed (their POSTs got 503).",
		}),
		queuePending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "liftride_queue_pending_events", Help: "Events enqueued but not yet applied, cluster-wide (refreshed every lease period).",
		}),
		queueOldest: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "liftride_queue_oldest_age_seconds", Help: "Age of the oldest queue entry, cluster-wide (refreshed every lease period).",
		}),
		consumerLag: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "liftride_consumer_lag_seconds", Help: "Age of the oldest entry in this replica's last consumer batch (0 when its partitions are empty).",
		}),
		partitions: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "liftride_consumer_partitions", Help: "Queue partitions this replica holds the lease of.",
		}),
		applied: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "liftride_rides_applied_total", Help: "Rides applied to the data model for the first time.",
		}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "liftride_rides_duplicate_total", Help: "Rides skipped because they were already applied (re-POSTs, re-deliveries).",
		}),
		applyBatch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "liftride_consumer_batch_rides", Help: "Rides per consumer batch.", Buckets: sizes,
		}),
		applyErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "liftride_consumer_errors_total", Help: "Consumer batches that failed and will be retried.",
		}),
		badEntries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "liftride_queue_malformed_entries_total", Help: "Queue entries that could not be decoded and were dropped.",
		}),
		cacheHits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "liftride_cache_hits_total", Help: "Aggregate reads answered from the cache.",
		}),
		cacheMisses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "liftride_cache_misses_total", Help: "Aggregate reads that went to Ridgeline (bypasses not counted).",
		}),
	}
	reg.MustRegister(m.requests, m.enqueueBatch, m.enqueueErrors, m.queuePending, m.queueOldest,
		m.consumerLag, m.partitions, m.applied, m.duplicates, m.applyBatch, m.applyErrors, m.badEntries,
		m.cacheHits, m.cacheMisses)
	return m
}
