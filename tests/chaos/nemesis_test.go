package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

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
)

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
	for _, nd := range n.c.nodes {
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

func (n *nemesis) randomNode() *node { return n.c.nodes[n.rng.IntN(len(n.c.nodes))] }

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
			for len(minority) < (len(n.c.nodes)-1)/2 {
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
	var healed []string
	for _, v := range n.paused {
		healed = append(healed, "SIGCONT "+v.id)
	}
	for _, v := range n.killed {
		healed = append(healed, "restart "+v.id)
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
