package chaos

import (
	"context"
	"errors"
	"fmt"
	"github.com/ridgeline-kv/ridgeline/replication/replicationtest"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ridgeline-kv/ridgeline/client"
	"github.com/ridgeline-kv/ridgeline/ring"
)

// Fault kinds the nemesis can inject.
const (
	faultKillLeader     = "kill-leader"
	faultKillFollower   = "kill-follower"
	faultKillRandom     = "kill-random"
	faultPauseLeader    = "pause-leader"
	faultPauseRandom    = "pause-random"
	faultIsolateLeader  = "isolate-leader"
	faultIsolateRandom  = "isolate-random"
	faultMajorityMinor  = "majority-minority"
	faultBridge         = "bridge"
	faultOneWayFromLead = "one-way-from-leader" // the leader's packets to the others are dropped
	faultOneWayToLead   = "one-way-to-leader"   // the others' packets to the leader are dropped

	// Membership changes under load (the cluster needs --dead-node-grace
	// short enough for a kill to be repaired within the run).
	faultJoin           = "join"             // a new node joins and gets replicas; it stays
	faultDrain          = "drain"            // DrainNode on an active node; heal removes and retires it once empty
	faultKillDuringMove = "kill-during-move" // a node joins; while a replica move is in flight, SIGKILL the joiner or another node
)

// membershipFaults change the set of nodes.
var membershipFaults = map[string]bool{faultJoin: true, faultDrain: true, faultKillDuringMove: true}

// maxChaosNodes bounds how many nodes joins grow a cluster to.
const maxChaosNodes = 7

// partitionFaults need iptables in the private namespace.
var partitionFaults = map[string]bool{
	faultIsolateLeader: true, faultIsolateRandom: true, faultMajorityMinor: true,
	faultBridge: true, faultOneWayFromLead: true, faultOneWayToLead: true,
}

// nemesis injects faults into a cluster, from a seeded random source, and
// logs what it did (with times) to the artifacts.
type nemesis struct {
	c     *cluster
	rng   *rand.Rand
	shard uint32 // the shard whose leader "leader" faults target
	start time.Time
	logf  func(format string, args ...any)

	mu      sync.Mutex
	log     []string
	applied map[string]int
	killed  []*node
	paused  []*node
	drops   [][2]*node // src → dst pairs dropped
	drained []*node    // retired at heal once empty
}

func newNemesis(c *cluster, seed uint64, targetKey string, logf func(string, ...any)) *nemesis {
	return &nemesis{
		c:       c,
		rng:     rand.New(rand.NewPCG(seed, 0x6e656d65736973)),
		shard:   ring.ShardForKey([]byte(targetKey), uint32(c.shards)),
		start:   time.Now(),
		logf:    logf,
		applied: map[string]int{},
	}
}

func (n *nemesis) note(format string, args ...any) {
	line := fmt.Sprintf("%8.3fs ", time.Since(n.start).Seconds()) + fmt.Sprintf(format, args...)
	n.mu.Lock()
	n.log = append(n.log, line)
	n.mu.Unlock()
	n.logf("nemesis: %s", line)
}

func (n *nemesis) writeLog(path string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return os.WriteFile(path, []byte(strings.Join(n.log, "\n")+"\n"), 0o644)
}

func (n *nemesis) counts() map[string]int {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := map[string]int{}
	for k, v := range n.applied {
		out[k] = v
	}
	return out
}

// leader returns the current leader of the target shard.
func (n *nemesis) leader() (*node, error) {
	return n.c.leaderOf(n.shard, 20*time.Second)
}

func (n *nemesis) others(of ...*node) []*node {
	var out []*node
	for _, nd := range n.c.live() {
		skip := false
		for _, o := range of {
			skip = skip || nd == o
		}
		if !skip {
			out = append(out, nd)
		}
	}
	return out
}

func (n *nemesis) randomNode() *node {
	live := n.c.live()
	return live[n.rng.IntN(len(live))]
}

// inject applies one fault of kind; on success the fault is counted and
// stays in effect until heal.
func (n *nemesis) inject(kind string) error {
	var err error
	var desc string
	switch kind {
	case faultKillLeader, faultKillFollower, faultKillRandom:
		var v *node
		if v, err = n.pick(kind); err == nil {
			desc = "SIGKILL " + v.id
			if err = v.kill(); err == nil || isSignalExit(err) {
				err = nil
				n.killed = append(n.killed, v)
			}
		}
	case faultPauseLeader, faultPauseRandom:
		var v *node
		if v, err = n.pick(kind); err == nil {
			desc = "SIGSTOP " + v.id
			if err = v.signalPause(true); err == nil {
				n.paused = append(n.paused, v)
			}
		}
	case faultIsolateLeader, faultIsolateRandom:
		var v *node
		if v, err = n.pick(kind); err == nil {
			desc = "isolate " + v.id
			err = n.partition(both(groupOf(v), n.others(v)))
		}
	case faultMajorityMinor:
		// The minority holds the target shard's leader, so it must step down.
		var l *node
		if l, err = n.leader(); err == nil {
			minority := []*node{l}
			rest := n.others(l)
			n.rng.Shuffle(len(rest), func(i, j int) { rest[i], rest[j] = rest[j], rest[i] })
			for len(minority) < (len(n.c.live())-1)/2 {
				minority, rest = append(minority, rest[0]), rest[1:]
			}
			desc = fmt.Sprintf("partition minority %s | majority %s", ids(minority), ids(rest))
			err = n.partition(both(minority, rest))
		}
	case faultBridge:
		// Two halves that only the bridge node talks to; the leader on one side.
		var l *node
		if l, err = n.leader(); err == nil {
			rest := n.others(l)
			n.rng.Shuffle(len(rest), func(i, j int) { rest[i], rest[j] = rest[j], rest[i] })
			bridge, rest := rest[0], rest[1:]
			half := (len(rest) + 1) / 2
			a := append([]*node{l}, rest[:half-1]...)
			b := rest[half-1:]
			desc = fmt.Sprintf("bridge %s | %s | %s", ids(a), bridge.id, ids(b))
			err = n.partition(both(a, b))
		}
	case faultOneWayFromLead, faultOneWayToLead:
		var l *node
		if l, err = n.leader(); err == nil {
			if kind == faultOneWayFromLead {
				desc = fmt.Sprintf("drop %s → %s", l.id, ids(n.others(l)))
				err = n.partition(oneWay(groupOf(l), n.others(l)))
			} else {
				desc = fmt.Sprintf("drop %s → %s", ids(n.others(l)), l.id)
				err = n.partition(oneWay(n.others(l), groupOf(l)))
			}
		}
	case faultJoin:
		var v *node
		if v, err = n.c.addNode(); v != nil {
			desc = "start " + v.id + " (joins without --bootstrap-expect)"
		}
	case faultKillDuringMove:
		desc, err = n.killDuringMove()
	case faultDrain:
		var v *node
		if v, err = n.drainVictim(); err == nil {
			desc = "drain " + v.id
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			var epoch uint64
			epoch, err = n.c.admin.DrainNode(ctx, v.id)
			cancel()
			if err == nil {
				desc += fmt.Sprintf(" (epoch %d)", epoch)
				n.drained = append(n.drained, v)
			}
		}
	default:
		err = fmt.Errorf("unknown fault %q", kind)
	}
	if err != nil {
		n.note("%s: NOT applied: %s: %v", kind, desc, err)
		return fmt.Errorf("%s (%s): %w", kind, desc, err)
	}
	n.mu.Lock()
	n.applied[kind]++
	n.mu.Unlock()
	n.note("%s: %s", kind, desc)
	return nil
}

// feasible returns kind, or the membership fault to use instead when kind
// cannot apply to the cluster's current size: a drain needs more active
// nodes than the replication factor (plus one, so a kill stays survivable),
// and joins stop at maxChaosNodes.
func (n *nemesis) feasible(kind string) string {
	live := len(n.c.live())
	switch {
	case kind == faultDrain && live <= n.c.rf+1:
		return faultJoin
	case (kind == faultJoin || kind == faultKillDuringMove) && live >= maxChaosNodes:
		return faultDrain
	}
	return kind
}

// drainVictim picks a random live node that the map holds as active.
func (n *nemesis) drainVictim() (*node, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m, err := n.c.admin.RefreshMap(ctx)
	if err != nil {
		return nil, err
	}
	var cands []*node
	for _, nd := range n.c.live() {
		if st, ok := m.Node(nd.id); ok && st.State == ring.NodeActive {
			cands = append(cands, nd)
		}
	}
	if len(cands) <= n.c.rf {
		return nil, fmt.Errorf("only %d active nodes in map epoch %d; a drain would be refused", len(cands), m.Epoch)
	}
	return cands[n.rng.IntN(len(cands))], nil
}

// killDuringMove starts a joining node and, as soon as the cluster has a
// replica move in flight (a learner in the map, or moves the meta leader
// reports in flight), SIGKILLs the joiner or, as often, another random node.
func (n *nemesis) killDuringMove() (string, error) {
	joiner, err := n.c.addNode()
	if err != nil {
		return "", err
	}
	desc := "start " + joiner.id
	var seen string
	err = replicationtest.Eventually(30*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		m, err := n.c.admin.RefreshMap(ctx)
		if err != nil {
			return err
		}
		for _, sh := range m.Shards {
			for _, r := range sh.Replicas {
				if r.Role == ring.RoleLearner {
					seen = fmt.Sprintf("learner %s of shard %d in epoch %d", r.ID, sh.ID, m.Epoch)
					return nil
				}
			}
		}
		if rb, err := n.c.admin.Rebalance(ctx, client.RebalanceStatusOnly); err == nil && rb.MovesInFlight > 0 {
			seen = fmt.Sprintf("%d moves in flight at epoch %d", rb.MovesInFlight, rb.Epoch)
			return nil
		}
		return fmt.Errorf("no move in flight after %s joined (map epoch %d)", joiner.id, m.Epoch)
	})
	if err != nil {
		return desc, err
	}
	victim := joiner
	if n.rng.IntN(2) == 0 {
		others := n.others(joiner)
		victim = others[n.rng.IntN(len(others))]
	}
	desc += fmt.Sprintf(", SIGKILL %s during the move (%s)", victim.id, seen)
	if err := victim.kill(); err != nil && !isSignalExit(err) {
		return desc, err
	}
	n.killed = append(n.killed, victim)
	return desc, nil
}

// retireDrained waits until each drained node holds no replica and is no
// meta voter, removes it from the cluster (RemoveNode) and stops it.
func (n *nemesis) retireDrained(timeout time.Duration) error {
	var errs []error
	for _, v := range n.drained {
		err := replicationtest.Eventually(timeout, func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			m, err := n.c.admin.RefreshMap(ctx)
			if err != nil {
				return err
			}
			if k := len(m.ReplicasOn(v.id)); k > 0 {
				err := fmt.Errorf("drained %s still holds %d replicas at epoch %d", v.id, k, m.Epoch)
				if rb, rerr := n.c.admin.Rebalance(ctx, client.RebalanceStatusOnly); rerr == nil {
					err = fmt.Errorf("%w (meta leader: %d moves in flight, %d planned, pending %q)", err, rb.MovesInFlight, rb.MovesPlanned, rb.PendingReasons)
				}
				return err
			}
			if slices.Contains(m.MetaVoters, v.id) {
				return fmt.Errorf("drained %s is still a meta voter at epoch %d", v.id, m.Epoch)
			}
			_, err = n.c.admin.RemoveNode(ctx, v.id)
			return err
		})
		if err == nil {
			err = n.c.retire(v)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("retire %s: %w", v.id, err))
		} else {
			n.note("%s drained, removed and stopped", v.id)
		}
	}
	n.drained = nil
	return errors.Join(errs...)
}

func isSignalExit(err error) bool {
	var ee *exec.ExitError
	return errors.As(err, &ee)
}

// pick chooses the victim of a kill or pause fault.
func (n *nemesis) pick(kind string) (*node, error) {
	switch kind {
	case faultKillLeader, faultPauseLeader, faultIsolateLeader:
		return n.leader()
	case faultKillFollower:
		l, err := n.leader()
		if err != nil {
			return nil, err
		}
		o := n.others(l)
		return o[n.rng.IntN(len(o))], nil
	}
	return n.randomNode(), nil
}

func groupOf(nodes ...*node) []*node { return nodes }

func ids(nodes []*node) string {
	var s []string
	for _, nd := range nodes {
		s = append(s, nd.id)
	}
	return "{" + strings.Join(s, ",") + "}"
}

// both returns the pairs that cut a from b in both directions.
func both(a, b []*node) [][2]*node {
	return append(oneWay(a, b), oneWay(b, a)...)
}

// oneWay returns the pairs that drop packets from a to b.
func oneWay(a, b []*node) [][2]*node {
	var out [][2]*node
	for _, x := range a {
		for _, y := range b {
			out = append(out, [2]*node{x, y})
		}
	}
	return out
}

// partition drops packets for every src → dst pair with iptables, then
// checks that each rule took effect: a TCP dial from src to a listener on
// dst must time out.
func (n *nemesis) partition(pairs [][2]*node) error {
	if netnsReason != "" {
		return fmt.Errorf("partitions unavailable: %s", netnsReason)
	}
	for _, p := range pairs {
		out, err := exec.Command("iptables", "-A", "INPUT", "-s", p[0].ip, "-d", p[1].ip, "-j", "DROP").CombinedOutput()
		if err != nil {
			return fmt.Errorf("iptables: %v: %s", err, out)
		}
		n.drops = append(n.drops, p)
	}
	for _, p := range pairs {
		if err := probe(p[0].ip, p[1].ip); err == nil {
			return fmt.Errorf("rule %s → %s did not take effect: a dial went through", p[0].ip, p[1].ip)
		} else if !isTimeout(err) {
			return fmt.Errorf("probe %s → %s failed other than by a timeout: %v", p[0].ip, p[1].ip, err)
		}
	}
	return nil
}

// probe dials from srcIP to a fresh listener on dstIP.
func probe(srcIP, dstIP string) error {
	l, err := net.Listen("tcp", dstIP+":0")
	if err != nil {
		return fmt.Errorf("probe listener: %w", err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	d := net.Dialer{Timeout: 300 * time.Millisecond, LocalAddr: &net.TCPAddr{IP: net.ParseIP(srcIP)}}
	c, err := d.Dial("tcp", l.Addr().String())
	if err != nil {
		return err
	}
	c.Close()
	return nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// heal ends every fault: flushes the rules (checking dials go through
// again), continues paused processes and restarts killed ones.
func (n *nemesis) heal() error {
	var errs []error
	if len(n.drops) > 0 {
		if out, err := exec.Command("iptables", "-F", "INPUT").CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("iptables -F: %v: %s", err, out))
		}
		for _, p := range n.drops {
			if err := probe(p[0].ip, p[1].ip); err != nil {
				errs = append(errs, fmt.Errorf("after heal, %s → %s still fails: %v", p[0].ip, p[1].ip, err))
			}
		}
		n.drops = nil
	}
	for _, v := range n.paused {
		if err := v.signalPause(false); err != nil {
			errs = append(errs, fmt.Errorf("SIGCONT %s: %v", v.id, err))
		}
	}
	for _, v := range n.killed {
		if err := v.start(); err != nil {
			errs = append(errs, err)
		}
	}
	drained := len(n.drained)
	if err := n.retireDrained(90 * time.Second); err != nil {
		errs = append(errs, err)
	}
	var healed []string
	for _, v := range n.paused {
		healed = append(healed, "SIGCONT "+v.id)
	}
	for _, v := range n.killed {
		healed = append(healed, "restart "+v.id)
	}
	if drained > 0 {
		healed = append(healed, fmt.Sprintf("retire %d drained", drained))
	}
	n.paused, n.killed = nil, nil
	err := errors.Join(errs...)
	if err != nil {
		n.note("heal FAILED: %v", err)
	} else {
		n.note("heal %s", strings.Join(append(healed, "flush rules"), ", "))
	}
	return err
}
