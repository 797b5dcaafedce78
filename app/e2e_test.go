package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ridgeline-kv/ridgeline/client"
	"github.com/ridgeline-kv/ridgeline/replication/replicationtest"
)

// TestE2E_TwoReplicas runs both ingest modes with two replicas on one real
// in-process cluster: a few thousand POSTs with re-POSTs spread over both
// replicas, one replica stopped half-way, then every answer is checked
// exactly against the rides sent.
func TestE2E_TwoReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	c := replicationtest.NewCluster(t, replicationtest.Options{Nodes: 3, Shards: 8})
	t.Run("sync", func(t *testing.T) { runE2E(t, c.Endpoints(), IngestSync, 2024, 7) })
	t.Run("queued", func(t *testing.T) { runE2E(t, c.Endpoints(), IngestQueued, 2025, 8) })
}

// stuckStore fails every Txn of the data model (not the queue's or the
// catalogue's): a replica over it enqueues but its consumers cannot apply,
// so its partitions keep a backlog until another replica takes them over.
type stuckStore struct{ Store }

func (s stuckStore) Commit(ctx context.Context, txn Txn) (*client.TxnResult, error) {
	for _, op := range txn.Then {
		if strings.HasPrefix(op.Key, "{s:") || strings.HasPrefix(op.Key, "{rd:") {
			return nil, fmt.Errorf("stuckStore: refusing to apply: %w", client.ErrUnavailable)
		}
	}
	return s.Store.Commit(ctx, txn)
}

func runE2E(t *testing.T, endpoints []string, mode IngestMode, season int, seed uint64) {
	const (
		skiers  = 300
		days    = 2
		workers = 16
	)
	distinct := 3000
	if raceEnabled {
		distinct = 500
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	adjust := func(c *Config) {
		c.Listener = nil
		c.Listen = "127.0.0.1:0"
		c.StatsInterval = 200 * time.Millisecond
		c.Queue.LeaseTTL = 2 * time.Second
	}
	var storeA Store
	if mode == IngestQueued {
		cl, err := client.New(ctx, client.Config{Endpoints: endpoints})
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		storeA = stuckStore{ClientStore{C: cl}}
	}
	a := startTestApp(t, storeA, mode, string(mode)+"-a", adjust, func(c *Config) { c.Endpoints = endpoints })
	b := startTestApp(t, nil, mode, string(mode)+"-b", adjust, func(c *Config) { c.Endpoints = endpoints })
	urls := []string{"http://" + a.Addr(), "http://" + b.Addr()}
	hc := &http.Client{Timeout: 20 * time.Second}
	call := func(url, method, path, body string, noCache bool) (int, string, error) {
		req, err := http.NewRequestWithContext(ctx, method, url+path, strings.NewReader(body))
		if err != nil {
			return 0, "", err
		}
		if noCache {
			req.Header.Set("Cache-Control", "no-cache")
		}
		resp, err := hc.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), err
	}

	for resort := 1; resort <= 10; resort++ {
		if code, body, err := call(urls[resort%2], "POST", fmt.Sprintf("/resorts/%d/seasons", resort), fmt.Sprintf(`{"year":"%d"}`, season), false); code != 201 {
			t.Fatalf("POST season = %d %s %v", code, body, err)
		}
	}

	// Distinct rides, then every tenth one again (re-POSTs, some concurrent).
	rng := rand.New(rand.NewPCG(seed, 42))
	e := newExpected()
	var posts []Ride
	for len(e.rides) < distinct {
		r := Ride{Resort: 1 + rng.IntN(10), Season: season, Day: 1 + rng.IntN(days), Skier: 1 + rng.IntN(skiers), Lift: 1 + rng.IntN(40), Time: 1 + rng.IntN(360)}
		if !e.rides[r] {
			e.add(r)
			posts = append(posts, r)
		}
	}
	for i := 0; i < distinct; i += 10 {
		posts = append(posts, posts[i])
	}
	rng.Shuffle(len(posts), func(i, j int) { posts[i], posts[j] = posts[j], posts[i] })

	// Send them; a failed POST is retried on the other replica.
	var acked atomic.Int64
	aStopped := make(chan struct{})
	half := make(chan struct{})
	var halfOnce sync.Once
	work := make(chan Ride)
	var wg sync.WaitGroup
	var failed atomic.Int64
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range work {
				path := fmt.Sprintf("/skiers/%d/seasons/%d/days/%d/skiers/%d", r.Resort, r.Season, r.Day, r.Skier)
				body := fmt.Sprintf(`{"time":%d,"liftID":%d}`, r.Time, r.Lift)
				ok := false
				for attempt := 0; attempt < 20 && !ok; attempt++ {
					code, resp, err := call(urls[(w+attempt)%2], "POST", path, body, false)
					ok = code == 201
					if !ok && attempt > 1 && ctx.Err() == nil {
						t.Logf("POST %s %s attempt %d: %d %s %v", path, body, attempt, code, resp, err)
					}
				}
				if !ok {
					failed.Add(1)
					continue
				}
				if acked.Add(1) == int64(len(posts)/2) {
					halfOnce.Do(func() { close(half) })
				}
			}
		}()
	}
	// Stop replica A half-way: gracefully in sync mode, as if it died in
	// queued mode (its leases expire; its backlog must be taken over).
	go func() {
		defer close(aStopped)
		select {
		case <-half:
		case <-ctx.Done():
			return
		}
		if mode == IngestQueued {
			code, body, _ := call(urls[1], "GET", "/queue", "", true)
			if !strings.Contains(body, `"mode":"queued"`) || strings.Contains(body, `"pendingEvents":0,`) {
				t.Errorf("before stopping A: GET /queue = %d %s; want a backlog in A's partitions", code, body)
			}
			a.Close()
			return
		}
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := a.Shutdown(sctx); err != nil {
			t.Errorf("Shutdown A: %v", err)
		}
	}()
	start := time.Now()
	for _, r := range posts {
		work <- r
	}
	close(work)
	wg.Wait()
	<-aStopped
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d POSTs failed after retries", n)
	}

	getB := func(path string) (int, string) {
		code, body, err := call(urls[1], "GET", path, "", true)
		if err != nil && !errors.Is(err, context.Canceled) {
			return 0, err.Error()
		}
		return code, body
	}
	t.Logf("%s: %d POSTs (%d distinct rides) in %v", mode, len(posts), distinct, time.Since(start).Round(time.Millisecond))
	start = time.Now()
	waitDrained(t, getB)
	t.Logf("%s: queue drained %v later", mode, time.Since(start).Round(time.Millisecond))
	start = time.Now()
	defer func() { t.Logf("%s: answers checked in %v", mode, time.Since(start).Round(time.Millisecond)) }()
	names := make(map[int]string)
	resorts := make([]int, 10)
	for i := range resorts {
		resorts[i] = i + 1
		names[i+1] = seedResorts[i]
	}
	sample := make([]int, 0, 60)
	for s := 1; s <= skiers; s += 5 {
		sample = append(sample, s)
	}
	checkAnswers(t, getB, e, names, sample, resorts, season, []int{1, 2})

	// Both replicas' requests are in /statistics.
	code, body := getB("/statistics")
	if code != 200 || !strings.Contains(body, `"URL":"/skiers/{resortID}/seasons/{seasonID}/days/{dayID}/skiers/{skierID}","operation":"POST"`) {
		t.Errorf("GET /statistics = %d %s", code, body)
	}
}
