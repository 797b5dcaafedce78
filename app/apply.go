package app

import (
	"context"
	"fmt"
	"slices"
	"strconv"

	"golang.org/x/sync/errgroup"

	"github.com/ridgeline-kv/ridgeline/client"
)

// applier applies rides to the data model (see the package doc): for each
// skier bucket and each resort-day stripe touched, one Txn (or a few, to
// respect the Txn limits) that creates the rides' markers and adds to the
// counters, guarded by the markers' absence. It is safe for concurrent use;
// applying the same ride twice, concurrently or not, counts it once.
type applier struct {
	store Store
	// sem bounds the Txns in flight over all concurrent Apply calls.
	sem chan struct{}
}

func newApplier(store Store, concurrency int) *applier {
	return &applier{store: store, sem: make(chan struct{}, concurrency)}
}

// applyResult counts what an Apply did.
type applyResult struct {
	Applied    int // rides new to the data model
	Duplicates int // rides already applied (or repeated within the batch)
}

// Apply applies rides and blocks until every one is applied on both sides
// or an error occurred. On error some rides may be applied and others not;
// applying the same rides again completes the job without counting any
// twice. The counts are exact when no error occurred.
func (a *applier) Apply(ctx context.Context, rides []Ride) (applyResult, error) {
	uniq := make([]Ride, 0, len(rides))
	seen := make(map[Ride]struct{}, len(rides))
	for _, r := range rides {
		if _, ok := seen[r]; !ok {
			seen[r] = struct{}{}
			uniq = append(uniq, r)
		}
	}
	res := applyResult{Duplicates: len(rides) - len(uniq)}

	buckets := make(map[int][]Ride)
	stripes := make(map[string][]Ride)
	for _, r := range uniq {
		b := r.Skier % SkierBuckets
		buckets[b] = append(buckets[b], r)
		tag := stripeTag(r.Resort, r.Season, r.Day, stripeOf(r.Skier))
		stripes[tag] = append(stripes[tag], r)
	}

	// Rides of one skier side by side, so that chunks rarely share a
	// skier's unique-skier marker.
	for _, group := range stripes {
		slices.SortFunc(group, func(x, y Ride) int { return x.Skier - y.Skier })
	}

	// A failed chunk does not cancel the others: each chunk that succeeds
	// is progress a retry need not repeat.
	var g errgroup.Group
	gctx := ctx
	newRides := make(chan int, len(uniq)+1)
	for _, group := range buckets {
		for _, chunk := range chunkRides(group, func(rs []Ride) Txn { return skierTxn(rs, nil) }) {
			g.Go(func() error {
				n, err := a.applyChunk(gctx, chunk, skierTxn, skierMarkers)
				newRides <- n
				return err
			})
		}
	}
	for tag, group := range stripes {
		build := func(rs []Ride, known map[string]bool) Txn { return stripeTxn(tag, rs, known) }
		markers := func(rs []Ride) []string { return stripeMarkers(tag, rs) }
		for _, chunk := range chunkRides(group, func(rs []Ride) Txn { return build(rs, nil) }) {
			g.Go(func() error {
				_, err := a.applyChunk(gctx, chunk, build, markers)
				return err
			})
		}
	}
	err := g.Wait()
	close(newRides)
	for n := range newRides {
		res.Applied += n
	}
	res.Duplicates += len(uniq) - res.Applied
	return res, err
}

// applyChunk applies rides with the Txn build makes, given the markers known
// to exist. When a condition fails, it reads the markers and tries again
// without the rides found applied. It returns how many rides it applied.
func (a *applier) applyChunk(ctx context.Context, rides []Ride,
	build func([]Ride, map[string]bool) Txn, markers func([]Ride) []string,
) (int, error) {
	known := make(map[string]bool)
	for attempt := 0; ; attempt++ {
		txn := build(rides, known)
		if len(txn.Then) == 0 {
			return 0, nil // all applied already
		}
		res, err := a.commit(ctx, txn)
		if err != nil {
			return 0, err
		}
		if res.Succeeded {
			return countNew(rides, known, markers), nil
		}
		// A marker exists that we thought absent: find which.
		if attempt > len(rides)+2 {
			return 0, fmt.Errorf("app: applying %d rides: markers keep changing after %d attempts; retry later", len(rides), attempt)
		}
		keys := markers(rides)
		found, err := a.exist(ctx, keys)
		if err != nil {
			return 0, err
		}
		for i, k := range keys {
			if found[i] {
				known[k] = true
			}
		}
	}
}

// countNew counts the rides whose first marker (the ride marker) was not
// known to exist, i.e. the rides the successful Txn created.
func countNew(rides []Ride, known map[string]bool, markers func([]Ride) []string) int {
	n := 0
	for _, r := range rides {
		if !known[markers([]Ride{r})[0]] {
			n++
		}
	}
	return n
}

func (a *applier) commit(ctx context.Context, txn Txn) (*client.TxnResult, error) {
	select {
	case a.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-a.sem }()
	return a.store.Commit(ctx, txn)
}

// exist reports for each key (all in one shard) whether it exists.
func (a *applier) exist(ctx context.Context, keys []string) ([]bool, error) {
	found := make([]bool, 0, len(keys))
	for start := 0; start < len(keys); start += client.MaxTxnOps {
		end := min(start+client.MaxTxnOps, len(keys))
		txn := Txn{Then: make([]Op, 0, end-start)}
		for _, k := range keys[start:end] {
			txn.Then = append(txn.Then, Op{Kind: OpGet, Key: k})
		}
		res, err := a.commit(ctx, txn)
		if err != nil {
			return nil, err
		}
		if len(res.Results) != end-start {
			return nil, fmt.Errorf("app: reading %d markers: store returned %d results", end-start, len(res.Results))
		}
		for _, r := range res.Results {
			found = append(found, r.Found)
		}
	}
	return found, nil
}

// chunkRides splits rides so that the Txn of each chunk (built with no
// marker known) is within the Txn limits.
func chunkRides(rides []Ride, build func([]Ride) Txn) [][]Ride {
	t := build(rides)
	if len(rides) <= 1 || (len(t.If) <= client.MaxTxnOps && len(t.Then)+len(t.Else) <= client.MaxTxnOps) {
		return [][]Ride{rides}
	}
	half := len(rides) / 2
	return append(chunkRides(rides[:half], build), chunkRides(rides[half:], build)...)
}

// skierMarkers are the skier-side markers of rides, one per ride.
func skierMarkers(rides []Ride) []string {
	keys := make([]string, len(rides))
	for i, r := range rides {
		keys[i] = rideKey(r)
	}
	return keys
}

// skierTxn builds the skier-side Txn of rides in one bucket, leaving out
// the rides whose marker is known to exist.
func skierTxn(rides []Ride, known map[string]bool) Txn {
	var txn Txn
	adds := newAdder()
	for _, r := range rides {
		k := rideKey(r)
		if known[k] {
			continue
		}
		v := r.Vertical()
		txn.If = append(txn.If, Absent(k))
		txn.Then = append(txn.Then, Op{Kind: OpPut, Key: k, Value: strconv.AppendInt(nil, v, 10)})
		adds.add(skierDayKey(r.Skier, r.Season, r.Day), v)
		adds.add(skierSeasonKey(r.Skier, r.Resort, r.Season), v)
		adds.add(skierResortDayKey(r.Skier, r.Resort, r.Season, r.Day), v)
	}
	txn.Then = adds.appendOps(txn.Then)
	return txn
}

// stripeMarkers are the markers of rides in one resort-day stripe: each
// ride's marker, then its skier's marker.
func stripeMarkers(tag string, rides []Ride) []string {
	keys := make([]string, 0, 2*len(rides))
	for _, r := range rides {
		keys = append(keys, rdRideKey(tag, r))
	}
	for _, r := range rides {
		keys = append(keys, rdSkierKey(tag, r.Skier))
	}
	return keys
}

// stripeTxn builds the Txn of rides in one resort-day stripe, leaving out
// rides whose marker is known to exist and counting as new only skiers whose
// marker is not known to exist.
func stripeTxn(tag string, rides []Ride, known map[string]bool) Txn {
	var txn Txn
	adds := newAdder()
	newSkiers := make(map[int]bool)
	for _, r := range rides {
		k := rdRideKey(tag, r)
		if known[k] {
			continue
		}
		txn.If = append(txn.If, Absent(k))
		txn.Then = append(txn.Then, Op{Kind: OpPut, Key: k, Value: strconv.AppendInt(nil, r.Vertical(), 10)})
		adds.add(rdCounterKey(tag, counterRides), 1)
		adds.add(rdCounterKey(tag, counterVert), r.Vertical())
		adds.add(rdLiftKey(tag, r.Lift), 1)
		adds.add(rdHourKey(tag, r.Hour()), 1)
		if sk := rdSkierKey(tag, r.Skier); !known[sk] && !newSkiers[r.Skier] {
			newSkiers[r.Skier] = true
			txn.If = append(txn.If, Absent(sk))
			txn.Then = append(txn.Then, Op{Kind: OpPut, Key: sk, Value: []byte("1")})
			adds.add(rdCounterKey(tag, counterSkiers), 1)
		}
	}
	txn.Then = adds.appendOps(txn.Then)
	return txn
}

// adder merges counter additions per key, in first-use order.
type adder struct {
	keys  []string
	delta map[string]int64
}

func newAdder() *adder { return &adder{delta: make(map[string]int64)} }

func (a *adder) add(key string, d int64) {
	if _, ok := a.delta[key]; !ok {
		a.keys = append(a.keys, key)
	}
	a.delta[key] += d
}

func (a *adder) appendOps(ops []Op) []Op {
	for _, k := range a.keys {
		ops = append(ops, Op{Kind: OpAdd, Key: k, Delta: a.delta[k]})
	}
	return ops
}
