package app

import (
	"fmt"
	"strconv"
	"strings"
)

// Layout constants of the data model. They are part of the stored data:
// changing one changes every key, so they are constants, not options.
const (
	// SkierBuckets is the number of skier hash tags {s:B}, B = skier mod
	// SkierBuckets. As many as the default shard count spreads skiers
	// over the shards, while a consumer batch still finds many rides per
	// bucket to put in one Txn (fewer Txns per ride is what makes
	// consuming cheap).
	SkierBuckets = 32
	// Stripes is the number of stripes of a resort-day, k = skier mod
	// Stripes: a resort-day's writes spread over 4 shards instead of one
	// hot key, a consumer batch still groups many rides per stripe, and a
	// query reads 4 stripes concurrently.
	Stripes = 4
	// Partitions is the number of queue partitions {q:p}: the unit of
	// consumer ownership (leases) and of the queue's spread over shards.
	Partitions = 16
)

// Keys of the skier side. All keys of one skier share the tag of its bucket.

func skierTag(skier int) string { return "{s:" + strconv.Itoa(skier%SkierBuckets) + "}" }

// rideKey is the skier-side ride record and dedup marker.
func rideKey(r Ride) string {
	return fmt.Sprintf("%s/r/%d/%d/%03d/%04d/%d/%d", skierTag(r.Skier), r.Skier, r.Season, r.Day, r.Time, r.Resort, r.Lift)
}

// skierDayRidesPrefix selects a skier's rides of one day (Q3).
func skierDayRidesPrefix(skier, season, day int) string {
	return fmt.Sprintf("%s/r/%d/%d/%03d/", skierTag(skier), skier, season, day)
}

// skierDayKey is the skier's vertical on one day over all resorts (Q1, Q2).
func skierDayKey(skier, season, day int) string {
	return fmt.Sprintf("%s/d/%d/%d/%03d", skierTag(skier), skier, season, day)
}

// skierDaysPrefix selects the skier's day totals of one season.
func skierDaysPrefix(skier, season int) string {
	return fmt.Sprintf("%s/d/%d/%d/", skierTag(skier), skier, season)
}

// skierSeasonKey is the skier's vertical at one resort in one season (endpoint 3).
func skierSeasonKey(skier, resort, season int) string {
	return fmt.Sprintf("%s/t/%d/%d/%d", skierTag(skier), skier, resort, season)
}

// skierSeasonsPrefix selects the skier's season totals at one resort.
func skierSeasonsPrefix(skier, resort int) string {
	return fmt.Sprintf("%s/t/%d/%d/", skierTag(skier), skier, resort)
}

// skierResortDayKey is the skier's vertical at one resort on one day (endpoint 2).
func skierResortDayKey(skier, resort, season, day int) string {
	return fmt.Sprintf("%s/v/%d/%d/%d/%d", skierTag(skier), skier, resort, season, day)
}

// Keys of the resort-day side, striped by skier.

// stripeOf is the stripe of a skier within a resort-day.
func stripeOf(skier int) int { return skier % Stripes }

// stripeTag is the hash tag of stripe k of a resort-day.
func stripeTag(resort, season, day, k int) string {
	return "{rd:" + strconv.Itoa(resort) + ":" + strconv.Itoa(season) + ":" + strconv.Itoa(day) + ":" + strconv.Itoa(k) + "}"
}

func rdRideKey(tag string, r Ride) string {
	return tag + "/r/" + strconv.Itoa(r.Skier) + "/" + strconv.Itoa(r.Lift) + "/" + strconv.Itoa(r.Time)
}
func rdSkierKey(tag string, skier int) string { return tag + "/u/" + strconv.Itoa(skier) }
func rdLiftKey(tag string, lift int) string   { return tag + "/l/" + strconv.Itoa(lift) }
func rdHourKey(tag string, hour int) string   { return fmt.Sprintf("%s/h/%02d", tag, hour) }

// Counters of a stripe, under the prefix tag+rdCounterDir.
const (
	rdCounterDir  = "/c/"
	counterSkiers = "skiers"
	counterRides  = "rides"
	counterVert   = "vert"
)

func rdCounterKey(tag, name string) string { return tag + rdCounterDir + name }
func rdHoursPrefix(tag string) string      { return tag + "/h/" }

// Catalogue keys, all in the {meta} shard.

const (
	resortPrefix  = "{meta}/resort/"
	replicaPrefix = "{meta}/replica/"
)

func resortKey(id int) string { return resortPrefix + strconv.Itoa(id) }
func seasonPrefix(resort int) string {
	return "{meta}/season/" + strconv.Itoa(resort) + "/"
}
func seasonKey(resort, year int) string { return seasonPrefix(resort) + strconv.Itoa(year) }
func replicaKey(id string) string       { return replicaPrefix + id }

// Queue keys, partition p under the tag {q:p}.

func queueTag(p int) string         { return "{q:" + strconv.Itoa(p) + "}" }
func queueEntryPrefix(p int) string { return queueTag(p) + "/e/" }
func queuePendingKey(p int) string  { return queueTag(p) + "/pending" }
func queueLeaseKey(p int) string    { return queueTag(p) + "/lease" }

// queueEntryKey names an entry: time-ordered (20-digit unix nanoseconds),
// then the writing replica and its sequence number for uniqueness.
func queueEntryKey(p int, unixNano int64, replica string, seq uint64) string {
	return fmt.Sprintf("%s%020d/%s/%d", queueEntryPrefix(p), unixNano, replica, seq)
}

// entryTime returns the enqueue time (unix nanoseconds) encoded in an entry
// key, or false when the key is not an entry key.
func entryTime(key string) (int64, bool) {
	i := strings.Index(key, "/e/")
	if i < 0 || len(key) < i+3+20 {
		return 0, false
	}
	n, err := strconv.ParseInt(key[i+3:i+3+20], 10, 64)
	return n, err == nil
}
