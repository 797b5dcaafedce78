package storage

import (
	"errors"
	"fmt"
	"hash/crc64"
	"runtime/debug"

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
}

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

// panicError carries a panic out of a function run on the committer
// goroutine so that Update can re-raise it on the caller's goroutine.
type panicError struct {
	val   any
	stack []byte
}

func (p *panicError) Error() string {
	return fmt.Sprintf("storage: panic in Update function: %v", p.val)
}

func callFn(fn func(*Tx) error, t *Tx) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &panicError{val: v, stack: debug.Stack()}
		}
	}()
	return fn(t)
}

// Update runs fn in a durable write transaction and blocks until it is
// committed (fsynced). Concurrent Updates, of this and other shards, are
// group-committed: fn runs on the StateDB's committer goroutine, inside a
// transaction shared with other callers, so it must be quick (decode
// commands before calling Update), must not call other methods of this
// StateDB, and must confine its side effects to the Tx or make them safe to
// observe even if the commit later fails.
//
// fn is called exactly once. If it returns an error (or panics), its writes
// are undone, the error is returned (the panic re-raised) and the other
// callers of the same group commit are unaffected. If the commit itself
// fails, the commit error is returned and nothing of fn persisted.
func (s *ShardStore) Update(fn func(tx *Tx) error) error {
	r := s.d.c.getRequest()
	defer s.d.c.putRequest(r)
	r.apply = s.applyFunc(fn)
	err := s.d.c.do(r)
	if p, ok := err.(*panicError); ok {
		panic(fmt.Sprintf("%v\n\noriginal stack:\n%s", p.val, p.stack))
	}
	return err
}

// UpdateAsync runs fn like Update but returns as soon as fn has run in the
// group-commit transaction that will commit it: before that transaction is
// durable, and before readers (View, Snapshot) can see its writes. It returns
// fn's error (nothing of fn is then written) or ErrClosed.
//
// When UpdateAsync returns nil, committed is called exactly once, on the
// committer's goroutine, with the commit's outcome: nil once fn's writes are
// durable and visible. It must be quick and must not call into the StateDB.
// Later Updates and UpdateAsyncs of the shard see fn's writes in their own
// transaction, whether or not it has committed yet, and commit after it.
//
// It is for callers whose writes are already durable elsewhere (raft applies:
// the log holds the entries on a majority), so that the caller's answer need
// not wait for this fsync.
func (s *ShardStore) UpdateAsync(fn func(tx *Tx) error, committed func(err error)) error {
	r := &request{
		apply:     s.applyFunc(fn),
		committed: committed,
		executed:  make(chan error, 1),
	}
	err := s.d.c.doAsync(r)
	if p, ok := err.(*panicError); ok {
		panic(fmt.Sprintf("%v\n\noriginal stack:\n%s", p.val, p.stack))
	}
	return err
}

// applyFunc wraps fn as a committer request's apply function: fn runs on a
// Tx over the shard's buckets, and its writes are undone if it fails.
func (s *ShardStore) applyFunc(fn func(tx *Tx) error) func(btx *bolt.Tx) error {
	return func(btx *bolt.Tx) error {
		b, ok := s.buckets(btx)
		if !ok {
			return &cleanError{ErrShardNotFound}
		}
		t := newTx(s, b, true)
		err := callFn(fn, t)
		t.done = true
		if err != nil {
			if uerr := t.rollback(); uerr != nil {
				return fmt.Errorf("storage: undo failed update of shard %q: %w (after: %w)", s.id, uerr, err)
			}
			return &cleanError{err}
		}
		if err := t.flushMeta(); err != nil {
			if uerr := t.rollback(); uerr != nil {
				return fmt.Errorf("storage: undo failed update of shard %q: %w (after: %w)", s.id, uerr, err)
			}
			return &cleanError{fmt.Errorf("storage: write applied index of shard %q: %w", s.id, err)}
		}
		return nil
	}
}

// View runs fn in a read-only transaction: a consistent view of the shard.
// Write methods of the Tx return ErrReadOnlyTx. Views run concurrently with
// each other and with Updates.
func (s *ShardStore) View(fn func(tx *Tx) error) error {
	btx, err := s.d.db.Begin(false)
	if err != nil {
		return mapBoltErr(err)
	}
	defer func() { _ = btx.Rollback() }()
	b, ok := s.buckets(btx)
	if !ok {
		return ErrShardNotFound
	}
	t := newTx(s, b, false)
	defer func() { t.done = true }()
	return fn(t)
}

// AppliedIndex returns the shard's durable applied index.
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
		if err := tx.data.ForEach(func(k, v []byte) error { n++; add(recData, k, v); return nil }); err != nil {
			return err
		}
		if err := tx.sys.ForEach(func(k, v []byte) error { add(recSys, k, v); return nil }); err != nil {
			return err
		}
		sum, keys = h.Sum64(), n
		if c := tx.Keys(); c != n {
			return fmt.Errorf("%w: shard %q key counter is %d but %d keys are stored", ErrCorrupt, s.id, c, n)
		}
		return nil
	})
	return applied, sum, keys, err
}
