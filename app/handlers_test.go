package app

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ridgeline-kv/ridgeline/replication/replicationtest"
)

// startTestApp starts an App on a loopback port-0 listener over store.
func startTestApp(t *testing.T, store Store, mode IngestMode, id string, adjust ...func(*Config)) *App {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Store: store, Listener: ln, ReplicaID: id, Ingest: mode,
		StatsInterval: 50 * time.Millisecond,
		Queue:         QueueConfig{LeaseTTL: 400 * time.Millisecond, IdlePoll: 10 * time.Millisecond},
		Logger:        slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	for _, f := range adjust {
		f(&cfg)
	}
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := a.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return a
}

// do serves one request through h and returns the status and body.
func do(h http.Handler, method, path, body string) (int, string) {
	var r *http.Request
	if body == "" {
		r = httptest.NewRequest(method, path, nil)
	} else {
		r = httptest.NewRequest(method, path, strings.NewReader(body))
	}
	r.Header.Set("Cache-Control", "no-cache")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Code, w.Body.String()
}

type apiCase struct {
	name         string
	method, path string
	body         string
	code         int
	// wantBody is the exact body, or with a leading "~" a substring of it.
	wantBody string
}

func runCases(t *testing.T, h http.Handler, cases []apiCase) {
	t.Helper()
	for _, c := range cases {
		code, body := do(h, c.method, c.path, c.body)
		ok := code == c.code
		if sub, isSub := strings.CutPrefix(c.wantBody, "~"); isSub {
			ok = ok && strings.Contains(body, sub)
		} else if c.wantBody != "" || c.code == 201 {
			ok = ok && body == c.wantBody
		}
		if code >= 400 && !strings.HasPrefix(body, `{"message":"`) {
			ok = false
		}
		if !ok {
			t.Errorf("%s: %s %s %s = %d %s; want %d %s", c.name, c.method, c.path, c.body, code, body, c.code, c.wantBody)
		}
	}
}

const ride1 = "/skiers/1/seasons/2025/days/1/skiers/7"

// TestApp_Endpoints checks every endpoint's success, 400 and 404 answers
// and their bodies, in sync mode so that writes are visible at once.
func TestApp_Endpoints(t *testing.T) {
	a := startTestApp(t, newFakeStore(), IngestSync, "r1")
	h := a.Handler()

	setup := []apiCase{
		{"add season", "POST", "/resorts/1/seasons", `{"year":"2025"}`, 201, ""},
		{"add season again", "POST", "/resorts/1/seasons", `{"year":"2025"}`, 201, ""},
		{"add season as number", "POST", "/resorts/2/seasons", `{"year":2025}`, 201, ""},
		{"ride", "POST", ride1, `{"time":217,"liftID":21}`, 201, ""},
		{"same ride again", "POST", ride1, `{"time":217,"liftID":21}`, 201, ""},
		{"second ride", "POST", ride1, `{"time": 30, "liftID": 5}`, 201, ""},
		{"other resort", "POST", "/skiers/2/seasons/2025/days/1/skiers/7", `{"time":61,"liftID":3}`, 201, ""},
		{"other day", "POST", "/skiers/1/seasons/2025/days/3/skiers/7", `{"time":1440,"liftID":40}`, 201, ""},
		{"other skier", "POST", "/skiers/1/seasons/2025/days/1/skiers/15", `{"time":217,"liftID":21}`, 201, ""},
	}
	runCases(t, h, setup)

	cases := []apiCase{
		// Endpoint 1 errors.
		{"ride bad resort", "POST", "/skiers/abc/seasons/2025/days/1/skiers/7", `{"time":1,"liftID":1}`, 400, "~resortID must be an integer"},
		{"ride resort 0", "POST", "/skiers/0/seasons/2025/days/1/skiers/7", `{"time":1,"liftID":1}`, 400, "~resortID"},
		{"ride bad season", "POST", "/skiers/1/seasons/25/days/1/skiers/7", `{"time":1,"liftID":1}`, 400, "~seasonID must be a four-digit year"},
		{"ride day 0", "POST", "/skiers/1/seasons/2025/days/0/skiers/7", `{"time":1,"liftID":1}`, 400, "~dayID must be a day of the year from 1 to 366"},
		{"ride day 367", "POST", "/skiers/1/seasons/2025/days/367/skiers/7", `{"time":1,"liftID":1}`, 400, "~dayID"},
		{"ride skier -1", "POST", "/skiers/1/seasons/2025/days/1/skiers/-1", `{"time":1,"liftID":1}`, 400, "~skierID"},
		{"ride bad json", "POST", ride1, `{"time":`, 400, "~not valid JSON"},
		{"ride empty body", "POST", ride1, ``, 400, "~not valid JSON"},
		{"ride trailing data", "POST", ride1, `{"time":1,"liftID":1} {}`, 400, "~after the JSON object"},
		{"ride no time", "POST", ride1, `{"liftID":1}`, 400, "~field time is missing"},
		{"ride no lift", "POST", ride1, `{"time":1}`, 400, "~field liftID is missing"},
		{"ride time 0", "POST", ride1, `{"time":0,"liftID":1}`, 400, "~time must be the minute of the ski day, 1 to 1440, got 0"},
		{"ride time 1441", "POST", ride1, `{"time":1441,"liftID":1}`, 400, "~got 1441"},
		{"ride time string", "POST", ride1, `{"time":"5","liftID":1}`, 400, "~not valid JSON"},
		{"ride lift 0", "POST", ride1, `{"time":5,"liftID":0}`, 400, "~liftID must be an integer from 1"},
		{"ride unknown resort", "POST", "/skiers/99/seasons/2025/days/1/skiers/7", `{"time":1,"liftID":1}`, 404, "~resort 99 does not exist"},
		{"ride season not added", "POST", "/skiers/1/seasons/2024/days/1/skiers/7", `{"time":1,"liftID":1}`, 404, "~add it with POST /resorts/1/seasons"},

		// Endpoint 2.
		{"day vertical", "GET", ride1, "", 200, "260"},
		{"day vertical other resort", "GET", "/skiers/2/seasons/2025/days/1/skiers/7", "", 200, "30"},
		{"day vertical none", "GET", "/skiers/1/seasons/2025/days/2/skiers/7", "", 200, "0"},
		{"day vertical bad day", "GET", "/skiers/1/seasons/2025/days/x/skiers/7", "", 400, "~dayID"},
		{"day vertical unknown resort", "GET", "/skiers/42/seasons/2025/days/1/skiers/7", "", 404, "~resort 42 does not exist"},
		{"day vertical season not added", "GET", "/skiers/3/seasons/2025/days/1/skiers/7", "", 404, "~season 2025 does not exist at resort 3"},

		// Endpoint 3.
		{"vertical one resort", "GET", "/skiers/7/vertical?resort=1", "", 200, `{"resorts":[{"seasonID":"2025","totalVert":660}]}`},
		{"vertical two resorts", "GET", "/skiers/7/vertical?resort=1&resort=2", "", 200, `{"resorts":[{"seasonID":"2025","totalVert":690}]}`},
		{"vertical season asked", "GET", "/skiers/7/vertical?resort=1&season=2025&season=2024", "", 200, `{"resorts":[{"seasonID":"2024","totalVert":0},{"seasonID":"2025","totalVert":660}]}`},
		{"vertical no rides", "GET", "/skiers/8/vertical?resort=1", "", 200, `{"resorts":[]}`},
		{"vertical no resort", "GET", "/skiers/7/vertical", "", 400, "~query parameter resort is required"},
		{"vertical bad resort", "GET", "/skiers/7/vertical?resort=x", "", 400, "~resort must be an integer"},
		{"vertical bad season", "GET", "/skiers/7/vertical?resort=1&season=99", "", 400, "~season must be a four-digit year"},
		{"vertical bad skier", "GET", "/skiers/0/vertical?resort=1", "", 400, "~skierID"},
		{"vertical unknown resort", "GET", "/skiers/7/vertical?resort=1&resort=11", "", 404, "~resort 11 does not exist"},

		// Endpoint 4.
		{"resorts", "GET", "/resorts", "", 200, `~{"resorts":[{"resortName":"Crystal Mountain","resortID":1},{"resortName":"Stevens Pass","resortID":2},`},
		{"resorts ten", "GET", "/resorts", "", 200, `~{"resortName":"Whistler Blackcomb","resortID":10}]}`},

		// Endpoints 5 and 6.
		{"seasons", "GET", "/resorts/1/seasons", "", 200, `{"seasons":["2025"]}`},
		{"seasons none", "GET", "/resorts/4/seasons", "", 200, `{"seasons":[]}`},
		{"seasons bad resort", "GET", "/resorts/x/seasons", "", 400, "~resortID"},
		{"seasons unknown resort", "GET", "/resorts/11/seasons", "", 404, "~resort 11 does not exist"},
		{"add season bad year", "POST", "/resorts/1/seasons", `{"year":"25"}`, 400, `~year must be a four-digit year such as \"2025\", got \"25\"`},
		{"add season no year", "POST", "/resorts/1/seasons", `{}`, 400, "~field year is missing"},
		{"add season bad json", "POST", "/resorts/1/seasons", `year=2025`, 400, "~not valid JSON"},
		{"add season bad resort", "POST", "/resorts/0/seasons", `{"year":"2025"}`, 400, "~resortID"},
		{"add season unknown resort", "POST", "/resorts/11/seasons", `{"year":"2025"}`, 404, "~resort 11 does not exist"},

		// Endpoint 7.
		{"unique skiers", "GET", "/resorts/1/seasons/2025/day/1/skiers", "", 200, `{"time":"Crystal Mountain","numSkiers":2}`},
		{"unique skiers none", "GET", "/resorts/1/seasons/2025/day/2/skiers", "", 200, `{"time":"Crystal Mountain","numSkiers":0}`},
		{"unique skiers bad day", "GET", "/resorts/1/seasons/2025/day/400/skiers", "", 400, "~dayID"},
		{"unique skiers bad season", "GET", "/resorts/1/seasons/abcd/day/1/skiers", "", 400, "~seasonID"},
		{"unique skiers unknown resort", "GET", "/resorts/77/seasons/2025/day/1/skiers", "", 404, "~resort 77"},
		{"unique skiers season not added", "GET", "/resorts/1/seasons/2023/day/1/skiers", "", 404, "~season 2023"},

		// Q1, Q2, Q3.
		{"skier days", "GET", "/skiers/7/seasons/2025/days", "", 200, `{"skierID":7,"seasonID":"2025","numDays":2,"days":[{"dayID":1,"totalVert":290},{"dayID":3,"totalVert":400}]}`},
		{"skier days none", "GET", "/skiers/8/seasons/2025/days", "", 200, `{"skierID":8,"seasonID":"2025","numDays":0,"days":[]}`},
		{"skier days bad season", "GET", "/skiers/7/seasons/1/days", "", 400, "~seasonID"},
		{"skier lifts", "GET", "/skiers/7/seasons/2025/days/1/lifts", "", 200, `{"skierID":7,"seasonID":"2025","dayID":1,"rides":[{"resortID":1,"liftID":5,"time":30},{"resortID":2,"liftID":3,"time":61},{"resortID":1,"liftID":21,"time":217}]}`},
		{"skier lifts none", "GET", "/skiers/7/seasons/2025/days/2/lifts", "", 200, `{"skierID":7,"seasonID":"2025","dayID":2,"rides":[]}`},
		{"skier lifts bad day", "GET", "/skiers/7/seasons/2025/days/0/lifts", "", 400, "~dayID"},

		// Q5, Q6, totals.
		{"lift rides", "GET", "/resorts/1/seasons/2025/day/1/lifts/21", "", 200, `{"resortID":1,"seasonID":"2025","dayID":1,"liftID":21,"numRides":2}`},
		{"lift rides none", "GET", "/resorts/1/seasons/2025/day/1/lifts/22", "", 200, `{"resortID":1,"seasonID":"2025","dayID":1,"liftID":22,"numRides":0}`},
		{"lift rides bad lift", "GET", "/resorts/1/seasons/2025/day/1/lifts/0", "", 400, "~liftID"},
		{"lift rides bad lift unknown resort", "GET", "/resorts/99/seasons/2025/day/1/lifts/0", "", 400, "~liftID"},
		{"lift rides unknown resort", "GET", "/resorts/99/seasons/2025/day/1/lifts/1", "", 404, "~resort 99"},
		{"hours", "GET", "/resorts/1/seasons/2025/day/1/hours", "", 200, `{"resortID":1,"seasonID":"2025","dayID":1,"hours":[{"hour":0,"numRides":1},{"hour":3,"numRides":2}]}`},
		{"hours none", "GET", "/resorts/1/seasons/2025/day/9/hours", "", 200, `{"resortID":1,"seasonID":"2025","dayID":9,"hours":[]}`},
		{"hours bad day", "GET", "/resorts/1/seasons/2025/day/-1/hours", "", 400, "~dayID"},
		{"hours unknown resort", "GET", "/resorts/99/seasons/2025/day/1/hours", "", 404, "~resort 99"},
		{"totals", "GET", "/resorts/1/seasons/2025/day/1/vertical", "", 200, `{"resortID":1,"seasonID":"2025","dayID":1,"numRides":3,"totalVert":470}`},
		{"totals bad season", "GET", "/resorts/1/seasons/20255/day/1/vertical", "", 400, "~seasonID"},
		{"totals unknown resort", "GET", "/resorts/99/seasons/2025/day/1/vertical", "", 404, "~resort 99"},

		// Operations.
		{"queue sync", "GET", "/queue", "", 200, `{"mode":"sync","pendingEvents":0,"oldestAgeSeconds":0}`},
		{"health", "GET", "/healthz", "", 200, `{"status":"ok","ingest":"sync"}`},
		{"metrics", "GET", "/metrics", "", 200, "~liftride_http_request_duration_seconds_bucket"},

		// Unknown paths and methods.
		{"unknown path", "GET", "/nope", "", 404, `{"message":"no endpoint at /nope; see the Ski Data API v2.0 for the paths"}`},
		{"unknown deep path", "GET", "/skiers/1/seasons/2025/day/1/skiers/7", "", 404, "~no endpoint"},
		{"wrong method", "DELETE", "/resorts", "", 405, `{"message":"method DELETE is not allowed on /resorts; use GET, HEAD"}`},
		{"wrong method ride", "PUT", ride1, "", 405, "~use GET, HEAD, POST"},
	}
	runCases(t, h, cases)

	// Endpoint 8: every route measured, mean ≤ max.
	code, body := do(h, "GET", "/statistics", "")
	for _, want := range []string{
		`{"endpointStats":[`,
		`"URL":"/resorts","operation":"GET","mean":`,
		`"URL":"/skiers/{resortID}/seasons/{seasonID}/days/{dayID}/skiers/{skierID}","operation":"POST"`,
		`"URL":"/resorts/{resortID}/seasons/{seasonID}/day/{dayID}/skiers","operation":"GET"`,
	} {
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("GET /statistics = %d %s; want 200 containing %s", code, body, want)
		}
	}
	if strings.Contains(body, "/metrics") || strings.Contains(body, "/nope") {
		t.Errorf("GET /statistics lists /metrics or unknown paths: %s", body)
	}
}

// TestApp_Cache: aggregate reads are cached for the TTL unless the request
// says no-cache.
func TestApp_Cache(t *testing.T) {
	a := startTestApp(t, newFakeStore(), IngestSync, "r1", func(c *Config) { c.CacheTTL = time.Hour })
	h := a.Handler()
	runCases(t, h, []apiCase{
		{"add season", "POST", "/resorts/1/seasons", `{"year":"2025"}`, 201, ""},
		{"ride", "POST", ride1, `{"time":217,"liftID":21}`, 201, ""},
	})
	get := func(noCache bool) string {
		r := httptest.NewRequest("GET", "/resorts/1/seasons/2025/day/1/skiers", nil)
		if noCache {
			r.Header.Set("Cache-Control", "no-cache")
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Body.String()
	}
	one, two := `{"time":"Crystal Mountain","numSkiers":1}`, `{"time":"Crystal Mountain","numSkiers":2}`
	if got := get(false); got != one {
		t.Fatalf("first read = %s, want %s", got, one)
	}
	runCases(t, h, []apiCase{{"second skier", "POST", "/skiers/1/seasons/2025/days/1/skiers/8", `{"time":217,"liftID":21}`, 201, ""}})
	if got := get(false); got != one {
		t.Errorf("cached read = %s, want the cached %s", got, one)
	}
	if got := get(true); got != two {
		t.Errorf("no-cache read = %s, want %s", got, two)
	}
	if got := get(false); got != two {
		t.Errorf("read after a no-cache read = %s, want the refreshed %s", got, two)
	}
}

// TestApp_QueuedIngest: in queued mode rides are applied by the consumers
// and /queue drains to 0; re-POSTs count once.
func TestApp_QueuedIngest(t *testing.T) {
	store := newFakeStore()
	a := startTestApp(t, store, IngestQueued, "r1")
	h := a.Handler()
	runCases(t, h, []apiCase{{"add season", "POST", "/resorts/3/seasons", `{"year":"2025"}`, 201, ""}})
	e := newExpected()
	for i := range 300 {
		r := Ride{Resort: 3, Season: 2025, Day: 1 + i%2, Skier: 1 + i%37, Lift: 1 + i%40, Time: 1 + (i*7)%360}
		e.add(r)
		for range 1 + i%3 { // re-POSTs
			code, body := do(h, "POST", fmt.Sprintf("/skiers/3/seasons/2025/days/%d/skiers/%d", r.Day, r.Skier), fmt.Sprintf(`{"time":%d,"liftID":%d}`, r.Time, r.Lift))
			if code != 201 {
				t.Fatalf("POST ride %+v = %d %s", r, code, body)
			}
		}
	}
	waitDrained(t, func(p string) (int, string) { return do(h, "GET", p, "") })
	names := map[int]string{3: seedResorts[2]}
	checkAnswers(t, func(p string) (int, string) { return do(h, "GET", p, "") }, e, names, []int{1, 2, 36, 37}, []int{3}, 2025, []int{1, 2})
}

// TestApp_MalformedQueueEntryLeavesNoPending: an entry that cannot be
// decoded is dropped (it would stop its partition), and the rides its
// enqueue counted as pending are taken back with it, so /queue drains.
func TestApp_MalformedQueueEntryLeavesNoPending(t *testing.T) {
	store := newFakeStore()
	a := startTestApp(t, store, IngestQueued, "r1")
	entry := encodeRides(nil, genRides(7, 3, 10))
	entry = entry[:len(entry)-1] // a truncated last ride: the header still counts 3
	res, err := store.Commit(t.Context(), Txn{Then: []Op{
		{Kind: OpPut, Key: queueEntryKey(0, time.Now().UnixNano(), "elsewhere", 1), Value: entry},
		{Kind: OpAdd, Key: queuePendingKey(0), Delta: 3},
	}})
	if err != nil || !res.Succeeded {
		t.Fatalf("enqueue a malformed entry: %v, %+v", err, res)
	}
	waitDrained(t, func(p string) (int, string) { return do(a.Handler(), "GET", p, "") })
	if n := store.counter(queuePendingKey(0)); n != 0 {
		t.Errorf("pending counter of partition 0 = %d after the malformed entry was dropped, want 0", n)
	}
	if kvs, _, err := store.Scan(t.Context(), queueEntryPrefix(0), "", 10); err != nil || len(kvs) != 0 {
		t.Errorf("partition 0 still holds %d entries (%v); want the malformed one dropped", len(kvs), err)
	}
}

// waitDrained waits until GET /queue reports no pending events.
func waitDrained(t *testing.T, get getFunc) {
	t.Helper()
	err := replicationtest.Eventually(30*time.Second, func() error {
		code, body := get("/queue")
		if code != 200 || !strings.Contains(body, `"pendingEvents":0,`) {
			return fmt.Errorf("GET /queue = %d %s", code, body)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("queue did not drain: %v", err)
	}
}
