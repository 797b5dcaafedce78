package client

import (
	"math/rand/v2"
	"sync"

	"github.com/ridgeline-kv/ridgeline/replication/kvpb"
)

// session is an exactly-once write session: a random nonzero ID and the
// sequence number of its current write. It is used by one request at a time.
type session struct {
	id  uint64
	seq uint64
}

// sessionPool hands out idle sessions; it grows to the peak number of
// concurrent writes. The mutex is never held across an RPC.
type sessionPool struct {
	mu   sync.Mutex
	free []*session
}

// get takes an idle session (or makes one) and advances it to a new
// sequence number, which every retry of the write reuses.
func (p *sessionPool) get() *session {
	p.mu.Lock()
	var s *session
	if n := len(p.free); n > 0 {
		s = p.free[n-1]
		p.free[n-1] = nil
		p.free = p.free[:n-1]
	}
	p.mu.Unlock()
	if s == nil {
		s = &session{id: newSessionID()}
	}
	s.seq++
	return s
}

// put returns s to the pool. When no attempt of the write can have reached
// the replicated log (every attempt was refused before proposal), the
// sequence number is given back so the session's sequence stays dense.
func (p *sessionPool) put(s *session, mayHaveReachedLog bool) {
	if !mayHaveReachedLog {
		s.seq--
	}
	p.mu.Lock()
	p.free = append(p.free, s)
	p.mu.Unlock()
}

func (s *session) header() *kvpb.WriteHeader { return &kvpb.WriteHeader{Session: s.id, Seq: s.seq} }

// newSessionID returns a random nonzero ID. math/rand/v2's global source is
// seeded from the operating system's entropy, so IDs of different processes
// do not collide in practice.
func newSessionID() uint64 {
	for {
		if id := rand.Uint64(); id != 0 {
			return id
		}
	}
}
