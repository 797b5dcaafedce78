package client

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"
)

// Defaults applied by New to zero fields of Config.
const (
	DefaultDialTimeout    = 5 * time.Second
	DefaultRequestTimeout = 15 * time.Second
	DefaultAttemptTimeout = 2 * time.Second
	DefaultKeepaliveTime  = 30 * time.Second
)

// Config configures a Client. Zero fields take the defaults above.
type Config struct {
	// Endpoints are gRPC addresses (host:port) of any nodes of the cluster;
	// the client discovers the rest from the cluster map. At least one.
	Endpoints []string
	// DialTimeout bounds discovery in New (when ctx has no earlier
	// deadline) and each connection attempt to a node.
	DialTimeout time.Duration
	// RequestTimeout is the deadline given to a call whose ctx has none.
	RequestTimeout time.Duration
	// AttemptTimeout bounds one attempt on one node, so that a hung node
	// costs at most this much of a call's deadline before the client tries
	// another replica. A write whose attempt timed out is retried with the
	// same session and sequence.
	AttemptTimeout time.Duration
	// KeepaliveTime is the gRPC keepalive ping interval on idle-free
	// connections; the servers' enforcement policy must allow it.
	KeepaliveTime time.Duration
	// Logger receives debug logs of retries and map refreshes; nil discards.
	Logger *slog.Logger
	// LocalAddr, when set, is the source IP every connection binds to (for
	// tests that partition nodes by address). Stale reads prefer a replica
	// on this IP.
	LocalAddr string
}

// DefaultConfig returns a Config with every default filled in and the
// endpoint of a local development node.
func DefaultConfig() Config {
	return Config{
		Endpoints:      []string{"127.0.0.1:7001"},
		DialTimeout:    DefaultDialTimeout,
		RequestTimeout: DefaultRequestTimeout,
		AttemptTimeout: DefaultAttemptTimeout,
		KeepaliveTime:  DefaultKeepaliveTime,
	}
}

// Validate reports every invalid field of c, each with its value.
func (c Config) Validate() error {
	var errs []error
	if len(c.Endpoints) == 0 {
		errs = append(errs, errors.New("client: Endpoints is empty: give at least one host:port of a node"))
	}
	for i, ep := range c.Endpoints {
		host, port, err := net.SplitHostPort(ep)
		if err != nil || port == "" {
			errs = append(errs, fmt.Errorf("client: Endpoints[%d] = %q is not host:port", i, ep))
			continue
		}
		_ = host
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"DialTimeout", c.DialTimeout},
		{"RequestTimeout", c.RequestTimeout},
		{"AttemptTimeout", c.AttemptTimeout},
		{"KeepaliveTime", c.KeepaliveTime},
	} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("client: %s = %v is negative: use 0 for the default or a positive duration", d.name, d.v))
		}
	}
	if c.KeepaliveTime > 0 && c.KeepaliveTime < 10*time.Second {
		errs = append(errs, fmt.Errorf("client: KeepaliveTime = %v is below gRPC's minimum of 10s", c.KeepaliveTime))
	}
	if c.LocalAddr != "" && net.ParseIP(c.LocalAddr) == nil {
		errs = append(errs, fmt.Errorf("client: LocalAddr = %q is not an IP address", c.LocalAddr))
	}
	return errors.Join(errs...)
}

// withDefaults returns c with zero fields set to their defaults.
func (c Config) withDefaults() Config {
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.AttemptTimeout == 0 {
		c.AttemptTimeout = DefaultAttemptTimeout
	}
	if c.KeepaliveTime == 0 {
		c.KeepaliveTime = DefaultKeepaliveTime
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}
