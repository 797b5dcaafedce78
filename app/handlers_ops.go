package app

import (
	"context"
	"net/http"
)

// getStatistics answers mean and max latency per endpoint (endpoint 8),
// over all replicas: the other replicas' sums as they last published them
// (up to Config.StatsInterval old), this replica's as of now. If Ridgeline
// cannot be read, this replica's figures alone.
func (a *App) getStatistics(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), a.cfg.RequestTimeout)
	defer cancel()
	own := a.stats.snapshot()
	all := [][]routeSums{own}
	recs, err := readReplicaRecords(ctx, a.store)
	if err != nil {
		a.log.Warn("reading other replicas' statistics failed; answering with this replica's", "err", err)
	}
	for _, rec := range recs {
		if rec.ID != a.pub.replica {
			all = append(all, rec.Routes)
		}
	}
	writeJSON(w, http.StatusOK, struct {
		Stats []endpointStat `json:"endpointStats"`
	}{mergeStats(all)})
	return nil
}

// getQueue answers the queue's cluster-wide state: events enqueued but not
// yet applied and the age of the oldest entry. With IngestSync it answers
// mode "sync" and zeros.
func (a *App) getQueue(w http.ResponseWriter, r *http.Request) error {
	if a.enq == nil {
		writeJSON(w, http.StatusOK, queueState{Mode: IngestSync})
		return nil
	}
	ctx, cancel := context.WithTimeout(r.Context(), a.cfg.RequestTimeout)
	defer cancel()
	st, err := readQueueState(ctx, a.store)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}

// getHealth answers 200 while the replica serves.
func (a *App) getHealth(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, struct {
		Status string `json:"status"`
		Ingest string `json:"ingest"`
	}{"ok", string(a.cfg.Ingest)})
	return nil
}
