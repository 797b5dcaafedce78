// Package replicationtest runs an in-process Ridgeline cluster for tests:
// real nodes with real gRPC and gossip sockets on loopback (each node on its
// own 127.0.0.x address, port 0), storage in t.TempDir(), and a network
// fault table that partitions nodes by refusing and cutting connections
// between their addresses. Everything is torn down with t.Cleanup.
package replicationtest
