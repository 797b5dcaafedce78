package ycsb

import (
	"math"
	"math/bits"
	"time"
)

// histogram is a log-linear latency histogram: values below 32 ns are exact,
// larger ones fall in 32 sub-buckets per power of two (≤ 3.2% error).
// Recording is allocation-free; it is not safe for concurrent use (one per
// worker, merged at the end).
type histogram struct {
	counts [64 << histSubBits]uint64
	n      uint64
	sum    float64
	max    int64
}

const histSubBits = 5

func histBucket(v int64) int {
	if v < 1<<histSubBits {
		if v < 0 {
			return 0
		}
		return int(v)
	}
	shift := bits.Len64(uint64(v)) - histSubBits - 1
	return (shift+1)<<histSubBits + int(uint64(v)>>shift) - 1<<histSubBits
}

// histUpper is the highest value in bucket i.
func histUpper(i int) int64 {
	if i < 1<<histSubBits {
		return int64(i)
	}
	shift := i>>histSubBits - 1
	mant := int64(i&(1<<histSubBits-1) + 1<<histSubBits)
	return (mant+1)<<shift - 1
}

func (h *histogram) record(d time.Duration) {
	v := int64(d)
	h.counts[histBucket(v)]++
	h.n++
	h.sum += float64(v)
	if v > h.max {
		h.max = v
	}
}

func (h *histogram) merge(o *histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.sum += o.sum
	h.max = max(h.max, o.max)
}

func (h *histogram) mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(h.sum / float64(h.n))
}

// quantile returns an upper bound of the q-quantile (0 < q ≤ 1).
func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = max(rank, 1)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return time.Duration(min(histUpper(i), h.max))
		}
	}
	return time.Duration(h.max)
}
