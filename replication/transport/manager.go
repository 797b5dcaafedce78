package transport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"golang.org/x/sync/semaphore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"

	"github.com/ridgeline-kv/ridgeline/replication/kvpb"
)

// Keepalive settings. The client pings no more often than the server's
// enforcement policy permits, so the server never answers with GOAWAY
// "too_many_pings".
const (
	clientKeepaliveTime    = 10 * time.Second
	clientKeepaliveTimeout = 5 * time.Second
	serverKeepaliveMinTime = 5 * time.Second
	serverKeepaliveTime    = 30 * time.Second
	serverKeepaliveTimeout = 10 * time.Second
	// reconnectMaxDelay caps gRPC's reconnect backoff (default 120 s) so a
	// restarted peer is reachable again within about a second.
	reconnectMaxDelay = time.Second
)

// Manager is a node's raft transport: the pool of peer connections, the
// registry of local replicas, and the kvpb.Raft service. It is safe for
// concurrent use.
type Manager struct {
	cfg      Config
	log      *slog.Logger
	bindIP   net.IP
	dialOpts []grpc.DialOption
	sendSem  *semaphore.Weighted
	recvSem  *semaphore.Weighted
	stats    counters

	mu         sync.RWMutex
	closed     bool
	replicas   map[raft.ServerID]*Transport
	conns      map[raft.ServerAddress]*peerConn
	heartbeats map[raft.ServerAddress]*heartbeatMux
}

type peerConn struct {
	cc     *grpc.ClientConn
	client kvpb.RaftClient
}

// New validates cfg, fills in defaults and returns a Manager. It starts
// nothing: connections are dialled lazily on first use.
func New(cfg Config) (*Manager, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	bindIP, _ := parseLocalAddr(cfg.LocalAddr)
	m := &Manager{
		cfg:        cfg,
		log:        cfg.Logger.With("component", "raft-transport", "addr", cfg.LocalAddr),
		bindIP:     bindIP,
		sendSem:    semaphore.NewWeighted(int64(cfg.MaxSnapshotSends)),
		recvSem:    semaphore.NewWeighted(int64(cfg.MaxSnapshotReceives)),
		replicas:   make(map[raft.ServerID]*Transport),
		conns:      make(map[raft.ServerAddress]*peerConn),
		heartbeats: make(map[raft.ServerAddress]*heartbeatMux),
	}
	if bindIP == nil {
		m.log.Info("LocalAddr is not an IP literal; outgoing raft connections are not source-bound")
	}
	m.dialOpts = append([]grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(m.dial),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{
			Time:                clientKeepaliveTime,
			Timeout:             clientKeepaliveTimeout,
			PermitWithoutStream: true,
		}),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff: backoff.Config{
				BaseDelay:  50 * time.Millisecond,
				Multiplier: 1.6,
				Jitter:     0.2,
				MaxDelay:   reconnectMaxDelay,
			},
			MinConnectTimeout: cfg.RPCTimeout,
		}),
		grpc.WithDefaultCallOptions(
			grpc.MaxCallRecvMsgSize(MaxMessageSize),
			grpc.MaxCallSendMsgSize(MaxMessageSize),
		),
	}, cfg.DialOptions...)
	return m, nil
}

// ServerOptions returns the options the node's shared grpc.Server needs for
// the Raft service: a keepalive enforcement policy that admits the pings
// Managers send, and message size limits matching what they send.
//
// gRPC has one receive limit per server, so it also applies to the node's
// other services; those must enforce their own, smaller request limits.
func ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{
			MinTime:             serverKeepaliveMinTime,
			PermitWithoutStream: true,
		}),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			Time:    serverKeepaliveTime,
			Timeout: serverKeepaliveTimeout,
		}),
		grpc.MaxRecvMsgSize(MaxMessageSize),
		grpc.MaxSendMsgSize(MaxMessageSize),
	}
}

// Register registers the kvpb.Raft service on the node's gRPC server. Call
// it once, before s.Serve.
func (m *Manager) Register(s *grpc.Server) {
	kvpb.RegisterRaftServer(s, &server{m: m})
}

// Transport registers a local replica and returns its raft transport. It
// fails with ErrAlreadyRegistered if id has an open Transport on this node
// and with ErrClosed after Close. Closing the Transport unregisters it; the
// same id may then be registered again (a restarted replica).
func (m *Manager) Transport(id raft.ServerID) (*Transport, error) {
	if id == "" {
		return nil, errors.New("transport: empty ServerID; give the replica ID")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	if _, ok := m.replicas[id]; ok {
		return nil, fmt.Errorf("%w: %s; close its Transport first", ErrAlreadyRegistered, id)
	}
	t := newTransport(m, id)
	m.replicas[id] = t
	return t, nil
}

// Close closes every registered Transport and every peer connection;
// in-flight RPCs fail. It is idempotent. Shut down the raft instances first:
// their Transports are unusable afterwards.
func (m *Manager) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	replicas := make([]*Transport, 0, len(m.replicas))
	for _, t := range m.replicas {
		replicas = append(replicas, t)
	}
	conns, heartbeats := m.conns, m.heartbeats
	m.conns, m.heartbeats = nil, nil
	m.mu.Unlock()

	for _, t := range replicas {
		_ = t.Close()
	}
	for _, h := range heartbeats {
		h.close()
	}
	var errs []error
	for addr, c := range conns {
		if err := c.cc.Close(); err != nil {
			errs = append(errs, fmt.Errorf("transport: closing connection to %s: %w", addr, err))
		}
	}
	return errors.Join(errs...)
}

// Stats is a snapshot of a Manager's counters. Counts of served RPCs are
// incoming requests handled by this node's Raft service.
type Stats struct {
	Conns                 int    // open peer connections
	AppendEntries         uint64 // unary AppendEntries served
	Heartbeats            uint64 // AppendEntries served via the heartbeat fast path
	HeartbeatStreams      uint64 // Heartbeats streams accepted
	StreamedHeartbeats    uint64 // heartbeats received on Heartbeats streams
	PipelineStreams       uint64 // AppendEntriesPipeline streams accepted
	PipelineAppends       uint64 // AppendEntries requests served on pipeline streams
	CoalescedAppends      uint64 // of those, handed to raft together with the one before
	RequestVotes          uint64
	RequestPreVotes       uint64
	TimeoutNows           uint64
	SnapshotsReceived     uint64 // InstallSnapshot streams served
	SnapshotsSent         uint64 // InstallSnapshot transfers completed by local replicas
	SnapshotBytesSent     uint64 // snapshot data bytes streamed to peers
	SnapshotBytesReceived uint64 // snapshot data bytes received from peers
}

type counters struct {
	appendEntries, heartbeats, pipelineStreams, pipelineAppends atomic.Uint64
	coalescedAppends                                            atomic.Uint64
	heartbeatStreams, streamedHeartbeats                        atomic.Uint64
	requestVotes, requestPreVotes, timeoutNows                  atomic.Uint64
	snapshotsReceived, snapshotsSent                            atomic.Uint64
	snapshotBytesSent, snapshotBytesReceived                    atomic.Uint64
}

// Stats returns the Manager's counters.
func (m *Manager) Stats() Stats {
	m.mu.RLock()
	conns := len(m.conns)
	m.mu.RUnlock()
	c := &m.stats
	return Stats{
		Conns:                 conns,
		AppendEntries:         c.appendEntries.Load(),
		Heartbeats:            c.heartbeats.Load(),
		HeartbeatStreams:      c.heartbeatStreams.Load(),
		StreamedHeartbeats:    c.streamedHeartbeats.Load(),
		PipelineStreams:       c.pipelineStreams.Load(),
		PipelineAppends:       c.pipelineAppends.Load(),
		CoalescedAppends:      c.coalescedAppends.Load(),
		RequestVotes:          c.requestVotes.Load(),
		RequestPreVotes:       c.requestPreVotes.Load(),
		TimeoutNows:           c.timeoutNows.Load(),
		SnapshotsReceived:     c.snapshotsReceived.Load(),
		SnapshotsSent:         c.snapshotsSent.Load(),
		SnapshotBytesSent:     c.snapshotBytesSent.Load(),
		SnapshotBytesReceived: c.snapshotBytesReceived.Load(),
	}
}

// client returns the Raft client for a peer node, creating its connection
// on first use. All local replicas share it.
func (m *Manager) client(addr raft.ServerAddress) (kvpb.RaftClient, error) {
	c, err := perPeer(m, &m.conns, addr, func() (*peerConn, error) {
		// passthrough: the dialer resolves the address itself on every dial.
		cc, err := grpc.NewClient("passthrough:///"+string(addr), m.dialOpts...)
		if err != nil {
			return nil, fmt.Errorf("transport: connection to %s: %w", addr, err)
		}
		m.log.Debug("opened peer connection", "peer", addr)
		return &peerConn{cc: cc, client: kvpb.NewRaftClient(cc)}, nil
	})
	if err != nil {
		return nil, err
	}
	return c.client, nil
}

// perPeer returns (*table)[addr], made by create (under the Manager's lock)
// on first use; ErrClosed once the Manager is closed. table is a pointer
// because Close replaces the tables.
func perPeer[V any](m *Manager, table *map[raft.ServerAddress]V, addr raft.ServerAddress, create func() (V, error)) (V, error) {
	var zero V
	m.mu.RLock()
	v, ok := (*table)[addr]
	closed := m.closed
	m.mu.RUnlock()
	if ok {
		return v, nil
	}
	if closed {
		return zero, ErrClosed
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return zero, ErrClosed
	}
	if v, ok := (*table)[addr]; ok {
		return v, nil
	}
	v, err := create()
	if err != nil {
		return zero, err
	}
	(*table)[addr] = v
	return v, nil
}

// dial opens a TCP connection whose source IP is the node's own IP.
func (m *Manager) dial(ctx context.Context, addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: m.cfg.RPCTimeout}
	if m.bindIP != nil {
		d.LocalAddr = &net.TCPAddr{IP: m.bindIP}
	}
	return d.DialContext(ctx, "tcp", addr)
}

func (m *Manager) lookup(target string) (*Transport, error) {
	m.mu.RLock()
	t := m.replicas[raft.ServerID(target)]
	m.mu.RUnlock()
	if t == nil {
		return nil, unknownReplicaError{id: target}
	}
	return t, nil
}

func (m *Manager) unregister(t *Transport) {
	m.mu.Lock()
	if m.replicas[t.id] == t {
		delete(m.replicas, t.id)
	}
	m.mu.Unlock()
}

// appendTimeout is the deadline of one AppendEntries: RPCTimeout plus one
// second per MiB of entry data, so large catch-up batches are not cut off.
func (m *Manager) appendTimeout(entries []*raft.Log) time.Duration {
	d := m.cfg.RPCTimeout
	if len(entries) > 0 {
		d += time.Duration(entriesSize(entries)>>20) * time.Second
	}
	return d
}
