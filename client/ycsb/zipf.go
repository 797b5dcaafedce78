package ycsb

import (
	"math"
	"math/rand/v2"
)

// YCSB's constants for its scrambled zipfian generator: the zipfian is drawn
// over a fixed 10^10 items, whose zeta(n, 0.99) YCSB hard-codes, then hashed
// into the key space, so popular keys are spread over it.
const (
	ycsbZipfianConstant = 0.99
	ycsbItemCount       = 10_000_000_000
	ycsbZetan           = 26.46902820178302
)

// zipfian is YCSB's ZipfianGenerator (Gray et al., "Quickly Generating
// Billion-Record Synthetic Databases", SIGMOD 1994) over [0, items). It is
// immutable; each caller passes its own random source.
type zipfian struct {
	items  float64
	theta  float64
	alpha  float64
	zetan  float64
	eta    float64
	half   float64 // 1 + 0.5^theta
	itemsI uint64
}

// zeta returns the sum over i in [1, n] of 1/i^theta.
func zeta(n uint64, theta float64) float64 {
	var sum float64
	for i := uint64(1); i <= n; i++ {
		sum += 1 / math.Pow(float64(i), theta)
	}
	return sum
}

// newZipfian returns a zipfian generator over [0, items) with the given
// zeta(items, theta).
func newZipfian(items uint64, theta, zetan float64) *zipfian {
	zeta2 := zeta(2, theta)
	return &zipfian{
		items:  float64(items),
		itemsI: items,
		theta:  theta,
		alpha:  1 / (1 - theta),
		zetan:  zetan,
		eta:    (1 - math.Pow(2/float64(items), 1-theta)) / (1 - zeta2/zetan),
		half:   1 + math.Pow(0.5, theta),
	}
}

// next draws an item; item 0 is the most popular.
func (z *zipfian) next(r *rand.Rand) uint64 {
	u := r.Float64()
	uz := u * z.zetan
	if uz < 1 {
		return 0
	}
	if uz < z.half {
		return 1
	}
	v := uint64(z.items * math.Pow(z.eta*u-z.eta+1, z.alpha))
	if v >= z.itemsI {
		v = z.itemsI - 1
	}
	return v
}

// scrambledZipfian is YCSB's ScrambledZipfianGenerator over [0, keys): a
// zipfian over 10^10 items with theta 0.99, scattered by FNV-1a.
type scrambledZipfian struct {
	z    *zipfian
	keys uint64
}

func newScrambledZipfian(keys uint64) *scrambledZipfian {
	return &scrambledZipfian{z: newZipfian(ycsbItemCount, ycsbZipfianConstant, ycsbZetan), keys: keys}
}

func (s *scrambledZipfian) next(r *rand.Rand) uint64 {
	return fnvHash64(s.z.next(r)) % s.keys
}

// fnvHash64 is YCSB's Utils.fnvhash64: FNV-1a over the 8 little-endian bytes
// of v, made non-negative as Java's Math.abs does.
func fnvHash64(v uint64) uint64 {
	const (
		offset = 0xCBF29CE484222325
		prime  = 1099511628211
	)
	h := uint64(offset)
	for range 8 {
		h ^= v & 0xff
		v >>= 8
		h *= prime
	}
	x := int64(h)
	if x < 0 {
		x = -x // Math.abs; MinInt64 stays negative in Java and wraps here alike
	}
	return uint64(x)
}

// uniform draws keys uniformly.
type uniform struct{ keys uint64 }

func (u uniform) next(r *rand.Rand) uint64 { return r.Uint64N(u.keys) }

// keyChooser picks the key index of the next operation.
type keyChooser interface {
	next(r *rand.Rand) uint64
}
