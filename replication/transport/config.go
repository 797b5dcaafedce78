package transport

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"google.golang.org/grpc"
)

// Defaults applied by New to zero-valued Config fields.
const (
	DefaultRPCTimeout          = 5 * time.Second
	DefaultSnapshotChunkSize   = 256 << 10
	DefaultMaxSnapshotSends    = 2
	DefaultMaxSnapshotReceives = 2
	DefaultSnapshotTimeout     = 10 * time.Minute

	// MaxMessageSize bounds one gRPC message in both directions, on the
	// client (call options set by New) and on the server (ServerOptions).
	// One AppendEntries request carries up to raft's MaxAppendEntries log
	// entries; whoever configures raft must keep MaxAppendEntries × the
	// largest command below this, or replication to a lagging follower stalls
	// on ResourceExhausted.
	MaxMessageSize = 128 << 20

	// maxChunkSize leaves room for the chunk envelope under MaxMessageSize.
	maxChunkSize = MaxMessageSize - 64<<10
)

// Config configures a Manager. The zero value of every field but LocalAddr
// means "use the default".
type Config struct {
	// LocalAddr is this node's gRPC advertise address "ip:port". It is the
	// raft ServerAddress of every local replica. Outgoing connections bind
	// their source IP to its IP (port 0). A hostname is accepted but then
	// no source binding happens (logged).
	LocalAddr string
	// Logger receives the transport's logs; nil means slog.Default().
	Logger *slog.Logger
	// DialOptions are appended after the defaults (insecure credentials,
	// keepalive compatible with ServerOptions, the source-bound dialer,
	// message size limits, fast reconnect backoff), so they can override
	// them, e.g. with TLS transport credentials.
	DialOptions []grpc.DialOption
	// RPCTimeout is the deadline of unary RPCs and of each pipelined
	// AppendEntries. Large AppendEntries batches get one extra second per
	// MiB of entry data. Default 5 s.
	RPCTimeout time.Duration
	// SnapshotChunkSize is the data size of one InstallSnapshot message.
	// Default 256 KiB.
	SnapshotChunkSize int
	// MaxSnapshotSends and MaxSnapshotReceives limit concurrent snapshot
	// transfers per node; excess transfers wait, bounded by their deadline.
	// Default 2 each.
	MaxSnapshotSends, MaxSnapshotReceives int
	// SnapshotTimeout is the deadline of a whole snapshot transfer,
	// including the wait for a send or receive slot. Default 10 min.
	SnapshotTimeout time.Duration
}

// DefaultConfig returns a Config with every default filled in, for the
// given advertise address.
func DefaultConfig(localAddr string) Config {
	c := Config{LocalAddr: localAddr}
	c.setDefaults()
	return c
}

func (c *Config) setDefaults() {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.RPCTimeout == 0 {
		c.RPCTimeout = DefaultRPCTimeout
	}
	if c.SnapshotChunkSize == 0 {
		c.SnapshotChunkSize = DefaultSnapshotChunkSize
	}
	if c.MaxSnapshotSends == 0 {
		c.MaxSnapshotSends = DefaultMaxSnapshotSends
	}
	if c.MaxSnapshotReceives == 0 {
		c.MaxSnapshotReceives = DefaultMaxSnapshotReceives
	}
	if c.SnapshotTimeout == 0 {
		c.SnapshotTimeout = DefaultSnapshotTimeout
	}
}

// Validate reports every invalid field, each with its value.
func (c *Config) Validate() error {
	var errs []error
	if _, err := parseLocalAddr(c.LocalAddr); err != nil {
		errs = append(errs, err)
	}
	if c.RPCTimeout < 0 {
		errs = append(errs, fmt.Errorf("transport: RPCTimeout %v must be positive (0 means %v)", c.RPCTimeout, DefaultRPCTimeout))
	}
	if c.SnapshotChunkSize < 0 || c.SnapshotChunkSize > maxChunkSize {
		errs = append(errs, fmt.Errorf("transport: SnapshotChunkSize %d must be in [1, %d] (0 means %d)", c.SnapshotChunkSize, maxChunkSize, DefaultSnapshotChunkSize))
	}
	if c.MaxSnapshotSends < 0 {
		errs = append(errs, fmt.Errorf("transport: MaxSnapshotSends %d must be positive (0 means %d)", c.MaxSnapshotSends, DefaultMaxSnapshotSends))
	}
	if c.MaxSnapshotReceives < 0 {
		errs = append(errs, fmt.Errorf("transport: MaxSnapshotReceives %d must be positive (0 means %d)", c.MaxSnapshotReceives, DefaultMaxSnapshotReceives))
	}
	if c.SnapshotTimeout < 0 {
		errs = append(errs, fmt.Errorf("transport: SnapshotTimeout %v must be positive (0 means %v)", c.SnapshotTimeout, DefaultSnapshotTimeout))
	}
	return errors.Join(errs...)
}

// parseLocalAddr checks the advertise address and returns the IP to bind
// outgoing connections to (nil for a hostname).
func parseLocalAddr(addr string) (net.IP, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("transport: LocalAddr %q must be \"ip:port\": %v", addr, err)
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
		return nil, fmt.Errorf("transport: LocalAddr %q: port %q must be in [1, 65535]", addr, port)
	}
	if host == "" {
		return nil, fmt.Errorf("transport: LocalAddr %q has no host; give the IP peers reach this node at", addr)
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return nil, nil // hostname: no source binding
	}
	if ip.IsUnspecified() {
		return nil, fmt.Errorf("transport: LocalAddr %q is unspecified; advertise the IP peers reach this node at", addr)
	}
	return ip, nil
}
