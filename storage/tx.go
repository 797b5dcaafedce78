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
// ShardStore.Apply or Update (writable) or ShardStore.View (read-only). It
// sees a consistent point-in-time view of the shard: its bbolt buckets
// under the layers of applies not yet flushed (see overlay.go), plus, for a
// writable Tx, its own writes. It must not be used after that function
// returns, nor from other goroutines.
//
// Data values are stored as an 8-byte big-endian version followed by the
// value bytes.
type Tx struct {
	s        *ShardStore
	btx      *bolt.Tx // read transaction under the layers
	b        shardBuckets
	v        view    // layers not yet flushed, oldest first
	st       *staged // the writes of this Tx; nil if read-only
	writable bool
	done     bool

	metaLoaded   bool
	applied      uint64
	keys         uint64
	appliedDirty bool
	keysDirty    bool

	arena []byte // backing store for keys and values written
}

func (t *Tx) loadMeta() {
	if t.metaLoaded {
		return
	}
	t.metaLoaded = true
	if top := t.v.top(); top != nil {
		t.applied, t.keys = top.applied, top.keys
		return
	}
	if v := t.b.meta.Get(t.s.appliedKey); len(v) == 8 {
		t.applied = be64(v)
	}
	if v := t.b.meta.Get(t.s.keysKey); len(v) == 8 {
		t.keys = be64(v)
	}
}

// alloc returns n bytes that stay valid (and unshared) for the life of the
// layer the Tx publishes, carved from a per-Tx arena to save allocations.
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

// lookup returns key's current stored value in the data or sys space:
// this Tx's writes, then the layers, then bbolt.
func (t *Tx) lookup(sys bool, key []byte) (val []byte, ok bool) {
	if t.st != nil {
		if e, found := t.st.get(sys, key); found {
			return e.val, !e.del
		}
	}
	if e, found := t.v.get(sys, key); found {
		return e.val, !e.del
	}
	if !sys {
		v := t.b.data.Get(key) // data values are never empty
		return v, v != nil
	}
	k, v := t.b.sys.Cursor().Seek(key) // an empty sys value still exists
	if k == nil || !bytes.Equal(k, key) {
		return nil, false
	}
	return v, true
}

// Get returns key's value and whether it exists.
func (t *Tx) Get(key []byte) (Value, bool) {
	if t.done {
		return Value{}, false
	}
	v, ok := t.lookup(false, key)
	if !ok || len(v) < 8 {
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
	if len(key) > bolt.MaxKeySize {
		return fmt.Errorf("storage: put in shard %q: key of %d bytes is longer than %d", t.s.id, len(key), bolt.MaxKeySize)
	}
	_, existed := t.lookup(false, key)
	v := t.alloc(8 + len(value))
	binary.BigEndian.PutUint64(v, version)
	copy(v[8:], value)
	t.st.put(false, t.clone(key), v, false)
	if !existed {
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
	if _, ok := t.lookup(false, key); !ok {
		return false, nil
	}
	t.st.put(false, t.clone(key), nil, true)
	t.loadMeta()
	t.keys--
	t.keysDirty = true
	return true, nil
}

// layers returns the view this Tx reads, with its own writes on top.
func (t *Tx) layers() view {
	if t.st == nil || len(t.st.data)+len(t.st.sys) == 0 {
		return t.v
	}
	v := make(view, 0, len(t.v)+1)
	return append(append(v, t.v...), t.st.layer(0, 0))
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
	it := newMergeIter(t.layers(), false, t.b.data, lo, hi)
	for it.next() {
		k, v := it.cur.key, it.cur.val
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
	v, _ := t.lookup(true, key)
	return v
}

// SysPut writes key = value in the sys sub-space.
func (t *Tx) SysPut(key, value []byte) error {
	if err := t.writeCheck(); err != nil {
		return err
	}
	if len(key) == 0 {
		return ErrEmptyKey
	}
	if len(key) > bolt.MaxKeySize {
		return fmt.Errorf("storage: sys put in shard %q: key of %d bytes is longer than %d", t.s.id, len(key), bolt.MaxKeySize)
	}
	t.st.put(true, t.clone(key), t.clone(value), false)
	return nil
}

// SysDelete removes key from the sys sub-space; a missing key is not an
// error.
func (t *Tx) SysDelete(key []byte) error {
	if err := t.writeCheck(); err != nil {
		return err
	}
	if _, existed := t.lookup(true, key); !existed {
		return nil
	}
	t.st.put(true, t.clone(key), nil, true)
	return nil
}

// SysForEach calls fn for every sys key in byte order, stopping at the first
// error, which it returns.
func (t *Tx) SysForEach(fn func(k, v []byte) error) error {
	if t.done {
		return ErrTxDone
	}
	it := newMergeIter(t.layers(), true, t.b.sys, nil, nil)
	for it.next() {
		if err := fn(it.cur.key, it.cur.val); err != nil {
			return err
		}
	}
	return nil
}

// layer returns this Tx's writes as a layer to publish, nil if it wrote
// nothing.
func (t *Tx) layer() *layer {
	if len(t.st.data)+len(t.st.sys) == 0 && !t.appliedDirty && !t.keysDirty {
		return nil
	}
	t.loadMeta()
	return t.st.layer(t.applied, t.keys)
}
