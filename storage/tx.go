package storage

import (
	"bytes"
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Value is a data key's stored value.
type Value struct {
	// Data is valid only until the transaction's function returns; copy it
	// to keep it.
	Data []byte
	// Version is the version the key was written with (the raft index of
	// the write, by convention of the caller).
	Version uint64
}

// ScanOptions bounds a Scan. Keys are visited in byte order in
// [Start, End); Prefix narrows the range further. A nil or empty bound is
// unbounded.
type ScanOptions struct {
	Start, End, Prefix []byte
}

// Tx is a transaction on one shard, passed to the function given to
// ShardStore.Update (writable) or ShardStore.View (read-only). It must not be
// used after that function returns, nor from other goroutines, and buckets
// must not be modified from inside a Scan callback.
//
// Data values are stored as an 8-byte big-endian version followed by the
// value bytes.
type Tx struct {
	s        *ShardStore
	meta     *bolt.Bucket // holds applied index and key counter
	data     *bolt.Bucket
	sys      *bolt.Bucket
	writable bool
	done     bool

	metaLoaded   bool
	applied      uint64
	keys         uint64
	appliedDirty bool
	keysDirty    bool

	undo  []undoRec
	arena []byte // backing store for values written and undo copies
}

// undoRec restores one key of data or sys to its state before the tx.
type undoRec struct {
	sys     bool
	existed bool
	key     []byte
	old     []byte
}

func newTx(s *ShardStore, b shardBuckets, writable bool) *Tx {
	return &Tx{s: s, meta: b.meta, data: b.data, sys: b.sys, writable: writable}
}

func (t *Tx) loadMeta() {
	if t.metaLoaded {
		return
	}
	t.metaLoaded = true
	if v := t.meta.Get(t.s.appliedKey); len(v) == 8 {
		t.applied = be64(v)
	}
	if v := t.meta.Get(t.s.keysKey); len(v) == 8 {
		t.keys = be64(v)
	}
}

// alloc returns n bytes that stay valid (and unshared) for the life of the
// bbolt transaction, carved from a per-Tx arena to save allocations.
func (t *Tx) alloc(n int) []byte {
	if cap(t.arena)-len(t.arena) < n {
		// Chunks double from 512 B to 16 KiB; big values get their own.
		size := min(max(2*cap(t.arena), 512), 16<<10)
		if n > size/4 {
			return make([]byte, n)
		}
		t.arena = make([]byte, 0, size)
	}
	l := len(t.arena)
	t.arena = t.arena[:l+n]
	return t.arena[l : l+n : l+n]
}

func (t *Tx) clone(b []byte) []byte {
	c := t.alloc(len(b))
	copy(c, b)
	return c
}

func (t *Tx) writeCheck() error {
	if t.done {
		return ErrTxDone
	}
	if !t.writable {
		return ErrReadOnlyTx
	}
	return nil
}

// Get returns key's value and whether it exists.
func (t *Tx) Get(key []byte) (Value, bool) {
	if t.done {
		return Value{}, false
	}
	v := t.data.Get(key)
	if len(v) < 8 {
		return Value{}, false
	}
	return Value{Data: v[8:len(v):len(v)], Version: be64(v)}, true
}

// Put writes key = value with version.
func (t *Tx) Put(key, value []byte, version uint64) error {
	if err := t.writeCheck(); err != nil {
		return err
	}
	if len(key) == 0 {
		return ErrEmptyKey
	}
	old := t.data.Get(key)
	t.record(false, key, old, old != nil)
	v := t.alloc(8 + len(value))
	binary.BigEndian.PutUint64(v, version)
	copy(v[8:], value)
	if err := t.data.Put(key, v); err != nil {
		return fmt.Errorf("storage: put %q in shard %q: %w", key, t.s.id, err)
	}
	if old == nil {
		t.loadMeta()
		t.keys++
		t.keysDirty = true
	}
	return nil
}

// Delete removes key and reports whether it existed.
func (t *Tx) Delete(key []byte) (existed bool, err error) {
	if err := t.writeCheck(); err != nil {
		return false, err
	}
	old := t.data.Get(key)
	if old == nil {
		return false, nil
	}
	t.record(false, key, old, true)
	if err := t.data.Delete(key); err != nil {
		return false, fmt.Errorf("storage: delete %q in shard %q: %w", key, t.s.id, err)
	}
	t.loadMeta()
	t.keys--
	t.keysDirty = true
	return true, nil
}

// Scan calls fn for each data key within o, in byte order, until fn returns
// false. Key and value are valid only during the call.
func (t *Tx) Scan(o ScanOptions, fn func(key []byte, v Value) bool) error {
	if t.done {
		return ErrTxDone
	}
	lo, hi := o.Start, o.End
	if len(o.Prefix) > 0 {
		if bytes.Compare(o.Prefix, lo) > 0 {
			lo = o.Prefix
		}
		if pe := prefixEnd(o.Prefix); pe != nil && (len(hi) == 0 || bytes.Compare(pe, hi) < 0) {
			hi = pe
		}
	}
	c := t.data.Cursor()
	var k, v []byte
	if len(lo) == 0 {
		k, v = c.First()
	} else {
		k, v = c.Seek(lo)
	}
	for ; k != nil; k, v = c.Next() {
		if len(hi) > 0 && bytes.Compare(k, hi) >= 0 {
			return nil
		}
		if len(v) < 8 {
			return fmt.Errorf("%w: shard %q key %q has a %d-byte value", ErrCorrupt, t.s.id, k, len(v))
		}
		if !fn(k, Value{Data: v[8:len(v):len(v)], Version: be64(v)}) {
			return nil
		}
	}
	return nil
}

// prefixEnd returns the smallest key greater than every key with prefix p,
// or nil if there is none (p is all 0xff).
func prefixEnd(p []byte) []byte {
	end := bytes.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// Applied returns the shard's applied index as seen by this transaction.
func (t *Tx) Applied() uint64 {
	t.loadMeta()
	return t.applied
}

// SetApplied sets the applied index, written in the same transaction as the
// data.
func (t *Tx) SetApplied(index uint64) error {
	if err := t.writeCheck(); err != nil {
		return err
	}
	t.loadMeta()
	t.applied = index
	t.appliedDirty = true
	return nil
}

// Keys returns the number of data keys, as maintained by a counter.
func (t *Tx) Keys() uint64 {
	t.loadMeta()
	return t.keys
}

// SysGet returns the value of key in the sys sub-space, nil if absent. It is
// valid only until the function returns.
func (t *Tx) SysGet(key []byte) []byte {
	if t.done {
		return nil
	}
	return t.sys.Get(key)
}

// SysPut writes key = value in the sys sub-space.
func (t *Tx) SysPut(key, value []byte) error {
	if err := t.writeCheck(); err != nil {
		return err
	}
	if len(key) == 0 {
		return ErrEmptyKey
	}
	old, existed := t.sysLookup(key)
	t.record(true, key, old, existed)
	if err := t.sys.Put(key, t.clone(value)); err != nil {
		return fmt.Errorf("storage: sys put %q in shard %q: %w", key, t.s.id, err)
	}
	return nil
}

// SysDelete removes key from the sys sub-space; a missing key is not an
// error.
func (t *Tx) SysDelete(key []byte) error {
	if err := t.writeCheck(); err != nil {
		return err
	}
	old, existed := t.sysLookup(key)
	if !existed {
		return nil
	}
	t.record(true, key, old, true)
	if err := t.sys.Delete(key); err != nil {
		return fmt.Errorf("storage: sys delete %q in shard %q: %w", key, t.s.id, err)
	}
	return nil
}

// SysForEach calls fn for every sys key in byte order, stopping at the first
// error, which it returns.
func (t *Tx) SysForEach(fn func(k, v []byte) error) error {
	if t.done {
		return ErrTxDone
	}
	return t.sys.ForEach(fn)
}

// sysLookup distinguishes a missing key from an empty value.
func (t *Tx) sysLookup(key []byte) (old []byte, existed bool) {
	k, v := t.sys.Cursor().Seek(key)
	if k == nil || !bytes.Equal(k, key) {
		return nil, false
	}
	return v, true
}

func (t *Tx) record(sys bool, key, old []byte, existed bool) {
	r := undoRec{sys: sys, existed: existed, key: t.clone(key)}
	if existed {
		r.old = t.clone(old)
	}
	t.undo = append(t.undo, r)
}

// rollback undoes every write of the transaction, newest first.
func (t *Tx) rollback() error {
	for i := len(t.undo) - 1; i >= 0; i-- {
		r := t.undo[i]
		b := t.data
		if r.sys {
			b = t.sys
		}
		var err error
		if r.existed {
			err = b.Put(r.key, r.old)
		} else {
			err = b.Delete(r.key)
		}
		if err != nil {
			return err
		}
	}
	t.undo = nil
	return nil
}

// flushMeta writes the applied index and key counter if they changed.
func (t *Tx) flushMeta() error {
	if t.appliedDirty {
		if err := t.meta.Put(t.s.appliedKey, t.clone(uint64Key(t.applied))); err != nil {
			return err
		}
	}
	if t.keysDirty {
		if err := t.meta.Put(t.s.keysKey, t.clone(uint64Key(t.keys))); err != nil {
			return err
		}
	}
	return nil
}
