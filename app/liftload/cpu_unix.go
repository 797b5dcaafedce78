//go:build unix

package liftload

import (
	"syscall"
	"time"
)

// processCPU reads the process's CPU time; zero when unavailable.
func processCPU() cpuUsage {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return cpuUsage{}
	}
	return cpuUsage{user: time.Duration(ru.Utime.Nano()), sys: time.Duration(ru.Stime.Nano())}
}
