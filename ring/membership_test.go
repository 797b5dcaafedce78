package ring

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// testLogWriter forwards to t.Output() until the test ends; memberlist
// goroutines may still log while shutting down.
type testLogWriter struct {
	mu   sync.Mutex
	w    io.Writer
	done bool
}

func (w *testLogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return len(p), nil
	}
	return w.w.Write(p)
}

func testLogger(t *testing.T) *slog.Logger {
	w := &testLogWriter{w: t.Output()}
	t.Cleanup(func() { w.mu.Lock(); w.done = true; w.mu.Unlock() })
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// testNode is a Membership with mutable meta and cluster ID.
type testNode struct {
	*Membership
	meta    atomic.Pointer[MemberMeta]
	cluster atomic.Pointer[string]
	changes atomic.Int64
}

func startNode(t *testing.T, id, ip, cluster string) *testNode {
	t.Helper()
	n := &testNode{}
	n.meta.Store(&MemberMeta{NodeID: id, Incarnation: 1, Addr: ip + ":7000", HTTPAddr: ip + ":8000", ClusterID: cluster, Epoch: 1})
	n.cluster.Store(&cluster)
	m, err := NewMembership(MembershipConfig{
		NodeID:    id,
		BindAddr:  net.JoinHostPort(ip, "0"),
		Meta:      func() MemberMeta { return *n.meta.Load() },
		ClusterID: func() string { return *n.cluster.Load() },
		OnChange:  func() { n.changes.Add(1) },
		Logger:    testLogger(t).With("test_node", id),
		Fast:      true,
	})
	if err != nil {
		t.Fatalf("NewMembership(%s): %v", id, err)
	}
	t.Cleanup(func() { _ = m.Shutdown() })
	n.Membership = m
	return n
}

// waitFor polls cond until it returns "" or the deadline passes.
func waitFor(t *testing.T, timeout time.Duration, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		why := cond()
		if why == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met after %v: %s", timeout, why)
		}
		time.Sleep(20 * time.Millisecond) // poll interval, not synchronisation
	}
}

func statuses(ms []Member) string {
	var s []string
	for _, m := range ms {
		s = append(s, fmt.Sprintf("%s=%v(epoch %d)", m.Name, m.Status, m.Meta.Epoch))
	}
	return strings.Join(s, " ")
}

// seesAll reports "" when every node sees exactly want with these statuses.
func seesAll(nodes []*testNode, want map[string]MemberStatus) func() string {
	return func() string {
		for _, n := range nodes {
			ms := n.Members()
			ok := len(ms) == len(want)
			for _, m := range ms {
				if s, known := want[m.Name]; !known || s != m.Status {
					ok = false
				}
			}
			if !ok {
				return fmt.Sprintf("%s sees %s", n.cfg.NodeID, statuses(ms))
			}
		}
		return ""
	}
}

func startCluster(t *testing.T, cluster string, ids ...string) []*testNode {
	t.Helper()
	var nodes []*testNode
	want := map[string]MemberStatus{}
	for _, id := range ids {
		n := startNode(t, id, "127.0.0.1", cluster)
		if len(nodes) > 0 {
			if k, err := n.Join([]string{nodes[0].LocalGossipAddr()}); err != nil || k != 1 {
				t.Fatalf("%s Join: %d, %v", id, k, err)
			}
		}
		nodes = append(nodes, n)
		want[id] = MemberAlive
	}
	waitFor(t, 10*time.Second, seesAll(nodes, want))
	return nodes
}

func TestMembership_Join(t *testing.T) {
	nodes := startCluster(t, "c1", "n1", "n2", "n3")
	for _, n := range nodes {
		ms := n.Members()
		for i, m := range ms {
			if want := fmt.Sprintf("n%d", i+1); m.Name != want {
				t.Errorf("%s: Members()[%d] = %s, want %s (sorted)", n.cfg.NodeID, i, m.Name, want)
			}
			if want := *nodes[i].meta.Load(); m.Meta != want {
				t.Errorf("%s sees %s meta %+v, want %+v", n.cfg.NodeID, m.Name, m.Meta, want)
			}
			if m.GossipAddr != nodes[i].LocalGossipAddr() || m.Since.IsZero() {
				t.Errorf("%s sees %s at %s since %v, want %s", n.cfg.NodeID, m.Name, m.GossipAddr, m.Since, nodes[i].LocalGossipAddr())
			}
		}
		if n.changes.Load() == 0 {
			t.Errorf("%s: OnChange never called", n.cfg.NodeID)
		}
	}
	if addr := nodes[0].LocalGossipAddr(); !strings.HasPrefix(addr, "127.0.0.1:") || strings.HasSuffix(addr, ":0") {
		t.Errorf("LocalGossipAddr = %q, want 127.0.0.1 with the bound port", addr)
	}
}

func TestMembership_UpdateMeta(t *testing.T) {
	nodes := startCluster(t, "c1", "n1", "n2", "n3")
	meta := *nodes[1].meta.Load()
	meta.Epoch = 7
	nodes[1].meta.Store(&meta)
	if err := nodes[1].UpdateMeta(5 * time.Second); err != nil {
		t.Fatalf("UpdateMeta: %v", err)
	}
	waitFor(t, 10*time.Second, func() string {
		for _, n := range nodes {
			if ms := n.Members(); ms[1].Meta.Epoch != 7 {
				return fmt.Sprintf("%s sees %s", n.cfg.NodeID, statuses(ms))
			}
		}
		return ""
	})
}

func TestMembership_UpdateMeta_tooLarge(t *testing.T) {
	nodes := startCluster(t, "c1", "n1", "n2")
	big := *nodes[1].meta.Load()
	big.HTTPAddr = strings.Repeat("h", MaxMetaSize)
	nodes[1].meta.Store(&big)
	if err := nodes[1].UpdateMeta(time.Second); !errors.Is(err, ErrMetaTooLarge) {
		t.Fatalf("UpdateMeta with oversized meta = %v, want ErrMetaTooLarge", err)
	}
	// memberlist may still ask for meta (push/pull, probes); the delegate must
	// keep advertising the last meta that fit instead of panicking.
	d := &mlDelegate{m: nodes[1].Membership}
	if b := d.NodeMeta(MaxMetaSize); len(b) == 0 || len(b) > MaxMetaSize {
		t.Errorf("NodeMeta with oversized meta returned %d bytes", len(b))
	}
	if got := nodes[0].Members()[1].Meta.HTTPAddr; got != "127.0.0.1:8000" {
		t.Errorf("peer sees HTTPAddr %q, want the previous one", got)
	}
}

func TestNewMembership_metaTooLarge(t *testing.T) {
	_, err := NewMembership(MembershipConfig{
		NodeID:   "n1",
		BindAddr: "127.0.0.1:0",
		Meta:     func() MemberMeta { return MemberMeta{NodeID: strings.Repeat("n", 600)} },
		Logger:   testLogger(t),
	})
	if !errors.Is(err, ErrMetaTooLarge) {
		t.Fatalf("NewMembership with oversized meta = %v, want ErrMetaTooLarge", err)
	}
}

func TestMembership_Shutdown(t *testing.T) {
	nodes := startCluster(t, "c1", "n1", "n2", "n3")
	before := nodes[0].Members()[2].Since
	if err := nodes[2].Shutdown(); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := nodes[2].Shutdown(); err != nil {
		t.Errorf("second Shutdown: %v", err)
	}
	if err := nodes[2].Leave(time.Second); !errors.Is(err, ErrMembershipClosed) {
		t.Errorf("Leave after Shutdown = %v, want ErrMembershipClosed", err)
	}
	if err := nodes[2].UpdateMeta(time.Second); !errors.Is(err, ErrMembershipClosed) {
		t.Errorf("UpdateMeta after Shutdown = %v, want ErrMembershipClosed", err)
	}
	if _, err := nodes[2].Join([]string{nodes[0].LocalGossipAddr()}); !errors.Is(err, ErrMembershipClosed) {
		t.Errorf("Join after Shutdown = %v, want ErrMembershipClosed", err)
	}
	waitFor(t, 10*time.Second, seesAll(nodes[:2], map[string]MemberStatus{"n1": MemberAlive, "n2": MemberAlive, "n3": MemberDead}))
	if after := nodes[0].Members()[2].Since; !after.After(before) {
		t.Errorf("Since did not move on death: before %v, after %v", before, after)
	}
}

func TestMembership_Leave(t *testing.T) {
	nodes := startCluster(t, "c1", "n1", "n2", "n3")
	if err := nodes[2].Leave(5 * time.Second); err != nil {
		t.Fatalf("Leave: %v", err)
	}
	waitFor(t, 10*time.Second, seesAll(nodes[:2], map[string]MemberStatus{"n1": MemberAlive, "n2": MemberAlive, "n3": MemberLeft}))
}

func TestMembership_Join_otherCluster(t *testing.T) {
	b := startCluster(t, "B", "b1", "b2")
	a := startNode(t, "a1", "127.0.0.1", "A")

	n, err := a.Join([]string{b[0].LocalGossipAddr()})
	if !errors.Is(err, ErrOtherCluster) {
		t.Fatalf("Join into cluster B from cluster A = %d, %v; want ErrOtherCluster", n, err)
	}
	if want := `belongs to cluster "B" but this node belongs to cluster "A"`; !strings.Contains(err.Error(), want) {
		t.Errorf("Join error %q does not say %q", err, want)
	}
	var oc *OtherClusterError
	if !errors.As(err, &oc) || oc.PeerCluster != "B" || oc.LocalCluster != "A" {
		t.Errorf("Join error %v: OtherClusterError = %+v", err, oc)
	}
	if ms := a.Members(); len(ms) != 1 {
		t.Errorf("a1 sees %s after a refused join, want only itself", statuses(ms))
	}
	for _, n := range b {
		for _, m := range n.Members() {
			if m.Name == "a1" {
				t.Errorf("%s admitted a1 from another cluster", n.cfg.NodeID)
			}
		}
	}

	// A node not yet in any cluster may join.
	fresh := startNode(t, "b3", "127.0.0.1", "")
	if _, err := fresh.Join([]string{b[0].LocalGossipAddr()}); err != nil {
		t.Fatalf("Join of an unbootstrapped node: %v", err)
	}
	waitFor(t, 10*time.Second, seesAll(append(b, fresh), map[string]MemberStatus{"b1": MemberAlive, "b2": MemberAlive, "b3": MemberAlive}))
}

func TestMembership_Join_unreachable(t *testing.T) {
	n := startNode(t, "n1", "127.0.0.1", "c1")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	if k, err := n.Join([]string{addr}); err == nil || k != 0 || errors.Is(err, ErrOtherCluster) {
		t.Errorf("Join(closed port) = %d, %v; want a plain error", k, err)
	}
}

func TestMembership_acrossIPs(t *testing.T) {
	if !canBind("127.0.0.2") {
		t.Skip("127.0.0.2 is not bindable here")
	}
	n1 := startNode(t, "n1", "127.0.0.1", "c1")
	n2 := startNode(t, "n2", "127.0.0.2", "c1")
	if _, err := n2.Join([]string{n1.LocalGossipAddr()}); err != nil {
		t.Fatalf("Join: %v", err)
	}
	waitFor(t, 10*time.Second, seesAll([]*testNode{n1, n2}, map[string]MemberStatus{"n1": MemberAlive, "n2": MemberAlive}))
	if got := n1.Members()[1].GossipAddr; !strings.HasPrefix(got, "127.0.0.2:") {
		t.Errorf("n1 sees n2 at %s, want 127.0.0.2", got)
	}
}

func canBind(ip string) bool {
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

func TestBoundTransport_DialTimeout(t *testing.T) {
	if !canBind("127.0.0.2") {
		t.Skip("127.0.0.2 is not bindable here")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()

	tr, err := newBoundTransport(net.ParseIP("127.0.0.2").To4(), 0, newMemberlistLogger(testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Shutdown()

	dials := map[string]func() (net.Conn, error){
		"DialTimeout": func() (net.Conn, error) { return tr.DialTimeout(l.Addr().String(), time.Second) },
		"DialAddressTimeout": func() (net.Conn, error) {
			return tr.DialAddressTimeout(memberlist.Address{Addr: l.Addr().String(), Name: "peer"}, time.Second)
		},
	}
	for name, dial := range dials {
		c, err := dial()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		accepted, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		if ip := accepted.RemoteAddr().(*net.TCPAddr).IP; !ip.Equal(net.ParseIP("127.0.0.2")) {
			t.Errorf("%s: connection arrived from %s, want source IP 127.0.0.2", name, ip)
		}
		c.Close()
		accepted.Close()
	}
}

func TestMembershipConfig_Validate(t *testing.T) {
	tests := []struct {
		cfg  MembershipConfig
		want []string
	}{
		{MembershipConfig{NodeID: "n", BindAddr: "127.0.0.1:0"}, nil},
		{MembershipConfig{NodeID: "n", BindAddr: "[::1]:7946"}, nil},
		{MembershipConfig{}, []string{"NodeID is empty", `BindAddr ""`}},
		{MembershipConfig{NodeID: "n", BindAddr: "localhost:7946"}, []string{"not an IP address"}},
		{MembershipConfig{NodeID: "n", BindAddr: "127.0.0.1"}, []string{"missing port"}},
		{MembershipConfig{NodeID: "n", BindAddr: "127.0.0.1:70000"}, []string{"bad port"}},
	}
	for _, tt := range tests {
		err := tt.cfg.Validate()
		if len(tt.want) == 0 && err != nil {
			t.Errorf("Validate(%+v) = %v, want nil", tt.cfg, err)
		}
		for _, w := range tt.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("Validate(%+v) = %v, want it to mention %q", tt.cfg, err, w)
			}
		}
	}
}

// recordHandler records slog records.
type recordHandler struct {
	mu      sync.Mutex
	records []slog.Record
}

func (h *recordHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.records = append(h.records, r)
	return nil
}
func (h *recordHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recordHandler) WithGroup(string) slog.Handler      { return h }

func TestMemberlistLogWriter_Write(t *testing.T) {
	tests := []struct {
		line  string
		level slog.Level
		msg   string
	}{
		{"[DEBUG] memberlist: Stream connection from=127.0.0.1:1", slog.LevelDebug, "Stream connection from=127.0.0.1:1"},
		{"[INFO] memberlist: Marking n3 as failed", slog.LevelInfo, "Marking n3 as failed"},
		{"[WARN] memberlist: Refuting a dead message", slog.LevelWarn, "Refuting a dead message"},
		{"[ERR] memberlist: Failed push/pull merge: x", slog.LevelError, "Failed push/pull merge: x"},
		{"[ERR] Failed to shutdown transport: x", slog.LevelError, "Failed to shutdown transport: x"},
		{"no level here", slog.LevelInfo, "no level here"},
	}
	for _, tt := range tests {
		h := &recordHandler{}
		newMemberlistLogger(slog.New(h)).Print(tt.line)
		if len(h.records) != 1 || h.records[0].Level != tt.level || h.records[0].Message != tt.msg {
			t.Errorf("log %q: got %+v, want level %v message %q", tt.line, h.records, tt.level, tt.msg)
		}
	}
}
