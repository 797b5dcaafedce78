package liftload

import (
	"context"
	"math/rand/v2"
)

// Generator makes the run's rides from a seed. The same seed and ranges give
// the same sequence of rides. It is not safe for concurrent use; the run has
// exactly one.
type Generator struct {
	rng                                   *rand.Rand
	days, resorts, skiers, lifts, minutes int
}

// NewGenerator returns a generator of rides within c's data ranges.
func NewGenerator(c Config) *Generator {
	return &Generator{
		rng:     rand.New(rand.NewPCG(c.Seed, c.Seed^0x5ca1ab1e_f00d)),
		days:    c.Days,
		resorts: c.Resorts,
		skiers:  c.Skiers,
		lifts:   c.Lifts,
		minutes: c.Minutes,
	}
}

// Next returns the next ride: skier 1..Skiers, resort 1..Resorts, lift
// 1..Lifts, time 1..Minutes, day 1..Days.
func (g *Generator) Next() Ride {
	return Ride{
		Skier:  uint32(1 + g.rng.IntN(g.skiers)),
		Resort: uint8(1 + g.rng.IntN(g.resorts)),
		Lift:   uint8(1 + g.rng.IntN(g.lifts)),
		Time:   uint16(1 + g.rng.IntN(g.minutes)),
		Day:    uint16(1 + g.rng.IntN(g.days)),
	}
}

// Rides returns the first n rides of c's generator: the rides a run of
// c.Total POSTs sends.
func Rides(c Config, n int) []Ride {
	g := NewGenerator(c)
	rides := make([]Ride, n)
	for i := range rides {
		rides[i] = g.Next()
	}
	return rides
}

// generate sends the first n events of c's generator to out and closes it.
// It stops early when ctx is done. It is the run's one generator goroutine.
func generate(ctx context.Context, c Config, n int, out chan<- Event) {
	defer close(out)
	g := NewGenerator(c)
	r := newRenderer(c.Season)
	done := ctx.Done()
	for range n {
		select {
		case out <- r.event(g.Next()):
		case <-done:
			return
		}
	}
}
