package storage

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"
)

var (
	_ raft.LogStore    = (*LogStore)(nil)
	_ raft.StableStore = (*LogStore)(nil)
)

// LogStore is one raft group's log and stable store inside a LogDB. It
// implements raft.LogStore and raft.StableStore and is safe for concurrent
// use. Writes block until they are durable; concurrent writes of different
// groups share one transaction and one fsync. The one exception is a
// leader's append, when enabled by ReturnEarly: see there.
//
// The position of every entry in the wal is held in memory (a few bytes per
// entry), so FirstIndex and LastIndex do not touch the file and GetLog is
// one lookup.
type LogStore struct {
	d       *LogDB
	id      string
	num     uint64 // group number in the wal; set before the store is shared
	stable  []byte // stable-store bucket
	archive []byte // archive bucket (wal.go)

	// wmu serialises the group's log writes (StoreLogs, DeleteRange, its
	// drop), and each waits for the appends in flight: a group has at most
	// one of them in any commit, so each computes its changes from the
	// committed state. Only early appends (ReturnEarly), pure appends at the
	// log's end, can share a commit. (The cleaner commits alone.)
	wmu sync.Mutex

	// mu guards the fields below. They change only on the committer
	// goroutine (in request functions), which reads them without mu.
	mu      sync.Mutex
	live    []walPair // sorted by index; seq 0: archived
	ordered bool      // live's sequences grow with the index
	dead    []walPair // in the wal below floor, not yet trimmed, sorted by index
	floor   uint64
	minSeq  uint64
	// pending are the appends in flight that StoreLogs returned early
	// (ReturnEarly), oldest first; they become durable in that order.
	// Guarded by mu.
	pending []*pendingAppend
	dropped atomic.Bool

	early  atomic.Pointer[func() bool]
	failed atomic.Pointer[error] // an early append failed: the log is lost

	// afterLookup, if set (tests only), runs in GetLog between finding an
	// entry's place and reading it.
	afterLookup func()
}

// pendingAppend is an append that StoreLogs returned before it was durable.
type pendingAppend struct {
	logs []*raft.Log // sorted by index, contiguous after the log's end
	done chan struct{}
}

func (p *pendingAppend) last() uint64 { return p.logs[len(p.logs)-1].Index }

// ID returns the raft group ID.
func (s *LogStore) ID() string { return s.id }

// FirstIndex returns the first index written, 0 if the log is empty.
func (s *LogStore) FirstIndex() (uint64, error) {
	if s.dropped.Load() {
		return 0, ErrGroupNotFound
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case len(s.live) > 0:
		return s.live[0].index, nil
	case len(s.pending) > 0:
		return s.pending[0].logs[0].Index, nil
	}
	return 0, nil
}

// LastIndex returns the last index written, 0 if the log is empty.
func (s *LogStore) LastIndex() (uint64, error) {
	if s.dropped.Load() {
		return 0, ErrGroupNotFound
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := len(s.pending); n > 0 {
		return s.pending[n-1].last(), nil
	}
	if len(s.live) == 0 {
		return 0, nil
	}
	return s.live[len(s.live)-1].index, nil
}

// readTx begins a read transaction and returns the group's bucket name.
func (s *LogStore) readTx(name []byte) (*bolt.Tx, *bolt.Bucket, error) {
	if s.dropped.Load() {
		return nil, nil, ErrGroupNotFound
	}
	tx, err := s.d.db.Begin(false)
	if err != nil {
		return nil, nil, mapBoltErr(err)
	}
	b := tx.Bucket(name)
	if b == nil {
		_ = tx.Rollback()
		return nil, nil, ErrGroupNotFound
	}
	return tx, b, nil
}

// seqOf returns the wal sequence of entry index.
func (s *LogStore) seqOf(index uint64) (uint64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i, ok := searchPairs(s.live, index)
	if !ok {
		return 0, false
	}
	return s.live[i].seq, true
}

// pendingLog returns entry index if it is part of an append in flight.
func (s *LogStore) pendingLog(index uint64) *raft.Log {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.pending {
		if first := p.logs[0].Index; index >= first && index <= p.last() {
			return p.logs[index-first]
		}
	}
	return nil
}

// GetLog reads the entry at index into log; raft.ErrLogNotFound if absent.
// The returned entry does not alias storage memory.
//
// An entry can move between finding its place and reading it: the cleaner
// moves it to the group's archive, and an overwrite gives it a new sequence.
// A miss is therefore looked up again before it is reported: raft answers
// ErrLogNotFound by sending the follower a whole snapshot.
func (s *LogStore) GetLog(index uint64, log *raft.Log) error {
	if l := s.pendingLog(index); l != nil {
		*log = *l
		return nil
	}
	for attempt := 0; ; attempt++ {
		seq, ok := s.seqOf(index)
		if !ok {
			switch {
			case s.dropped.Load():
				return ErrGroupNotFound
			case s.d.c.isClosed():
				return ErrClosed
			}
			return raft.ErrLogNotFound
		}
		if s.afterLookup != nil {
			s.afterLookup()
		}
		found, err := s.readLog(index, seq, log)
		if err != nil || found {
			return err
		}
		// Look again only if the entry's place changed (a group dropped or
		// a store closed since is reported as such at the top).
		if now, ok := s.seqOf(index); (ok && now == seq) || attempt == 2 {
			return raft.ErrLogNotFound
		}
	}
}

// readLog reads entry index from wal sequence seq (or the archive) into log;
// found is false if it is not there (any more).
func (s *LogStore) readLog(index, seq uint64, log *raft.Log) (found bool, err error) {
	name := walBucket
	if seq == archived {
		name = s.archive
	}
	tx, b, err := s.readTx(name)
	if err != nil {
		return false, err
	}
	defer func() { _ = tx.Rollback() }()
	key := uint64Key(seq)
	if seq == archived {
		key = uint64Key(index)
	}
	v := b.Get(key)
	if v == nil {
		return false, nil
	}
	num, idx, rest, err := parseWALHeader(seq, v)
	if err != nil {
		return false, err
	}
	if num != s.num || idx != index {
		return false, fmt.Errorf("%w: wal entry %d holds entry %d of group %d, want entry %d of %q", ErrCorrupt, seq, idx, num, index, s.id)
	}
	return true, decodeLog(index, bytes.Clone(rest), log)
}

// StoreLog stores one entry durably.
func (s *LogStore) StoreLog(log *raft.Log) error {
	return s.StoreLogs([]*raft.Log{log})
}

// StoreLogs stores entries durably, overwriting entries with the same index.
// The entries are encoded on the calling goroutine and written in the next
// group commit.
func (s *LogStore) StoreLogs(logs []*raft.Log) error {
	if len(logs) == 0 {
		return nil
	}
	if s.dropped.Load() {
		return ErrGroupNotFound
	}
	logs = sortedUnique(logs)
	size := 0
	for _, l := range logs {
		size += 2*binary.MaxVarintLen64 + encodedLogLen(l)
	}
	buf := make([]byte, 0, size)
	vals := make([][]byte, len(logs))
	for i, l := range logs {
		n := len(buf)
		buf = appendLog(appendWALHeader(buf, s.num, l.Index), l)
		vals[i] = buf[n:len(buf):len(buf)]
	}
	d := s.d
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if errp := s.failed.Load(); errp != nil {
		return *errp
	}
	var (
		added    = make([]walPair, len(logs))
		replaced []walPair // old entries deleted
		revived  int       // dead entries deleted (the floor went down)
		floor    uint64
	)
	apply := func(tx *bolt.Tx) error {
		if d.byNum[s.num] != s {
			return &cleanError{ErrGroupNotFound}
		}
		wb := tx.Bucket(walBucket)
		wb.FillPercent = 1.0 // append-only: pack pages full
		replaced, revived, floor = replaced[:0], 0, s.floor
		if lo := logs[0].Index; lo < floor {
			// Entries below the floor become live again: delete the dead
			// ones they would bring back.
			floor = lo
			for _, p := range s.dead {
				if p.index >= lo {
					if err := wb.Delete(uint64Key(p.seq)); err != nil {
						return err
					}
					revived++
				}
			}
			rec := groupRecord{num: s.num, floor: floor, minSeq: s.minSeq}
			if err := tx.Bucket(walGroupsBucket).Put([]byte(s.id), rec.encode()); err != nil {
				return err
			}
		}
		if last := len(s.live) - 1; last >= 0 && logs[0].Index <= s.live[last].index {
			for _, l := range logs {
				if i, ok := searchPairs(s.live, l.Index); ok {
					if err := s.deleteEntry(tx, s.live[i]); err != nil {
						return err
					}
					replaced = append(replaced, s.live[i])
				}
			}
		}
		for i, l := range logs {
			seq := d.nextSeq
			d.nextSeq++
			if err := wb.Put(uint64Key(seq), vals[i]); err != nil {
				return fmt.Errorf("storage: store log %d of group %q: %w", l.Index, s.id, err)
			}
			added[i] = walPair{l.Index, seq}
		}
		return nil
	}
	after := func() {
		d.walKeys += len(added) - revived - walCount(replaced)
		s.mu.Lock()
		defer s.mu.Unlock()
		if floor < s.floor {
			s.floor = floor
			s.dead = slices.DeleteFunc(s.dead, func(p walPair) bool { return p.index >= floor })
		}
		d.committed = max(d.committed, added[len(added)-1].seq+1)
		if n := len(s.live); n == 0 || added[0].index > s.live[n-1].index {
			s.ordered = s.ordered || n == 0
			s.live = append(s.live, added...)
			return
		}
		s.live = mergePairs(s.live, added)
		s.ordered = seqsOrdered(s.live)
	}
	if !s.mayReturnEarly(logs) {
		if err := s.waitPending(); err != nil {
			return err
		}
		r := d.c.getRequest()
		defer d.c.putRequest(r)
		r.entries, r.apply, r.after = len(logs), apply, after
		return d.c.do(r)
	}
	fail := func(err error) {
		err = fmt.Errorf("storage: append of entries %d-%d of group %q (returned before it was durable) failed; the log has lost them: %w",
			logs[0].Index, logs[len(logs)-1].Index, s.id, err)
		s.failed.CompareAndSwap(nil, &err)
	}
	p := &pendingAppend{logs: logs, done: make(chan struct{})}
	r := &request{entries: len(logs), after: after}
	r.apply = func(tx *bolt.Tx) error {
		// An earlier append in flight failed: writing this one would leave
		// a hole in the log.
		if errp := s.failed.Load(); errp != nil {
			return &cleanError{*errp}
		}
		err := apply(tx)
		if err != nil {
			fail(err)
		}
		return err
	}
	r.async = func() {
		if r.err != nil {
			fail(r.err)
		}
		s.mu.Lock()
		s.pending = slices.DeleteFunc(s.pending, func(q *pendingAppend) bool { return q == p })
		s.mu.Unlock()
		close(p.done)
	}
	s.mu.Lock()
	s.pending = append(s.pending, p)
	s.mu.Unlock()
	if err := d.c.submit(r); err != nil {
		s.mu.Lock()
		s.pending = slices.DeleteFunc(s.pending, func(q *pendingAppend) bool { return q == p })
		s.mu.Unlock()
		return err
	}
	return nil
}

// waitPending waits until every append in flight has finished and returns
// the error of a failed one. Called with wmu held, so no new one starts.
func (s *LogStore) waitPending() error { return s.WaitDurable(math.MaxUint64) }

// ReturnEarly lets StoreLogs return before its entries are durable while
// leader reports true (it is called at each StoreLogs, on raft's goroutine).
// This is the Raft thesis's parallel leader write (§10.2.1): the leader
// sends entries to its followers while its own append is in flight, instead
// of after it, and raft's leader loop goes on while the append commits.
// Only commands appended at the end of the log return early; anything else
// waits for the appends in flight and then for itself. Appends become
// durable in order, so a durable entry implies that every entry before it
// is. An early append that fails makes every later write fail.
//
// The caller must not count this log's copy of an entry before it is
// durable: apply or acknowledge an entry only once WaitDurable(its index)
// returns or a majority of the group without this log holds it, and tell
// followers a commit index no higher than DurableIndex.
func (s *LogStore) ReturnEarly(leader func() bool) {
	s.early.Store(&leader)
}

// mayReturnEarly reports whether StoreLogs may return before logs are
// durable (see ReturnEarly). Called with wmu held.
func (s *LogStore) mayReturnEarly(logs []*raft.Log) bool {
	leader := s.early.Load()
	if leader == nil {
		return false
	}
	first, last := logs[0].Index, logs[len(logs)-1].Index
	if last-first != uint64(len(logs)-1) {
		return false
	}
	for _, l := range logs {
		if l.Type != raft.LogCommand {
			return false
		}
	}
	s.mu.Lock()
	var atEnd bool
	switch n := len(s.pending); {
	case n > 0:
		atEnd = first == s.pending[n-1].last()+1
	case len(s.live) > 0:
		atEnd = first == s.live[len(s.live)-1].index+1
	default:
		atEnd = first >= s.floor
	}
	s.mu.Unlock()
	return atEnd && (*leader)()
}

// WaitDurable blocks until every entry up to index that the log holds is
// durable. It returns the error of a failed early append.
func (s *LogStore) WaitDurable(index uint64) error {
	<-s.DurableCh(index) // earlier appends finish first
	return s.AppendErr()
}

// DurableCh returns a channel that is closed once every entry up to index
// that the log holds is durable (already closed if it is). Check AppendErr
// after it closes: a failed append also closes it.
func (s *LogStore) DurableCh(index uint64) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	var wait *pendingAppend // the last append in flight that holds entries up to index
	for _, p := range s.pending {
		if p.logs[0].Index > index {
			break // pending is in log order
		}
		wait = p
	}
	if wait == nil {
		return closedCh
	}
	return wait.done
}

// AppendErr returns the error of a failed early append (see ReturnEarly),
// after which the log takes no more writes; nil if none failed.
func (s *LogStore) AppendErr() error {
	if errp := s.failed.Load(); errp != nil {
		return *errp
	}
	return nil
}

// closedCh is a closed channel: what DurableCh returns for a durable index.
var closedCh = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

// DurableIndex returns an index up to which every entry that the log holds
// is durable: below the oldest append in flight, or math.MaxUint64 when
// there is none.
func (s *LogStore) DurableIndex() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.pending) > 0 {
		return s.pending[0].logs[0].Index - 1
	}
	return math.MaxUint64
}

// deleteEntry deletes entry p from the wal or the archive.
func (s *LogStore) deleteEntry(tx *bolt.Tx, p walPair) error {
	if p.seq == archived {
		return tx.Bucket(s.archive).Delete(uint64Key(p.index))
	}
	return tx.Bucket(walBucket).Delete(uint64Key(p.seq))
}

// walCount returns how many of ps are in the wal.
func walCount(ps []walPair) int {
	n := 0
	for _, p := range ps {
		if p.seq != archived {
			n++
		}
	}
	return n
}

// sortedUnique returns logs sorted by index with one entry per index (the
// last one given wins), as raft always passes them.
func sortedUnique(logs []*raft.Log) []*raft.Log {
	ok := true
	for i := 1; i < len(logs) && ok; i++ {
		ok = logs[i].Index > logs[i-1].Index
	}
	if ok {
		return logs
	}
	out := slices.Clone(logs)
	slices.SortStableFunc(out, func(a, b *raft.Log) int { return cmp.Compare(a.Index, b.Index) })
	u := out[:0]
	for i, l := range out {
		if i+1 < len(out) && out[i+1].Index == l.Index {
			continue // a later entry of the same index wins
		}
		u = append(u, l)
	}
	return u
}

// DeleteRange deletes the entries in [min, max] durably. Deleting a prefix
// (raft's compaction) only raises the group's floor and then trims the
// garbage at the front of the wal; other deletes remove the entries.
func (s *LogStore) DeleteRange(min, max uint64) error {
	if min > max {
		return nil
	}
	if s.dropped.Load() {
		return ErrGroupNotFound
	}
	d := s.d
	var needClean bool
	err := func() error {
		s.wmu.Lock()
		defer s.wmu.Unlock()
		if err := s.waitPending(); err != nil {
			return err
		}
		var (
			lo, hi int
			prefix bool
			n      int
			cut    uint64
		)
		r := d.c.getRequest()
		defer d.c.putRequest(r)
		r.apply = func(tx *bolt.Tx) error {
			if d.byNum[s.num] != s {
				return &cleanError{ErrGroupNotFound}
			}
			needClean, n = false, 0
			lo, _ = searchPairs(s.live, min)
			hi, _ = searchPairs(s.live, max)
			if hi < len(s.live) && s.live[hi].index == max {
				hi++
			}
			if lo == hi {
				return nil
			}
			wb := tx.Bucket(walBucket)
			prefix = lo == 0
			for _, p := range s.live[lo:hi] {
				if !prefix || p.seq == archived {
					if err := s.deleteEntry(tx, p); err != nil {
						return fmt.Errorf("storage: delete log %d of group %q: %w", p.index, s.id, err)
					}
				}
			}
			if !prefix {
				return nil
			}
			rec := groupRecord{num: s.num, floor: s.live[hi-1].index + 1, minSeq: s.minSeq}
			if err := tx.Bucket(walGroupsBucket).Put([]byte(s.id), rec.encode()); err != nil {
				return err
			}
			low, live := d.liveStats(map[*LogStore][]walPair{s: s.live[hi:]})
			var err error
			if n, cut, err = d.trimFront(wb, low); err != nil {
				return err
			}
			needClean = d.walKeys-n-live > live/2+d.slack
			return nil
		}
		r.after = func() {
			if lo == hi {
				return
			}
			s.mu.Lock()
			if prefix {
				s.floor = s.live[hi-1].index + 1
				for _, p := range s.live[:hi] {
					if p.seq != archived {
						s.dead = append(s.dead, p)
					}
				}
				s.live = slices.Clone(s.live[hi:])
			} else {
				d.walKeys -= walCount(s.live[lo:hi])
				s.live = slices.Delete(s.live, lo, hi)
			}
			s.ordered = seqsOrdered(s.live)
			s.mu.Unlock()
			if prefix {
				d.trimmed(n, cut)
			}
		}
		return d.c.do(r)
	}()
	if err == nil && needClean {
		d.clean()
	}
	return err
}

// Set stores a stable-store key durably.
func (s *LogStore) Set(key, val []byte) error {
	if len(key) == 0 {
		return ErrEmptyKey
	}
	if s.dropped.Load() {
		return ErrGroupNotFound
	}
	r := s.d.c.getRequest()
	defer s.d.c.putRequest(r)
	r.apply = func(tx *bolt.Tx) error {
		b := tx.Bucket(s.stable)
		if b == nil {
			return &cleanError{ErrGroupNotFound}
		}
		if err := b.Put(key, val); err != nil {
			return fmt.Errorf("storage: set stable key %q of group %q: %w", key, s.id, err)
		}
		return nil
	}
	return s.d.c.do(r)
}

// Get returns a copy of a stable-store value. A missing key yields an error
// whose message is "not found" (as hashicorp/raft requires) and that matches
// ErrKeyNotFound.
func (s *LogStore) Get(key []byte) ([]byte, error) {
	tx, b, err := s.readTx(s.stable)
	if err != nil {
		return nil, err
	}
	defer func() { _ = tx.Rollback() }()
	// A cursor tells a missing key from an empty value.
	k, v := b.Cursor().Seek(key)
	if k == nil || !bytes.Equal(k, key) {
		return nil, errStableNotFound
	}
	return append([]byte{}, v...), nil
}

// SetUint64 stores val as 8 big-endian bytes under key.
func (s *LogStore) SetUint64(key []byte, val uint64) error {
	return s.Set(key, uint64Key(val))
}

// GetUint64 returns the value stored by SetUint64; a missing key yields 0 and
// the "not found" error described at Get.
func (s *LogStore) GetUint64(key []byte) (uint64, error) {
	v, err := s.Get(key)
	if err != nil {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("%w: stable key %q of group %q holds %d bytes, want 8", ErrCorrupt, key, s.id, len(v))
	}
	return be64(v), nil
}
