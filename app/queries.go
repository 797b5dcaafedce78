package app

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/ridgeline-kv/ridgeline/client"
)

// reader answers the queries from the data model (see the package doc).
// Skier queries read one shard; resort-day queries read the Stripes
// stripes concurrently and sum them.
type reader struct{ store Store }

// counter reads a counter; an absent counter is 0.
func (q reader) counter(ctx context.Context, key string) (int64, error) {
	v, _, err := q.store.Get(ctx, key)
	if errors.Is(err, client.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return parseCounter(key, v)
}

func parseCounter(key string, v []byte) (int64, error) {
	n, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("app: counter %q holds %q, not an integer: the data is corrupt", key, v)
	}
	return n, nil
}

// skierDayVertical is the skier's vertical at a resort on a day (endpoint 2).
func (q reader) skierDayVertical(ctx context.Context, skier, resort, season, day int) (int64, error) {
	return q.counter(ctx, skierResortDayKey(skier, resort, season, day))
}

// seasonVert is one entry of endpoint 3.
type seasonVert struct {
	Season string `json:"seasonID"`
	Vert   int64  `json:"totalVert"`
}

// skierVertical sums the skier's vertical per season over resorts (endpoint
// 3): every season with rides when seasons is empty, else the seasons
// asked for (0 when none), ascending.
func (q reader) skierVertical(ctx context.Context, skier int, resorts, seasons []int) ([]seasonVert, error) {
	var mu sync.Mutex
	sums := make(map[int]int64)
	for _, s := range seasons {
		sums[s] = 0
	}
	g, gctx := errgroup.WithContext(ctx)
	for _, resort := range resorts {
		g.Go(func() error {
			prefix := skierSeasonsPrefix(skier, resort)
			kvs, err := scanAll(gctx, q.store, prefix)
			if err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			for _, kv := range kvs {
				season, err := strconv.Atoi(strings.TrimPrefix(kv.Key, prefix))
				if err != nil {
					continue
				}
				if _, want := sums[season]; len(seasons) > 0 && !want {
					continue
				}
				v, err := parseCounter(kv.Key, kv.Value)
				if err != nil {
					return err
				}
				sums[season] += v
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	out := make([]seasonVert, 0, len(sums))
	for _, s := range slices.Sorted(maps.Keys(sums)) {
		out = append(out, seasonVert{Season: seasonString(s), Vert: sums[s]})
	}
	return out, nil
}

// dayVert is one day of a skier's season.
type dayVert struct {
	Day  int   `json:"dayID"`
	Vert int64 `json:"totalVert"`
}

// skierDays lists the days the skier skied in a season with their vertical
// over all resorts, ascending (Q1, Q2).
func (q reader) skierDays(ctx context.Context, skier, season int) ([]dayVert, error) {
	prefix := skierDaysPrefix(skier, season)
	kvs, err := scanAll(ctx, q.store, prefix)
	if err != nil {
		return nil, err
	}
	out := make([]dayVert, 0, len(kvs))
	for _, kv := range kvs {
		day, err := strconv.Atoi(strings.TrimPrefix(kv.Key, prefix))
		if err != nil {
			continue
		}
		v, err := parseCounter(kv.Key, kv.Value)
		if err != nil {
			return nil, err
		}
		out = append(out, dayVert{Day: day, Vert: v})
	}
	return out, nil // keys are zero-padded: already ascending
}

// liftRide is one ride of a skier's day (Q3).
type liftRide struct {
	Resort int `json:"resortID"`
	Lift   int `json:"liftID"`
	Time   int `json:"time"`
}

// skierRides lists the skier's rides of a day by time (Q3).
func (q reader) skierRides(ctx context.Context, skier, season, day int) ([]liftRide, error) {
	prefix := skierDayRidesPrefix(skier, season, day)
	kvs, err := scanAll(ctx, q.store, prefix)
	if err != nil {
		return nil, err
	}
	out := make([]liftRide, 0, len(kvs))
	for _, kv := range kvs {
		// <time:04>/<resort>/<lift>
		parts := strings.Split(strings.TrimPrefix(kv.Key, prefix), "/")
		if len(parts) != 3 {
			continue
		}
		t, err1 := strconv.Atoi(parts[0])
		res, err2 := strconv.Atoi(parts[1])
		lift, err3 := strconv.Atoi(parts[2])
		if err1 != nil || err2 != nil || err3 != nil {
			continue
		}
		out = append(out, liftRide{Resort: res, Lift: lift, Time: t})
	}
	slices.SortStableFunc(out, func(a, b liftRide) int {
		if a.Time != b.Time {
			return a.Time - b.Time
		}
		if a.Resort != b.Resort {
			return a.Resort - b.Resort
		}
		return a.Lift - b.Lift
	})
	return out, nil
}

// dayTotals are a resort-day's counters summed over its stripes.
type dayTotals struct {
	Skiers, Rides, Vert int64
}

// forStripes runs fn for every stripe of a resort-day concurrently.
func forStripes(ctx context.Context, resort, season, day int, fn func(ctx context.Context, tag string) error) error {
	g, gctx := errgroup.WithContext(ctx)
	for k := range Stripes {
		tag := stripeTag(resort, season, day, k)
		g.Go(func() error { return fn(gctx, tag) })
	}
	return g.Wait()
}

// dayTotals reads a resort-day's unique skiers, rides and vertical
// (endpoint 7 and the totals endpoint).
func (q reader) dayTotals(ctx context.Context, resort, season, day int) (dayTotals, error) {
	var mu sync.Mutex
	var t dayTotals
	err := forStripes(ctx, resort, season, day, func(ctx context.Context, tag string) error {
		prefix := tag + rdCounterDir
		kvs, _, err := q.store.Scan(ctx, prefix, "", 16)
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		for _, kv := range kvs {
			v, err := parseCounter(kv.Key, kv.Value)
			if err != nil {
				return err
			}
			switch strings.TrimPrefix(kv.Key, prefix) {
			case counterSkiers:
				t.Skiers += v
			case counterRides:
				t.Rides += v
			case counterVert:
				t.Vert += v
			}
		}
		return nil
	})
	return t, err
}

// liftRides counts the rides on a lift on a resort-day (Q5).
func (q reader) liftRides(ctx context.Context, resort, season, day, lift int) (int64, error) {
	var mu sync.Mutex
	var n int64
	err := forStripes(ctx, resort, season, day, func(ctx context.Context, tag string) error {
		v, err := q.counter(ctx, rdLiftKey(tag, lift))
		mu.Lock()
		n += v
		mu.Unlock()
		return err
	})
	return n, err
}

// hourRides is one hour of Q6.
type hourRides struct {
	Hour  int   `json:"hour"`
	Rides int64 `json:"numRides"`
}

// hours counts a resort-day's rides per hour, hours with rides only,
// ascending (Q6).
func (q reader) hours(ctx context.Context, resort, season, day int) ([]hourRides, error) {
	var mu sync.Mutex
	sums := make(map[int]int64)
	err := forStripes(ctx, resort, season, day, func(ctx context.Context, tag string) error {
		prefix := rdHoursPrefix(tag)
		kvs, err := scanAll(ctx, q.store, prefix)
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		for _, kv := range kvs {
			h, err := strconv.Atoi(strings.TrimPrefix(kv.Key, prefix))
			if err != nil {
				continue
			}
			v, err := parseCounter(kv.Key, kv.Value)
			if err != nil {
				return err
			}
			sums[h] += v
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]hourRides, 0, len(sums))
	for _, h := range slices.Sorted(maps.Keys(sums)) {
		if sums[h] > 0 {
			out = append(out, hourRides{Hour: h, Rides: sums[h]})
		}
	}
	return out, nil
}
