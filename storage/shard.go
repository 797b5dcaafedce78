package storage

import (
	"fmt"
	"hash/crc64"
	"runtime/debug"

	bolt "go.etcd.io/bbolt"
)

// ShardStore is one shard's bucket in a StateDB. It is safe for concurrent
// use.
type ShardStore struct {
	d    *StateDB
	id   string
	name []byte
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
	r.apply = func(btx *bolt.Tx) error {
		b := btx.Bucket(s.name)
		if b == nil {
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
	err := s.d.c.do(r)
	if p, ok := err.(*panicError); ok {
		panic(fmt.Sprintf("%v\n\noriginal stack:\n%s", p.val, p.stack))
	}
	return err
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
	b := btx.Bucket(s.name)
	if b == nil {
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
