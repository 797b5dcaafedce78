// Command etcdbench runs kvctl bench's YCSB workloads against an etcd
// cluster, so Ridgeline and etcd can be compared with the same engine
// (package client/ycsb): the same key sequence, mix, value size,
// closed-loop workers and latency histogram.
//
// It is its own module so that the etcd client never becomes a dependency
// of Ridgeline's main module.
//
// Reads are etcd Gets, linearizable by default (etcd's default, the
// equivalent of a Ridgeline Get without --stale); --serializable makes them
// serializable (served from the local member, possibly stale: the
// equivalent of kvctl bench --stale). Updates are Puts.
//
// All workers share ONE clientv3.Client by default, as kvctl bench shares one
// *client.Client: both multiplex concurrent requests over long-lived gRPC
// connections (clientv3 keeps one per endpoint and balances requests
// round-robin over the endpoints; Ridgeline's client one per node, sending
// each request to its shard's leader). --clients N spreads the operations
// over N independent clientv3 instances, each with its own connections, to
// check that a single client is not the bottleneck.
//
// Usage (with scripts/etcd-cluster.sh running):
//
//	cd tools/etcdbench
//	go run . --endpoints 127.0.0.1:2379,127.0.0.1:22379,127.0.0.1:32379 --workload A
package main
