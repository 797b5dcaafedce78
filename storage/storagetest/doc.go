// Package storagetest is a conformance suite for raft.LogStore and
// raft.StableStore implementations, in the spirit of hashicorp/raft's bench
// package reused by raft-boltdb. Call TestLogStore and TestStableStore from a
// store's own tests with a function that opens a fresh, empty store; each
// call of open must return a store independent of the others (for a shared
// file with several raft groups, a new group).
//
// The suite only uses the raft interfaces, so it can be checked against
// raft.NewInmemStore().
package storagetest
