package main

import (
	"encoding/binary"
	"hash/fnv"
	"math/rand/v2"
	"testing"
	"time"
)

func TestHistogram_Quantiles(t *testing.T) {
	var h histogram
	for i := 1; i <= 10000; i++ {
		h.record(time.Duration(i) * time.Microsecond)
	}
	for _, tt := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 5000 * time.Microsecond}, {0.99, 9900 * time.Microsecond}, {0.999, 9990 * time.Microsecond}, {1, 10000 * time.Microsecond}} {
		got := h.quantile(tt.q)
		if got < tt.want || float64(got) > float64(tt.want)*1.033 {
			t.Errorf("quantile(%v) = %v; want within 3.3%% above %v", tt.q, got, tt.want)
		}
	}
	if m := h.mean(); m < 5000*time.Microsecond || m > 5001*time.Microsecond {
		t.Errorf("mean = %v; want 5.0005ms", m)
	}
	// Bucket bounds are contiguous and monotone.
	for v := int64(0); v < 1<<20; v += 7 {
		b := histBucket(v)
		if histUpper(b) < v || (b > 0 && histUpper(b-1) >= v) {
			t.Fatalf("value %d in bucket %d with upper %d (previous %d)", v, b, histUpper(b), histUpper(b-1))
		}
	}
}

func TestZipfian_MatchesZetaAndSkews(t *testing.T) {
	// Unscrambled over a small n: P(0) = 1/zeta(n).
	const n = 1000
	z := newZipfian(n, ycsbZipfianConstant, zeta(n, ycsbZipfianConstant))
	r := rand.New(rand.NewPCG(1, 2))
	const draws = 200000
	counts := make([]int, n)
	for range draws {
		v := z.next(r)
		if v >= n {
			t.Fatalf("draw %d out of range", v)
		}
		counts[v]++
	}
	want := float64(draws) / zeta(n, ycsbZipfianConstant)
	if got := float64(counts[0]); got < want*0.95 || got > want*1.05 {
		t.Errorf("item 0 drawn %v times; want about %v", got, want)
	}
	if counts[0] < counts[1] || counts[1] < counts[10] {
		t.Errorf("not decreasing: %d %d %d", counts[0], counts[1], counts[10])
	}

	// Scrambled: in range, and skewed (the hottest key gets far more than
	// its uniform share).
	s := newScrambledZipfian(10000)
	hits := map[uint64]int{}
	for range draws {
		v := s.next(r)
		if v >= 10000 {
			t.Fatalf("scrambled draw %d out of range", v)
		}
		hits[v]++
	}
	top := 0
	for _, c := range hits {
		top = max(top, c)
	}
	if top < 50*draws/10000 {
		t.Errorf("hottest key drawn %d times; want a zipfian skew", top)
	}
}

func TestFNVHash64_MatchesYCSB(t *testing.T) {
	// YCSB hashes the value's 8 bytes, low byte first, with FNV-1a and
	// takes Math.abs of the signed result.
	for _, v := range []uint64{0, 1, 42, 1 << 40, 9_999_999_999} {
		h := fnv.New64a()
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], v)
		h.Write(b[:])
		want := int64(h.Sum64())
		if want < 0 {
			want = -want
		}
		if got := fnvHash64(v); got != uint64(want) {
			t.Errorf("fnvHash64(%d) = %d; want %d", v, got, want)
		}
	}
}
