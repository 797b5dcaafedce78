package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ridgeline-kv/ridgeline/client"
	"github.com/ridgeline-kv/ridgeline/replication/replicationtest"
	"github.com/ridgeline-kv/ridgeline/tests/internal/srcdeps"
)

var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ridgeline-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	for _, cmd := range []string{"kvnode", "kvctl"} {
		b := exec.Command("go", "build", "-race", "-o", filepath.Join(dir, cmd), "github.com/ridgeline-kv/ridgeline/cmd/"+cmd)
		if os.Getenv("E2E_NO_RACE") != "" {
			b = exec.Command("go", "build", "-o", filepath.Join(dir, cmd), "github.com/ridgeline-kv/ridgeline/cmd/"+cmd)
		}
		if out, err := b.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %v\n%s", cmd, err, out)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is one kvnode process with fixed addresses, restartable on its data dir.
type proc struct {
	t       *testing.T
	id      string
	ip      string
	dataDir string
	addr    string
	gossip  string
	http    string
	join    []string
	expect  int
	shards  int
	extra   []string

	mu   sync.Mutex
	cmd  *exec.Cmd
	log  *bytes.Buffer
	done chan error
}

// freePorts returns n distinct ports free on ip right now. The listeners
// stay open until all are picked: the kernel may hand out a port it just
// freed again, and a node whose gRPC and gossip addresses collide cannot
// start.
func freePorts(t *testing.T, ip string, n int) []string {
	t.Helper()
	addrs := make([]string, n)
	for i := range addrs {
		l, err := net.Listen("tcp", ip+":0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		addrs[i] = l.Addr().String()
	}
	return addrs
}

type procCluster struct {
	t     *testing.T
	procs []*proc
}

// startCluster starts n kvnode processes on 127.0.0.(base+i) that bootstrap one cluster.
// startCluster starts n kvnodes on 127.0.0.baseIP, baseIP+1, ..., each with
// the extra flags, and waits until the cluster serves.
func startCluster(t *testing.T, n, shards, baseIP int, extra ...string) *procCluster {
	t.Helper()
	c := &procCluster{t: t}
	root := t.TempDir()
	for i := 0; i < n; i++ {
		ip := fmt.Sprintf("127.0.0.%d", baseIP+i)
		ports := freePorts(t, ip, 3)
		p := &proc{t: t, id: fmt.Sprintf("n%d", i+1), ip: ip, dataDir: filepath.Join(root, fmt.Sprintf("n%d", i+1)),
			addr: ports[0], gossip: ports[1], http: ports[2], expect: n, shards: shards, extra: extra}
		c.procs = append(c.procs, p)
	}
	for _, p := range c.procs {
		for _, o := range c.procs {
			p.join = append(p.join, o.gossip)
		}
	}
	t.Cleanup(c.stopAll)
	for _, p := range c.procs {
		p.start()
	}
	c.waitReady(60 * time.Second)
	return c
}

func (p *proc) args() []string {
	a := []string{"--id", p.id, "--data-dir", p.dataDir, "--addr", p.addr, "--gossip-addr", p.gossip,
		"--http-addr", p.http, "--join", strings.Join(p.join, ","), "--bootstrap-expect", fmt.Sprint(p.expect),
		"--shards", fmt.Sprint(p.shards), "--raft-heartbeat-timeout", "500ms", "--raft-election-timeout", "500ms", "--log-level", "warn"}
	return append(a, p.extra...)
}

// sourcesTracked: go test records the binaries' sources as inputs of this
// run (see srcdeps) once, inside a test, where its input log is open.
var sourcesTracked sync.Once

func (p *proc) start() {
	p.t.Helper()
	sourcesTracked.Do(func() {
		if err := srcdeps.Track("", "github.com/ridgeline-kv/ridgeline/cmd/kvnode", "github.com/ridgeline-kv/ridgeline/cmd/kvctl"); err != nil {
			p.t.Fatal(err)
		}
	})
	p.mu.Lock()
	defer p.mu.Unlock()
	cmd := exec.Command(filepath.Join(binDir, "kvnode"), p.args()...)
	p.log = &bytes.Buffer{}
	cmd.Stdout = &syncWriter{w: p.log, mu: &p.mu}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		p.t.Fatalf("start %s: %v", p.id, err)
	}
	p.cmd = cmd
	done := make(chan error, 1)
	p.done = done
	go func() { done <- cmd.Wait() }()
}

type syncWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (s *syncWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(b)
}

func (p *proc) logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// signal sends sig and, for SIGKILL/SIGTERM, waits for the process to exit.
func (p *proc) signal(sig syscall.Signal) error {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return nil
	}
	cmd.Process.Signal(sig)
	select {
	case err := <-done:
		p.mu.Lock()
		p.cmd = nil
		p.mu.Unlock()
		return err
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		return fmt.Errorf("%s did not exit within 30s of %v", p.id, sig)
	}
}

func (p *proc) ready() error {
	resp, err := http.Get("http://" + p.http + "/readyz")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s not ready (%d)", p.id, resp.StatusCode)
	}
	return nil
}

func (c *procCluster) waitReady(timeout time.Duration) {
	c.t.Helper()
	err := replicationtest.Eventually(timeout, func() error {
		for _, p := range c.procs {
			p.mu.Lock()
			running := p.cmd != nil
			p.mu.Unlock()
			if !running {
				continue
			}
			if err := p.ready(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		c.dumpLogs()
		c.t.Fatalf("cluster not ready: %v", err)
	}
}

func (c *procCluster) dumpLogs() {
	for _, p := range c.procs {
		c.t.Logf("---- log of %s ----\n%s", p.id, p.logs())
	}
}

func (c *procCluster) stopAll() {
	for _, p := range c.procs {
		p.signal(syscall.SIGKILL)
	}
	if c.t.Failed() {
		c.dumpLogs()
	}
}

func (c *procCluster) endpoints() []string {
	var eps []string
	for _, p := range c.procs {
		eps = append(eps, p.addr)
	}
	return eps
}

func (c *procCluster) client(t *testing.T) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cl, err := client.New(ctx, client.Config{Endpoints: c.endpoints()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

// leaderOf returns the process leading shard, according to the nodes' status.
func (c *procCluster) leaderOf(t *testing.T, cl *client.Client, shard uint32) *proc {
	t.Helper()
	var leader *proc
	err := replicationtest.Eventually(20*time.Second, func() error {
		for _, p := range c.procs {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			st, err := cl.NodeStatus(ctx, p.id)
			cancel()
			if err != nil {
				continue
			}
			for _, r := range st.Replicas {
				if !r.Meta && r.Shard == shard && r.State == "Leader" {
					leader = p
					return nil
				}
			}
		}
		return fmt.Errorf("no leader for shard %d", shard)
	})
	if err != nil {
		t.Fatal(err)
	}
	return leader
}
