package app

import (
	"context"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/sync/singleflight"
)

// aggCache caches expensive aggregate answers for a short TTL: an answer
// is at most TTL old. Concurrent misses of one key share one read
// (singleflight). A bypassing read (Cache-Control: no-cache) reads through
// on its own, so it sees every write acknowledged before it, and refreshes
// the cache. Safe for concurrent use.
//
// Entries carry their expiry and are checked on read, over a plain LRU:
// golang-lru's expirable variant runs a goroutine that cannot be stopped.
type aggCache struct {
	lru     *lru.Cache[string, cacheEntry] // nil: caching disabled
	ttl     time.Duration
	flight  singleflight.Group
	timeout time.Duration
	m       *metrics
}

func newAggCache(size int, ttl, timeout time.Duration, m *metrics) *aggCache {
	c := &aggCache{ttl: ttl, timeout: timeout, m: m}
	if ttl > 0 {
		c.lru, _ = lru.New[string, cacheEntry](size) // errs only for size ≤ 0, which Validate refuses
	}
	return c
}

type cacheEntry struct {
	val     any
	expires time.Time
}

func (c *aggCache) add(key string, v any) {
	c.lru.Add(key, cacheEntry{val: v, expires: time.Now().Add(c.ttl)})
}

func (c *aggCache) get(key string) (any, bool) {
	e, ok := c.lru.Get(key)
	if !ok || time.Now().After(e.expires) {
		return nil, false
	}
	return e.val, true
}

// cached returns the cached answer for key, or reads it with fetch.
func cached[T any](ctx context.Context, c *aggCache, key string, bypass bool, fetch func(context.Context) (T, error)) (T, error) {
	if c.lru == nil {
		return fetch(ctx)
	}
	if bypass {
		v, err := fetch(ctx)
		if err == nil {
			c.add(key, v)
		}
		return v, err
	}
	if v, ok := c.get(key); ok {
		c.m.cacheHits.Inc()
		return v.(T), nil
	}
	c.m.cacheMisses.Inc()
	// The shared read must not fail because the request that started it
	// went away.
	ch := c.flight.DoChan(key, func() (any, error) {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.timeout)
		defer cancel()
		v, err := fetch(fctx)
		if err == nil {
			c.add(key, v)
		}
		return v, err
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			var zero T
			return zero, res.Err
		}
		return res.Val.(T), nil
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
}
