package liftload

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

func TestHTTPClient_Retry(t *testing.T) {
	for _, tc := range []struct {
		failFirst    int
		wantAttempts int
		wantErr      bool
	}{
		{0, 1, false},
		{1, 2, false},
		{3, 4, false},
		{5, 6, false},
		{6, 6, true},
		{100, 6, true},
	} {
		f := newFakeService()
		f.failFirst = tc.failFirst
		srv := f.start(t)
		c := testConfig(srv.URL)
		hc := newHTTPClient(c)
		ctx := context.Background()
		if _, _, err := hc.do(ctx, call{method: "POST", path: "/resorts/1/seasons", body: []byte(`{"year":"2025"}`)}); err != nil {
			t.Fatal(err)
		}
		code, attempts, err := hc.do(ctx, call{method: "POST", path: "/skiers/1/seasons/2025/days/1/skiers/7", body: []byte(`{"time":1,"liftID":2}`)})
		if attempts != tc.wantAttempts || (err != nil) != tc.wantErr {
			t.Errorf("failFirst %d: attempts %d, err %v; want %d attempts, error %v", tc.failFirst, attempts, err, tc.wantAttempts, tc.wantErr)
		}
		if tc.wantErr {
			var se *StatusError
			if code != 500 || !errors.As(err, &se) || se.Code != 500 || !errors.Is(err, ErrRequestFailed) {
				t.Errorf("failFirst %d: code %d, err %v; want a 500 StatusError matching ErrRequestFailed", tc.failFirst, code, err)
			}
		} else if code != 201 {
			t.Errorf("failFirst %d: code %d, want 201", tc.failFirst, code)
		}
		hc.close()
	}
}

func TestHTTPClient_RetryTransportError(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // connection refused from now on
	hc := newHTTPClient(testConfig(url))
	code, attempts, err := hc.do(context.Background(), call{method: "GET", path: "/queue"})
	if err == nil || code != 0 || attempts != 6 {
		t.Fatalf("got code %d, %d attempts, err %v; want code 0, 6 attempts, an error", code, attempts, err)
	}
}

func TestHTTPClient_404(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.Error(w, `{"message":"data not found"}`, 404)
	}))
	t.Cleanup(srv.Close)
	hc := newHTTPClient(testConfig(srv.URL))
	if _, attempts, err := hc.do(context.Background(), call{method: "GET", path: "/x", ok404: true}); err != nil || attempts != 1 {
		t.Errorf("GET ok404: %d attempts, err %v; want 1 attempt, success", attempts, err)
	}
	if _, attempts, err := hc.do(context.Background(), call{method: "GET", path: "/x"}); err == nil || attempts != 6 {
		t.Errorf("GET: %d attempts, err %v; want 6 attempts, failure", attempts, err)
	}
	if got := hits.Load(); got != 7 {
		t.Errorf("server saw %d requests, want 7", got)
	}
}

func TestHTTPClient_RoundRobin(t *testing.T) {
	var hits [3]atomic.Int64
	var urls []string
	for i := range hits {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hits[i].Add(1)
			w.WriteHeader(201)
		}))
		t.Cleanup(srv.Close)
		urls = append(urls, srv.URL)
	}
	hc := newHTTPClient(testConfig(urls...))
	for range 30 {
		if _, _, err := hc.do(context.Background(), call{method: "POST", path: "/x", body: []byte("{}")}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range hits {
		if got := hits[i].Load(); got != 10 {
			t.Errorf("server %d got %d requests, want 10", i, got)
		}
	}
}

func TestHTTPClient_RetryGoesToNextURL(t *testing.T) {
	var bad, good atomic.Int64
	badSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		bad.Add(1)
		http.Error(w, `{"message":"down"}`, 503)
	}))
	goodSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		good.Add(1)
		w.WriteHeader(201)
	}))
	t.Cleanup(badSrv.Close)
	t.Cleanup(goodSrv.Close)
	hc := newHTTPClient(testConfig(badSrv.URL, goodSrv.URL))
	total := 0
	for range 20 {
		_, attempts, err := hc.do(context.Background(), call{method: "POST", path: "/x", body: []byte("{}")})
		if err != nil || attempts > 2 {
			t.Fatalf("%d attempts, err %v; want success within 2 attempts", attempts, err)
		}
		total += attempts
	}
	if bad.Load() != 10 || good.Load() != 20 || total != 30 {
		t.Errorf("bad server %d, good server %d, attempts %d; want 10, 20, 30", bad.Load(), good.Load(), total)
	}
}
