package liftload

import "slices"

// resortDay is the expected figures of one resort-day.
type resortDay struct {
	Resort, Day int
	Skiers      int   // distinct skiers
	Rides       int   // distinct rides
	Vert        int64 // sum of the distinct rides' vertical
}

// skierDay is one skier's expected vertical at one resort on one day.
type skierDay struct {
	Resort, Day, Skier int
	Vert               int64
}

// expected is what the service must answer after the rides were applied,
// with identical rides counted once.
type expected struct {
	Rides      int // distinct
	Duplicates int // generated rides identical to an earlier one
	Vert       int64
	// ResortDays has every resort 1..resorts × day 1..days, in that order,
	// also those without rides.
	ResortDays []resortDay
	// SkierDays has every (resort, day, skier) with rides, ordered.
	SkierDays []skierDay
}

// buildExpected computes what the service must answer for rides over
// resorts × days. It is pure.
func buildExpected(rides []Ride, resorts, days int) expected {
	keys := make([]uint64, len(rides))
	for i, r := range rides {
		keys[i] = r.key()
	}
	slices.Sort(keys)
	keys = slices.Compact(keys)

	e := expected{Rides: len(keys), Duplicates: len(rides) - len(keys)}
	e.ResortDays = make([]resortDay, 0, resorts*days)
	for res := 1; res <= resorts; res++ {
		for d := 1; d <= days; d++ {
			e.ResortDays = append(e.ResortDays, resortDay{Resort: res, Day: d})
		}
	}
	for _, k := range keys {
		r := rideFromKey(k)
		v := r.Vertical()
		e.Vert += v
		rd := &e.ResortDays[(int(r.Resort)-1)*days+int(r.Day)-1]
		rd.Rides++
		rd.Vert += v
		n := len(e.SkierDays)
		if n > 0 {
			last := &e.SkierDays[n-1]
			if last.Resort == int(r.Resort) && last.Day == int(r.Day) && last.Skier == int(r.Skier) {
				last.Vert += v
				continue
			}
		}
		rd.Skiers++
		e.SkierDays = append(e.SkierDays, skierDay{Resort: int(r.Resort), Day: int(r.Day), Skier: int(r.Skier), Vert: v})
	}
	return e
}
