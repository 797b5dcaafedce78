package replication

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"google.golang.org/grpc"

	"github.com/ridgeline-kv/ridgeline/replication/kvpb"
	"github.com/ridgeline-kv/ridgeline/replication/transport"
	"github.com/ridgeline-kv/ridgeline/ring"
	"github.com/ridgeline-kv/ridgeline/storage"
)

// streamWorkers is how many goroutines the node's gRPC server keeps to run
// incoming streams. A KV call then runs on a goroutine whose stack has grown
// already, instead of a new one that grows its stack (runtime.morestack was
// 3% of a node's CPU under YCSB-A). Long-lived raft streams keep a worker
// each (a few dozen); when every worker is busy a stream gets its own
// goroutine, as without workers.
const streamWorkers = 64

// Node is a Ridgeline server. NewNode validates and opens storage, Start
// serves, Shutdown drains; Close is the hard stop. Safe for concurrent use.
type Node struct {
	cfg     Config
	logger  *slog.Logger
	store   *storage.DB // one file: raft logs and state, one group committer
	logDB   *storage.LogDB
	stateDB *storage.StateDB
	local   *storage.ShardStore // node-local state: the last map learned
	reg     prometheus.Registerer
	gather  prometheus.Gatherer
	metrics *metrics

	// mu guards the fields below. Never call a method that takes mu while
	// holding it: a recursive read lock deadlocks once a writer queues.
	mu       sync.RWMutex
	ident    identity
	cmap     *ring.Map
	keyspace *ring.Keyspace
	replicas map[string]*replica // by replica ID
	byShard  map[uint32]*replica
	meta     *replica
	metaFSM  *metaFSM
	// bootstrapNodes is the node set this node bootstrapped the meta group
	// with; its meta leader creates the first map from it.
	bootstrapNodes []ring.Node

	movesDone atomic.Uint64 // moves this node committed as meta leader

	// Set by Start.
	advertise string
	localIP   net.IP
	lis       net.Listener
	httpLis   net.Listener
	grpcSrv   *grpc.Server
	httpSrv   *http.Server
	trans     *transport.Manager
	members   *ring.Membership
	peers     *peerConns

	started   atomic.Bool
	ready     chan struct{}
	readyOnce sync.Once
	kick      chan struct{} // wakes the reconciler
	metaKick  chan struct{} // wakes gossipMetaLoop
	stop      chan struct{}
	stopOnce  sync.Once
	wg        sync.WaitGroup
	fatal     chan error
	fatalOnce sync.Once
	closeOnce sync.Once
	closeErr  error
}

// NewNode validates cfg, opens the node's storage and checks its identity.
// It starts nothing.
func NewNode(cfg Config) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("replication: invalid config:\n%w", err)
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	logger = logger.With("node", cfg.NodeID)
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("replication: create data dir: %w", err)
	}
	ident, found, err := loadIdentity(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("replication: %w", err)
	}
	if found && ident.NodeID != cfg.NodeID {
		return nil, fmt.Errorf("replication: data dir %s belongs to node %q, not %q: start with --id %s or use another --data-dir",
			cfg.DataDir, ident.NodeID, cfg.NodeID, ident.NodeID)
	}
	ident.NodeID = cfg.NodeID
	ident.Incarnation++
	if err := saveIdentity(cfg.DataDir, ident); err != nil {
		return nil, fmt.Errorf("replication: write node identity: %w", err)
	}

	reg, gather := cfg.Registerer, cfg.Gatherer
	if reg == nil {
		r := prometheus.NewRegistry()
		r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		reg, gather = r, r
	}
	n := &Node{
		cfg:      cfg,
		logger:   logger,
		reg:      reg,
		gather:   gather,
		metrics:  newMetrics(reg),
		ident:    ident,
		replicas: map[string]*replica{},
		byShard:  map[uint32]*replica{},
		ready:    make(chan struct{}),
		kick:     make(chan struct{}, 1),
		metaKick: make(chan struct{}, 1),
		stop:     make(chan struct{}),
		fatal:    make(chan error, 1),
	}
	n.store, err = storage.Open(filepath.Join(cfg.DataDir, "ridgeline.db"), storage.Options{
		Logger:            logger,
		GroupCommitLinger: cfg.GroupCommitLinger,
		FlushInterval:     cfg.StateFlushInterval,
		OnCommit: func(entries, txns int, d time.Duration) {
			n.metrics.commitSeconds.Observe(d.Seconds())
			n.metrics.commitTxns.Observe(float64(txns))
		},
	})
	if err != nil {
		return nil, fmt.Errorf("replication: open storage: %w", err)
	}
	n.logDB, n.stateDB = n.store.Logs(), n.store.State()
	if n.local, err = n.stateDB.Shard("node"); err == nil {
		err = n.local.View(func(tx *storage.Tx) error {
			m, err := decodeMap(tx.SysGet(metaMapKey))
			n.cmap = m
			return err
		})
	}
	if err != nil {
		n.closeStores()
		return nil, fmt.Errorf("replication: load node state: %w", err)
	}
	if err := removedError(n.cmap, cfg.NodeID); err != nil {
		n.closeStores()
		return nil, err
	}
	if n.cmap != nil {
		n.keyspace = ring.NewKeyspace(n.cmap.ShardCount)
		n.metrics.mapEpoch.Set(float64(n.cmap.Epoch))
		if ident.ClusterID == "" {
			n.ident.ClusterID = n.cmap.ClusterID
		}
	}
	return n, nil
}

// ID returns the node's ID.
func (n *Node) ID() string { return n.cfg.NodeID }

// Addr returns the gRPC address the node serves on (valid after Start).
func (n *Node) Addr() string { return n.advertise }

// GossipAddr returns the gossip address (valid after Start).
func (n *Node) GossipAddr() string { return n.members.LocalGossipAddr() }

// HTTPAddr returns the admin HTTP address, or "" (valid after Start).
func (n *Node) HTTPAddr() string {
	if n.httpLis == nil {
		return ""
	}
	return n.httpLis.Addr().String()
}

// Ready is closed once the node knows the cluster map and has started the
// replicas placed on it.
func (n *Node) Ready() <-chan struct{} { return n.ready }

// Fatal delivers the error that stopped the node on its own (a storage
// failure); the process should exit.
func (n *Node) Fatal() <-chan error { return n.fatal }

// Start serves the node's gRPC and HTTP endpoints, joins gossip and starts
// the replicas the node's data dir and the cluster map call for. It returns
// once the node serves; forming or joining the cluster continues in the
// background (see Ready). It fails if the --join peers belong to another
// cluster.
func (n *Node) Start(ctx context.Context) (err error) {
	if !n.started.CompareAndSwap(false, true) {
		return errors.New("replication: node already started")
	}
	serving := false // the gRPC server owns (and closes) the listener once it serves
	defer func() {
		if err != nil {
			if !serving && n.lis != nil {
				_ = n.lis.Close()
			}
			n.Close()
		}
	}()
	n.lis = n.cfg.Listener
	if n.lis == nil {
		if n.lis, err = net.Listen("tcp", n.cfg.Addr); err != nil {
			return fmt.Errorf("replication: listen on --addr %s: %w", n.cfg.Addr, err)
		}
	}
	n.advertise = n.lis.Addr().String()
	host, _, _ := net.SplitHostPort(n.advertise)
	n.localIP = net.ParseIP(host)
	n.peers = newPeerConns(n.localIP)

	tcfg := transport.DefaultConfig(n.advertise)
	tcfg.Logger = n.logger.With("component", "transport")
	tcfg.MaxSnapshotSends, tcfg.MaxSnapshotReceives = n.cfg.MaxSnapshotTransfers, n.cfg.MaxSnapshotTransfers
	tcfg.DialOptions = n.cfg.RaftDialOptions
	n.trans, err = transport.New(tcfg)
	if err != nil {
		return fmt.Errorf("replication: raft transport: %w", err)
	}
	n.reg.MustRegister(newTransportCollector(n.trans.Stats))
	opts := append(transport.ServerOptions(), grpc.ChainUnaryInterceptor(limitRequestSize), grpc.NumStreamWorkers(streamWorkers))
	n.grpcSrv = grpc.NewServer(opts...)
	n.trans.Register(n.grpcSrv)
	kvpb.RegisterKVServer(n.grpcSrv, &kvServer{n: n})
	kvpb.RegisterAdminServer(n.grpcSrv, &adminServer{n: n})
	if err := n.startHTTP(); err != nil {
		return err
	}

	n.members, err = ring.NewMembership(ring.MembershipConfig{
		NodeID:    n.cfg.NodeID,
		BindAddr:  n.cfg.GossipAddr,
		Meta:      n.memberMeta,
		ClusterID: n.clusterID,
		OnChange:  n.kickReconcile,
		Logger:    n.logger.With("component", "gossip"),
		Fast:      n.cfg.GossipFast,
	})
	if err != nil {
		_ = n.lis.Close() // not yet handed to the gRPC server, which would close it
		return fmt.Errorf("replication: gossip on %s: %w", n.cfg.GossipAddr, err)
	}
	// Serve only now: the Admin handlers read the membership. Peers that
	// connect earlier wait in the listen backlog.
	serving = true
	n.goAttach(func() {
		if err := n.grpcSrv.Serve(n.lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			n.logger.Error("gRPC server stopped", "err", err)
		}
	})
	if len(n.cfg.Join) > 0 {
		if _, err := n.members.Join(n.cfg.Join); err != nil {
			if errors.Is(err, ring.ErrOtherCluster) {
				return fmt.Errorf("replication: refusing to join: %w; this data dir (%s) belongs to cluster %q — point --join at that cluster's nodes or start with an empty --data-dir",
					err, n.cfg.DataDir, n.clusterID())
			}
			n.logger.Warn("could not join yet; will keep trying", "join", n.cfg.Join, "err", err)
			n.goAttach(n.retryJoin)
		}
	}

	if err := n.startLocalReplicas(); err != nil {
		return err
	}
	n.goAttach(n.reconcileLoop)
	n.goAttach(n.gossipMetaLoop)
	n.goAttach(n.mapLoop)
	n.goAttach(n.balanceLoop)
	n.goAttach(n.controlLoop)
	n.goAttach(n.confChangeLoop)
	if n.currentMap() == nil && n.meta == nil {
		if n.cfg.BootstrapExpect > 0 {
			n.goAttach(n.bootstrapLoop)
		} else {
			n.logger.Info("no cluster map yet: waiting to learn one from the nodes at --join")
		}
	}
	n.logger.Info("node started", "addr", n.advertise, "gossip", n.members.LocalGossipAddr(), "http", n.HTTPAddr(),
		"incarnation", n.ident.Incarnation)
	return nil
}

func (n *Node) retryJoin() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-n.stop:
			return
		case <-t.C:
		}
		if len(n.members.Members()) > 1 {
			return
		}
		if _, err := n.members.Join(n.cfg.Join); err == nil {
			n.logger.Info("joined gossip", "join", n.cfg.Join)
			return
		} else if errors.Is(err, ring.ErrOtherCluster) {
			n.failFatal(fmt.Errorf("refusing to join: %w", err))
			return
		}
	}
}

// goAttach runs f in a goroutine tracked by the node's WaitGroup.
func (n *Node) goAttach(f func()) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		f()
	}()
}

// failFatal stops the node because of an unrecoverable error (storage).
func (n *Node) failFatal(err error) {
	n.fatalOnce.Do(func() {
		n.logger.Error("FATAL: node stopping", "err", err)
		n.fatal <- err
		go n.Close()
	})
}

func (n *Node) memberMeta() ring.MemberMeta {
	n.mu.RLock()
	defer n.mu.RUnlock()
	var epoch uint64
	if n.cmap != nil {
		epoch = n.cmap.Epoch
	}
	return ring.MemberMeta{
		NodeID:          n.cfg.NodeID,
		Incarnation:     n.ident.Incarnation,
		Addr:            n.advertise,
		HTTPAddr:        n.HTTPAddr(),
		ClusterID:       n.ident.ClusterID,
		Epoch:           epoch,
		BootstrapExpect: uint32(n.cfg.BootstrapExpect),
	}
}

func (n *Node) clusterID() string {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.ident.ClusterID
}

func (n *Node) currentMap() *ring.Map {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.cmap
}

func (n *Node) kickReconcile() {
	select {
	case n.kick <- struct{}{}:
	default:
	}
}

// replicaDeps returns what startReplica needs.
func (n *Node) replicaDeps() replicaDeps {
	return replicaDeps{
		cfg:       &n.cfg,
		logger:    n.logger,
		logDB:     n.logDB,
		transport: n.trans,
		metrics:   n.metrics,
		snapDir:   filepath.Join(n.cfg.DataDir, "snapshots"),
		onFatal:   n.failFatal,
	}
}

// Shutdown stops the node gracefully: it hands off the leadership of the
// groups it leads (bounded by ctx), stops its replicas and the raft
// transport (peers' replication streams would otherwise hold a graceful gRPC
// stop open forever), lets in-flight client requests finish, leaves gossip
// and closes storage. Idempotent.
func (n *Node) Shutdown(ctx context.Context) error {
	if n.started.Load() {
		n.handOffLeadership(ctx)
		n.stopReplicas()
		if n.trans != nil {
			n.trans.Close()
		}
		if n.grpcSrv != nil {
			done := make(chan struct{})
			go func() { n.grpcSrv.GracefulStop(); close(done) }()
			t := time.NewTimer(2 * time.Second)
			select {
			case <-done:
			case <-ctx.Done():
				n.grpcSrv.Stop()
			case <-t.C:
				n.grpcSrv.Stop()
			}
			t.Stop()
		}
		if n.members != nil {
			n.members.Leave(time.Second)
		}
	}
	return n.Close()
}

// stopReplicas shuts every replica down, in parallel.
func (n *Node) stopReplicas() {
	n.mu.Lock()
	rs := make([]*replica, 0, len(n.replicas))
	for _, r := range n.replicas {
		rs = append(rs, r)
	}
	n.mu.Unlock()
	var wg sync.WaitGroup
	for _, r := range rs {
		wg.Add(1)
		go func() { defer wg.Done(); r.shutdown() }()
	}
	wg.Wait()
}

// handOffLeadership transfers the leadership of every group this node leads
// to another voter, so clients see a planned handover instead of an election
// timeout.
func (n *Node) handOffLeadership(ctx context.Context) {
	n.mu.RLock()
	var leading []*replica
	for _, r := range n.replicas {
		if r.isLeader() {
			leading = append(leading, r)
		}
	}
	n.mu.RUnlock()
	var wg sync.WaitGroup
	for _, r := range leading {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			defer cancel()
			await(tctx, r.stop, r.raft.LeadershipTransfer())
		}()
	}
	wg.Wait()
}

// Close stops everything at once. Idempotent.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		n.stopOnce.Do(func() { close(n.stop) })
		if n.grpcSrv != nil {
			n.grpcSrv.Stop()
		}
		if n.httpSrv != nil {
			n.httpSrv.Close()
		}
		n.stopReplicas()
		if n.members != nil {
			n.members.Shutdown()
		}
		n.wg.Wait()
		if n.trans != nil {
			n.trans.Close()
		}
		if n.peers != nil {
			n.peers.close()
		}
		n.closeErr = n.closeStores()
	})
	return n.closeErr
}

func (n *Node) closeStores() error {
	if n.store == nil {
		return nil
	}
	return n.store.Close()
}

// replicaForShard returns the local replica of shard, or ErrWrongShard.
func (n *Node) replicaForShard(shard uint32) (*replica, error) {
	n.mu.RLock()
	r := n.byShard[shard]
	n.mu.RUnlock()
	if r == nil {
		return nil, fmt.Errorf("%w: node %s holds no replica of shard %d; refresh the cluster map", ErrWrongShard, n.cfg.NodeID, shard)
	}
	return r, nil
}

// shardForKey maps a key with the node's keyspace.
func (n *Node) shardForKey(key []byte) (uint32, error) {
	n.mu.RLock()
	ks := n.keyspace
	n.mu.RUnlock()
	if ks == nil {
		return 0, fmt.Errorf("%w: node %s has not joined a cluster yet", ErrNoLeader, n.cfg.NodeID)
	}
	return ks.ShardForKey(key), nil
}

// leaderOf returns the node ID and address of the leader that replica r
// knows of ("" when unknown).
func (n *Node) leaderOf(r *replica) (nodeID, addr string) {
	id := r.leader()
	if id == "" {
		return "", ""
	}
	nodeID = n.nodeOfReplica(id)
	if m := n.currentMap(); m != nil {
		if nd, ok := m.Node(nodeID); ok {
			addr = nd.Addr
		}
	}
	return nodeID, addr
}

// nodeOfReplica returns the node hosting a replica ID.
func (n *Node) nodeOfReplica(id string) string {
	if id == "" {
		return ""
	}
	if m := n.currentMap(); m != nil {
		if _, rep, ok := m.Replica(id); ok {
			return rep.NodeID
		}
	}
	if nodeID, ok := metaReplicaNode(id); ok {
		return nodeID
	}
	return ""
}

func sortedKeys[M ~map[K]V, K interface{ ~uint32 | ~string }, V any](m M) []K {
	ks := make([]K, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
