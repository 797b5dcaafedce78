package ring

import (
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// MemberStatus is a gossip member's liveness as seen by this node.
type MemberStatus int

// Member statuses.
const (
	MemberAlive MemberStatus = iota
	// MemberSuspect is reserved: memberlist v0.7.0 does not report suspicion
	// through its delegates, so Members never returns it today. A suspected
	// member stays MemberAlive until it is declared dead.
	MemberSuspect
	MemberDead // failed probes; may come back
	MemberLeft // left gracefully
)

// String returns "alive", "suspect", "dead", "left" or "MemberStatus(n)".
func (s MemberStatus) String() string {
	switch s {
	case MemberAlive:
		return "alive"
	case MemberSuspect:
		return "suspect"
	case MemberDead:
		return "dead"
	case MemberLeft:
		return "left"
	}
	return "MemberStatus(" + strconv.Itoa(int(s)) + ")"
}

// Member is a gossip member as seen by this node.
type Member struct {
	Name       string // memberlist node name, which is the node ID
	GossipAddr string // ip:port
	Meta       MemberMeta
	Status     MemberStatus
	Since      time.Time // when Status last changed, as seen locally
}

// OtherClusterError says that a peer advertises a different cluster ID. It
// wraps [ErrOtherCluster].
type OtherClusterError struct {
	Peer         string // peer node name
	PeerAddr     string // peer gossip address
	PeerCluster  string
	LocalCluster string
}

func (e *OtherClusterError) Error() string {
	return fmt.Sprintf("ring: peer %q at %s belongs to cluster %q but this node belongs to cluster %q; check --join and the data directory",
		e.Peer, e.PeerAddr, e.PeerCluster, e.LocalCluster)
}

// Unwrap returns [ErrOtherCluster].
func (e *OtherClusterError) Unwrap() error { return ErrOtherCluster }

// MembershipConfig configures [NewMembership].
type MembershipConfig struct {
	// NodeID is this node's stable ID, used as its memberlist name. Required.
	NodeID string
	// BindAddr is the "ip:port" gossip listens on for TCP and UDP; port 0
	// picks a free port (see [Membership.LocalGossipAddr]). Outgoing TCP
	// connections leave from this IP. Required.
	BindAddr string
	// Meta returns what this node advertises. It is called from memberlist's
	// goroutines and must not block. nil advertises only NodeID.
	Meta func() MemberMeta
	// ClusterID returns this node's cluster ID, "" before bootstrap. A peer
	// advertising a different non-empty cluster ID is refused. It is called
	// from memberlist's goroutines and must not block. nil means "".
	ClusterID func() string
	// OnChange is called after any member joins, leaves, dies or updates its
	// meta, from a memberlist goroutine, without locks held. It must not
	// block. nil means no callback.
	OnChange func()
	// Logger receives memberlist's log, adapted. nil means slog.Default().
	Logger *slog.Logger
	// Fast shortens probe and gossip intervals for tests so that a failure
	// is detected in about one to two seconds.
	Fast bool
}

// Validate reports every missing or malformed field.
func (c MembershipConfig) Validate() error {
	var errs []error
	if c.NodeID == "" {
		errs = append(errs, errors.New("ring: MembershipConfig.NodeID is empty"))
	}
	if _, _, err := parseBindAddr(c.BindAddr); err != nil {
		errs = append(errs, fmt.Errorf("ring: MembershipConfig.BindAddr %q: %w", c.BindAddr, err))
	}
	return errors.Join(errs...)
}

func parseBindAddr(addr string) (net.IP, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, 0, err
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return nil, 0, fmt.Errorf("host %q is not an IP address", host)
	}
	port, err := strconv.ParseUint(p, 10, 16)
	if err != nil {
		return nil, 0, fmt.Errorf("bad port %q", p)
	}
	if ip4 := ip.To4(); ip4 != nil {
		ip = ip4
	}
	return ip, int(port), nil
}

// Membership is this node's view of gossip membership, an adapter over
// hashicorp/memberlist. Gossip is discovery and failure hints only; the
// cluster map is the authority. Its methods are safe for concurrent use.
type Membership struct {
	cfg       MembershipConfig
	logger    *slog.Logger
	ml        *memberlist.Memberlist
	localAddr string // advertised gossip address, fixed at start
	mlLog     *memberlistLogWriter

	joinMu  sync.Mutex  // serialises Join so refusals can be attributed
	lifeMu  sync.Mutex  // serialises Leave and Shutdown
	closed  atomic.Bool // set once by Shutdown
	leaving atomic.Bool // set by Leave; gossiped in meta flags

	mu       sync.Mutex
	members  map[string]*Member
	lastMeta []byte  // last meta that encoded within MaxMetaSize
	joining  bool    // a Join is in progress
	refusals []error // OtherClusterErrors seen while joining
}

// NewMembership validates cfg, starts listening on cfg.BindAddr and starts
// memberlist's background goroutines. It fails if the initial meta does not
// encode (for example, it is larger than [MaxMetaSize]).
func NewMembership(cfg MembershipConfig) (*Membership, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Meta == nil {
		id := cfg.NodeID
		cfg.Meta = func() MemberMeta { return MemberMeta{NodeID: id} }
	}
	if cfg.ClusterID == nil {
		cfg.ClusterID = func() string { return "" }
	}
	if cfg.OnChange == nil {
		cfg.OnChange = func() {}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	m := &Membership{
		cfg:     cfg,
		logger:  cfg.Logger.With("node", cfg.NodeID),
		members: make(map[string]*Member),
	}
	meta, err := cfg.Meta().Encode()
	if err != nil {
		return nil, err
	}
	m.lastMeta = meta

	ip, port, _ := parseBindAddr(cfg.BindAddr)
	m.mlLog = newMemberlistLogWriter(m.logger)
	mlLogger := log.New(m.mlLog, "", 0)
	tr, err := newBoundTransport(ip, port, mlLogger)
	if err != nil {
		return nil, fmt.Errorf("ring: gossip listen on %s: %w", cfg.BindAddr, err)
	}

	var conf *memberlist.Config
	if cfg.Fast {
		conf = fastMemberlistConfig()
	} else {
		conf = memberlist.DefaultLANConfig()
		// A restarted node keeps its ID but may come back on another
		// port; let it reclaim its name once it has been dead a while.
		conf.DeadNodeReclaimTime = 30 * time.Second
	}
	conf.Name = cfg.NodeID
	conf.Transport = tr
	conf.BindAddr = ip.String()
	conf.BindPort = tr.GetAutoBindPort()
	if !ip.IsUnspecified() {
		conf.AdvertiseAddr = ip.String()
	}
	conf.AdvertisePort = conf.BindPort
	conf.Logger = mlLogger
	d := &mlDelegate{m: m}
	conf.Delegate = d
	conf.Events = d
	conf.Merge = d
	conf.Alive = d

	ml, err := memberlist.Create(conf)
	if err != nil {
		_ = tr.Shutdown()
		return nil, fmt.Errorf("ring: start gossip on %s: %w", cfg.BindAddr, err)
	}
	m.ml = ml
	m.localAddr = ml.LocalNode().Address() // before anything can call UpdateNode
	return m, nil
}

// fastMemberlistConfig is memberlist.DefaultLocalConfig with intervals short
// enough for tests: a dead member is declared in about a second.
func fastMemberlistConfig() *memberlist.Config {
	conf := memberlist.DefaultLocalConfig()
	conf.ProbeInterval = 200 * time.Millisecond
	conf.ProbeTimeout = 150 * time.Millisecond
	conf.GossipInterval = 50 * time.Millisecond
	conf.SuspicionMult = 2
	conf.SuspicionMaxTimeoutMult = 3
	conf.PushPullInterval = 2 * time.Second
	conf.TCPTimeout = 500 * time.Millisecond
	conf.GossipToTheDeadTime = 2 * time.Second
	conf.DeadNodeReclaimTime = time.Second
	return conf
}

// Join contacts the given gossip addresses ("ip:port") and merges their view
// of the cluster. It blocks until each has been tried. It returns how many
// were reached. It fails if none could be reached, and also, whatever the
// count, when a peer was refused because it belongs to another cluster; that
// error wraps [ErrOtherCluster] (see [OtherClusterError]).
func (m *Membership) Join(addrs []string) (int, error) {
	if m.isClosed() {
		return 0, ErrMembershipClosed
	}
	m.joinMu.Lock()
	defer m.joinMu.Unlock()

	m.mu.Lock()
	m.joining, m.refusals = true, nil
	m.mu.Unlock()

	n, err := m.ml.Join(addrs)

	m.mu.Lock()
	refusals := m.refusals
	m.joining, m.refusals = false, nil
	m.mu.Unlock()

	if len(refusals) > 0 {
		return n, fmt.Errorf("ring: join %s: %w", strings.Join(addrs, ","), errors.Join(refusals...))
	}
	if err != nil {
		return n, fmt.Errorf("ring: join %s: no peer reached: %w", strings.Join(addrs, ","), err)
	}
	return n, nil
}

// Members returns every member this node has seen, itself included, sorted by
// name. Dead and left members stay listed until they come back.
func (m *Membership) Members() []Member {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Member, 0, len(m.members))
	for _, mem := range m.members {
		out = append(out, *mem)
	}
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// LocalGossipAddr returns the "ip:port" this node advertises for gossip; with
// port 0 in BindAddr it carries the port actually bound.
//
// The address is read once at start: memberlist's LocalNode returns a node
// that UpdateNode rewrites concurrently, so reading it later would race.
func (m *Membership) LocalGossipAddr() string {
	return m.localAddr
}

// UpdateMeta re-reads cfg.Meta and gossips it, blocking until the update has
// been broadcast or timeout passes (0 waits forever when peers exist). It
// fails without gossiping if the meta does not encode.
func (m *Membership) UpdateMeta(timeout time.Duration) error {
	if m.isClosed() {
		return ErrMembershipClosed
	}
	b, err := m.cfg.Meta().Encode()
	if err != nil {
		return err
	}
	m.mu.Lock()
	m.lastMeta = b
	m.mu.Unlock()
	if err := m.ml.UpdateNode(timeout); err != nil {
		return fmt.Errorf("ring: gossip meta update: %w", err)
	}
	return nil
}

// Leave broadcasts that this node is leaving and blocks until that has been
// sent to a peer or timeout passes (0 waits forever when peers exist).
// Gossip keeps running until Shutdown.
//
// It first gossips its meta with a leaving flag, then memberlist's leave
// message; peers report it as MemberLeft rather than MemberDead if the first
// reached them (best effort: UDP gossip may lose or reorder it).
func (m *Membership) Leave(timeout time.Duration) error {
	m.lifeMu.Lock()
	defer m.lifeMu.Unlock() // Shutdown waits: memberlist panics on Leave after Shutdown.
	if m.closed.Load() {
		return ErrMembershipClosed
	}
	start := time.Now()
	if !m.leaving.Swap(true) {
		if err := m.ml.UpdateNode(timeout); err != nil {
			m.logger.Warn("gossiping the leaving flag timed out; peers may report this node dead, not left", "err", err)
		}
	}
	if timeout > 0 {
		timeout = max(timeout-time.Since(start), time.Millisecond)
	}
	if err := m.ml.Leave(timeout); err != nil {
		return fmt.Errorf("ring: leave: %w", err)
	}
	return nil
}

// Shutdown stops gossip and closes the listeners without announcing a leave;
// peers will declare this node dead. It is idempotent.
func (m *Membership) Shutdown() error {
	m.lifeMu.Lock()
	defer m.lifeMu.Unlock()
	if m.closed.Swap(true) {
		return nil
	}
	defer m.mlLog.close()
	if err := m.ml.Shutdown(); err != nil {
		return fmt.Errorf("ring: shut down gossip: %w", err)
	}
	return nil
}

func (m *Membership) isClosed() bool { return m.closed.Load() }

// checkPeer refuses a peer whose meta does not decode or that belongs to a
// different cluster than this node.
func (m *Membership) checkPeer(n *memberlist.Node) error {
	if n.Name == m.cfg.NodeID {
		return nil
	}
	meta, err := DecodeMemberMeta(n.Meta)
	if err != nil {
		return fmt.Errorf("ring: peer %q at %s: %w", n.Name, n.Address(), err)
	}
	local := m.cfg.ClusterID()
	if local != "" && meta.ClusterID != "" && meta.ClusterID != local {
		return &OtherClusterError{Peer: n.Name, PeerAddr: n.Address(), PeerCluster: meta.ClusterID, LocalCluster: local}
	}
	return nil
}

// update records a membership event and then calls OnChange.
// A MemberDead status becomes MemberLeft when the member's meta says it was
// leaving.
func (m *Membership) update(n *memberlist.Node, status MemberStatus) {
	meta, flags, err := decodeMeta(n.Meta)
	if err != nil {
		m.logger.Warn("gossip member has undecodable meta", "member", n.Name, "addr", n.Address(), "err", err)
	}
	if status == MemberDead && flags&metaFlagLeaving != 0 {
		status = MemberLeft
	}
	now := time.Now()
	m.mu.Lock()
	mem, ok := m.members[n.Name]
	if !ok {
		mem = &Member{Name: n.Name, Since: now}
		m.members[n.Name] = mem
	} else if mem.Status != status {
		mem.Since = now
	}
	mem.GossipAddr = n.Address()
	if err == nil {
		mem.Meta = meta
	}
	mem.Status = status
	m.mu.Unlock()
	m.cfg.OnChange()
}

// mlDelegate implements memberlist's delegates for a Membership. Its methods
// are called from memberlist goroutines, some with memberlist locks held:
// they never call back into memberlist and never block.
type mlDelegate struct{ m *Membership }

var (
	_ memberlist.Delegate      = (*mlDelegate)(nil)
	_ memberlist.EventDelegate = (*mlDelegate)(nil)
	_ memberlist.MergeDelegate = (*mlDelegate)(nil)
	_ memberlist.AliveDelegate = (*mlDelegate)(nil)
)

// NodeMeta returns the encoded meta, or the last one that fit if the
// current one does not (memberlist panics on oversized meta).
func (d *mlDelegate) NodeMeta(limit int) []byte {
	var flags uint64
	if d.m.leaving.Load() {
		flags |= metaFlagLeaving
	}
	b, err := d.m.cfg.Meta().encode(flags)
	d.m.mu.Lock()
	defer d.m.mu.Unlock()
	if err != nil || len(b) > limit {
		d.m.logger.Error("gossip meta does not encode; advertising the previous meta", "err", err, "limit", limit)
		return d.m.lastMeta
	}
	d.m.lastMeta = b
	return b
}

func (d *mlDelegate) NotifyMsg([]byte)                     {}
func (d *mlDelegate) GetBroadcasts(int, int) [][]byte      { return nil }
func (d *mlDelegate) LocalState(bool) []byte               { return nil }
func (d *mlDelegate) MergeRemoteState([]byte, bool)        {}
func (d *mlDelegate) NotifyJoin(n *memberlist.Node)        { d.m.update(n, MemberAlive) }
func (d *mlDelegate) NotifyUpdate(n *memberlist.Node)      { d.m.update(n, MemberAlive) }
func (d *mlDelegate) NotifyAlive(n *memberlist.Node) error { return d.m.checkPeer(n) }

// NotifyLeave reports a dead or left member. memberlist does not say which
// (the Node's State field is stale), so a member whose last meta carried the
// leaving flag is taken to have left, any other to have died.
func (d *mlDelegate) NotifyLeave(n *memberlist.Node) { d.m.update(n, MemberDead) }

// NotifyMerge refuses a push/pull merge with peers of another cluster.
func (d *mlDelegate) NotifyMerge(peers []*memberlist.Node) error {
	for _, p := range peers {
		err := d.m.checkPeer(p)
		if err == nil {
			continue
		}
		d.m.logger.Warn("refusing to merge gossip state", "peer", p.Name, "peer_addr", p.Address(), "err", err)
		d.m.mu.Lock()
		if d.m.joining {
			d.m.refusals = append(d.m.refusals, err)
		}
		d.m.mu.Unlock()
		return err
	}
	return nil
}
