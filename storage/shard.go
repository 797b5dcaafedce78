package storage

import (
	"errors"
	"fmt"
	"hash/crc64"
	"sync"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// ShardStore is one shard's bucket in a StateDB. It is safe for concurrent
// use.
type ShardStore struct {
	d          *StateDB
	id         string
	dataName   []byte // bucket
	sysName    []byte // bucket
	appliedKey []byte // in bucketMeta
	keysKey    []byte // in bucketMeta

	applyMu sync.Mutex // serialises Apply and Update

	mu      sync.RWMutex // guards the fields below
	active  []*layer     // published since the last flush began, oldest first
	frozen  []*layer     // being written by the flush in flight
	dropped bool         // DropShard removed the shard; Restore revives it
}

// maxActiveLayers bounds the layers a read may have to look through: when a
// shard publishes more between two flushes, they are merged into one.
const maxActiveLayers = 32

func newShardStore(d *StateDB, id string) *ShardStore {
	return &ShardStore{
		d: d, id: id,
		dataName:   []byte(dataPrefix + id),
		sysName:    []byte(sysPrefix + id),
		appliedKey: []byte("applied/" + id),
		keysKey:    []byte("keys/" + id),
	}
}

// shardBuckets are one shard's buckets within one bbolt transaction.
type shardBuckets struct {
	data, sys, meta *bolt.Bucket
}

// buckets returns the shard's buckets in tx, ok false if the shard does not
// exist.
func (s *ShardStore) buckets(tx *bolt.Tx) (b shardBuckets, ok bool) {
	b = shardBuckets{data: tx.Bucket(s.dataName), sys: tx.Bucket(s.sysName), meta: tx.Bucket(bucketMeta)}
	return b, b.data != nil && b.sys != nil && b.meta != nil
}

// create creates the shard's buckets if missing.
func (s *ShardStore) create(tx *bolt.Tx) (b shardBuckets, err error) {
	if b.data, err = tx.CreateBucketIfNotExists(s.dataName); err != nil {
		return b, err
	}
	if b.sys, err = tx.CreateBucketIfNotExists(s.sysName); err != nil {
		return b, err
	}
	b.meta, err = tx.CreateBucketIfNotExists(bucketMeta)
	return b, err
}

// drop deletes the shard's buckets and meta keys; a missing shard is fine.
func (s *ShardStore) drop(tx *bolt.Tx) error {
	for _, name := range [][]byte{s.dataName, s.sysName} {
		if err := tx.DeleteBucket(name); err != nil && !errors.Is(err, berrors.ErrBucketNotFound) {
			return err
		}
	}
	if m := tx.Bucket(bucketMeta); m != nil {
		if err := m.Delete(s.appliedKey); err != nil {
			return err
		}
		return m.Delete(s.keysKey)
	}
	return nil
}

// ID returns the shard ID.
func (s *ShardStore) ID() string { return s.id }

// Apply runs fn in a write transaction on the caller's goroutine and
// publishes its writes to the shard's readers (View, Snapshot, later
// Applies) when it returns: they are visible at once and become durable
// with the StateDB's next flush (within its FlushInterval, or at Flush,
// Snapshot, Restore or Close). It is for writes that are durable elsewhere
// until then: raft applies, whose entries a majority's raft log holds and
// replays after a crash.
//
// Applies of a shard are serialised. If fn returns an error or panics,
// nothing of it is published; the error is returned (the panic re-raised).
// Apply fails with the flush's error once a flush failed: the node must stop.
func (s *ShardStore) Apply(fn func(tx *Tx) error) error {
	if err := s.d.failure(); err != nil {
		return err
	}
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	t, err := s.begin(true)
	if err != nil {
		return err
	}
	defer t.end()
	if err := fn(t); err != nil {
		return err
	}
	l := t.layer()
	if l == nil {
		return nil
	}
	s.mu.Lock()
	if s.dropped {
		s.mu.Unlock()
		return ErrShardNotFound
	}
	s.active = append(s.active, l)
	if len(s.active) > maxActiveLayers {
		s.active = []*layer{view(s.active).merge()}
	}
	s.mu.Unlock()
	s.d.published(s, l.size)
	return nil
}

// Update is Apply followed by Flush: it returns once fn's writes are
// durable (fsynced). Concurrent Updates of different shards share a commit.
func (s *ShardStore) Update(fn func(tx *Tx) error) error {
	if err := s.Apply(fn); err != nil {
		return err
	}
	return s.d.Flush()
}

// begin opens a Tx over the shard's current state: a bbolt read transaction
// and the layers above it, captured together.
func (s *ShardStore) begin(writable bool) (*Tx, error) {
	s.mu.RLock()
	btx, err := s.d.db.Begin(false)
	if err != nil {
		s.mu.RUnlock()
		return nil, mapBoltErr(err)
	}
	var v view
	if n := len(s.frozen) + len(s.active); n > 0 {
		v = make(view, 0, n)
		v = append(append(v, s.frozen...), s.active...)
	}
	dropped := s.dropped
	s.mu.RUnlock()
	b, ok := s.buckets(btx)
	if !ok || dropped {
		_ = btx.Rollback()
		return nil, ErrShardNotFound
	}
	t := &Tx{s: s, btx: btx, b: b, v: v, writable: writable}
	if writable {
		t.st = &staged{}
	}
	return t, nil
}

// end closes the Tx's read transaction; the Tx is unusable afterwards.
func (t *Tx) end() {
	t.done = true
	_ = t.btx.Rollback()
}

// freeze moves the shard's active layers to frozen for a flush and returns
// everything not yet durable (frozen layers of a failed flush included).
func (s *ShardStore) freeze() view {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dropped {
		s.active, s.frozen = nil, nil
		return nil
	}
	if len(s.active) > 0 {
		f := make([]*layer, 0, len(s.frozen)+len(s.active))
		s.frozen = append(append(f, s.frozen...), s.active...)
		s.active = nil
	}
	return view(s.frozen)
}

func (s *ShardStore) isDropped() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.dropped
}

// thaw drops the frozen layers once their flush has committed.
func (s *ShardStore) thaw() {
	s.mu.Lock()
	s.frozen = nil
	s.mu.Unlock()
}

// discard forgets every layer: the shard's buckets are being replaced or
// dropped in the same commit.
func (s *ShardStore) discard(dropped bool) {
	s.mu.Lock()
	s.active, s.frozen, s.dropped = nil, nil, dropped
	s.mu.Unlock()
}

// dataFillPercent is how full a flush packs the data pages it splits.
const dataFillPercent = 0.9

// write writes the layers of v into the shard's buckets in tx: the newest
// state of every key they hold, with the applied index and key count.
func (s *ShardStore) write(tx *bolt.Tx, v view) error {
	b, ok := s.buckets(tx)
	if !ok {
		return nil // dropped meanwhile
	}
	l := v.merge()
	// Pack pages as etcd does for its sequential puts: keys are often
	// written in ascending order (a load, a counter, a timestamped key),
	// which leaves every split page half empty at bbolt's default of 0.5,
	// and the file's pages count in the node's resident memory.
	b.data.FillPercent = dataFillPercent
	for _, sp := range []struct {
		b  *bolt.Bucket
		es []entry
	}{{b.data, l.data}, {b.sys, l.sys}} {
		for _, e := range sp.es {
			var err error
			if e.del {
				err = sp.b.Delete(e.key)
			} else {
				err = sp.b.Put(e.key, e.val)
			}
			if err != nil {
				return fmt.Errorf("storage: flush shard %q key %q: %w", s.id, e.key, err)
			}
		}
	}
	if err := b.meta.Put(s.appliedKey, uint64Key(l.applied)); err != nil {
		return fmt.Errorf("storage: flush shard %q applied index: %w", s.id, err)
	}
	if err := b.meta.Put(s.keysKey, uint64Key(l.keys)); err != nil {
		return fmt.Errorf("storage: flush shard %q key count: %w", s.id, err)
	}
	return nil
}

// View runs fn in a read-only transaction: a consistent view of the shard,
// applies not yet flushed included. Write methods of the Tx return
// ErrReadOnlyTx. Views run concurrently with each other, with Applies and
// with flushes.
func (s *ShardStore) View(fn func(tx *Tx) error) error {
	t, err := s.begin(false)
	if err != nil {
		return err
	}
	defer t.end()
	return fn(t)
}

// AppliedIndex returns the shard's applied index (as published by Apply;
// durable once flushed).
func (s *ShardStore) AppliedIndex() (uint64, error) {
	var idx uint64
	err := s.View(func(tx *Tx) error { idx = tx.Applied(); return nil })
	return idx, err
}

var crcTable = crc64.MakeTable(crc64.ECMA)

// Checksum returns the applied index, a CRC-64 (ECMA) over the data and sys
// sub-spaces in byte order (keys and values with their lengths), and the
// number of data keys. Two replicas at the same applied index must return
// the same sum. It returns an error wrapping ErrCorrupt if the key counter
// disagrees with the number of keys found.
func (s *ShardStore) Checksum() (applied uint64, sum uint64, keys uint64, err error) {
	err = s.View(func(tx *Tx) error {
		applied = tx.Applied()
		h := crc64.New(crcTable)
		var hdr [1 + 2*8]byte
		add := func(kind byte, k, v []byte) {
			hdr[0] = kind
			putU64(hdr[1:], uint64(len(k)))
			putU64(hdr[9:], uint64(len(v)))
			_, _ = h.Write(hdr[:])
			_, _ = h.Write(k)
			_, _ = h.Write(v)
		}
		var n uint64
		for it := newMergeIter(tx.v, false, tx.b.data, nil, nil); it.next(); {
			n++
			add(recData, it.cur.key, it.cur.val)
		}
		for it := newMergeIter(tx.v, true, tx.b.sys, nil, nil); it.next(); {
			add(recSys, it.cur.key, it.cur.val)
		}
		sum, keys = h.Sum64(), n
		if c := tx.Keys(); c != n {
			return fmt.Errorf("%w: shard %q key counter is %d but %d keys are stored", ErrCorrupt, s.id, c, n)
		}
		return nil
	})
	return applied, sum, keys, err
}
