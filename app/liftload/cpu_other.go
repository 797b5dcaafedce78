//go:build !unix

package liftload

// processCPU is not available on this platform.
func processCPU() cpuUsage { return cpuUsage{} }
