// Package transport carries hashicorp/raft RPCs between Ridgeline nodes over
// gRPC, multiplexing every raft group of a node onto one connection per peer.
//
// A node runs one Manager. The Manager owns the pool of outgoing connections
// (exactly one grpc.ClientConn per peer node address, created lazily and
// shared by all raft groups) and serves the kvpb.Raft service on the node's
// shared grpc.Server (Register). Each local raft replica obtains its own
// Transport from the Manager (Manager.Transport); the Transport implements
// raft.Transport, raft.WithPreVote and raft.WithClose.
//
// Addressing. Every replica has a globally unique raft ServerID (its replica
// ID, e.g. "7/node-a/12"); its raft ServerAddress is its node's gRPC address.
// Every request names the receiving replica in RPCHeader.target and the
// receiving Manager dispatches by that ID. A request for a replica that is not
// registered on the node fails with codes.NotFound.
//
// Invariants:
//   - At most one grpc.ClientConn exists per peer address per Manager.
//   - Every outgoing connection binds its source IP to the IP of
//     Config.LocalAddr, so nodes on 127.0.0.x can be partitioned by firewall.
//   - Every RPC has a deadline: Config.RPCTimeout for unary RPCs (scaled up
//     for large AppendEntries batches), per request on a pipeline stream, and
//     Config.SnapshotTimeout for a whole snapshot transfer.
//   - Snapshots stream in chunks of Config.SnapshotChunkSize in both
//     directions and are never buffered whole in memory; at most
//     MaxSnapshotSends and MaxSnapshotReceives transfers run per node.
//   - An incoming RPC waits for its replica's raft loop, the RPC's deadline,
//     or the replica's Transport being closed, whichever comes first; it
//     never blocks forever on a replica that has shut down.
package transport
