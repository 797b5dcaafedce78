package app

import (
	"cmp"
	"context"
	"encoding/json"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"time"
)

// routeStats keeps, per route template and method, the request count, the
// sum and the maximum of latencies: fixed memory per route, and the set of
// routes is the fixed set of the mux's patterns. Safe for concurrent use.
type routeStats struct {
	mu     sync.Mutex
	routes map[routeKey]*routeSums
}

type routeKey struct{ Method, Path string }

// routeSums are one route's running sums, as published.
type routeSums struct {
	Path   string `json:"url"`
	Method string `json:"op"`
	Count  int64  `json:"n"`
	SumUS  int64  `json:"sumUs"` // microseconds
	MaxUS  int64  `json:"maxUs"`
}

func newRouteStats() *routeStats { return &routeStats{routes: make(map[routeKey]*routeSums)} }

// observe records one request of route (method, path template).
func (s *routeStats) observe(method, path string, d time.Duration) {
	us := d.Microseconds()
	s.mu.Lock()
	defer s.mu.Unlock()
	k := routeKey{method, path}
	r := s.routes[k]
	if r == nil {
		r = &routeSums{Path: path, Method: method}
		s.routes[k] = r
	}
	r.Count++
	r.SumUS += us
	r.MaxUS = max(r.MaxUS, us)
}

// snapshot copies the sums.
func (s *routeStats) snapshot() []routeSums {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]routeSums, 0, len(s.routes))
	for _, r := range s.routes {
		out = append(out, *r)
	}
	return out
}

// replicaRecord is what each replica publishes at {meta}/replica/<id>:
// its heartbeat and its latency sums since it started.
type replicaRecord struct {
	ID        string      `json:"id"`
	Heartbeat int64       `json:"heartbeat"` // unix nanoseconds
	Routes    []routeSums `json:"routes"`
}

// endpointStat is one entry of GET /statistics.
type endpointStat struct {
	URL       string `json:"URL"`
	Operation string `json:"operation"`
	Mean      int64  `json:"mean"` // milliseconds
	Max       int64  `json:"max"`  // milliseconds
}

// mergeStats merges replicas' sums into /statistics entries, by URL then
// operation.
func mergeStats(records [][]routeSums) []endpointStat {
	merged := make(map[routeKey]*routeSums)
	for _, rec := range records {
		for _, r := range rec {
			k := routeKey{r.Method, r.Path}
			m := merged[k]
			if m == nil {
				m = &routeSums{Path: r.Path, Method: r.Method}
				merged[k] = m
			}
			m.Count += r.Count
			m.SumUS += r.SumUS
			m.MaxUS = max(m.MaxUS, r.MaxUS)
		}
	}
	out := make([]endpointStat, 0, len(merged))
	for _, m := range merged {
		if m.Count == 0 {
			continue
		}
		out = append(out, endpointStat{
			URL:       m.Path,
			Operation: m.Method,
			Mean:      int64(math.Round(float64(m.SumUS) / float64(m.Count) / 1000)),
			Max:       int64(math.Round(float64(m.MaxUS) / 1000)),
		})
	}
	slices.SortFunc(out, func(a, b endpointStat) int {
		return cmp.Or(strings.Compare(a.URL, b.URL), strings.Compare(a.Operation, b.Operation))
	})
	return out
}

// statsPublisher publishes this replica's record every interval and keeps
// the latest view of the other replicas' records (for the count of live
// replicas that balances queue partitions).
type statsPublisher struct {
	store    Store
	replica  string
	interval time.Duration
	stats    *routeStats
	log      *slog.Logger

	mu   sync.Mutex
	live int
}

// run publishes until ctx is done, then publishes once more.
func (p *statsPublisher) run(ctx context.Context) {
	t := time.NewTicker(p.interval)
	defer t.Stop()
	for {
		p.publish(ctx)
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), time.Second)
			p.publish(fctx)
			cancel()
			return
		case <-t.C:
		}
	}
}

func (p *statsPublisher) publish(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, max(p.interval, time.Second))
	defer cancel()
	rec, _ := json.Marshal(replicaRecord{ID: p.replica, Heartbeat: time.Now().UnixNano(), Routes: p.stats.snapshot()})
	if _, err := p.store.Commit(ctx, Txn{Then: []Op{{Kind: OpPut, Key: replicaKey(p.replica), Value: rec}}}); err != nil {
		p.log.Debug("publishing statistics failed", "err", err)
	}
	recs, err := readReplicaRecords(ctx, p.store)
	if err != nil {
		return
	}
	live := 0
	cutoff := time.Now().Add(-3 * max(p.interval, time.Second)).UnixNano()
	for _, r := range recs {
		if r.Heartbeat >= cutoff {
			live++
		}
	}
	p.mu.Lock()
	p.live = live
	p.mu.Unlock()
}

// liveReplicas is the number of replicas whose heartbeat is recent, at
// least 1.
func (p *statsPublisher) liveReplicas() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return max(1, p.live)
}

// readReplicaRecords reads every replica's record.
func readReplicaRecords(ctx context.Context, s Store) ([]replicaRecord, error) {
	kvs, err := scanAll(ctx, s, replicaPrefix)
	if err != nil {
		return nil, err
	}
	out := make([]replicaRecord, 0, len(kvs))
	for _, kv := range kvs {
		var r replicaRecord
		if json.Unmarshal(kv.Value, &r) == nil {
			out = append(out, r)
		}
	}
	return out, nil
}
