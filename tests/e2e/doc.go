// Package e2e tests the real binaries: kvnode processes on their own
// loopback addresses, killed with real signals, driven through the Go client.
package e2e
