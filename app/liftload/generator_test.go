package liftload

import (
	"context"
	"fmt"
	"slices"
	"testing"
)

func TestGenerator_Deterministic(t *testing.T) {
	c := DefaultConfig()
	c.Seed = 7
	a, b := Rides(c, 10_000), Rides(c, 10_000)
	if !slices.Equal(a, b) {
		t.Fatal("same seed gave different rides")
	}
	c.Seed = 8
	if other := Rides(c, 10_000); slices.Equal(a, other) {
		t.Fatal("seeds 7 and 8 gave the same rides")
	}
}

func TestGenerator_Ranges(t *testing.T) {
	for _, days := range []int{1, 3} {
		c := DefaultConfig()
		c.Seed, c.Days = 3, days
		var seen [4]map[int]bool // resort, lift, day, time
		for i := range seen {
			seen[i] = map[int]bool{}
		}
		minSkier, maxSkier := 1<<31, 0
		for _, r := range Rides(c, 200_000) {
			if r.Skier < 1 || int(r.Skier) > c.Skiers || r.Resort < 1 || int(r.Resort) > c.Resorts ||
				r.Lift < 1 || int(r.Lift) > c.Lifts || r.Time < 1 || int(r.Time) > c.Minutes ||
				r.Day < 1 || int(r.Day) > days {
				t.Fatalf("days %d: ride %+v out of range", days, r)
			}
			seen[0][int(r.Resort)], seen[1][int(r.Lift)], seen[2][int(r.Day)], seen[3][int(r.Time)] = true, true, true, true
			minSkier, maxSkier = min(minSkier, int(r.Skier)), max(maxSkier, int(r.Skier))
		}
		for i, want := range []int{c.Resorts, c.Lifts, days, c.Minutes} {
			if len(seen[i]) != want {
				t.Errorf("days %d: field %d took %d distinct values, want %d", days, i, len(seen[i]), want)
			}
		}
		if minSkier > 10 || maxSkier < c.Skiers-10 {
			t.Errorf("skiers span %d..%d, want about 1..%d", minSkier, maxSkier, c.Skiers)
		}
	}
}

func TestRide_KeyRoundTrip(t *testing.T) {
	for _, r := range []Ride{
		{Skier: 1, Day: 1, Time: 1, Resort: 1, Lift: 1},
		{Skier: 1<<24 - 1, Day: 366, Time: 1440, Resort: 255, Lift: 255},
		{Skier: 12345, Day: 3, Time: 217, Resort: 10, Lift: 21},
	} {
		if got := rideFromKey(r.key()); got != r {
			t.Errorf("rideFromKey(key(%+v)) = %+v", r, got)
		}
	}
}

func TestGenerate_RendersRequests(t *testing.T) {
	c := DefaultConfig()
	c.Seed = 5
	events := make(chan Event, 10)
	go generate(context.Background(), c, 1000, events)
	want := Rides(c, 1000)
	i := 0
	for ev := range events {
		r := want[i]
		if ev.Ride != r {
			t.Fatalf("event %d ride = %+v, want %+v", i, ev.Ride, r)
		}
		wantPath := fmt.Sprintf("/skiers/%d/seasons/2025/days/%d/skiers/%d", r.Resort, r.Day, r.Skier)
		wantBody := fmt.Sprintf(`{"time":%d,"liftID":%d}`, r.Time, r.Lift)
		if ev.Path != wantPath || string(ev.Body) != wantBody {
			t.Fatalf("event %d = %s %s, want %s %s", i, ev.Path, ev.Body, wantPath, wantBody)
		}
		i++
	}
	if i != 1000 {
		t.Fatalf("generated %d events, want 1000", i)
	}
}
