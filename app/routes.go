package app

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// routes registers every endpoint and wraps the mux: requests are measured
// (Prometheus and /statistics, by route template) and an unknown path or
// method is answered with a JSON {"message": ...} body like every error.
func (a *App) routes() http.Handler {
	mux := http.NewServeMux()
	h := func(pattern string, f handlerFunc) { mux.Handle(pattern, errorsAsJSON(f)) }

	// The Ski Data API v2.0.
	h("POST /skiers/{resortID}/seasons/{seasonID}/days/{dayID}/skiers/{skierID}", a.postRide)
	h("GET /skiers/{resortID}/seasons/{seasonID}/days/{dayID}/skiers/{skierID}", a.getSkierDayVertical)
	h("GET /skiers/{skierID}/vertical", a.getSkierVertical)
	h("GET /resorts", a.getResorts)
	h("GET /resorts/{resortID}/seasons", a.getSeasons)
	h("POST /resorts/{resortID}/seasons", a.postSeason)
	h("GET /resorts/{resortID}/seasons/{seasonID}/day/{dayID}/skiers", a.getUniqueSkiers)
	h("GET /statistics", a.getStatistics)

	// Queries of the service contract.
	h("GET /skiers/{skierID}/seasons/{seasonID}/days", a.getSkierDays)
	h("GET /skiers/{skierID}/seasons/{seasonID}/days/{dayID}/lifts", a.getSkierLifts)
	h("GET /resorts/{resortID}/seasons/{seasonID}/day/{dayID}/lifts/{liftID}", a.getLiftRides)
	h("GET /resorts/{resortID}/seasons/{seasonID}/day/{dayID}/hours", a.getHours)
	h("GET /resorts/{resortID}/seasons/{seasonID}/day/{dayID}/vertical", a.getDayTotals)

	// Operations.
	h("GET /queue", a.getQueue)
	h("GET /healthz", a.getHealth)
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{}))

	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		handler, pattern := mux.Handler(r)
		if pattern == "" {
			unrouted(handler, w, r)
			return
		}
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		mux.ServeHTTP(sw, r)
		d := time.Since(start)
		method, path, _ := strings.Cut(pattern, " ")
		a.m.requests.WithLabelValues(path, method, strconv.Itoa(sw.code)).Observe(d.Seconds())
		if path != "/metrics" {
			a.stats.observe(method, path, d)
		}
	})
}

// unrouted answers a request no pattern matches. The mux's own answer
// (404, 405 with Allow, or a redirect to the clean path) decides the
// status; errors get a JSON body instead of the mux's text.
func unrouted(h http.Handler, w http.ResponseWriter, r *http.Request) {
	probe := &statusProbe{header: make(http.Header)}
	h.ServeHTTP(probe, r)
	switch probe.code {
	case http.StatusNotFound:
		writeJSON(w, http.StatusNotFound, errorBody{Message: fmt.Sprintf("no endpoint at %s; see the Ski Data API v2.0 for the paths", r.URL.Path)})
	case http.StatusMethodNotAllowed:
		allow := probe.header.Get("Allow")
		w.Header().Set("Allow", allow)
		writeJSON(w, http.StatusMethodNotAllowed, errorBody{Message: fmt.Sprintf("method %s is not allowed on %s; use %s", r.Method, r.URL.Path, allow)})
	default:
		h.ServeHTTP(w, r) // e.g. a redirect to the cleaned path
	}
}

// statusProbe records the status a handler writes and discards the body.
type statusProbe struct {
	header http.Header
	code   int
}

func (p *statusProbe) Header() http.Header { return p.header }
func (p *statusProbe) Write(b []byte) (int, error) {
	if p.code == 0 {
		p.code = http.StatusOK
	}
	return len(b), nil
}
func (p *statusProbe) WriteHeader(code int) {
	if p.code == 0 {
		p.code = code
	}
}

// statusWriter records the status written through it.
type statusWriter struct {
	http.ResponseWriter
	code  int
	wrote bool
}

func (s *statusWriter) WriteHeader(code int) {
	if !s.wrote {
		s.code, s.wrote = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	s.wrote = true
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }
