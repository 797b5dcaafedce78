package transport

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// countingFSM records which command IDs it applied. Its snapshot carries
// padBytes of deterministic padding so snapshots are large enough to be
// chunked; Restore verifies every byte.
type countingFSM struct {
	padBytes int
	restores atomic.Int64

	mu      sync.Mutex
	applied uint64 // Apply calls
	seen    map[uint64]struct{}
}

func newCountingFSM(padBytes int) *countingFSM {
	return &countingFSM{padBytes: padBytes, seen: make(map[uint64]struct{})}
}

func (f *countingFSM) Apply(l *raft.Log) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applied++
	f.seen[binary.BigEndian.Uint64(l.Data)] = struct{}{}
	return nil
}

func (f *countingFSM) state() (applied uint64, seen int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.applied, len(f.seen)
}

func (f *countingFSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ids := make([]uint64, 0, len(f.seen))
	for id := range f.seen {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return &countingSnapshot{applied: f.applied, ids: ids, pad: f.padBytes}, nil
}

func padByte(i int, seed uint64) byte { return byte(uint64(i)*31 + seed) }

func (f *countingFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	r := bufio.NewReader(rc)
	var hdr [3]uint64
	if err := binary.Read(r, binary.BigEndian, &hdr); err != nil {
		return fmt.Errorf("restore header: %w", err)
	}
	applied, n, pad := hdr[0], hdr[1], hdr[2]
	ids := make([]uint64, n)
	if err := binary.Read(r, binary.BigEndian, ids); err != nil {
		return fmt.Errorf("restore ids: %w", err)
	}
	for i := range int(pad) {
		b, err := r.ReadByte()
		if err != nil {
			return fmt.Errorf("restore padding at %d of %d: %w", i, pad, err)
		}
		if b != padByte(i, n) {
			return fmt.Errorf("restore: padding byte %d is %d, want %d", i, b, padByte(i, n))
		}
	}
	if _, err := r.ReadByte(); err != io.EOF {
		return fmt.Errorf("restore: trailing data after padding (err %v)", err)
	}
	seen := make(map[uint64]struct{}, n)
	for _, id := range ids {
		seen[id] = struct{}{}
	}
	f.mu.Lock()
	f.applied, f.seen = applied, seen
	f.mu.Unlock()
	f.restores.Add(1)
	return nil
}

type countingSnapshot struct {
	applied uint64
	ids     []uint64
	pad     int
}

func (s *countingSnapshot) Persist(sink raft.SnapshotSink) error {
	w := bufio.NewWriter(sink)
	err := binary.Write(w, binary.BigEndian, [3]uint64{s.applied, uint64(len(s.ids)), uint64(s.pad)})
	if err == nil {
		err = binary.Write(w, binary.BigEndian, s.ids)
	}
	for i := 0; err == nil && i < s.pad; i++ {
		err = w.WriteByte(padByte(i, uint64(len(s.ids))))
	}
	if err == nil {
		err = w.Flush()
	}
	if err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s *countingSnapshot) Release() {}

// replica is one raft group member on one node.
type replica struct {
	id     raft.ServerID
	node   int
	r      *raft.Raft
	fsm    *countingFSM
	tr     *Transport
	logs   *raft.InmemStore // log and stable store, kept across restarts
	snaps  *raft.InmemSnapshotStore
	closed bool
}

type clusterOpts struct {
	nodes, groups int
	padBytes      int
	node          Config
	raft          func(*raft.Config)
}

type cluster struct {
	t        testing.TB
	opts     clusterOpts
	nodes    []*testNode
	alive    []bool
	replicas [][]*replica // [group][node]
}

// nodeIPs returns distinct loopback IPs when the host allows binding them,
// so the test also exercises source binding; otherwise 127.0.0.1.
func nodeIPs(n int) []string {
	ips := make([]string, n)
	for i := range ips {
		ips[i] = fmt.Sprintf("127.0.0.%d", i+1)
		if l, err := net.Listen("tcp", ips[i]+":0"); err != nil {
			ips[i] = "127.0.0.1"
		} else {
			l.Close()
		}
	}
	return ips
}

func newCluster(t *testing.T, opts clusterOpts) *cluster {
	t.Helper()
	c := &cluster{t: t, opts: opts}
	for _, ip := range nodeIPs(opts.nodes) {
		c.nodes = append(c.nodes, startNode(t, ip, opts.node))
		c.alive = append(c.alive, true)
	}
	for g := range opts.groups {
		var servers []raft.Server
		row := make([]*replica, opts.nodes)
		for i, n := range c.nodes {
			row[i] = &replica{
				id:    raft.ServerID(fmt.Sprintf("%d/node-%c/1", g, 'a'+i)),
				node:  i,
				logs:  raft.NewInmemStore(),
				snaps: raft.NewInmemSnapshotStore(),
			}
			servers = append(servers, raft.Server{ID: row[i].id, Address: raft.ServerAddress(n.addr)})
		}
		for _, rep := range row {
			c.start(rep)
			if err := rep.r.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
				t.Fatalf("bootstrap %s: %v", rep.id, err)
			}
		}
		c.replicas = append(c.replicas, row)
	}
	t.Cleanup(c.shutdown)
	return c
}

func (c *cluster) raftConfig(id raft.ServerID) *raft.Config {
	conf := raft.DefaultConfig()
	conf.LocalID = id
	conf.HeartbeatTimeout = 500 * time.Millisecond
	conf.ElectionTimeout = 500 * time.Millisecond
	conf.LeaderLeaseTimeout = 250 * time.Millisecond
	conf.CommitTimeout = 5 * time.Millisecond
	out, level := io.Discard, hclog.Error
	if testing.Verbose() {
		out, level = c.t.Output(), hclog.Info
	}
	conf.Logger = hclog.New(&hclog.LoggerOptions{Name: string(id), Output: out, Level: level})
	if c.opts.raft != nil {
		c.opts.raft(conf)
	}
	return conf
}

// start (re)starts a replica with a fresh FSM and the stores it has.
func (c *cluster) start(rep *replica) {
	c.t.Helper()
	tr, err := c.nodes[rep.node].mgr.Transport(rep.id)
	if err != nil {
		c.t.Fatalf("transport for %s: %v", rep.id, err)
	}
	rep.tr = tr
	rep.fsm = newCountingFSM(c.opts.padBytes)
	rep.r, err = raft.NewRaft(c.raftConfig(rep.id), rep.fsm, rep.logs, rep.logs, rep.snaps, tr)
	if err != nil {
		c.t.Fatalf("NewRaft %s: %v", rep.id, err)
	}
	rep.closed = false
}

func (c *cluster) stopReplica(rep *replica) {
	if rep.closed {
		return
	}
	rep.closed = true
	if err := rep.r.Shutdown().Error(); err != nil {
		c.t.Errorf("shutdown %s: %v", rep.id, err)
	}
}

// kill hard-stops a node: its gRPC server and Manager first (as a crash
// looks to peers), then its raft instances.
func (c *cluster) kill(node int) {
	c.alive[node] = false
	c.nodes[node].stop()
	for _, row := range c.replicas {
		c.stopReplica(row[node])
	}
}

func (c *cluster) shutdown() {
	for _, row := range c.replicas {
		for _, rep := range row {
			c.stopReplica(rep)
		}
	}
	for _, n := range c.nodes {
		n.stop()
	}
}

func (c *cluster) live(g int) []*replica {
	var out []*replica
	for _, rep := range c.replicas[g] {
		if c.alive[rep.node] && !rep.closed {
			out = append(out, rep)
		}
	}
	return out
}

func (c *cluster) waitLeader(g int) *replica {
	c.t.Helper()
	var leader *replica
	waitFor(c.t, 20*time.Second, fmt.Sprintf("a leader in group %d", g), func() bool {
		for _, rep := range c.live(g) {
			if rep.r.State() == raft.Leader {
				leader = rep
				return true
			}
		}
		return false
	})
	return leader
}

// apply commits the command IDs in group g, pipelined, retrying failures
// on the current leader. A retried command may be applied twice; the FSM
// counts distinct IDs.
func (c *cluster) apply(g int, ids []uint64) {
	c.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for pending := ids; len(pending) > 0; {
		if time.Now().After(deadline) {
			c.t.Fatalf("group %d: %d commands still not applied", g, len(pending))
		}
		leader := c.waitLeader(g)
		futures := make([]raft.ApplyFuture, len(pending))
		for i, id := range pending {
			futures[i] = leader.r.Apply(binary.BigEndian.AppendUint64(nil, id), 10*time.Second)
		}
		var failed []uint64
		for i, f := range futures {
			if err := f.Error(); err != nil {
				failed = append(failed, pending[i])
			}
		}
		pending = failed
	}
}

// waitConverged waits until every live replica of g has seen want distinct
// commands and all applied the same number of entries.
func (c *cluster) waitConverged(g, want int) {
	c.t.Helper()
	waitFor(c.t, 30*time.Second, fmt.Sprintf("group %d to converge on %d commands", g, want), func() bool {
		var first uint64
		for i, rep := range c.live(g) {
			applied, seen := rep.fsm.state()
			if seen != want || (i > 0 && applied != first) {
				return false
			}
			first = applied
		}
		return true
	})
}

func idRange(from, to int) []uint64 {
	ids := make([]uint64, 0, to-from)
	for i := from; i < to; i++ {
		ids = append(ids, uint64(i))
	}
	return ids
}

func TestRaft_MultiGroupCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("runs raft clusters")
	}
	const groups = 3
	c := newCluster(t, clusterOpts{nodes: 3, groups: groups})

	var wg sync.WaitGroup
	for g := range groups {
		wg.Go(func() { c.apply(g, idRange(0, 1000)) })
	}
	wg.Wait()
	for g := range groups {
		c.waitConverged(g, 1000)
	}

	// At most one connection per (client node, server node) pair, however
	// many groups share it: what each listener accepted is exactly the
	// number of pools holding a connection to it.
	var st Stats
	for j, n := range c.nodes {
		s := n.mgr.Stats()
		st.PipelineAppends += s.PipelineAppends
		st.AppendEntries += s.AppendEntries
		var pools int64
		for i, m := range c.nodes {
			if i != j && m.mgr.hasConn(raft.ServerAddress(n.addr)) {
				pools++
			}
		}
		if got := n.lis.accepted.Load(); got != pools {
			t.Errorf("node %d accepted %d connections, want %d (one per peer that dialled it) for %d groups", j, got, pools, groups)
		}
		if s.Conns > len(c.nodes)-1 {
			t.Errorf("node %d holds %d peer connections, want at most %d", j, s.Conns, len(c.nodes)-1)
		}
	}
	t.Logf("served: %d pipelined AppendEntries, %d unary AppendEntries (incl. heartbeats)", st.PipelineAppends, st.AppendEntries)
	if st.PipelineAppends == 0 {
		t.Error("no AppendEntries went through a pipeline")
	}

	// Kill the node hosting group 0's leader; every group still works.
	dead := c.waitLeader(0).node
	c.kill(dead)
	for g := range groups {
		if l := c.waitLeader(g); l.node == dead {
			t.Fatalf("group %d: leader on the dead node", g)
		}
	}
	for g := range groups {
		wg.Go(func() { c.apply(g, idRange(1000, 1200)) })
	}
	wg.Wait()
	for g := range groups {
		c.waitConverged(g, 1200)
	}
}

func TestRaft_SnapshotInstall(t *testing.T) {
	if testing.Short() {
		t.Skip("runs raft clusters")
	}
	const pad = 3 << 20 // multi-MiB snapshot: ~48 chunks of 64 KiB
	c := newCluster(t, clusterOpts{
		nodes: 3, groups: 1, padBytes: pad,
		node: Config{SnapshotChunkSize: 64 << 10},
		raft: func(rc *raft.Config) {
			rc.TrailingLogs = 10
			rc.SnapshotThreshold = 1 << 20 // snapshots are taken explicitly below
		},
	})
	c.apply(0, idRange(0, 100))
	c.waitConverged(0, 100)

	leader := c.waitLeader(0)
	var follower *replica
	for _, rep := range c.replicas[0] {
		if rep != leader {
			follower = rep
			break
		}
	}
	c.stopReplica(follower)
	followerLast, _ := follower.logs.LastIndex()

	c.apply(0, idRange(100, 400))
	leader = c.waitLeader(0)
	if err := leader.r.Snapshot().Error(); err != nil {
		t.Fatalf("leader snapshot: %v", err)
	}
	if first, _ := leader.logs.FirstIndex(); first <= followerLast+1 {
		t.Fatalf("leader log starts at %d, follower has up to %d: log not truncated, no snapshot needed", first, followerLast)
	}

	// Restart the follower with its log but without its snapshots: it can
	// only catch up through InstallSnapshot.
	follower.snaps = raft.NewInmemSnapshotStore()
	c.start(follower)
	c.waitConverged(0, 400)
	if follower.fsm.restores.Load() == 0 {
		t.Error("follower caught up without restoring a snapshot")
	}
	if got := c.nodes[follower.node].mgr.Stats().SnapshotsReceived; got == 0 {
		t.Error("follower's node served no InstallSnapshot")
	}
	// The leader counts the transfer once the follower's answer is back,
	// which may be just after the follower converged.
	waitFor(t, 10*time.Second, "the leader's node to count a sent snapshot", func() bool {
		return c.nodes[leader.node].mgr.Stats().SnapshotsSent > 0
	})
}
