package app

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
)

// expected computes every answer from the set of distinct rides sent: the
// oracle the service's answers are checked against.
type expected struct {
	rides map[Ride]bool
}

func newExpected() *expected { return &expected{rides: make(map[Ride]bool)} }

func (e *expected) add(r Ride) { e.rides[r] = true }

func (e *expected) skierDayVertical(skier, resort, season, day int) int64 {
	var v int64
	for r := range e.rides {
		if r.Skier == skier && r.Resort == resort && r.Season == season && r.Day == day {
			v += r.Vertical()
		}
	}
	return v
}

func (e *expected) skierVertical(skier int, resorts []int, seasons []int) []seasonVert {
	sums := make(map[int]int64)
	for _, s := range seasons {
		sums[s] = 0
	}
	for r := range e.rides {
		if r.Skier != skier || !slices.Contains(resorts, r.Resort) {
			continue
		}
		if _, ok := sums[r.Season]; len(seasons) > 0 && !ok {
			continue
		}
		sums[r.Season] += r.Vertical()
	}
	out := []seasonVert{}
	for _, s := range slices.Sorted(maps.Keys(sums)) {
		out = append(out, seasonVert{Season: seasonString(s), Vert: sums[s]})
	}
	return out
}

func (e *expected) skierDays(skier, season int) []dayVert {
	sums := make(map[int]int64)
	for r := range e.rides {
		if r.Skier == skier && r.Season == season {
			sums[r.Day] += r.Vertical()
		}
	}
	out := []dayVert{}
	for _, d := range slices.Sorted(maps.Keys(sums)) {
		out = append(out, dayVert{Day: d, Vert: sums[d]})
	}
	return out
}

func (e *expected) skierRides(skier, season, day int) []liftRide {
	out := []liftRide{}
	for r := range e.rides {
		if r.Skier == skier && r.Season == season && r.Day == day {
			out = append(out, liftRide{Resort: r.Resort, Lift: r.Lift, Time: r.Time})
		}
	}
	slices.SortFunc(out, func(a, b liftRide) int {
		if a.Time != b.Time {
			return a.Time - b.Time
		}
		if a.Resort != b.Resort {
			return a.Resort - b.Resort
		}
		return a.Lift - b.Lift
	})
	return out
}

func (e *expected) dayTotals(resort, season, day int) dayTotals {
	var t dayTotals
	skiers := make(map[int]bool)
	for r := range e.rides {
		if r.Resort == resort && r.Season == season && r.Day == day {
			t.Rides++
			t.Vert += r.Vertical()
			skiers[r.Skier] = true
		}
	}
	t.Skiers = int64(len(skiers))
	return t
}

func (e *expected) liftRides(resort, season, day, lift int) int64 {
	var n int64
	for r := range e.rides {
		if r.Resort == resort && r.Season == season && r.Day == day && r.Lift == lift {
			n++
		}
	}
	return n
}

func (e *expected) hours(resort, season, day int) []hourRides {
	sums := make(map[int]int64)
	for r := range e.rides {
		if r.Resort == resort && r.Season == season && r.Day == day {
			sums[r.Hour()]++
		}
	}
	out := []hourRides{}
	for _, h := range slices.Sorted(maps.Keys(sums)) {
		out = append(out, hourRides{Hour: h, Rides: sums[h]})
	}
	return out
}

// getFunc performs a GET with Cache-Control: no-cache and returns the
// status and body.
type getFunc func(path string) (int, string)

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// checkAnswers checks every query's answer for the given skiers, resorts,
// season and days against e, reporting each difference. It sends the
// requests from a few goroutines at once.
func checkAnswers(t *testing.T, get getFunc, e *expected, names map[int]string, skiers, resorts []int, season int, days []int) {
	t.Helper()
	type check struct{ path, body string }
	var checks []check
	want := func(path, body string) { checks = append(checks, check{path, body}) }
	s := seasonString(season)
	for _, resort := range resorts {
		for _, day := range days {
			tot := e.dayTotals(resort, season, day)
			base := fmt.Sprintf("/resorts/%d/seasons/%d/day/%d", resort, season, day)
			want(base+"/skiers", fmt.Sprintf(`{"time":%s,"numSkiers":%d}`, mustJSON(names[resort]), tot.Skiers))
			want(base+"/vertical", fmt.Sprintf(`{"resortID":%d,"seasonID":"%s","dayID":%d,"numRides":%d,"totalVert":%d}`, resort, s, day, tot.Rides, tot.Vert))
			want(base+"/hours", fmt.Sprintf(`{"resortID":%d,"seasonID":"%s","dayID":%d,"hours":%s}`, resort, s, day, mustJSON(e.hours(resort, season, day))))
			for _, lift := range []int{1, 7, 40} {
				want(fmt.Sprintf("%s/lifts/%d", base, lift), fmt.Sprintf(`{"resortID":%d,"seasonID":"%s","dayID":%d,"liftID":%d,"numRides":%d}`, resort, s, day, lift, e.liftRides(resort, season, day, lift)))
			}
		}
	}
	for _, skier := range skiers {
		ds := e.skierDays(skier, season)
		want(fmt.Sprintf("/skiers/%d/seasons/%d/days", skier, season), fmt.Sprintf(`{"skierID":%d,"seasonID":"%s","numDays":%d,"days":%s}`, skier, s, len(ds), mustJSON(ds)))
		want(fmt.Sprintf("/skiers/%d/vertical?resort=%d&resort=%d&season=%d", skier, resorts[0], resorts[len(resorts)-1], season),
			mustJSON(map[string]any{"resorts": e.skierVertical(skier, []int{resorts[0], resorts[len(resorts)-1]}, []int{season})}))
		for _, day := range days {
			want(fmt.Sprintf("/skiers/%d/seasons/%d/days/%d/lifts", skier, season, day), fmt.Sprintf(`{"skierID":%d,"seasonID":"%s","dayID":%d,"rides":%s}`, skier, s, day, mustJSON(e.skierRides(skier, season, day))))
			for _, resort := range resorts[:min(2, len(resorts))] {
				want(fmt.Sprintf("/skiers/%d/seasons/%d/days/%d/skiers/%d", resort, season, day, skier), fmt.Sprint(e.skierDayVertical(skier, resort, season, day)))
			}
		}
	}
	var mu sync.Mutex
	var wrong []string
	work := make(chan check)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range work {
				if code, body := get(c.path); code != 200 || body != c.body {
					mu.Lock()
					wrong = append(wrong, fmt.Sprintf("GET %s = %d %s, want 200 %s", c.path, code, body, c.body))
					mu.Unlock()
				}
			}
		}()
	}
	for _, c := range checks {
		work <- c
	}
	close(work)
	wg.Wait()
	slices.Sort(wrong)
	for _, w := range wrong {
		t.Error(w)
	}
}
