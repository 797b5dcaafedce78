package ring

import (
	"bytes"

	"github.com/cespare/xxhash/v2"
)

const (
	// DefaultShards is the shard count of a new cluster unless told otherwise.
	DefaultShards = 32
	// DefaultReplicas is the replication factor of a new cluster unless told
	// otherwise.
	DefaultReplicas = 3
)

// xxhasher is the consistent.Hasher used for both key hashing and placement.
type xxhasher struct{}

func (xxhasher) Sum64(b []byte) uint64 { return xxhash.Sum64(b) }

// Keyspace maps keys to one of a fixed number of shards. It is immutable and
// safe for concurrent use; its zero value maps every key to shard 0.
//
// Keyspace computes exactly what buraksezer/consistent v1.0.0's
// FindPartitionID computes with an xxhash hasher and PartitionCount equal to
// the shard count (xxhash(key) mod count), without building a
// consistent.Consistent and without allocating.
type Keyspace struct {
	shards uint64
}

// NewKeyspace returns a Keyspace of the given number of shards. A shard count
// of 0 yields a Keyspace that maps every key to shard 0.
func NewKeyspace(shards uint32) *Keyspace {
	return &Keyspace{shards: uint64(shards)}
}

// Shards returns the number of shards.
func (k *Keyspace) Shards() uint32 { return uint32(k.shards) }

// ShardForKey returns the shard of key, in [0, Shards()). It does not
// allocate.
func (k *Keyspace) ShardForKey(key []byte) uint32 {
	if k.shards == 0 {
		return 0
	}
	h := HashTag(key)
	if h == nil {
		h = key
	}
	return uint32(xxhash.Sum64(h) % k.shards)
}

// ShardForKey returns the shard of key among shards shards; see
// [Keyspace.ShardForKey]. shards must be positive; 0 yields 0.
func ShardForKey(key []byte, shards uint32) uint32 {
	return (&Keyspace{shards: uint64(shards)}).ShardForKey(key)
}

// HashTag returns the hash tag of key: the content between the first '{' and
// the first '}' after it, when that content is non-empty. It returns nil when
// key has no such tag (no '{', no '}' after it, or "{}"), in which case the
// whole key is hashed. The result aliases key.
//
// This is Redis Cluster's rule: "{user:1}/a" and "{user:1}/b" have the tag
// "user:1"; "a{b}c{d}" has "b"; "{}x", "x{" and "x}{" have none.
func HashTag(key []byte) []byte {
	open := bytes.IndexByte(key, '{')
	if open < 0 {
		return nil
	}
	n := bytes.IndexByte(key[open+1:], '}')
	if n <= 0 {
		return nil
	}
	return key[open+1 : open+1+n : open+1+n]
}
