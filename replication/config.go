package replication

import (
	"errors"
	"fmt"
	"github.com/ridgeline-kv/ridgeline/storage"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
)

// Config configures a Node. Build one with DefaultConfig and override fields.
// Nil dependencies (Logger, listeners, Registerer) mean production defaults.
type Config struct {
	NodeID  string // stable node ID (flag --id)
	DataDir string // flag --data-dir

	Addr       string // gRPC for clients and peers, "ip:port" (flag --addr)
	GossipAddr string // memberlist, "ip:port" (flag --gossip-addr)
	HTTPAddr   string // metrics, health, pprof; "" disables (flag --http-addr)

	Join            []string // gossip addresses of existing nodes (flag --join)
	BootstrapExpect int      // form a new cluster once this many nodes see each other (flag --bootstrap-expect)
	Shards          uint32   // shards of a new cluster; immutable afterwards (flag --shards)
	Replicas        uint32   // replicas per shard of a new cluster (flag --replicas)

	// Raft tuning, shared by every group on the node.
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	CommitTimeout      time.Duration
	SnapshotThreshold  uint64
	SnapshotInterval   time.Duration
	TrailingLogs       uint64

	// GroupCommitLinger: under load, how long a storage commit waits for
	// more requests to share its fsync (0 disables).
	GroupCommitLinger time.Duration
	// StateFlushInterval: how often applies held in memory are written to
	// the state store (like etcd's --backend-batch-interval). Longer saves
	// page writes; a crash replays up to this much of the raft log.
	StateFlushInterval time.Duration

	// MaxProposalsInFlight bounds each shard's proposals not yet answered
	// by raft; more are rejected with ErrTooManyProposals (not applied).
	MaxProposalsInFlight int

	SessionTTL time.Duration // how long a write session's last result is remembered

	// DeadNodeGrace is how long gossip must report a node dead before its
	// replicas are replaced elsewhere (flag --dead-node-grace). The dev
	// default is 60s; raise it in production so a reboot moves nothing.
	DeadNodeGrace time.Duration

	// MaxMovesInFlight caps the shards with a placement move in progress,
	// cluster-wide (flag --max-moves-in-flight; used by the meta leader).
	MaxMovesInFlight int
	// MaxSnapshotTransfers caps the snapshots this node sends, and
	// separately receives, at once (flag --max-snapshot-transfers), so data
	// movement leaves room for foreground traffic.
	MaxSnapshotTransfers int

	// ControlInterval is the period of the placement loops: the meta
	// leader's control round (membership, planner), and, at half and twice
	// it, the shard leaders' configuration changes and leader balancing.
	// Every move step takes at least one round. Default 1s; tests shorten it.
	ControlInterval time.Duration

	// GossipFast shortens gossip intervals (tests).
	GossipFast bool

	Logger *slog.Logger
	// RaftDialOptions are appended to the raft transport's dial options for
	// peer connections (transport.Config.DialOptions): transport
	// credentials, or interceptors that inject faults in tests.
	RaftDialOptions []grpc.DialOption
	Listener        net.Listener // optional pre-opened gRPC listener (tests: port 0)
	HTTPListener    net.Listener // optional pre-opened HTTP listener
	Registerer      prometheus.Registerer
	Gatherer        prometheus.Gatherer
}

// DefaultConfig returns a Config with the production defaults.
func DefaultConfig() Config {
	return Config{
		Shards:             32,
		Replicas:           3,
		HeartbeatTimeout:   1000 * time.Millisecond,
		ElectionTimeout:    1000 * time.Millisecond,
		LeaderLeaseTimeout: 500 * time.Millisecond,
		CommitTimeout:      200 * time.Millisecond,
		// Every shard's log lives in the node's one bbolt file, mapped into
		// memory: 32 shards × (threshold + trailing) entries bound it to
		// ~30 MB at 256-byte values, checked often enough to hold under load.
		SnapshotThreshold:    2048,
		SnapshotInterval:     10 * time.Second,
		TrailingLogs:         1024,
		SessionTTL:           DefaultSessionTTL,
		GroupCommitLinger:    time.Millisecond,
		StateFlushInterval:   storage.DefaultFlushInterval,
		MaxProposalsInFlight: MaxProposalsInFlight,
		DeadNodeGrace:        60 * time.Second,
		MaxMovesInFlight:     4,
		MaxSnapshotTransfers: 2,
		ControlInterval:      time.Second,
	}
}

// FieldError is one invalid Config field. Validate joins them with
// errors.Join; a command line can print them under its own flag names with
// Describe.
type FieldError struct {
	Field  string // the Config field, e.g. "GroupCommitLinger"
	Value  any
	Reason string // may name other fields as {Field}, e.g. "must be ≥ {HeartbeatTimeout}"
}

func (e *FieldError) Error() string { return e.Describe(func(field string) string { return field }) }

// Describe formats the error with name(field) in place of each field name.
func (e *FieldError) Describe(name func(field string) string) string {
	reason := e.Reason
	for {
		i := strings.IndexByte(reason, '{')
		j := strings.IndexByte(reason, '}')
		if i < 0 || j < i {
			break
		}
		reason = reason[:i] + name(reason[i+1:j]) + reason[j+1:]
	}
	return fmt.Sprintf("%s=%v: %s", name(e.Field), e.Value, reason)
}

// Validate reports every invalid field, each as a *FieldError.
func (c *Config) Validate() error {
	var errs []error
	bad := func(field string, v any, why string) {
		errs = append(errs, &FieldError{Field: field, Value: v, Reason: why})
	}
	if c.NodeID == "" {
		bad("NodeID", `""`, "a stable node ID is required")
	} else if !validNodeID(c.NodeID) {
		bad("NodeID", c.NodeID, "use 1-64 letters, digits, '-', '_' or '.'")
	}
	if c.DataDir == "" {
		bad("DataDir", `""`, "a data directory is required")
	}
	if c.Listener == nil {
		if _, _, err := net.SplitHostPort(c.Addr); err != nil {
			bad("Addr", c.Addr, "want ip:port")
		}
	}
	if _, _, err := net.SplitHostPort(c.GossipAddr); err != nil {
		bad("GossipAddr", c.GossipAddr, "want ip:port")
	}
	if c.HTTPAddr != "" && c.HTTPListener == nil {
		if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
			bad("HTTPAddr", c.HTTPAddr, "want ip:port or empty")
		}
	}
	if c.BootstrapExpect < 0 {
		bad("BootstrapExpect", c.BootstrapExpect, "must be ≥ 0")
	}
	if c.Shards < 1 || c.Shards > 4096 {
		bad("Shards", c.Shards, "must be 1..4096")
	}
	if c.Replicas < 1 || c.Replicas > 7 {
		bad("Replicas", c.Replicas, "must be 1..7")
	}
	if c.HeartbeatTimeout < 10*time.Millisecond {
		bad("HeartbeatTimeout", c.HeartbeatTimeout, "must be ≥ 10ms")
	}
	if c.ElectionTimeout < c.HeartbeatTimeout {
		bad("ElectionTimeout", c.ElectionTimeout, "must be ≥ {HeartbeatTimeout}")
	}
	if c.LeaderLeaseTimeout <= 0 || c.LeaderLeaseTimeout > c.HeartbeatTimeout {
		bad("LeaderLeaseTimeout", c.LeaderLeaseTimeout, "must be in (0, {HeartbeatTimeout}]")
	}
	if c.CommitTimeout <= 0 {
		bad("CommitTimeout", c.CommitTimeout, "must be > 0")
	}
	if c.SnapshotThreshold < 1 {
		bad("SnapshotThreshold", c.SnapshotThreshold, "must be ≥ 1")
	}
	if c.SnapshotInterval < 5*time.Millisecond {
		bad("SnapshotInterval", c.SnapshotInterval, "must be ≥ 5ms")
	}
	if c.GroupCommitLinger < 0 || c.GroupCommitLinger > 100*time.Millisecond {
		bad("GroupCommitLinger", c.GroupCommitLinger, "must be 0..100ms")
	}
	if c.StateFlushInterval < time.Millisecond || c.StateFlushInterval > time.Hour {
		bad("StateFlushInterval", c.StateFlushInterval, "must be 1ms..1h")
	}
	if c.MaxMovesInFlight < 1 {
		bad("MaxMovesInFlight", c.MaxMovesInFlight, "must be ≥ 1")
	}
	if c.MaxSnapshotTransfers < 1 {
		bad("MaxSnapshotTransfers", c.MaxSnapshotTransfers, "must be ≥ 1")
	}
	if c.ControlInterval < 20*time.Millisecond || c.ControlInterval > time.Minute {
		bad("ControlInterval", c.ControlInterval, "must be 20ms..1m")
	}
	if c.DeadNodeGrace < time.Second {
		bad("DeadNodeGrace", c.DeadNodeGrace, "must be ≥ 1s")
	}
	if c.MaxProposalsInFlight < 1 {
		bad("MaxProposalsInFlight", c.MaxProposalsInFlight, "must be ≥ 1")
	}
	if c.SessionTTL < time.Second {
		bad("SessionTTL", c.SessionTTL, "must be ≥ 1s")
	}
	return errors.Join(errs...)
}

func validNodeID(id string) bool {
	if len(id) > 64 {
		return false
	}
	for _, r := range id {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
		default:
			return false
		}
	}
	return true
}
