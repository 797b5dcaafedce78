package client_test

import (
	"github.com/ridgeline-kv/ridgeline/replication/replicationtest"
)

// startExampleCluster starts a real in-process cluster for the examples: 3
// nodes with gossip, raft and bbolt on loopback, 8 shards. It returns the
// nodes' endpoints and a function that stops the cluster.
func startExampleCluster() (endpoints []string, stop func()) {
	et := replicationtest.NewExampleT()
	c := replicationtest.NewCluster(et, replicationtest.Options{Nodes: 3, Shards: 8})
	return c.Endpoints(), et.Close
}
