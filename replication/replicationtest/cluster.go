package replicationtest

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/ridgeline-kv/ridgeline/replication"
	"github.com/ridgeline-kv/ridgeline/replication/kvpb"
)

// Options shape a test cluster. Zero values take test-friendly defaults.
type Options struct {
	Nodes    int    // default 3
	Shards   uint32 // default 8
	Replicas uint32 // default 3
	// Configure, when set, adjusts each node's config before it starts.
	Configure func(i int, cfg *replication.Config)
	// LogLevel for node logs written to the test output (default warn;
	// RIDGELINE_TEST_LOG=debug|info overrides).
	LogLevel slog.Level
}

// Cluster is an in-process cluster of real nodes.
type Cluster struct {
	t      T
	opts   Options
	faults *faults
	Nodes  []*TestNode
}

// TestNode is one node of a Cluster.
type TestNode struct {
	Index   int
	ID      string
	IP      string
	DataDir string

	mu         sync.Mutex
	node       *replication.Node
	addr       string // gRPC ip:port, fixed after the first start
	gossipAddr string
	httpAddr   string
}

// Node returns the running node, or nil while it is killed.
func (tn *TestNode) Node() *replication.Node {
	tn.mu.Lock()
	defer tn.mu.Unlock()
	return tn.node
}

// Addr is the node's gRPC address (stable across restarts).
func (tn *TestNode) Addr() string { return tn.addr }

// NewCluster starts opts.Nodes nodes that bootstrap one cluster, and waits
// until every node is ready and every shard has a leader.
func NewCluster(t T, opts Options) *Cluster {
	t.Helper()
	if opts.Nodes == 0 {
		opts.Nodes = 3
	}
	if opts.Shards == 0 {
		opts.Shards = 8
	}
	if opts.Replicas == 0 {
		opts.Replicas = 3
	}
	if opts.LogLevel == 0 {
		opts.LogLevel = slog.LevelWarn
	}
	if lv := os.Getenv("RIDGELINE_TEST_LOG"); lv != "" {
		opts.LogLevel.UnmarshalText([]byte(lv))
	}
	c := &Cluster{t: t, opts: opts, faults: newFaults()}
	root := t.TempDir()
	for i := 0; i < opts.Nodes; i++ {
		c.Nodes = append(c.Nodes, &TestNode{
			Index:   i,
			ID:      fmt.Sprintf("n%d", i+1),
			IP:      fmt.Sprintf("127.0.0.%d", i+2),
			DataDir: filepath.Join(root, fmt.Sprintf("n%d", i+1)),
		})
	}
	t.Cleanup(c.Stop)
	for i := range c.Nodes {
		c.start(i, true)
	}
	c.WaitReady(30 * time.Second)
	return c
}

func (c *Cluster) logger(tn *TestNode) *slog.Logger {
	return slog.New(slog.NewTextHandler(c.t.Output(), &slog.HandlerOptions{Level: c.opts.LogLevel})).With("test_node", tn.ID)
}

func (c *Cluster) start(i int, first bool) {
	c.t.Helper()
	tn := c.Nodes[i]
	cfg := replication.DefaultConfig()
	cfg.NodeID = tn.ID
	cfg.DataDir = tn.DataDir
	cfg.Shards = c.opts.Shards
	cfg.Replicas = c.opts.Replicas
	if i < c.opts.Nodes {
		cfg.BootstrapExpect = c.opts.Nodes // the founding nodes
	}
	cfg.GossipFast = true
	cfg.HeartbeatTimeout = 500 * time.Millisecond
	cfg.ElectionTimeout = 500 * time.Millisecond
	cfg.LeaderLeaseTimeout = 250 * time.Millisecond
	cfg.Logger = c.logger(tn)
	addr, gossip, httpAddr := tn.addr, tn.gossipAddr, tn.httpAddr
	if first {
		addr, gossip, httpAddr = tn.IP+":0", tn.IP+":0", tn.IP+":0"
	}
	lis, err := listenRetry(addr)
	if err != nil {
		c.t.Fatalf("node %s: listen %s: %v", tn.ID, addr, err)
	}
	hlis, err := listenRetry(httpAddr)
	if err != nil {
		c.t.Fatalf("node %s: listen %s: %v", tn.ID, httpAddr, err)
	}
	cfg.Listener = &faultListener{Listener: lis, f: c.faults, ip: tn.IP}
	cfg.Addr = lis.Addr().String()
	cfg.HTTPListener = hlis
	cfg.HTTPAddr = hlis.Addr().String()
	cfg.GossipAddr = gossip
	for j, other := range c.Nodes {
		if j != i && other.gossipAddr != "" {
			cfg.Join = append(cfg.Join, other.gossipAddr)
		}
	}
	if c.opts.Configure != nil {
		c.opts.Configure(i, &cfg)
	}
	n, err := replication.NewNode(cfg)
	if err != nil {
		c.t.Fatalf("node %s: %v", tn.ID, err)
	}
	if err := n.Start(context.Background()); err != nil {
		c.t.Fatalf("node %s: start: %v", tn.ID, err)
	}
	tn.mu.Lock()
	tn.node = n
	tn.addr, tn.gossipAddr, tn.httpAddr = n.Addr(), n.GossipAddr(), n.HTTPAddr()
	tn.mu.Unlock()
}

// listenRetry listens on addr, retrying briefly when a just-closed port is
// still being released.
func listenRetry(addr string) (net.Listener, error) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		lis, err := net.Listen("tcp", addr)
		if err == nil || time.Now().After(deadline) {
			return lis, err
		}
		time.Sleep(50 * time.Millisecond) // port reuse back-off, not synchronisation
	}
}

// AddNode starts one more node that joins the running cluster through
// gossip (no bootstrap) and returns its index. It does not wait for data to
// move onto it.
func (c *Cluster) AddNode() int {
	c.t.Helper()
	i := len(c.Nodes)
	c.Nodes = append(c.Nodes, &TestNode{
		Index:   i,
		ID:      fmt.Sprintf("n%d", i+1),
		IP:      fmt.Sprintf("127.0.0.%d", i+2),
		DataDir: filepath.Join(filepath.Dir(c.Nodes[0].DataDir), fmt.Sprintf("n%d", i+1)),
	})
	c.start(i, true)
	return i
}

// Endpoints returns the gRPC addresses of all nodes.
func (c *Cluster) Endpoints() []string {
	var eps []string
	for _, tn := range c.Nodes {
		eps = append(eps, tn.addr)
	}
	return eps
}

// Kill stops node i at once (no leadership hand-off, no goodbye).
func (c *Cluster) Kill(i int) {
	tn := c.Nodes[i]
	tn.mu.Lock()
	n := tn.node
	tn.node = nil
	tn.mu.Unlock()
	if n != nil {
		n.Close()
	}
}

// Restart starts node i again on its data dir and addresses.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	c.Kill(i)
	c.start(i, false)
}

// Partition splits the nodes into the given groups of node indexes: nodes
// in different groups cannot connect to each other. Nodes not named form one
// more group.
func (c *Cluster) Partition(groups ...[]int) {
	group := map[int]int{}
	for g, idxs := range groups {
		for _, i := range idxs {
			group[i] = g + 1
		}
	}
	for i := range c.Nodes {
		for j := range c.Nodes {
			if i < j && group[i] != group[j] {
				c.faults.block(c.Nodes[i].IP, c.Nodes[j].IP)
			}
		}
	}
}

// Heal removes every partition.
func (c *Cluster) Heal() { c.faults.heal() }

// Stop closes every node; called by t.Cleanup. A node that does not close
// within a minute (wedged: a deadlock, a shutdown waiting on I/O) fails the
// test with its name instead of hanging it until the test binary's timeout.
func (c *Cluster) Stop() {
	c.t.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	open := map[string]bool{}
	for _, tn := range c.Nodes {
		open[tn.ID] = true
	}
	for i, tn := range c.Nodes {
		wg.Go(func() {
			c.Kill(i)
			mu.Lock()
			delete(open, tn.ID)
			mu.Unlock()
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Minute):
		mu.Lock()
		defer mu.Unlock()
		buf := make([]byte, 8<<20)
		fmt.Fprintf(c.t.Output(), "goroutines of the test binary, to see what the close waits for:\n%s\n", buf[:runtime.Stack(buf, true)])
		c.t.Fatalf("nodes %v did not close within a minute (wedged?)", slices.Sorted(maps.Keys(open)))
	}
}

// WaitReady waits until every running node is ready and every shard has a
// leader that all running nodes agree on.
func (c *Cluster) WaitReady(timeout time.Duration) {
	c.t.Helper()
	c.Eventually(timeout, "cluster ready", func() error {
		for _, tn := range c.Nodes {
			n := tn.Node()
			if n == nil {
				continue
			}
			select {
			case <-n.Ready():
			default:
				return fmt.Errorf("node %s not ready", tn.ID)
			}
		}
		for s := uint32(0); s < c.opts.Shards; s++ {
			if _, err := c.leaderOf(s); err != nil {
				return err
			}
		}
		return nil
	})
}

// Status returns node i's status, or an error if it is down.
func (c *Cluster) Status(i int) (*kvpb.NodeStatusResponse, error) {
	n := c.Nodes[i].Node()
	if n == nil {
		return nil, fmt.Errorf("node %s is down", c.Nodes[i].ID)
	}
	return n.Status(), nil
}

// leaderOf returns the index of the node leading shard, if the running
// nodes that host it agree and it is running.
func (c *Cluster) leaderOf(shard uint32) (int, error) {
	leader := ""
	for i := range c.Nodes {
		st, err := c.Status(i)
		if err != nil {
			continue
		}
		for _, r := range st.Replicas {
			if r.Meta || r.Shard != shard {
				continue
			}
			if r.State == "Leader" {
				if leader != "" && leader != st.Node.Id {
					return -1, fmt.Errorf("shard %d: two leaders %s and %s", shard, leader, st.Node.Id)
				}
				leader = st.Node.Id
			}
		}
	}
	for i, tn := range c.Nodes {
		if tn.ID == leader {
			return i, nil
		}
	}
	return -1, fmt.Errorf("shard %d has no leader", shard)
}

// WaitLeader waits until shard has a running leader and returns its node index.
func (c *Cluster) WaitLeader(shard uint32, timeout time.Duration) int {
	c.t.Helper()
	idx := -1
	c.Eventually(timeout, fmt.Sprintf("leader of shard %d", shard), func() error {
		i, err := c.leaderOf(shard)
		idx = i
		return err
	})
	return idx
}

// Eventually polls cond until it returns nil or timeout passes, then fails
// the test with cond's last error.
func (c *Cluster) Eventually(timeout time.Duration, what string, cond func() error) {
	c.t.Helper()
	if err := Eventually(timeout, cond); err != nil {
		c.t.Fatalf("waiting for %s: %v", what, err)
	}
}

// Eventually polls cond every 20ms (backing off to 200ms) until it returns
// nil or timeout passes; it returns cond's last error then.
func Eventually(timeout time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	wait := 20 * time.Millisecond
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		t := time.NewTimer(wait)
		<-t.C
		if wait < 200*time.Millisecond {
			wait *= 2
		}
	}
}

// Watch polls cond every interval, without backing off, until it returns nil
// or timeout passes; it returns cond's last error then. It is for states
// that last only briefly (a step of a replica move), which Eventually's
// backed-off polls can miss.
func Watch(timeout, interval time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		err := cond()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		<-t.C
	}
}
