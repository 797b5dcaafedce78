package liftload

import (
	"math"
	"slices"
	"time"
)

// Summary is the figures of a set of requests. Latencies cover every
// request, failed ones included.
type Summary struct {
	Requests  int
	Successes int
	Failures  int
	// Wall is from the first request's start to the last one's end (or the
	// phase's own wall time when set by the phase).
	Wall       time.Duration
	Throughput float64 // requests per second of Wall
	Mean       time.Duration
	Median     time.Duration
	P99        time.Duration
	Min        time.Duration
	Max        time.Duration
}

// summarize computes the figures of recs over wall; wall 0 takes the span of
// the records.
func summarize(recs []Record, wall time.Duration) Summary {
	s := Summary{Requests: len(recs)}
	if len(recs) == 0 {
		s.Wall = wall
		return s
	}
	lat := make([]time.Duration, len(recs))
	var sum time.Duration
	first, last := recs[0].Start, recs[0].End()
	for i, r := range recs {
		if r.Failed {
			s.Failures++
		}
		lat[i] = r.Latency
		sum += r.Latency
		first = min(first, r.Start)
		last = max(last, r.End())
	}
	s.Successes = s.Requests - s.Failures
	if wall == 0 {
		wall = time.Duration(last - first)
	}
	s.Wall = wall
	s.Throughput = throughput(len(recs), wall)
	slices.Sort(lat)
	s.Mean = sum / time.Duration(len(lat))
	s.Median = percentile(lat, 0.50)
	s.P99 = percentile(lat, 0.99)
	s.Min = lat[0]
	s.Max = lat[len(lat)-1]
	return s
}

// percentile is the nearest-rank p-quantile of sorted (p in (0,1]).
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// throughput is n requests over wall, per second.
func throughput(n int, wall time.Duration) float64 {
	if wall <= 0 {
		return 0
	}
	return float64(n) / wall.Seconds()
}

// LittlesPrediction is the throughput Little's law predicts for threads
// closed-loop threads when each request takes the single-thread mean
// latency w and nothing queues: X = N / W. It is 0 when w is 0.
func LittlesPrediction(threads int, w time.Duration) float64 {
	if w <= 0 {
		return 0
	}
	return float64(threads) / w.Seconds()
}

// perSecond counts the records of each kind completed in each second since
// start (Unix nanoseconds).
func perSecond(recs []Record, start int64) [numKinds][]float64 {
	var out [numKinds][]float64
	for _, r := range recs {
		sec := max(int((r.End()-start)/int64(time.Second)), 0)
		s := out[r.Kind]
		for len(s) <= sec {
			s = append(s, 0)
		}
		s[sec]++
		out[r.Kind] = s
	}
	return out
}
