package liftload

import "time"

// Kind is a recorded request's type.
type Kind uint8

// Recorded request types.
const (
	KindPost Kind = iota // endpoint 1, POST a ride
	KindGet7             // endpoint 7, unique skiers of a resort-day
	KindGet2             // endpoint 2, a skier's vertical on a day
	KindGet3             // endpoint 3, a skier's total vertical
	numKinds
)

var kindNames = [numKinds]string{"POST", "GET7", "GET2", "GET3"}

func (k Kind) String() string {
	if k < numKinds {
		return kindNames[k]
	}
	return "?"
}

// Record is one request: when it started, how long all its attempts took,
// the last status (0 for a transport error) and how many attempts it made.
type Record struct {
	// Start is the start of the first attempt, Unix nanoseconds.
	Start    int64
	Latency  time.Duration
	Code     int16
	Attempts uint8
	Kind     Kind
	// Failed is set when every attempt failed.
	Failed bool
}

// End is when the request completed, Unix nanoseconds.
func (r Record) End() int64 { return r.Start + int64(r.Latency) }

// recordOf builds the record of a request that started at start.
func recordOf(kind Kind, start time.Time, code, attempts int, err error) Record {
	return Record{
		Start:    start.UnixNano(),
		Latency:  time.Since(start),
		Code:     int16(code),
		Attempts: uint8(min(attempts, 255)),
		Kind:     kind,
		Failed:   err != nil,
	}
}
