package replication

import (
	"slices"
	"sync"

	"github.com/hashicorp/raft"
)

// followerAcks lets a shard leader apply an entry once a majority of its
// voters hold it durably without counting its own copy (the Raft thesis,
// §10.2.1: the leader's own write is one of the copies, not a precondition).
// The leader's own append (storage.LogStore.ReturnEarly) is in flight in
// parallel with replication; when its node's commits stall, both followers
// often have the entry first, and the write need not wait for the stall.
//
// It records, per follower, the highest index up to which the follower
// accepted this replica's AppendEntries and in which leader term
// (transport.Transport.SetAppendAck). A follower accepts an AppendEntries
// only once its log matches the leader's up to that index and it has stored
// the entries durably. Within one term the leader's log only grows, so an
// acknowledgement in term T of index i means the follower durably holds the
// leader's entry i of term T. When a majority of the voters, counted without
// this replica, hold an entry of the current term, that entry (and every
// entry before it) is committed by Raft's rule whatever happens to the
// leader's own copy.
//
// Only entries of the term the acknowledgements were made in count: an
// older term's entry on a majority is not committed by that alone (the
// Raft paper's Figure 8). The voters are raft's latest configuration, read
// at each check; raft changes membership one server at a time, so a
// majority of the latest configuration intersects every majority of the
// previous one.
type followerAcks struct {
	self   raft.ServerID
	config func() raft.Configuration // raft's latest configuration
	// ahead, if set, is called when a batch is applied on the followers'
	// acknowledgements before the local log holds it durably.
	ahead func()

	mu   sync.Mutex
	acks map[raft.ServerID]followerAck

	// notify receives a token (never blocks) whenever an acknowledgement
	// advances; one goroutine (the state machine's) waits on it.
	notify chan struct{}
}

type followerAck struct{ term, index uint64 }

func newFollowerAcks(self raft.ServerID, config func() raft.Configuration, ahead func()) *followerAcks {
	return &followerAcks{
		self:   self,
		config: config,
		ahead:  ahead,
		acks:   make(map[raft.ServerID]followerAck),
		notify: make(chan struct{}, 1),
	}
}

// record notes that follower accepted AppendEntries of term up to index. A
// later term replaces what an earlier one recorded.
func (a *followerAcks) record(follower raft.ServerID, term, index uint64) {
	a.mu.Lock()
	cur, ok := a.acks[follower]
	if ok && (term < cur.term || term == cur.term && index <= cur.index) {
		a.mu.Unlock()
		return
	}
	a.acks[follower] = followerAck{term: term, index: index}
	a.mu.Unlock()
	select {
	case a.notify <- struct{}{}:
	default:
	}
}

// durableOnQuorum reports whether a majority of the voters, not counting
// this replica, have acknowledged holding the log up to index in term: then
// the entry at index, if its term is term, is committed without this
// replica's copy.
func (a *followerAcks) durableOnQuorum(term, index uint64) bool {
	servers := a.config().Servers
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.acks) > len(servers) {
		a.forget(servers)
	}
	voters, held := 0, 0
	for _, s := range servers {
		if s.Suffrage != raft.Voter {
			continue
		}
		voters++
		if s.ID == a.self {
			continue
		}
		if ack, ok := a.acks[s.ID]; ok && ack.term == term && ack.index >= index {
			held++
		}
	}
	return voters > 0 && held > voters/2
}

// forget drops the acknowledgements of servers no longer in the
// configuration (replica moves use fresh IDs, so they would pile up for the
// replica's lifetime otherwise). Called with mu held.
func (a *followerAcks) forget(servers []raft.Server) {
	for id := range a.acks {
		if !slices.ContainsFunc(servers, func(s raft.Server) bool { return s.ID == id }) {
			delete(a.acks, id)
		}
	}
}
