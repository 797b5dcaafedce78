// Package replication is the Ridgeline server: a Node hosts one raft replica
// per shard placed on it (plus, on up to five nodes, a replica of the meta
// group that commits the cluster map), serves the KV, Admin and Raft gRPC
// services on one address, and keeps its replicas in line with the map.
//
// Layering, one concern per file:
//
//	kvserver.go, adminserver.go   gRPC adapters: validate, call, map errors (toStatus)
//	node.go                       lifecycle: NewNode, Start, Shutdown, Close
//	cluster.go                    the cluster map a node knows, and reconciling replicas with it
//	bootstrap.go                  forming a new cluster from --bootstrap-expect nodes
//	replica.go                    one raft group: proposals, linearizable reads
//	readindex.go                  batched ReadIndex (Barrier, CommitIndex, VerifyLeader)
//	fsm.go, session.go            the shard state machine and exactly-once sessions
//	meta.go                       the meta group's state machine (cluster map CAS)
//
// Invariants: nothing reaches raft without passing validation; a write is
// acknowledged only after its entry is committed (in the raft log of a
// majority) and applied to the state store, where readers see it at once; the
// state store writes applies to disk (data and applied index in one bbolt
// transaction) every flush interval, and a replica that crashes before
// replays the entries after its durable applied index from its log; a
// snapshot is taken only of durable state; a linearizable read is served
// only by a
// leader whose leadership has been confirmed after the read arrived, from state
// at least as new as the commit index observed then; any storage error stops
// the node.
package replication
