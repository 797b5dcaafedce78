package storage

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"slices"

	bolt "go.etcd.io/bbolt"
)

// Raft log layout. The entries of every group on the node share one bucket,
// in the order they were committed, so that a group commit appends to one
// B+tree: a commit carrying the appends of nine shards dirties about three
// pages instead of two per shard (measured on the project's test machine:
// about 45% less CPU and 35% less time per commit).
//
//	"wal"          8-byte big-endian sequence -> uvarint group number,
//	               uvarint raft index, encoded raft.Log (codec.go)
//	"walgroups"    group ID -> group number, floor, min sequence (8 bytes each)
//	"stable/<id>"  the group's raft.StableStore keys
//
// Sequences are assigned in commit order and group numbers at creation;
// neither is ever reused. An entry of a group is live when its index is at
// or above the group's floor and its sequence at or above the group's min
// sequence; a group never has two live entries with the same index.
// Everything else in the wal is garbage:
//
//   - a prefix DeleteRange (raft's log compaction) only raises the floor,
//   - a group whose old entries hold back the front of the wal (an idle
//     shard among busy ones) is rewritten at the tail and its min sequence
//     raised (relocate),
//   - a dropped group's number is forgotten.
//
// Garbage at the front, below every group's lowest live sequence, is deleted
// by each compaction, a contiguous range of keys (trimFront). Deletes in the
// middle or at the end of a log (conflict truncation) and overwritten entries
// are deleted at once, which raft rarely asks for.
const (
	walBucketName       = "wal"
	walGroupsBucketName = "walgroups"
	// legacyLogPrefix names the per-group log buckets of the first layout,
	// migrated into the wal on open.
	legacyLogPrefix = "log/"
	stablePrefix    = "stable/"

	// maxTrim bounds the garbage keys one compaction deletes.
	maxTrim = 16384
	// relocateSlack: the wal may hold this many garbage keys beyond half
	// the live ones before the group holding back its front is relocated.
	relocateSlack = 8192
)

var (
	walBucket       = []byte(walBucketName)
	walGroupsBucket = []byte(walGroupsBucketName)
)

// walPair locates one live (or dead, not yet trimmed) entry of a group.
type walPair struct{ index, seq uint64 }

// searchPairs returns the position of index in ps (sorted by index) and
// whether it is there.
func searchPairs(ps []walPair, index uint64) (int, bool) {
	return slices.BinarySearchFunc(ps, index, func(p walPair, i uint64) int { return cmp.Compare(p.index, i) })
}

// mergePairs returns old with add merged in by index; add wins a tie. Both
// are sorted by index.
func mergePairs(old, add []walPair) []walPair {
	out := make([]walPair, 0, len(old)+len(add))
	i, j := 0, 0
	for i < len(old) || j < len(add) {
		switch {
		case j == len(add) || (i < len(old) && old[i].index < add[j].index):
			out = append(out, old[i])
			i++
		case i == len(old) || add[j].index < old[i].index:
			out = append(out, add[j])
			j++
		default: // same index: the new entry replaces the old
			out = append(out, add[j])
			i++
			j++
		}
	}
	return out
}

// minSeq returns the lowest sequence in ps (^0 if empty). ordered reports
// that the sequences grow with the index, as appends make them.
func minSeq(ps []walPair, ordered bool) uint64 {
	if len(ps) == 0 {
		return ^uint64(0)
	}
	if ordered {
		return ps[0].seq
	}
	m := ps[0].seq
	for _, p := range ps[1:] {
		m = min(m, p.seq)
	}
	return m
}

func seqsOrdered(ps []walPair) bool {
	for i := 1; i < len(ps); i++ {
		if ps[i].seq < ps[i-1].seq {
			return false
		}
	}
	return true
}

func appendWALHeader(dst []byte, num, index uint64) []byte {
	dst = binary.AppendUvarint(dst, num)
	return binary.AppendUvarint(dst, index)
}

// parseWALHeader splits a wal value into its group number, raft index and
// encoded entry.
func parseWALHeader(seq uint64, v []byte) (num, index uint64, rest []byte, err error) {
	num, n := binary.Uvarint(v)
	if n <= 0 {
		return 0, 0, nil, fmt.Errorf("%w: wal entry %d: bad group number", ErrCorrupt, seq)
	}
	index, m := binary.Uvarint(v[n:])
	if m <= 0 {
		return 0, 0, nil, fmt.Errorf("%w: wal entry %d: bad index", ErrCorrupt, seq)
	}
	return num, index, v[n+m:], nil
}

// groupRecord is a group's value in walgroups.
type groupRecord struct{ num, floor, minSeq uint64 }

func (r groupRecord) encode() []byte {
	b := make([]byte, 24)
	putU64(b[0:], r.num)
	putU64(b[8:], r.floor)
	putU64(b[16:], r.minSeq)
	return b
}

func parseGroupRecord(id, v []byte) (groupRecord, error) {
	if len(v) != 24 {
		return groupRecord{}, fmt.Errorf("%w: record of raft group %q holds %d bytes, want 24", ErrCorrupt, id, len(v))
	}
	return groupRecord{num: be64(v[0:]), floor: be64(v[8:]), minSeq: be64(v[16:])}, nil
}

// live reports whether a wal entry of the group is live.
func (r groupRecord) live(index, seq uint64) bool { return index >= r.floor && seq >= r.minSeq }

// prepareWAL creates the wal buckets if missing and moves the logs of the
// first layout (a "log/<id>" bucket per group, keyed by index) into the wal.
func prepareWAL(tx *bolt.Tx) error {
	wb, err := tx.CreateBucketIfNotExists(walBucket)
	if err != nil {
		return err
	}
	gb, err := tx.CreateBucketIfNotExists(walGroupsBucket)
	if err != nil {
		return err
	}
	var legacy [][]byte
	c := tx.Cursor()
	p := []byte(legacyLogPrefix)
	for k, _ := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, _ = c.Next() {
		legacy = append(legacy, bytes.Clone(k))
	}
	if len(legacy) == 0 {
		return nil
	}
	var seq, num uint64
	if k, _ := wb.Cursor().Last(); k != nil {
		seq = be64(k) + 1
	}
	if err := gb.ForEach(func(k, v []byte) error {
		r, err := parseGroupRecord(k, v)
		num = max(num, r.num+1)
		return err
	}); err != nil {
		return err
	}
	wb.FillPercent = 1.0
	for _, name := range legacy {
		id := name[len(p):]
		if gb.Get(id) != nil {
			return fmt.Errorf("%w: raft group %q is in both log layouts", ErrCorrupt, id)
		}
		if err := gb.Put(id, groupRecord{num: num}.encode()); err != nil {
			return err
		}
		if err := tx.Bucket(name).ForEach(func(k, v []byte) error {
			val := appendWALHeader(make([]byte, 0, 2*binary.MaxVarintLen64+len(v)), num, be64(k))
			seq++
			return wb.Put(uint64Key(seq-1), append(val, v...))
		}); err != nil {
			return err
		}
		if err := tx.DeleteBucket(name); err != nil {
			return err
		}
		num++
	}
	return nil
}
