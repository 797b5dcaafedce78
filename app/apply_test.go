package app

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/ridgeline-kv/ridgeline/client"
)

// genRides makes n random rides (seeded) over few skiers, so that buckets
// and stripes hold many rides and batches need several Txns.
func genRides(seed uint64, n, skiers int) []Ride {
	rng := rand.New(rand.NewPCG(seed, 1))
	out := make([]Ride, n)
	for i := range out {
		out[i] = Ride{
			Resort: 1 + rng.IntN(3), Season: 2025, Day: 1 + rng.IntN(2),
			Skier: 1 + rng.IntN(skiers), Lift: 1 + rng.IntN(40), Time: 1 + rng.IntN(360),
		}
	}
	return out
}

// applyUntilDone applies rides, retrying errors the way a consumer
// re-delivers a failed batch.
func applyUntilDone(t *testing.T, a *applier, rides []Ride) {
	t.Helper()
	for attempt := 0; ; attempt++ {
		_, err := a.Apply(context.Background(), rides)
		if err == nil {
			return
		}
		if attempt > 100 {
			t.Errorf("Apply still failing after %d attempts: %v", attempt, err)
			return
		}
	}
}

// TestApplier_Apply_CountsOnce applies overlapping batches concurrently,
// with some outcomes lost after the write, and checks that every counter
// counts each distinct ride exactly once.
func TestApplier_Apply_CountsOnce(t *testing.T) {
	store := newFakeStore()
	var commits atomic.Int64
	store.hook = func(txn Txn) (error, bool) {
		// Lose every 5th outcome for a while; then the store heals, as
		// a cluster does after a leader change.
		if n := commits.Add(1); n < 400 && n%5 == 0 {
			return fmt.Errorf("lost reply: %w", client.ErrOutcomeUnknown), true
		}
		return nil, false
	}
	rides := genRides(1, 3000, 150)
	ap := newApplier(store, 16)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Each worker applies an overlapping window, twice.
			part := rides[w*500 : min(len(rides), w*500+1500)]
			applyUntilDone(t, ap, part)
			applyUntilDone(t, ap, part[:200])
		}()
	}
	wg.Wait()

	e := newExpected()
	for _, r := range rides {
		e.add(r)
	}
	q := reader{store: store}
	ctx := context.Background()
	for resort := 1; resort <= 3; resort++ {
		for day := 1; day <= 2; day++ {
			got, err := q.dayTotals(ctx, resort, 2025, day)
			if want := e.dayTotals(resort, 2025, day); err != nil || got != want {
				t.Errorf("dayTotals(%d, day %d) = %+v, %v; want %+v", resort, day, got, err, want)
			}
			gotH, err := q.hours(ctx, resort, 2025, day)
			if want := e.hours(resort, 2025, day); err != nil || mustJSON(gotH) != mustJSON(want) {
				t.Errorf("hours(%d, day %d) = %v, %v; want %v", resort, day, gotH, err, want)
			}
		}
	}
	for skier := 1; skier <= 150; skier++ {
		got, err := q.skierDays(ctx, skier, 2025)
		if want := e.skierDays(skier, 2025); err != nil || mustJSON(got) != mustJSON(want) {
			t.Errorf("skierDays(%d) = %v, %v; want %v", skier, got, err, want)
		}
	}
}

// TestApplier_Apply_Result counts new rides and duplicates.
func TestApplier_Apply_Result(t *testing.T) {
	ap := newApplier(newFakeStore(), 4)
	rides := genRides(2, 400, 50)
	distinct := make(map[Ride]bool)
	for _, r := range rides {
		distinct[r] = true
	}
	res, err := ap.Apply(context.Background(), rides)
	if err != nil || res.Applied != len(distinct) || res.Applied+res.Duplicates != len(rides) {
		t.Fatalf("first Apply = %+v, %v; want %d applied of %d", res, err, len(distinct), len(rides))
	}
	res, err = ap.Apply(context.Background(), rides)
	if err != nil || res.Applied != 0 || res.Duplicates != len(rides) {
		t.Fatalf("second Apply = %+v, %v; want 0 applied, %d duplicates", res, err, len(rides))
	}
}

// TestChunkRides keeps every Txn within the limits (the fake store refuses
// larger ones, so Apply above would fail too).
func TestChunkRides(t *testing.T) {
	rides := genRides(3, 1000, 1) // one skier: one bucket, one stripe per resort-day
	for _, chunk := range chunkRides(rides, func(rs []Ride) Txn { return skierTxn(rs, nil) }) {
		txn := skierTxn(chunk, nil)
		if len(txn.If) > client.MaxTxnOps || len(txn.Then) > client.MaxTxnOps {
			t.Fatalf("skier chunk of %d rides: %d conditions, %d ops", len(chunk), len(txn.If), len(txn.Then))
		}
	}
	tag := stripeTag(1, 2025, 1, 0)
	for _, chunk := range chunkRides(rides, func(rs []Ride) Txn { return stripeTxn(tag, rs, nil) }) {
		txn := stripeTxn(tag, chunk, nil)
		if len(txn.If) > client.MaxTxnOps || len(txn.Then) > client.MaxTxnOps {
			t.Fatalf("stripe chunk of %d rides: %d conditions, %d ops", len(chunk), len(txn.If), len(txn.Then))
		}
	}
}

func TestCodec_RoundTrip(t *testing.T) {
	rides := genRides(4, 500, 100000)
	rides = append(rides, Ride{Resort: maxID, Season: 9999, Day: 366, Skier: maxID, Lift: maxID, Time: 1440})
	got, err := decodeRides(encodeRides(nil, rides))
	if err != nil || mustJSON(got) != mustJSON(rides) {
		t.Fatalf("decode(encode(rides)) = %v (err %v); want the rides back", len(got), err)
	}
}

func FuzzDecodeRides(f *testing.F) {
	f.Add(encodeRides(nil, genRides(5, 3, 10)))
	f.Add([]byte{1, 200, 1})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		rides, err := decodeRides(b)
		if err != nil {
			return
		}
		if again := encodeRides(nil, rides); string(again) != string(b) {
			// Varints have one shortest form; a longer one may decode
			// too. Decoding the re-encoding must give the same rides.
			back, err := decodeRides(again)
			if err != nil || mustJSON(back) != mustJSON(rides) {
				t.Fatalf("re-encoding %x does not decode to the same rides", b)
			}
		}
	})
}

func TestConfig_Validate(t *testing.T) {
	if err := (Config{Endpoints: []string{"127.0.0.1:7001"}}).Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	err := Config{
		Endpoints: []string{"nope"}, Ingest: "later", ReplicaID: "{x}", CacheTTL: -1,
		Queue: QueueConfig{ConsumeEntries: 500, MaxBatch: -1},
	}.Validate()
	for _, want := range []string{`Endpoints = "nope"`, `Ingest = "later"`, `ReplicaID = "{x}"`, "CacheTTL = -1ns", "Queue.ConsumeEntries = 500", "Queue.MaxBatch = -1"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v; want it to mention %s", err, want)
		}
	}
	// Each problem is a *FieldError, so that a command line can name its flag.
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var fe *FieldError
		if !errors.As(e, &fe) || fe.Field == "" {
			t.Errorf("%v is not a *FieldError naming its field", e)
		}
	}
	if err := (Config{}).Validate(); err == nil || !strings.Contains(err.Error(), "Endpoints = []") {
		t.Errorf("Validate() with no store = %v; want Endpoints = []", err)
	}
}
