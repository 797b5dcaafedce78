package client_test

import (
	"github.com/ridgeline-kv/ridgeline/client"
)

// startExampleCluster starts a cluster for the examples and returns its
// endpoints and a function that stops it. For now it is the in-process fake
// of package client's tests (3 nodes, 8 shards); it will become a real
// in-process cluster (replicationtest).
func startExampleCluster() (endpoints []string, stop func()) {
	fc, err := client.NewFakeCluster(3, 8)
	if err != nil {
		panic(err)
	}
	return fc.Endpoints(), fc.Stop
}
