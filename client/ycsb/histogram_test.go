package ycsb

import (
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
