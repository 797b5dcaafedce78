package storage

import (
	"bytes"
	"encoding/binary"
	"fmt"
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
// groups share one transaction and one fsync.
//
// The first and last index are cached in memory and updated after each
// commit, so FirstIndex and LastIndex do not touch the file.
type LogStore struct {
	d      *LogDB
	id     string
	name   []byte // log bucket
	stable []byte // stable-store bucket

	mu          sync.Mutex // guards first, last
	first, last uint64
	dropped     atomic.Bool
}

// ID returns the raft group ID.
func (s *LogStore) ID() string { return s.id }

// FirstIndex returns the first index written, 0 if the log is empty.
func (s *LogStore) FirstIndex() (uint64, error) {
	if s.dropped.Load() {
		return 0, ErrGroupNotFound
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.first, nil
}

// LastIndex returns the last index written, 0 if the log is empty.
func (s *LogStore) LastIndex() (uint64, error) {
	if s.dropped.Load() {
		return 0, ErrGroupNotFound
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last, nil
}

func (s *LogStore) setBounds(first, last uint64) {
	s.mu.Lock()
	s.first, s.last = first, last
	s.mu.Unlock()
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

// GetLog reads the entry at index into log; raft.ErrLogNotFound if absent.
// The returned entry does not alias storage memory.
func (s *LogStore) GetLog(index uint64, log *raft.Log) error {
	tx, b, err := s.readTx(s.name)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], index)
	v := b.Get(k[:])
	if v == nil {
		return raft.ErrLogNotFound
	}
	return decodeLog(index, bytes.Clone(v), log)
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
	size := 0
	for _, l := range logs {
		size += encodedLogLen(l)
	}
	buf := make([]byte, 0, size)
	vals := make([][]byte, len(logs))
	for i, l := range logs {
		n := len(buf)
		buf = appendLog(buf, l)
		vals[i] = buf[n:len(buf):len(buf)]
	}
	var first, last uint64
	r := s.d.c.getRequest()
	defer s.d.c.putRequest(r)
	r.entries = len(logs)
	r.apply = func(tx *bolt.Tx) error {
		lb := tx.Bucket(s.name)
		if lb == nil {
			return &cleanError{ErrGroupNotFound}
		}
		lb.FillPercent = 1.0 // append-mostly: pack pages full
		var k [8]byte
		for i, l := range logs {
			binary.BigEndian.PutUint64(k[:], l.Index)
			if err := lb.Put(k[:], vals[i]); err != nil {
				return fmt.Errorf("storage: store log %d of group %q: %w", l.Index, s.id, err)
			}
		}
		first, last = bounds(lb)
		return nil
	}
	r.after = func() { s.setBounds(first, last) }
	return s.d.c.do(r)
}

// DeleteRange deletes the entries in [min, max] durably.
func (s *LogStore) DeleteRange(min, max uint64) error {
	if min > max {
		return nil
	}
	if s.dropped.Load() {
		return ErrGroupNotFound
	}
	var first, last uint64
	r := s.d.c.getRequest()
	defer s.d.c.putRequest(r)
	r.apply = func(tx *bolt.Tx) error {
		lb := tx.Bucket(s.name)
		if lb == nil {
			return &cleanError{ErrGroupNotFound}
		}
		c := lb.Cursor()
		var minKey [8]byte
		binary.BigEndian.PutUint64(minKey[:], min)
		// Re-seek after each delete: a bbolt cursor skips an element when
		// Next follows Delete.
		for k, _ := c.Seek(minKey[:]); k != nil && be64(k) <= max; k, _ = c.Seek(minKey[:]) {
			if err := c.Delete(); err != nil {
				return fmt.Errorf("storage: delete log %d of group %q: %w", be64(k), s.id, err)
			}
		}
		first, last = bounds(lb)
		return nil
	}
	r.after = func() { s.setBounds(first, last) }
	return s.d.c.do(r)
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
