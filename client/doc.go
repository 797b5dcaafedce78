// Package client is the Go client of Ridgeline, a sharded, raft-replicated
// key-value store.
//
// A [Client] discovers the cluster from any of its endpoints, caches the
// cluster map and the leader of every shard, and routes each request to the
// shard's leader: key → shard (hash tags "{…}" keep related keys together) →
// leader. It hides routing entirely: it follows NotLeader hints, tries other
// replicas when a node is down or hung, refreshes the map when the cluster
// tells it the map is stale, and retries until the context's deadline.
//
// # Exactly-once writes
//
// Every write (Put, Delete, Add, Txn) carries a (session, sequence) pair taken
// from a pool of sessions; a session serves one request at a time. A write is
// retried with the same pair, and the server answers a retry with the first
// outcome, so retries never apply a write twice. When the deadline passes,
// or the caller cancels the call, while the outcome of a write is unknown (an
// attempt was in flight, or the leader lost leadership after proposing it),
// the error matches [ErrOutcomeUnknown]: the write may or may not have been
// applied.
//
// # Timeouts
//
// A call without a deadline in its context gets [Config.RequestTimeout]. Each
// attempt on one node gets at most [Config.AttemptTimeout] of it, so a hung
// node (for example one stopped with SIGSTOP) costs one attempt, not the whole
// deadline.
//
// # Concurrency
//
// A Client is safe for concurrent use by many goroutines; share one per
// process. No lock is held across an RPC.
//
// The exported API uses no gRPC or protobuf type; errors are compared with
// errors.Is against the sentinels in this package.
package client
