package liftload

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkHTTPClient_Post measures the client's cost per POST against a
// server that answers 201 at once (the server's cost is included).
func BenchmarkHTTPClient_Post(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(201)
	}))
	b.Cleanup(srv.Close)
	hc := newHTTPClient(testConfig(srv.URL))
	ev := newRenderer(2025).event(Ride{Skier: 12345, Day: 1, Time: 217, Resort: 3, Lift: 21})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, _, err := hc.do(context.Background(), call{method: "POST", path: ev.Path, body: ev.Body}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkGenerate measures the generator goroutine's cost per event.
func BenchmarkGenerate(b *testing.B) {
	c := DefaultConfig()
	g := NewGenerator(c)
	r := newRenderer(c.Season)
	b.ReportAllocs()
	for b.Loop() {
		_ = r.event(g.Next())
	}
}
