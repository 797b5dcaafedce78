package replicationtest

import (
	"net"
	"sync"
)

// faults is the cluster's partition table: pairs of node IPs that may not
// talk. Every node-to-node connection binds its source address to the
// dialling node's IP, so the accepting side can tell who is calling.
type faults struct {
	mu      sync.Mutex
	blocked map[[2]string]bool
	conns   map[*faultConn]struct{}
}

func newFaults() *faults {
	return &faults{blocked: map[[2]string]bool{}, conns: map[*faultConn]struct{}{}}
}

func pair(a, b string) [2]string {
	if a > b {
		a, b = b, a
	}
	return [2]string{a, b}
}

func (f *faults) isBlocked(a, b string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.blocked[pair(a, b)]
}

// block cuts a↔b: existing connections between them are closed and new
// ones refused until heal.
func (f *faults) block(a, b string) {
	f.mu.Lock()
	f.blocked[pair(a, b)] = true
	var cut []*faultConn
	for c := range f.conns {
		if pair(c.local, c.remote) == pair(a, b) {
			cut = append(cut, c)
		}
	}
	f.mu.Unlock()
	for _, c := range cut {
		c.Close()
	}
}

func (f *faults) heal() {
	f.mu.Lock()
	f.blocked = map[[2]string]bool{}
	f.mu.Unlock()
}

// faultListener wraps a node's listener and enforces the table on accepted
// connections.
type faultListener struct {
	net.Listener
	f  *faults
	ip string
}

func (l *faultListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		host, _, _ := net.SplitHostPort(c.RemoteAddr().String())
		if l.f.isBlocked(l.ip, host) {
			c.Close()
			continue
		}
		fc := &faultConn{Conn: c, f: l.f, local: l.ip, remote: host}
		l.f.mu.Lock()
		l.f.conns[fc] = struct{}{}
		l.f.mu.Unlock()
		return fc, nil
	}
}

type faultConn struct {
	net.Conn
	f             *faults
	local, remote string
	once          sync.Once
}

func (c *faultConn) Close() error {
	c.once.Do(func() {
		c.f.mu.Lock()
		delete(c.f.conns, c)
		c.f.mu.Unlock()
	})
	return c.Conn.Close()
}
