package chaos

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"github.com/ridgeline-kv/ridgeline/replication/replicationtest"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ridgeline-kv/ridgeline/client"
)

// node is one kvnode process with fixed addresses, restartable on its data dir.
type node struct {
	id      string
	ip      string
	addr    string // gRPC
	gossip  string
	http    string
	dataDir string
	logPath string
	bin     string // kvnode binary
	args    []string

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{} // closed when cmd is reaped
	exitErr error
	paused  bool
	starts  int
	retired bool // drained, removed from the cluster and stopped for good
}

// cluster is a set of kvnode processes and the artifacts directory they
// write to (data dirs and logs), kept when the test fails.
type cluster struct {
	t      *testing.T
	dir    string
	opts   clusterOptions
	nodes  []*node // every node ever started, retired ones included
	shards int
	rf     int
	admin  *client.Client // for NodeStatus; source address clientIP
}

// clusterOptions configure startCluster.
type clusterOptions struct {
	nodes int      // nodes that bootstrap the cluster
	bin   string   // kvnode binary; "" = kvnodeBin
	extra []string // more flags for every node, e.g. --dead-node-grace
}

// chaosRF is kvnode's default replication factor.
const chaosRF = 3

// freeAddr returns ip:port with the port free for both TCP and UDP now
// (memberlist binds both on the gossip port).
func freeAddr(ip string) (string, error) {
	for range 50 {
		l, err := net.Listen("tcp", ip+":0")
		if err != nil {
			return "", err
		}
		addr := l.Addr().String()
		u, err := net.ListenPacket("udp", addr)
		l.Close()
		if err == nil {
			u.Close()
			return addr, nil
		}
	}
	return "", fmt.Errorf("no free TCP+UDP port on %s", ip)
}

// startCluster starts opts.nodes kvnode processes on 127.0.0.11… that
// bootstrap one cluster of chaosShards shards, with data dirs and logs under
// dir.
func startCluster(t *testing.T, dir string, opts clusterOptions) *cluster {
	t.Helper()
	if opts.bin == "" {
		opts.bin = kvnodeBin
	}
	c := &cluster{t: t, dir: dir, opts: opts, shards: chaosShards, rf: chaosRF}
	for range opts.nodes {
		if _, err := c.newNode(); err != nil {
			t.Fatal(err)
		}
	}
	join := c.gossipAddrs()
	for _, nd := range c.nodes {
		nd.args = append(c.nodeArgs(nd, join), "--bootstrap-expect", fmt.Sprint(opts.nodes))
	}
	for _, nd := range c.nodes {
		if err := nd.start(); err != nil {
			c.killAll()
			t.Fatal(err)
		}
	}
	if err := c.waitReady(60 * time.Second); err != nil {
		c.killAll()
		t.Fatalf("cluster not ready: %v", err)
	}
	c.admin = c.newClient(t, nil)
	return c
}

// newNode allocates the next node (addresses, directories), not started.
func (c *cluster) newNode() (*node, error) {
	i := len(c.nodes)
	ip := fmt.Sprintf("127.0.0.%d", nodeIPBase+i)
	nd := &node{id: fmt.Sprintf("n%d", i+1), ip: ip, bin: c.opts.bin}
	var err error
	for _, a := range []*string{&nd.addr, &nd.gossip, &nd.http} {
		if *a, err = freeAddr(ip); err != nil {
			return nil, err
		}
	}
	nd.dataDir = filepath.Join(c.dir, "nodes", nd.id, "data")
	nd.logPath = filepath.Join(c.dir, "nodes", nd.id, "node.log")
	if err := os.MkdirAll(nd.dataDir, 0o755); err != nil {
		return nil, err
	}
	c.nodes = append(c.nodes, nd)
	return nd, nil
}

func (c *cluster) nodeArgs(nd *node, join []string) []string {
	args := []string{"--id", nd.id, "--data-dir", nd.dataDir, "--addr", nd.addr, "--gossip-addr", nd.gossip,
		"--http-addr", nd.http, "--join", strings.Join(join, ","),
		"--shards", fmt.Sprint(c.shards), "--raft-heartbeat-timeout", "500ms", "--raft-election-timeout", "500ms",
		"--log-level", "info"}
	return append(args, c.opts.extra...)
}

// gossipAddrs returns the gossip addresses of the live nodes.
func (c *cluster) gossipAddrs() []string {
	var out []string
	for _, nd := range c.live() {
		out = append(out, nd.gossip)
	}
	return out
}

// live returns the nodes that are part of the cluster (running or not):
// every node but the retired ones.
func (c *cluster) live() []*node {
	var out []*node
	for _, nd := range c.nodes {
		nd.mu.Lock()
		retired := nd.retired
		nd.mu.Unlock()
		if !retired {
			out = append(out, nd)
		}
	}
	return out
}

// addNode starts a new node that joins the running cluster through the live
// nodes' gossip addresses (no --bootstrap-expect), as an operator adds one.
func (c *cluster) addNode() (*node, error) {
	join := c.gossipAddrs()
	nd, err := c.newNode()
	if err != nil {
		return nil, err
	}
	nd.args = c.nodeArgs(nd, join)
	return nd, nd.start()
}

// retire stops a node that was drained and removed; it no longer counts as
// part of the cluster. A removed node stops itself (exit status 1, logging
// removedLine) once it sees the map that removes it; retire waits a little
// for that, then sends SIGTERM.
func (c *cluster) retire(nd *node) error {
	nd.mu.Lock()
	nd.retired = true
	done := nd.done
	nd.mu.Unlock()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
	}
	err := nd.stop(syscall.SIGTERM, 30*time.Second)
	if err != nil && isSignalExit(err) && logContains(nd.logPath, removedLine) {
		return nil
	}
	return err
}

// removedLine is what a removed node logs when it stops itself; expected of
// retired nodes only.
var removedLine = regexp.MustCompile(`was removed from cluster .* and may not rejoin`)

func logContains(path string, re *regexp.Regexp) bool {
	b, err := os.ReadFile(path)
	return err == nil && re.Match(b)
}

func (nd *node) start() error {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	if nd.cmd != nil {
		return fmt.Errorf("%s is already running", nd.id)
	}
	f, err := os.OpenFile(nd.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer f.Close() // the child has its own descriptor
	nd.starts++
	fmt.Fprintf(f, "==== chaos: start #%d of %s at %s ====\n", nd.starts, nd.id, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(nd.bin, nd.args...)
	cmd.Stdout, cmd.Stderr = f, f
	// SIGQUIT (dumpAll) prints every goroutine, not just the signalled one.
	cmd.Env = append(os.Environ(), "GOTRACEBACK=all")
	// Never outlive the test binary, even if it is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %v", nd.id, err)
	}
	done := make(chan struct{})
	nd.cmd, nd.done, nd.paused, nd.exitErr = cmd, done, false, nil
	go func() {
		err := cmd.Wait()
		nd.mu.Lock()
		nd.exitErr = err
		nd.mu.Unlock()
		close(done)
	}()
	return nil
}

func (nd *node) running() bool {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	return nd.cmd != nil
}

func (nd *node) isPaused() bool {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	return nd.paused
}

// kill sends SIGKILL and waits until the process is reaped.
func (nd *node) kill() error {
	return nd.stop(syscall.SIGKILL, 10*time.Second)
}

// stop sends sig (continuing a paused process) and waits up to timeout for
// the process to be reaped; it returns the process's exit error.
func (nd *node) stop(sig syscall.Signal, timeout time.Duration) error {
	nd.mu.Lock()
	cmd, done := nd.cmd, nd.done
	nd.mu.Unlock()
	if cmd == nil {
		return nil
	}
	cmd.Process.Signal(sig)
	if sig != syscall.SIGKILL {
		cmd.Process.Signal(syscall.SIGCONT)
	}
	select {
	case <-done:
	case <-time.After(timeout):
		cmd.Process.Kill()
		<-done
		nd.mu.Lock()
		nd.cmd = nil
		nd.mu.Unlock()
		return fmt.Errorf("%s did not exit within %v of %v", nd.id, timeout, sig)
	}
	nd.mu.Lock()
	defer nd.mu.Unlock()
	nd.cmd, nd.paused = nil, false
	return nd.exitErr
}

// signalPause sends SIGSTOP (pause true) or SIGCONT.
func (nd *node) signalPause(pause bool) error {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	if nd.cmd == nil {
		return fmt.Errorf("%s is not running", nd.id)
	}
	sig := syscall.SIGCONT
	if pause {
		sig = syscall.SIGSTOP
	}
	if err := nd.cmd.Process.Signal(sig); err != nil {
		return err
	}
	nd.paused = pause
	return nil
}

var readyClient = &http.Client{Timeout: time.Second}

func (nd *node) ready() error {
	resp, err := readyClient.Get("http://" + nd.http + "/readyz")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s not ready (HTTP %d)", nd.id, resp.StatusCode)
	}
	return nil
}

// waitReady waits until every running node answers /readyz.
func (c *cluster) waitReady(timeout time.Duration) error {
	return replicationtest.Eventually(timeout, func() error {
		for _, nd := range c.nodes {
			if !nd.running() {
				continue
			}
			if err := nd.ready(); err != nil {
				return err
			}
		}
		return nil
	})
}

// newClient returns a client of the cluster bound to clientIP; endpoints
// default to every node.
func (c *cluster) newClient(t *testing.T, endpoints []string) *client.Client {
	t.Helper()
	if endpoints == nil {
		for _, nd := range c.live() {
			endpoints = append(endpoints, nd.addr)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := client.New(ctx, client.Config{Endpoints: endpoints, LocalAddr: clientIP, DialTimeout: 30 * time.Second})
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

func (c *cluster) node(id string) *node {
	for _, nd := range c.nodes {
		if nd.id == id {
			return nd
		}
	}
	return nil
}

// statuses asks every running, unpaused node for its status; nodes that do
// not answer within a second are left out.
func (c *cluster) statuses() map[string]*client.NodeStatus {
	out := map[string]*client.NodeStatus{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, nd := range c.nodes {
		if !nd.running() || nd.isPaused() {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			if st, err := c.admin.NodeStatus(ctx, nd.id); err == nil {
				mu.Lock()
				out[nd.id] = st
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return out
}

// leaderOf returns the node leading shard with the highest term, waiting up
// to timeout for one.
func (c *cluster) leaderOf(shard uint32, timeout time.Duration) (*node, error) {
	var leader *node
	err := replicationtest.Eventually(timeout, func() error {
		var term uint64
		leader = nil
		for id, st := range c.statuses() {
			for _, r := range st.Replicas {
				if !r.Meta && r.Shard == shard && r.State == "Leader" && r.Term >= term {
					leader, term = c.node(id), r.Term
				}
			}
		}
		if leader == nil {
			return fmt.Errorf("no node reports itself leader of shard %d", shard)
		}
		return nil
	})
	return leader, err
}

// dumpAll makes every running process write all its goroutines' stacks to
// its log and exit (SIGQUIT), so a failed run keeps the state the failing
// check found each node in: a hung shutdown, a stuck loop.
func (c *cluster) dumpAll() {
	for _, nd := range c.nodes {
		nd.stop(syscall.SIGQUIT, 10*time.Second)
	}
}

// killAll SIGKILLs every process (cleanup after a fatal error).
func (c *cluster) killAll() {
	for _, nd := range c.nodes {
		nd.kill()
	}
}

// shutdown stops every process with SIGTERM (continuing paused ones) and
// reports processes that did not exit cleanly. Every process is reaped.
func (c *cluster) shutdown() []error {
	var errs []error
	for _, nd := range c.nodes {
		nd.mu.Lock()
		if nd.cmd != nil {
			select {
			case <-nd.done:
				errs = append(errs, fmt.Errorf("%s exited on its own (%v); see its log", nd.id, nd.exitErr))
			default:
			}
		}
		nd.mu.Unlock()
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, nd := range c.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := nd.stop(syscall.SIGTERM, 30*time.Second); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("%s: exit after SIGTERM: %v", nd.id, err))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for _, nd := range c.nodes {
		if nd.running() {
			errs = append(errs, fmt.Errorf("%s was not reaped", nd.id))
		}
	}
	return errs
}

// badLogLine matches what must never appear in a node's log.
var badLogLine = regexp.MustCompile(`panic|fatal error|DATA RACE`)

// scanLogs returns the offending lines of every node's log (at most a few
// per node).
func (c *cluster) scanLogs() []string {
	var bad []string
	for _, nd := range c.nodes {
		f, err := os.Open(nd.logPath)
		if err != nil {
			bad = append(bad, fmt.Sprintf("%s: %v", nd.id, err))
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		n := 0
		for sc.Scan() {
			line := sc.Text()
			if nd.retired && removedLine.MatchString(line) {
				continue // a removed node stops itself with a "fatal error"
			}
			if badLogLine.MatchString(line) {
				if n++; n <= 5 {
					bad = append(bad, fmt.Sprintf("%s: %s", nd.id, line))
				}
			}
		}
		if err := sc.Err(); err != nil && !errors.Is(err, bufio.ErrTooLong) {
			bad = append(bad, fmt.Sprintf("%s: reading log: %v", nd.id, err))
		}
		f.Close()
	}
	return bad
}
