package liftload

import "time"

// cpuUsage is the process's user and system CPU time so far.
type cpuUsage struct{ user, sys time.Duration }

func (a cpuUsage) sub(b cpuUsage) cpuUsage { return cpuUsage{a.user - b.user, a.sys - b.sys} }

// perRequest is the CPU time per request of n requests.
func (a cpuUsage) perRequest(n int) time.Duration {
	if n == 0 {
		return 0
	}
	return (a.user + a.sys) / time.Duration(n)
}
