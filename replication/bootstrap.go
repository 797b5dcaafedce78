package replication

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"time"

	"github.com/hashicorp/raft"

	"github.com/ridgeline-kv/ridgeline/ring"
)

// bootstrapLoop forms a new cluster (Consul's bootstrap-expect): once
// BootstrapExpect nodes that all expect the same number and belong to no
// cluster see each other, and the set has been stable for a few rounds, the
// meta voters among them bootstrap the meta group with the identical
// configuration; its first leader then commits the initial map. A node that
// sees any member of an existing cluster never bootstraps.
func (n *Node) bootstrapLoop() {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	var last []string
	stable := 0
	lastLog := time.Now()
	for {
		select {
		case <-n.stop:
			return
		case <-t.C:
		}
		if n.currentMap() != nil {
			return
		}
		var cands []ring.Node
		existing := ""
		for _, mem := range n.members.Members() {
			if mem.Status != ring.MemberAlive {
				continue
			}
			if mem.Meta.ClusterID != "" {
				existing = mem.Meta.ClusterID
				continue
			}
			if int(mem.Meta.BootstrapExpect) != n.cfg.BootstrapExpect {
				continue
			}
			cands = append(cands, ring.Node{
				ID: mem.Meta.NodeID, Incarnation: mem.Meta.Incarnation, Addr: mem.Meta.Addr,
				GossipAddr: mem.GossipAddr, HTTPAddr: mem.Meta.HTTPAddr, State: ring.NodeActive,
			})
		}
		if existing != "" {
			n.logger.Info("found a member of existing cluster; not bootstrapping a new one", "cluster", existing)
			return
		}
		slices.SortFunc(cands, func(a, b ring.Node) int { return cmpString(a.ID, b.ID) })
		if len(cands) < n.cfg.BootstrapExpect {
			if time.Since(lastLog) > 5*time.Second {
				n.logger.Info("waiting for nodes to bootstrap", "seen", len(cands), "expect", n.cfg.BootstrapExpect)
				lastLog = time.Now()
			}
			stable = 0
			continue
		}
		if len(cands) > n.cfg.BootstrapExpect {
			if time.Since(lastLog) > 5*time.Second {
				n.logger.Warn("more nodes than --bootstrap-expect want to bootstrap; refusing to guess which to use",
					"seen", len(cands), "expect", n.cfg.BootstrapExpect)
				lastLog = time.Now()
			}
			stable = 0
			continue
		}
		ids := make([]string, len(cands))
		for i, c := range cands {
			ids[i] = c.ID
		}
		if slices.Equal(ids, last) {
			stable++
		} else {
			last, stable = ids, 0
		}
		if stable < 3 {
			continue
		}
		if err := n.bootstrapMeta(cands); err != nil {
			n.logger.Error("bootstrap failed; retrying", "err", err)
			continue
		}
		return
	}
}

func (n *Node) bootstrapMeta(nodes []ring.Node) error {
	probe, err := ring.NewMap("bootstrap", nodes, n.cfg.Shards, n.cfg.Replicas)
	if err != nil {
		return err
	}
	n.mu.Lock()
	n.bootstrapNodes = nodes
	n.mu.Unlock()
	if !containsString(probe.MetaVoters, n.cfg.NodeID) {
		n.logger.Info("cluster bootstrapping; this node is not a meta voter and waits for the map", "meta_voters", probe.MetaVoters)
		return nil
	}
	var conf raft.Configuration
	for _, id := range probe.MetaVoters {
		nd, _ := probe.Node(id)
		conf.Servers = append(conf.Servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(metaReplicaID(id)), Address: raft.ServerAddress(nd.Addr)})
	}
	n.logger.Info("bootstrapping a new cluster", "nodes", len(nodes), "meta_voters", probe.MetaVoters)
	return n.startMeta(&conf)
}

// proposeInitialMap commits epoch 1 of a new cluster; runs on the meta leader.
func (n *Node) proposeInitialMap() error {
	n.mu.RLock()
	nodes := n.bootstrapNodes
	n.mu.RUnlock()
	if len(nodes) == 0 {
		return fmt.Errorf("this node restarted before the first map was committed; the node set it bootstrapped with is unknown")
	}
	idb := make([]byte, 8)
	rand.Read(idb)
	m, err := ring.NewMap(hex.EncodeToString(idb), nodes, n.cfg.Shards, n.cfg.Replicas)
	if err != nil {
		return err
	}
	for s := range m.Shards {
		for i := range m.Shards[s].Replicas {
			m.Shards[s].Replicas[i].Bootstrap = true
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := n.proposeMap(ctx, 0, m)
	if err != nil {
		return err
	}
	if res.Applied {
		n.logger.Info("created cluster", "cluster", m.ClusterID, "shards", m.ShardCount, "replicas", m.RF, "nodes", len(nodes))
	}
	return nil
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
