package replication

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// startHTTP serves /metrics, /healthz, /readyz and /debug/pprof when the
// node has an HTTP address.
func (n *Node) startHTTP() error {
	if n.cfg.HTTPAddr == "" && n.cfg.HTTPListener == nil {
		return nil
	}
	lis := n.cfg.HTTPListener
	if lis == nil {
		var err error
		if lis, err = net.Listen("tcp", n.cfg.HTTPAddr); err != nil {
			return fmt.Errorf("replication: listen on --http-addr %s: %w", n.cfg.HTTPAddr, err)
		}
	}
	n.httpLis = lis
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(n.gather, promhttp.HandlerOpts{Registry: n.reg}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-n.stop:
			http.Error(w, "stopping", http.StatusServiceUnavailable)
		default:
			fmt.Fprintln(w, "ok")
		}
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := n.readiness(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	n.httpSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	n.goAttach(func() {
		if err := n.httpSrv.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.logger.Error("HTTP server stopped", "err", err)
		}
	})
	return nil
}

// readiness says why the node cannot serve yet, or nil: it knows the map,
// runs every replica placed on it, and each of them knows a leader.
func (n *Node) readiness() error {
	select {
	case <-n.ready:
	default:
		if n.currentMap() == nil {
			return errors.New("not ready: no cluster map yet (bootstrapping or joining)")
		}
		return errors.New("not ready: starting replicas")
	}
	n.mu.RLock()
	defer n.mu.RUnlock()
	for shard, r := range n.byShard {
		if r.leader() == "" {
			return fmt.Errorf("not ready: shard %d has no leader", shard)
		}
	}
	return nil
}
