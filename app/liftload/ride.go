package liftload

import "strconv"

// Ride is one generated lift ride of the run's season, in 12 bytes.
type Ride struct {
	Skier  uint32
	Day    uint16
	Time   uint16
	Resort uint8
	Lift   uint8
}

// Vertical is the ride's vertical in metres: liftID × 10.
func (r Ride) Vertical() int64 { return int64(r.Lift) * 10 }

// key packs the ride into a uint64 that orders rides by resort, day, skier,
// lift, time: resort 8 bits, day 9, skier 24, lift 8, time 11.
func (r Ride) key() uint64 {
	return uint64(r.Resort)<<52 | uint64(r.Day)<<43 | uint64(r.Skier)<<19 |
		uint64(r.Lift)<<11 | uint64(r.Time)
}

// rideFromKey is the inverse of Ride.key.
func rideFromKey(k uint64) Ride {
	return Ride{
		Resort: uint8(k >> 52),
		Day:    uint16(k >> 43 & (1<<9 - 1)),
		Skier:  uint32(k >> 19 & (1<<24 - 1)),
		Lift:   uint8(k >> 11),
		Time:   uint16(k & (1<<11 - 1)),
	}
}

// Event is a ride with its request pre-rendered by the generator.
type Event struct {
	Ride Ride
	// Path is /skiers/{resortID}/seasons/{seasonID}/days/{dayID}/skiers/{skierID}.
	Path string
	// Body is {"time":T,"liftID":L}.
	Body []byte
}

// renderer renders events into large shared chunks, so the generator makes
// one allocation per path and a body costs none most of the time.
type renderer struct {
	season string
	chunk  []byte
	buf    []byte
}

const chunkSize = 64 << 10

func newRenderer(season int) *renderer {
	return &renderer{season: strconv.Itoa(season)}
}

func (r *renderer) event(ride Ride) Event {
	b := r.buf[:0]
	b = append(b, "/skiers/"...)
	b = strconv.AppendUint(b, uint64(ride.Resort), 10)
	b = append(b, "/seasons/"...)
	b = append(b, r.season...)
	b = append(b, "/days/"...)
	b = strconv.AppendUint(b, uint64(ride.Day), 10)
	b = append(b, "/skiers/"...)
	b = strconv.AppendUint(b, uint64(ride.Skier), 10)
	path := string(b)

	b = b[:0]
	b = append(b, `{"time":`...)
	b = strconv.AppendUint(b, uint64(ride.Time), 10)
	b = append(b, `,"liftID":`...)
	b = strconv.AppendUint(b, uint64(ride.Lift), 10)
	b = append(b, '}')
	r.buf = b
	if cap(r.chunk)-len(r.chunk) < len(b) {
		r.chunk = make([]byte, 0, chunkSize)
	}
	start := len(r.chunk)
	r.chunk = append(r.chunk, b...)
	return Event{Ride: ride, Path: path, Body: r.chunk[start:len(r.chunk):len(r.chunk)]}
}
