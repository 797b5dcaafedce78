package ring

import (
	"log"
	"net"
	"time"

	"github.com/hashicorp/memberlist"
)

// boundTransport is memberlist's NetTransport with outgoing TCP connections
// bound to the node's own IP (DESIGN.md §3), so that tests can partition
// nodes on 127.0.0.x with firewall rules. UDP already leaves from the bound
// socket.
type boundTransport struct {
	*memberlist.NetTransport
	localIP net.IP // nil when bound to an unspecified address
}

var _ memberlist.NodeAwareTransport = (*boundTransport)(nil)

// newBoundTransport listens on ip:port for TCP and UDP. With port 0 the
// kernel picks a TCP port and UDP must get the same one, which can race with
// other processes, so that case is retried a few times.
func newBoundTransport(ip net.IP, port int, logger *log.Logger) (*boundTransport, error) {
	cfg := &memberlist.NetTransportConfig{BindAddrs: []string{ip.String()}, BindPort: port, Logger: logger}
	var err error
	attempts := 1
	if port == 0 {
		attempts = 10
	}
	for range attempts {
		var nt *memberlist.NetTransport
		nt, err = memberlist.NewNetTransport(cfg)
		if err == nil {
			t := &boundTransport{NetTransport: nt}
			if !ip.IsUnspecified() {
				t.localIP = ip
			}
			return t, nil
		}
	}
	return nil, err
}

// DialTimeout dials addr over TCP from the node's own IP.
func (t *boundTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return dialFrom(t.localIP, addr, timeout)
}

// DialAddressTimeout dials a.Addr over TCP from the node's own IP.
func (t *boundTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	return dialFrom(t.localIP, a.Addr, timeout)
}

// dialFrom dials addr over TCP with source IP ip (any port); a nil ip lets
// the kernel choose.
func dialFrom(ip net.IP, addr string, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	if ip != nil {
		d.LocalAddr = &net.TCPAddr{IP: ip}
	}
	return d.Dial("tcp", addr)
}
