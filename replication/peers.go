package replication

import (
	"context"
	"net"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
)

// peerConns holds one gRPC connection per peer node for node-to-node Admin
// calls. Connections bind their source address to the node's own IP.
type peerConns struct {
	localIP net.IP
	mu      sync.Mutex
	conns   map[string]*grpc.ClientConn
}

func newPeerConns(localIP net.IP) *peerConns {
	return &peerConns{localIP: localIP, conns: map[string]*grpc.ClientConn{}}
}

func (p *peerConns) get(addr string) (*grpc.ClientConn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.conns[addr]; ok {
		return c, nil
	}
	c, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(sourceBoundDialer(p.localIP)),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
	)
	if err != nil {
		return nil, err
	}
	p.conns[addr] = c
	return c, nil
}

func (p *peerConns) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for a, c := range p.conns {
		c.Close()
		delete(p.conns, a)
	}
}

// sourceBoundDialer dials TCP from localIP (port chosen by the kernel), so
// firewall rules on 127.0.0.x can partition nodes.
func sourceBoundDialer(localIP net.IP) func(context.Context, string) (net.Conn, error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	if localIP != nil && !localIP.IsUnspecified() {
		d.LocalAddr = &net.TCPAddr{IP: localIP}
	}
	return func(ctx context.Context, addr string) (net.Conn, error) {
		return d.DialContext(ctx, "tcp", addr)
	}
}
