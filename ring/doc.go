// Package ring maps keys to shards and shards to replica sets, and holds the
// cluster map those mappings are read from.
//
// Everything in this package except the membership adapter is pure and
// deterministic: no goroutines, no I/O, no package-level mutable state. The
// same inputs give the same outputs on every node and in every run, which is
// what lets the meta group's leader compute placement and every other node
// check it.
//
// Invariants:
//
//   - Keys to shards. A key's shard is xxhash(h) mod ShardCount, where h is the
//     key's hash tag (the non-empty content of its first {...}, Redis Cluster's
//     rule) or the whole key when it has none. This is exactly
//     buraksezer/consistent v1.0.0's FindPartitionID with an xxhash hasher, so
//     keys sharing a tag always share a shard. The shard count never changes
//     after a cluster is created.
//   - The cluster map. A [Map] is a value: it is never modified in place once
//     published; a change is a [Map.Clone] with a higher Epoch. [Map.Validate]
//     states what a well-formed map is; [FromProto] refuses any other.
//   - Replica IDs ("<shard>/<node>/<seq>") are allocated from
//     Map.NextReplicaSeq and never reused.
//   - Placement targets ([Targets]) are a pure function of the active node
//     set, independent of input order. [Map.Target] adds balanced preferred
//     leaders and then operators' pins ([Map.Pins]): a pin replaces a
//     shard's computed replica set only while it is valid (min(RF, active
//     nodes) distinct nodes, all active), so drains and dead nodes override
//     it.
//
// membership.go is the one exception to purity: it adapts
// hashicorp/memberlist (gossip discovery and failure hints) at the package's
// edge. Gossip is discovery, not authority: the cluster map is authoritative.
package ring
