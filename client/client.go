package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ridgeline-kv/ridgeline/replication/kvpb"
	"github.com/ridgeline-kv/ridgeline/ring"
)

// minAsyncRefreshInterval spaces background map refreshes.
const minAsyncRefreshInterval = 100 * time.Millisecond

// Client is a connection to a Ridgeline cluster. It is safe for concurrent
// use; create one with New and share it.
type Client struct {
	cfg  Config
	log  *slog.Logger
	pool *connPool

	routes   atomic.Pointer[routeTable]
	routesMu sync.Mutex // serialises publishing a new route table

	sessions sessionPool

	refreshMu   sync.Mutex
	refreshing  *refreshCall
	lastRefresh time.Time

	baseCtx   context.Context // cancelled by Close
	cancel    context.CancelFunc
	done      chan struct{} // closed by Close
	wg        sync.WaitGroup
	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error
}

// New validates cfg, discovers the cluster from the first endpoint that
// answers (all are tried concurrently, and again with backoff until
// cfg.DialTimeout or ctx ends), and returns a Client with the cluster map
// cached. It blocks until then.
func New(ctx context.Context, cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}
	cfg = cfg.withDefaults()
	c := &Client{
		cfg:  cfg,
		log:  cfg.Logger,
		pool: newConnPool(cfg),
		done: make(chan struct{}),
	}
	c.baseCtx, c.cancel = context.WithCancel(context.Background())

	dctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
	defer cancel()
	var errs []error
	for attempt := 0; ; attempt++ {
		resp, err := c.fetchMap(dctx, cfg.Endpoints, 0)
		if err == nil {
			if _, err = c.applyMap(resp); err == nil {
				return c, nil
			}
		}
		errs = append(errs[:0], err)
		d := min(backoffCap, backoffBase<<min(attempt, 10))
		select {
		case <-dctx.Done():
			c.Close()
			return nil, newError(fmt.Sprintf("client: no endpoint of %v returned a cluster map within %v: %v; check --endpoints and that the cluster is bootstrapped",
				cfg.Endpoints, cfg.DialTimeout, errors.Join(errs...)), ErrUnavailable)
		case <-time.After(d):
		}
	}
}

// Close releases the client's connections and stops its background work. It
// is idempotent; calls in flight and later calls fail with ErrClosed.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		c.closed.Store(true)
		c.refreshMu.Lock() // no refresh starts after this
		close(c.done)
		c.refreshMu.Unlock()
		c.cancel()
		c.wg.Wait()
		c.closeErr = c.pool.close()
	})
	return c.closeErr
}

// Map returns the cached cluster map. It must not be modified.
func (c *Client) Map() *ring.Map {
	if rt := c.routes.Load(); rt != nil {
		return rt.m
	}
	return nil
}

// refreshCall is one map refresh in flight, shared by everyone who wants it.
type refreshCall struct {
	done chan struct{}
	err  error
}

// refreshAsync starts a background map refresh unless one is running or one
// finished very recently.
func (c *Client) refreshAsync() {
	c.refreshMu.Lock()
	recent := c.refreshing == nil && time.Since(c.lastRefresh) < minAsyncRefreshInterval
	c.refreshMu.Unlock()
	if !recent {
		c.startRefresh()
	}
}

// refreshSync refreshes the map (joining a refresh in flight) and waits for
// it or ctx.
func (c *Client) refreshSync(ctx context.Context) error {
	call := c.startRefresh()
	select {
	case <-call.done:
		return call.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *Client) startRefresh() *refreshCall {
	c.refreshMu.Lock()
	defer c.refreshMu.Unlock()
	if c.refreshing != nil {
		return c.refreshing
	}
	call := &refreshCall{done: make(chan struct{})}
	if c.closed.Load() {
		call.err = ErrClosed
		close(call.done)
		return call
	}
	c.refreshing = call
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		err := c.refresh()
		c.refreshMu.Lock()
		c.refreshing = nil
		c.lastRefresh = time.Now()
		c.refreshMu.Unlock()
		call.err = err
		close(call.done)
	}()
	return call
}

// refresh asks the known nodes, then the configured endpoints, for a map
// newer than the cached one and publishes it.
func (c *Client) refresh() error {
	ctx, cancel := context.WithTimeout(c.baseCtx, c.cfg.DialTimeout)
	defer cancel()
	rt := c.routes.Load()
	var addrs []string
	seen := make(map[string]bool)
	if rt != nil {
		for _, n := range rt.m.Nodes {
			if n.State != ring.NodeRemoved && n.Addr != "" && !seen[n.Addr] {
				seen[n.Addr] = true
				addrs = append(addrs, n.Addr)
			}
		}
	}
	rand.Shuffle(len(addrs), func(i, j int) { addrs[i], addrs[j] = addrs[j], addrs[i] })
	for _, a := range c.cfg.Endpoints {
		if !seen[a] {
			seen[a] = true
			addrs = append(addrs, a)
		}
	}
	var minEpoch uint64
	if rt != nil {
		minEpoch = rt.epoch() + 1
	}
	resp, err := c.fetchMap(ctx, addrs, minEpoch)
	if err != nil {
		c.log.Debug("client: map refresh failed", "err", err)
		return err
	}
	changed, err := c.applyMap(resp)
	if changed {
		c.log.Debug("client: cluster map refreshed", "epoch", resp.GetMap().GetEpoch())
	}
	return err
}

// fetchMap asks addrs concurrently for the cluster map. It returns the first
// answer with epoch ≥ minEpoch, or else the newest answer once all replied.
func (c *Client) fetchMap(ctx context.Context, addrs []string, minEpoch uint64) (*kvpb.ClusterMapResponse, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type answer struct {
		addr string
		resp *kvpb.ClusterMapResponse
		err  error
	}
	ch := make(chan answer, len(addrs))
	for _, a := range addrs {
		cn, err := c.pool.get(a)
		if err != nil {
			ch <- answer{a, nil, err}
			continue
		}
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			actx, acancel := context.WithTimeout(ctx, c.cfg.AttemptTimeout)
			defer acancel()
			resp, err := cn.admin.ClusterMap(actx, &kvpb.ClusterMapRequest{MinEpoch: minEpoch})
			if err == nil && (resp.GetMap() == nil || resp.GetMap().GetShardCount() == 0) {
				err = errors.New("node has no cluster map yet (not bootstrapped?)")
			}
			ch <- answer{a, resp, err}
		}()
	}
	var best *kvpb.ClusterMapResponse
	var errs []error
	for range addrs {
		a := <-ch
		if a.err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", a.addr, fromStatus(a.err)))
			continue
		}
		if a.resp.GetMap().GetEpoch() >= minEpoch {
			return a.resp, nil
		}
		if best == nil || a.resp.GetMap().GetEpoch() > best.GetMap().GetEpoch() {
			best = a.resp
		}
	}
	if best != nil {
		return best, nil
	}
	if len(errs) == 0 {
		return nil, errors.New("no endpoints")
	}
	return nil, errors.Join(errs...)
}

// applyMap publishes resp's map if it is newer than the cached one.
func (c *Client) applyMap(resp *kvpb.ClusterMapResponse) (bool, error) {
	m, err := ring.FromProto(resp.GetMap())
	if err != nil {
		return false, err
	}
	c.routesMu.Lock()
	defer c.routesMu.Unlock()
	old := c.routes.Load()
	if old != nil && m.Epoch <= old.epoch() {
		return false, nil
	}
	rt, err := buildRoutes(c.pool, m, resp.GetLeaders(), old)
	if err != nil {
		return false, err
	}
	c.routes.Store(rt)
	return true, nil
}
