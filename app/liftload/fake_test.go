package liftload

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
)

// fakeService implements the contract of /tmp/briefs/contract.md in memory,
// for unit tests of the load client only.
type fakeService struct {
	mu      sync.Mutex
	seasons map[int]map[string]bool // resort → seasons
	rides   map[Ride]bool           // distinct rides of season 2025
	posts   int                     // accepted ride POSTs
	// attempts counts attempts per ride request (path + body).
	attempts map[string]int

	// failFirst fails the first failFirst attempts of every ride POST with 500.
	failFirst int
	// pending is what GET /queue reports; each poll decrements it.
	pending int
	// corrupt, when set, may change the answer of a GET before it is sent.
	corrupt func(path string, v int64) int64

	hits     atomic.Int64
	noCache  atomic.Int64
	getPaths sync.Map // path → true, GETs of the GET phase
}

func newFakeService() *fakeService {
	return &fakeService{seasons: map[int]map[string]bool{}, rides: map[Ride]bool{}, attempts: map[string]int{}}
}

// start serves f on a port-0 listener closed at the end of the test.
func (f *fakeService) start(t *testing.T) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("POST /resorts/{resort}/seasons", f.postSeason)
	mux.HandleFunc("POST /skiers/{resort}/seasons/{season}/days/{day}/skiers/{skier}", f.postRide)
	mux.HandleFunc("GET /skiers/{resort}/seasons/{season}/days/{day}/skiers/{skier}", f.getSkierDay)
	mux.HandleFunc("GET /skiers/{skier}/vertical", f.getVertical)
	mux.HandleFunc("GET /resorts/{resort}/seasons/{season}/day/{day}/skiers", f.getDaySkiers)
	mux.HandleFunc("GET /resorts/{resort}/seasons/{season}/day/{day}/vertical", f.getDayTotals)
	mux.HandleFunc("GET /queue", f.getQueue)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.hits.Add(1)
		if r.Header.Get("Cache-Control") == "no-cache" {
			f.noCache.Add(1)
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func fail(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	fmt.Fprintf(w, `{"message":%q}`, msg)
}

func reply(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func pathInt(r *http.Request, name string) (int, bool) {
	n, err := strconv.Atoi(r.PathValue(name))
	return n, err == nil && n >= 1
}

func (f *fakeService) postSeason(w http.ResponseWriter, r *http.Request) {
	resort, ok := pathInt(r, "resort")
	var body struct{ Year string }
	if !ok || json.NewDecoder(r.Body).Decode(&body) != nil || len(body.Year) != 4 {
		fail(w, 400, "invalid inputs")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.seasons[resort] == nil {
		f.seasons[resort] = map[string]bool{}
	}
	f.seasons[resort][body.Year] = true
	w.WriteHeader(201)
}

func (f *fakeService) postRide(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	resort, ok1 := pathInt(r, "resort")
	day, ok2 := pathInt(r, "day")
	skier, ok3 := pathInt(r, "skier")
	var body struct {
		Time   *int `json:"time"`
		LiftID *int `json:"liftID"`
	}
	if !ok1 || !ok2 || !ok3 || json.Unmarshal(raw, &body) != nil || body.Time == nil || body.LiftID == nil {
		fail(w, 400, "invalid inputs")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	id := r.URL.Path + string(raw)
	f.attempts[id]++
	if f.attempts[id] <= f.failFirst {
		fail(w, 500, "injected failure")
		return
	}
	if !f.seasons[resort][r.PathValue("season")] {
		fail(w, 404, "season not found: add it with POST /resorts/{resortID}/seasons")
		return
	}
	f.posts++
	f.rides[Ride{Resort: uint8(resort), Day: uint16(day), Skier: uint32(skier), Lift: uint8(*body.LiftID), Time: uint16(*body.Time)}] = true
	w.WriteHeader(201)
}

// answer applies corrupt to v.
func (f *fakeService) answer(r *http.Request, v int64) int64 {
	if f.corrupt != nil {
		return f.corrupt(r.URL.Path, v)
	}
	return v
}

func (f *fakeService) getSkierDay(w http.ResponseWriter, r *http.Request) {
	f.getPaths.Store(r.URL.String(), true)
	resort, _ := pathInt(r, "resort")
	day, _ := pathInt(r, "day")
	skier, _ := pathInt(r, "skier")
	f.mu.Lock()
	var vert int64
	found := false
	for ride := range f.rides {
		if int(ride.Resort) == resort && int(ride.Day) == day && int(ride.Skier) == skier {
			vert += ride.Vertical()
			found = true
		}
	}
	f.mu.Unlock()
	if !found {
		fail(w, 404, "data not found")
		return
	}
	reply(w, f.answer(r, vert))
}

func (f *fakeService) getVertical(w http.ResponseWriter, r *http.Request) {
	f.getPaths.Store(r.URL.String(), true)
	if _, ok := pathInt(r, "skier"); !ok || r.URL.Query().Get("resort") == "" {
		fail(w, 400, "invalid inputs")
		return
	}
	fail(w, 404, "data not found")
}

func (f *fakeService) dayFigures(r *http.Request) (skiers, rides int, vert int64) {
	resort, _ := pathInt(r, "resort")
	day, _ := pathInt(r, "day")
	seen := map[uint32]bool{}
	f.mu.Lock()
	defer f.mu.Unlock()
	for ride := range f.rides {
		if int(ride.Resort) == resort && int(ride.Day) == day {
			seen[ride.Skier] = true
			rides++
			vert += ride.Vertical()
		}
	}
	return len(seen), rides, vert
}

func (f *fakeService) getDaySkiers(w http.ResponseWriter, r *http.Request) {
	f.getPaths.Store(r.URL.String(), true)
	skiers, _, _ := f.dayFigures(r)
	reply(w, map[string]any{"time": "Resort", "numSkiers": f.answer(r, int64(skiers))})
}

func (f *fakeService) getDayTotals(w http.ResponseWriter, r *http.Request) {
	_, rides, vert := f.dayFigures(r)
	reply(w, map[string]any{"numRides": rides, "totalVert": f.answer(r, vert)})
}

func (f *fakeService) getQueue(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	p := f.pending
	if f.pending > 0 {
		f.pending--
	}
	f.mu.Unlock()
	reply(w, map[string]any{"mode": "queued", "pendingEvents": p, "oldestAgeSeconds": 0.1})
}
