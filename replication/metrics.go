package replication

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ridgeline-kv/ridgeline/replication/transport"
)

// metrics are a node's Prometheus collectors. Per-group series carry a
// "shard" label: the shard ID, or "meta" for the meta group.
type metrics struct {
	proposals      *prometheus.CounterVec
	proposalErrors *prometheus.CounterVec
	applies        *prometheus.CounterVec
	applyBatch     *prometheus.HistogramVec
	leaderChanges  *prometheus.CounterVec
	appliedAhead   *prometheus.CounterVec
	commitLatency  *prometheus.HistogramVec
	readBatch      *prometheus.HistogramVec
	isLeader       *prometheus.GaugeVec
	commitSeconds  prometheus.Histogram
	commitTxns     prometheus.Histogram
	mapEpoch       prometheus.Gauge
	moves          *prometheus.CounterVec
	backlog        prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	shard := []string{"shard"}
	latency := prometheus.ExponentialBuckets(0.0001, 2, 16) // 100µs .. ~3.3s
	sizes := prometheus.ExponentialBuckets(1, 2, 11)        // 1 .. 1024
	m := &metrics{
		proposals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "ridgeline", Name: "proposals_total", Help: "Commands proposed to raft by this node as leader."}, shard),
		proposalErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "ridgeline", Name: "proposal_errors_total", Help: "Proposals that failed, by reason."}, []string{"shard", "reason"}),
		applies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "ridgeline", Name: "applies_total", Help: "Log entries applied to the state machine."}, shard),
		applyBatch: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "ridgeline", Name: "apply_batch_size", Help: "Entries per state machine apply batch.", Buckets: sizes}, shard),
		leaderChanges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "ridgeline", Name: "leader_changes_total", Help: "Leader changes observed by this node's replica."}, shard),
		appliedAhead: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "ridgeline", Name: "applies_ahead_of_local_log_total",
			Help: "Apply batches a shard leader applied once a majority of its followers held them durably, before its own log append was."}, shard),
		commitLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "ridgeline", Name: "commit_latency_seconds", Help: "Proposal to applied, on the leader.", Buckets: latency}, shard),
		readBatch: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "ridgeline", Name: "read_index_batch_size", Help: "Linearizable reads served per leadership confirmation.", Buckets: sizes}, shard),
		isLeader: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "ridgeline", Name: "is_leader", Help: "1 if this node's replica leads the group."}, shard),
		commitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "ridgeline", Name: "storage_commit_seconds", Help: "Storage group commit (write + fsync) latency: raft log appends and state applies of every shard share it.", Buckets: latency}),
		commitTxns: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "ridgeline", Name: "storage_group_commit_txns", Help: "Storage requests (log appends, truncations, applies) coalesced per commit and fsync.", Buckets: sizes}),
		mapEpoch: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "ridgeline", Name: "cluster_map_epoch", Help: "Epoch of the cluster map this node knows."}),
		moves: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "ridgeline", Name: "placement_moves_total", Help: "Placement moves committed by this node as meta leader, by kind."}, []string{"kind"}),
		backlog: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "ridgeline", Name: "rebalance_backlog", Help: "Shards whose placement differs from the target (on the meta leader; 0 elsewhere)."}),
	}
	reg.MustRegister(m.proposals, m.proposalErrors, m.applies, m.applyBatch, m.leaderChanges, m.appliedAhead,
		m.commitLatency, m.readBatch, m.isLeader, m.commitSeconds, m.commitTxns, m.mapEpoch, m.moves, m.backlog)
	return m
}

// group returns the per-group series, resolved once per replica.
func (m *metrics) group(label string) *groupMetrics {
	return &groupMetrics{
		proposals:     m.proposals.WithLabelValues(label),
		applies:       m.applies.WithLabelValues(label),
		applyBatch:    m.applyBatch.WithLabelValues(label),
		leaderChanges: m.leaderChanges.WithLabelValues(label),
		appliedAhead:  m.appliedAhead.WithLabelValues(label),
		commitLatency: m.commitLatency.WithLabelValues(label),
		readBatch:     m.readBatch.WithLabelValues(label),
		isLeader:      m.isLeader.WithLabelValues(label),
		errs:          m.proposalErrors,
		label:         label,
	}
}

type groupMetrics struct {
	proposals     prometheus.Counter
	applies       prometheus.Counter
	applyBatch    prometheus.Observer
	leaderChanges prometheus.Counter
	appliedAhead  prometheus.Counter
	commitLatency prometheus.Observer
	readBatch     prometheus.Observer
	isLeader      prometheus.Gauge
	errs          *prometheus.CounterVec
	label         string
}

func (g *groupMetrics) proposalError(reason string) {
	g.errs.WithLabelValues(g.label, reason).Inc()
}

func (g *groupMetrics) observeApplyBatch(n int) {
	g.applies.Add(float64(n))
	g.applyBatch.Observe(float64(n))
}

func shardLabel(shard uint32) string { return strconv.FormatUint(uint64(shard), 10) }

func since(t time.Time) float64 { return time.Since(t).Seconds() }

// transportCollector exports the raft transport's counters.
type transportCollector struct {
	stats func() transport.Stats
	descs map[string]*prometheus.Desc
}

func newTransportCollector(stats func() transport.Stats) *transportCollector {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("ridgeline_transport_"+name, help, nil, nil)
	}
	return &transportCollector{stats: stats, descs: map[string]*prometheus.Desc{
		"conns":      d("peer_connections", "Open gRPC connections to peer nodes (one per peer, all shards)."),
		"snap_sent":  d("snapshot_bytes_sent_total", "Snapshot bytes streamed to peers."),
		"snap_recv":  d("snapshot_bytes_received_total", "Snapshot bytes received from peers."),
		"snaps_sent": d("snapshots_sent_total", "Snapshots sent to peers."),
		"snaps_recv": d("snapshots_received_total", "Snapshots received from peers."),
		"appends":    d("append_entries_total", "AppendEntries served (unary and pipelined)."),
		"heartbeats": d("heartbeats_total", "Heartbeats served."),
		"coalesced":  d("append_entries_coalesced_total", "Pipelined AppendEntries that queued behind a busy replica and reached raft together with the one before."),
	}}
}

func (c *transportCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

func (c *transportCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats()
	ch <- prometheus.MustNewConstMetric(c.descs["conns"], prometheus.GaugeValue, float64(s.Conns))
	counter := func(k string, v uint64) {
		ch <- prometheus.MustNewConstMetric(c.descs[k], prometheus.CounterValue, float64(v))
	}
	counter("snap_sent", s.SnapshotBytesSent)
	counter("snap_recv", s.SnapshotBytesReceived)
	counter("snaps_sent", s.SnapshotsSent)
	counter("snaps_recv", s.SnapshotsReceived)
	counter("appends", s.AppendEntries+s.PipelineAppends)
	counter("heartbeats", s.Heartbeats)
	counter("coalesced", s.CoalescedAppends)
}
