package client

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"

	"github.com/ridgeline-kv/ridgeline/replication/kvpb"
)

// maxRecvMsgSize admits a full scan page (4 MiB of data) plus framing.
const maxRecvMsgSize = 16 << 20

// suspectFor is how long a node that timed out or refused a connection is
// tried only after its healthy peers.
const suspectFor = time.Second

// conn is the one gRPC connection to one node address, dialled lazily (gRPC
// connects on the first RPC) and shared by every request to that node.
type conn struct {
	addr  string
	cc    *grpc.ClientConn
	kv    kvpb.KVClient
	admin kvpb.AdminClient
	local bool // the node's IP is Config.LocalAddr

	suspectUntil atomic.Int64 // unix nanos; 0 = healthy
	ewmaNanos    atomic.Int64 // smoothed latency of successful attempts
}

// suspect reports whether the node failed recently.
func (c *conn) suspect() bool {
	u := c.suspectUntil.Load()
	return u != 0 && time.Now().UnixNano() < u
}

func (c *conn) markSuspect() { c.suspectUntil.Store(time.Now().Add(suspectFor).UnixNano()) }

// observe records the latency of a successful attempt.
func (c *conn) observe(d time.Duration) {
	if c.suspectUntil.Load() != 0 {
		c.suspectUntil.Store(0)
	}
	old := c.ewmaNanos.Load()
	if old == 0 {
		c.ewmaNanos.Store(int64(d))
		return
	}
	c.ewmaNanos.Store(old + (int64(d)-old)/8) // racy by design: a hint, not a metric
}

// connPool holds one conn per address. Lookups take a read lock.
type connPool struct {
	opts      []grpc.DialOption
	localAddr string

	mu     sync.RWMutex
	conns  map[string]*conn
	closed bool
}

func newConnPool(cfg Config) *connPool {
	dialer := &net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: 30 * time.Second}
	if cfg.LocalAddr != "" {
		dialer.LocalAddr = &net.TCPAddr{IP: net.ParseIP(cfg.LocalAddr)}
	}
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return dialer.DialContext(ctx, "tcp", addr)
		}),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{
			Time:    cfg.KeepaliveTime,
			Timeout: 10 * time.Second,
		}),
		// Reconnect to a restarted node quickly; gRPC's default backoff
		// grows to two minutes.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff: backoff.Config{
				BaseDelay:  100 * time.Millisecond,
				Multiplier: 1.6,
				Jitter:     0.2,
				MaxDelay:   2 * time.Second,
			},
			MinConnectTimeout: cfg.DialTimeout,
		}),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxRecvMsgSize)),
	}
	return &connPool{opts: opts, localAddr: cfg.LocalAddr, conns: make(map[string]*conn)}
}

// get returns the conn for addr, creating it (without connecting) if needed.
func (p *connPool) get(addr string) (*conn, error) {
	p.mu.RLock()
	c, ok := p.conns[addr]
	closed := p.closed
	p.mu.RUnlock()
	if ok {
		return c, nil
	}
	if closed {
		return nil, ErrClosed
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, ErrClosed
	}
	if c, ok := p.conns[addr]; ok {
		return c, nil
	}
	cc, err := grpc.NewClient("passthrough:///"+addr, p.opts...)
	if err != nil {
		return nil, err
	}
	c = &conn{addr: addr, cc: cc, kv: kvpb.NewKVClient(cc), admin: kvpb.NewAdminClient(cc)}
	if p.localAddr != "" {
		if host, _, err := net.SplitHostPort(addr); err == nil {
			if ip := net.ParseIP(host); ip != nil && ip.Equal(net.ParseIP(p.localAddr)) {
				c.local = true
			}
		}
	}
	p.conns[addr] = c
	return c, nil
}

// close closes every conn; later gets fail with ErrClosed.
func (p *connPool) close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	var errs []error
	for _, c := range p.conns {
		errs = append(errs, c.cc.Close())
	}
	p.conns = nil
	return errors.Join(errs...)
}
