package app

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Queue entries hold many rides in a compact binary form: a version byte,
// the ride count, then each ride's six fields as unsigned varints.

const entryCodecV1 = 1

// encodeRides appends the entry encoding of rides to buf.
func encodeRides(buf []byte, rides []Ride) []byte {
	buf = append(buf, entryCodecV1)
	buf = binary.AppendUvarint(buf, uint64(len(rides)))
	for _, r := range rides {
		for _, v := range [...]int{r.Resort, r.Season, r.Day, r.Skier, r.Lift, r.Time} {
			buf = binary.AppendUvarint(buf, uint64(v))
		}
	}
	return buf
}

var errBadEntry = errors.New("app: malformed queue entry")

// rideCount reads the ride count from the header of an entry written by
// encodeRides, which is what its enqueue added to the pending counter; ok
// is false when even the header is unreadable.
func rideCount(b []byte) (n int64, ok bool) {
	if len(b) == 0 || b[0] != entryCodecV1 {
		return 0, false
	}
	v, k := binary.Uvarint(b[1:])
	if k <= 0 || v > 1<<31 {
		return 0, false
	}
	return int64(v), true
}

// decodeRides decodes an entry written by encodeRides.
func decodeRides(b []byte) ([]Ride, error) {
	if len(b) == 0 || b[0] != entryCodecV1 {
		return nil, fmt.Errorf("%w: unknown codec version (first byte of %d)", errBadEntry, len(b))
	}
	b = b[1:]
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)) {
		return nil, fmt.Errorf("%w: bad ride count", errBadEntry)
	}
	b = b[k:]
	rides := make([]Ride, n)
	for i := range rides {
		var f [6]int
		for j := range f {
			v, k := binary.Uvarint(b)
			if k <= 0 || v > 1<<31 {
				return nil, fmt.Errorf("%w: ride %d field %d is truncated or out of range", errBadEntry, i, j)
			}
			f[j] = int(v)
			b = b[k:]
		}
		rides[i] = Ride{Resort: f[0], Season: f[1], Day: f[2], Skier: f[3], Lift: f[4], Time: f[5]}
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", errBadEntry, len(b))
	}
	return rides, nil
}
