package storage

import (
	"bytes"
	"slices"
	"sort"

	bolt "go.etcd.io/bbolt"
)

// A shard's applies are written to memory first and to bbolt later, by the
// StateDB's flusher (see StateDB): the raft log already holds every applied
// entry on a majority, so a state commit per apply buys nothing but page
// writes. This is etcd's backend design (a batch transaction committed every
// 100 ms, reads served through a buffer of what it holds).
//
// Each ShardStore.Apply publishes one immutable layer with the writes of its
// function. A shard's view of its state is, newest first: its active layers
// (published since the last flush began), its frozen layers (being written by
// a flush in flight) and its bbolt buckets. Because layers never change once
// published, a reader captures the lists under the shard's lock together
// with a bbolt read transaction and then reads without locks: a consistent
// point-in-time view, whatever flushes or applies happen meanwhile.

// entry is one key's newest state within a layer: a value (data values in
// the stored form, 8-byte version || bytes) or a deletion.
type entry struct {
	key, val []byte
	del      bool
}

// layer holds the writes of one or more applies, in key order, with the
// shard's applied index and key count after them.
type layer struct {
	data, sys     []entry
	applied, keys uint64
	size          int // bytes held, for the flush trigger
}

// find returns key's entry in es (sorted), if any.
func find(es []entry, key []byte) (entry, bool) {
	i := sort.Search(len(es), func(i int) bool { return bytes.Compare(es[i].key, key) >= 0 })
	if i < len(es) && bytes.Equal(es[i].key, key) {
		return es[i], true
	}
	return entry{}, false
}

// view is a captured, immutable stack of layers, oldest first.
type view []*layer

// get returns key's newest entry in the stack.
func (v view) get(sys bool, key []byte) (entry, bool) {
	for i := len(v) - 1; i >= 0; i-- {
		es := v[i].data
		if sys {
			es = v[i].sys
		}
		if e, ok := find(es, key); ok {
			return e, true
		}
	}
	return entry{}, false
}

// top returns the newest layer, or nil.
func (v view) top() *layer {
	if len(v) == 0 {
		return nil
	}
	return v[len(v)-1]
}

// merge collapses the stack into one layer (newest entry per key wins,
// deletions kept: they still hide what bbolt holds).
func (v view) merge() *layer {
	if len(v) == 1 {
		return v[0]
	}
	top := v.top()
	out := &layer{applied: top.applied, keys: top.keys}
	out.data = mergeEntries(v, false)
	out.sys = mergeEntries(v, true)
	for _, es := range [][]entry{out.data, out.sys} {
		for _, e := range es {
			out.size += len(e.key) + len(e.val)
		}
	}
	return out
}

func mergeEntries(v view, sys bool) []entry {
	var out []entry
	it := newMergeIter(v, sys, nil, nil, nil)
	for it.next() {
		out = append(out, it.cur)
	}
	return out
}

// staged collects the writes of one Apply; it becomes a layer once the
// apply's function succeeds.
type staged struct {
	data, sys map[string]entry
	size      int
}

func (s *staged) put(sys bool, key, val []byte, del bool) {
	m := &s.data
	if sys {
		m = &s.sys
	}
	if *m == nil {
		*m = make(map[string]entry)
	}
	(*m)[string(key)] = entry{key: key, val: val, del: del}
	s.size += len(key) + len(val)
}

func (s *staged) get(sys bool, key []byte) (entry, bool) {
	m := s.data
	if sys {
		m = s.sys
	}
	e, ok := m[string(key)]
	return e, ok
}

func sortedEntries(m map[string]entry) []entry {
	if len(m) == 0 {
		return nil
	}
	es := make([]entry, 0, len(m))
	for _, e := range m {
		es = append(es, e)
	}
	slices.SortFunc(es, func(a, b entry) int { return bytes.Compare(a.key, b.key) })
	return es
}

// layer turns the staged writes into a layer.
func (s *staged) layer(applied, keys uint64) *layer {
	return &layer{data: sortedEntries(s.data), sys: sortedEntries(s.sys), applied: applied, keys: keys, size: s.size}
}

// mergeIter walks the union of a stack of layers (and optionally a bbolt
// bucket underneath) in key order within [lo, hi), newest state per key,
// skipping deletions (except in the layers-only merge, which keeps them).
type mergeIter struct {
	srcs []source
	// keepDeleted: the merged result is itself a layer (no bucket below).
	keepDeleted bool
	hi          []byte
	cur         entry
}

// source is one sorted input: entries of a layer, or a bbolt cursor.
// Sources are ordered oldest first; a later source wins a tie.
type source struct {
	es  []entry
	i   int
	c   *bolt.Cursor
	k   []byte
	v   []byte
	end bool
}

func (s *source) key() []byte {
	if s.c != nil {
		return s.k
	}
	return s.es[s.i].key
}

func (s *source) entry() entry {
	if s.c != nil {
		return entry{key: s.k, val: s.v}
	}
	return s.es[s.i]
}

func (s *source) advance() {
	if s.c != nil {
		s.k, s.v = s.c.Next()
		s.end = s.k == nil
		return
	}
	s.i++
	s.end = s.i >= len(s.es)
}

// newMergeIter merges bucket (nil for none) under the layers of v, for the
// data or sys space, from lo (nil: the first key) to hi (nil: no bound). A
// nil bucket keeps deletions in the output.
func newMergeIter(v view, sys bool, bucket *bolt.Bucket, lo, hi []byte) *mergeIter {
	it := &mergeIter{hi: hi, keepDeleted: bucket == nil}
	if bucket != nil {
		c := bucket.Cursor()
		var k, val []byte
		if len(lo) == 0 {
			k, val = c.First()
		} else {
			k, val = c.Seek(lo)
		}
		it.srcs = append(it.srcs, source{c: c, k: k, v: val, end: k == nil})
	}
	for _, l := range v {
		es := l.data
		if sys {
			es = l.sys
		}
		i := 0
		if len(lo) > 0 {
			i = sort.Search(len(es), func(i int) bool { return bytes.Compare(es[i].key, lo) >= 0 })
		}
		it.srcs = append(it.srcs, source{es: es, i: i, end: i >= len(es)})
	}
	return it
}

// next moves to the next visible entry, false at the end.
func (it *mergeIter) next() bool {
	for {
		var min []byte
		win := -1
		for i := range it.srcs {
			s := &it.srcs[i]
			if s.end {
				continue
			}
			k := s.key()
			if win < 0 || bytes.Compare(k, min) < 0 {
				min, win = k, i
			} else if bytes.Equal(k, min) {
				win = i // newer source
			}
		}
		if win < 0 || (len(it.hi) > 0 && bytes.Compare(min, it.hi) >= 0) {
			return false
		}
		it.cur = it.srcs[win].entry()
		// Step every source past this key. cur.key stays valid: layers never
		// change, and bbolt keys live as long as the transaction.
		for i := range it.srcs {
			s := &it.srcs[i]
			if !s.end && bytes.Equal(s.key(), it.cur.key) {
				s.advance()
			}
		}
		if it.cur.del && !it.keepDeleted {
			continue
		}
		return true
	}
}
