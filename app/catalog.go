package app

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/ridgeline-kv/ridgeline/client"
)

// SeedResorts are the resorts every replica creates at start-up, IDs 1..10.
var seedResorts = [...]string{
	"Crystal Mountain", "Stevens Pass", "Snoqualmie Summit", "Mt. Baker", "White Pass",
	"Mission Ridge", "Alpental", "Mt. Hood Meadows", "Timberline", "Whistler Blackcomb",
}

// catalog answers which resorts and seasons exist. Neither is ever removed,
// so it remembers what it has seen to exist (that never changes an answer)
// and asks the store about everything else.
type catalog struct {
	store   Store
	resorts sync.Map // int → string (name)
	seasons sync.Map // [2]int{resort, year} → struct{}
}

// seed creates the seeded resorts that do not exist yet. Replicas seeding
// concurrently do not conflict: each resort is created only if absent.
func (c *catalog) seed(ctx context.Context) error {
	for i, name := range seedResorts {
		k := resortKey(i + 1)
		_, err := c.store.Commit(ctx, Txn{If: []Cond{Absent(k)}, Then: []Op{{Kind: OpPut, Key: k, Value: []byte(name)}}})
		if err != nil {
			return err
		}
	}
	return nil
}

// resortName returns the resort's name, or a 404 error when it does not exist.
func (c *catalog) resortName(ctx context.Context, id int) (string, error) {
	if v, ok := c.resorts.Load(id); ok {
		return v.(string), nil
	}
	val, _, err := c.store.Get(ctx, resortKey(id))
	if errors.Is(err, client.ErrNotFound) {
		return "", notFound("resort %d does not exist; GET /resorts lists the resorts", id)
	}
	if err != nil {
		return "", err
	}
	name := string(val)
	c.resorts.Store(id, name)
	return name, nil
}

// checkSeason returns a 404 error unless the resort exists and has the season.
func (c *catalog) checkSeason(ctx context.Context, resort, year int) (name string, err error) {
	if name, err = c.resortName(ctx, resort); err != nil {
		return "", err
	}
	if _, ok := c.seasons.Load([2]int{resort, year}); ok {
		return name, nil
	}
	_, _, err = c.store.Get(ctx, seasonKey(resort, year))
	if errors.Is(err, client.ErrNotFound) {
		return "", notFound("season %d does not exist at resort %d; add it with POST /resorts/%d/seasons {\"year\": \"%d\"}", year, resort, resort, year)
	}
	if err != nil {
		return "", err
	}
	c.seasons.Store([2]int{resort, year}, struct{}{})
	return name, nil
}

// addSeason adds a season to a resort; adding it again is not an error.
func (c *catalog) addSeason(ctx context.Context, resort, year int) error {
	if _, err := c.resortName(ctx, resort); err != nil {
		return err
	}
	k := seasonKey(resort, year)
	if _, err := c.store.Commit(ctx, Txn{If: []Cond{Absent(k)}, Then: []Op{{Kind: OpPut, Key: k, Value: []byte("1")}}}); err != nil {
		return err
	}
	c.seasons.Store([2]int{resort, year}, struct{}{})
	return nil
}

// resortInfo is one resort of GET /resorts.
type resortInfo struct {
	Name string `json:"resortName"`
	ID   int    `json:"resortID"`
}

// listResorts returns every resort, by ID.
func (c *catalog) listResorts(ctx context.Context) ([]resortInfo, error) {
	kvs, err := scanAll(ctx, c.store, resortPrefix)
	if err != nil {
		return nil, err
	}
	out := make([]resortInfo, 0, len(kvs))
	for _, kv := range kvs {
		id, err := strconv.Atoi(strings.TrimPrefix(kv.Key, resortPrefix))
		if err != nil {
			continue // not a resort key
		}
		out = append(out, resortInfo{Name: string(kv.Value), ID: id})
	}
	slices.SortFunc(out, func(a, b resortInfo) int { return a.ID - b.ID })
	return out, nil
}

// listSeasons returns the resort's seasons, ascending, or a 404 error when
// the resort does not exist.
func (c *catalog) listSeasons(ctx context.Context, resort int) ([]string, error) {
	if _, err := c.resortName(ctx, resort); err != nil {
		return nil, err
	}
	prefix := seasonPrefix(resort)
	kvs, err := scanAll(ctx, c.store, prefix)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(kvs))
	for _, kv := range kvs {
		out = append(out, strings.TrimPrefix(kv.Key, prefix))
	}
	slices.Sort(out)
	return out, nil
}

// scanAll returns every key with prefix, reading page after page.
func scanAll(ctx context.Context, s Store, prefix string) ([]client.KV, error) {
	var out []client.KV
	after := ""
	for {
		kvs, more, err := s.Scan(ctx, prefix, after, client.DefaultScanLimit)
		if err != nil {
			return nil, err
		}
		out = append(out, kvs...)
		if !more || len(kvs) == 0 {
			return out, nil
		}
		after = kvs[len(kvs)-1].Key
	}
}
