package app

import "strconv"

// Ride is one lift ride: a skier's pass scanned at a lift. The six fields
// identify it; the same six values are the same ride.
type Ride struct {
	Resort int // resort ID, ≥ 1
	Season int // four-digit year
	Day    int // 1..366
	Skier  int // ≥ 1
	Lift   int // ≥ 1
	Time   int // minute of the ski day, 1..1440
}

// Vertical is the ride's vertical in metres: lift × 10.
func (r Ride) Vertical() int64 { return int64(r.Lift) * 10 }

// Hour is the hour of the ski day the ride started in: (time-1)/60.
func (r Ride) Hour() int { return (r.Time - 1) / 60 }

// seasonString is the season as it appears in the API ("2025").
func seasonString(year int) string { return strconv.Itoa(year) }
