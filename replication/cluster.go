package replication

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	"github.com/ridgeline-kv/ridgeline/replication/kvpb"
	"github.com/ridgeline-kv/ridgeline/ring"
	"github.com/ridgeline-kv/ridgeline/storage"
)

// This file keeps a node in line with the cluster map: learning newer maps,
// and starting the replicas the map places on the node.

const metaReplicaPrefix = "meta/"

func metaReplicaID(nodeID string) string { return metaReplicaPrefix + nodeID }

func metaReplicaNode(id string) (string, bool) {
	return strings.CutPrefix(id, metaReplicaPrefix)
}

// startLocalReplicas starts what the data dir already holds: the meta
// replica if the node is (or was) a meta voter. Shard replicas follow from
// the map in the reconciler.
func (n *Node) startLocalReplicas() error {
	m := n.currentMap()
	groups, err := n.logDB.Groups()
	if err != nil {
		return fmt.Errorf("replication: list raft groups: %w", err)
	}
	hasMeta := false
	for _, g := range groups {
		if g == metaReplicaID(n.cfg.NodeID) {
			hasMeta = true
		}
	}
	if hasMeta || (m != nil && containsString(m.MetaVoters, n.cfg.NodeID)) {
		if err := n.startMeta(nil); err != nil {
			return err
		}
	}
	n.kickReconcile()
	return nil
}

// startMeta starts the node's meta replica; boot is the bootstrap
// configuration for a brand-new cluster, nil otherwise.
func (n *Node) startMeta(boot *raft.Configuration) error {
	n.mu.Lock()
	if n.meta != nil {
		n.mu.Unlock()
		return nil
	}
	n.mu.Unlock()
	store, err := n.stateDB.Shard("meta")
	if err != nil {
		return fmt.Errorf("replication: meta state: %w", err)
	}
	fsm, err := newMetaFSM(store, n.logger.With("group", "meta"), n.onMetaMap, n.failFatal)
	if err != nil {
		return fmt.Errorf("replication: meta state: %w", err)
	}
	r, err := startReplica(n.replicaDeps(), replicaSpec{ID: metaReplicaID(n.cfg.NodeID), Meta: true, Bootstrap: boot}, fsm)
	if err != nil {
		return fmt.Errorf("replication: start meta replica: %w", err)
	}
	n.mu.Lock()
	n.meta, n.metaFSM = r, fsm
	n.replicas[r.spec.ID] = r
	n.mu.Unlock()
	if m := fsm.Map(); m != nil {
		n.setMap(m)
	}
	return nil
}

// onMetaMap runs on the meta replica's apply goroutine for every new map.
func (n *Node) onMetaMap(m *ring.Map) { n.setMap(m) }

// setMap adopts m if it is newer than the node's map, persists it and wakes
// the reconciler.
func (n *Node) setMap(m *ring.Map) {
	n.mu.Lock()
	cur := n.cmap
	if cur != nil && m.Epoch <= cur.Epoch {
		n.mu.Unlock()
		return
	}
	if cur != nil && cur.ClusterID != m.ClusterID {
		n.mu.Unlock()
		n.logger.Error("ignoring cluster map of another cluster", "ours", cur.ClusterID, "theirs", m.ClusterID)
		return
	}
	n.cmap = m
	if n.keyspace == nil || (cur != nil && cur.ShardCount != m.ShardCount) {
		n.keyspace = ring.NewKeyspace(m.ShardCount)
	}
	newCluster := n.ident.ClusterID != m.ClusterID
	n.ident.ClusterID = m.ClusterID
	ident := n.ident
	n.mu.Unlock()

	n.metrics.mapEpoch.Set(float64(m.Epoch))
	if newCluster {
		if err := saveIdentity(n.cfg.DataDir, ident); err != nil {
			n.failFatal(fmt.Errorf("write node identity: %w", err))
			return
		}
		n.logger.Info("member of cluster", "cluster", m.ClusterID)
	}
	b, err := proto.Marshal(m.Proto())
	if err == nil {
		err = n.local.Update(func(tx *storage.Tx) error {
			if old, _ := decodeMap(tx.SysGet(metaMapKey)); old != nil && old.Epoch >= m.Epoch {
				return nil
			}
			return tx.SysPut(metaMapKey, b)
		})
	}
	if err != nil {
		n.failFatal(fmt.Errorf("persist cluster map: %w", err))
		return
	}
	if err := removedError(m, n.cfg.NodeID); err != nil { // persisted first: a restart is refused at once
		n.failFatal(err)
		return
	}
	n.logger.Debug("cluster map", "epoch", m.Epoch)
	select { // gossip the new epoch (gossipMetaLoop)
	case n.metaKick <- struct{}{}:
	default:
	}
	n.kickReconcile()
}

// reconcileLoop starts the replicas the map places on this node.
func (n *Node) reconcileLoop() {
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		n.reconcile()
		select {
		case <-n.stop:
			return
		case <-n.kick:
		case <-t.C:
		}
	}
}

func (n *Node) reconcile() {
	m := n.currentMap()
	if m == nil {
		return
	}
	if containsString(m.MetaVoters, n.cfg.NodeID) {
		if err := n.startMeta(nil); err != nil {
			n.logger.Error("cannot start meta replica", "err", err)
		}
	} else {
		n.stopMeta(m)
	}
	missing := 0
	for _, ref := range m.ReplicasOn(n.cfg.NodeID) {
		n.mu.RLock()
		_, running := n.replicas[ref.Replica.ID]
		n.mu.RUnlock()
		if running {
			continue
		}
		select {
		case <-n.stop:
			return
		default:
		}
		if err := n.startShardReplica(m, ref); err != nil {
			missing++
			n.logger.Error("cannot start shard replica; will retry", "replica", ref.Replica.ID, "err", err)
		}
	}
	if missing == 0 {
		n.readyOnce.Do(func() {
			n.logger.Info("node ready", "cluster", m.ClusterID, "epoch", m.Epoch, "replicas", len(m.ReplicasOn(n.cfg.NodeID)))
			close(n.ready)
		})
	}
	n.collectGarbage(m)
}

func (n *Node) startShardReplica(m *ring.Map, ref ring.ReplicaRef) error {
	store, err := n.stateDB.Shard(ref.Replica.ID)
	if err != nil {
		return err
	}
	gm := n.metrics.group(shardLabel(ref.Shard))
	fsm, err := newShardFSM(store, fsmOptions{
		Shard:        ref.Shard,
		Shards:       m.ShardCount,
		SessionTTL:   n.cfg.SessionTTL,
		Logger:       n.logger.With("shard", ref.Shard),
		OnApplyBatch: gm.observeApplyBatch,
		OnFatal:      n.failFatal,
	})
	if err != nil {
		return err
	}
	spec := replicaSpec{ID: ref.Replica.ID, Shard: ref.Shard}
	if ref.Replica.Bootstrap {
		var conf raft.Configuration
		for _, rep := range m.Shards[ref.Shard].Replicas {
			if !rep.Bootstrap {
				continue
			}
			nd, ok := m.Node(rep.NodeID)
			if !ok {
				return fmt.Errorf("map names unknown node %q for replica %s", rep.NodeID, rep.ID)
			}
			conf.Servers = append(conf.Servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(rep.ID), Address: raft.ServerAddress(nd.Addr)})
		}
		spec.Bootstrap = &conf
	}
	r, err := startReplica(n.replicaDeps(), spec, fsm)
	if err != nil {
		return err
	}
	r.data = fsm
	n.mu.Lock()
	n.replicas[r.spec.ID] = r
	n.byShard[ref.Shard] = r
	n.mu.Unlock()
	return nil
}

// mapLoop learns newer maps from peers whose gossip advertises a higher
// epoch and, on the meta leader, creates the first map of a new cluster.
func (n *Node) mapLoop() {
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-n.stop:
			return
		case <-t.C:
		}
		n.mu.RLock()
		meta, mfsm := n.meta, n.metaFSM
		n.mu.RUnlock()
		if meta != nil && meta.isLeader() && mfsm.Map() == nil {
			if err := n.proposeInitialMap(); err != nil {
				n.logger.Warn("cannot create the cluster map yet", "err", err)
			}
		}
		// Even a node with a meta replica fetches a newer map that gossip
		// advertises: its replica may have been removed from the meta group
		// while the node was down, and then it hears nothing through it.
		n.fetchNewerMap()
	}
}

// fetchNewerMap asks a peer that gossips a newer epoch for its map.
func (n *Node) fetchNewerMap() {
	var have uint64
	if m := n.currentMap(); m != nil {
		have = m.Epoch
	}
	cid := n.clusterID()
	for _, mem := range n.members.Members() {
		if mem.Status != ring.MemberAlive || mem.Meta.NodeID == n.cfg.NodeID || mem.Meta.Epoch <= have {
			continue
		}
		if cid != "" && mem.Meta.ClusterID != cid {
			continue
		}
		m, err := n.fetchMap(mem.Meta.Addr)
		if err != nil {
			n.logger.Debug("fetch cluster map", "from", mem.Meta.NodeID, "err", err)
			continue
		}
		if cid != "" && m.ClusterID != cid {
			continue
		}
		n.setMap(m)
		return
	}
}

func (n *Node) fetchMap(addr string) (*ring.Map, error) {
	conn, err := n.peers.get(addr)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	resp, err := kvpb.NewAdminClient(conn).ClusterMap(ctx, &kvpb.ClusterMapRequest{})
	if err != nil {
		return nil, err
	}
	if resp.GetMap() == nil {
		return nil, fmt.Errorf("peer %s has no map yet", addr)
	}
	return ring.FromProto(resp.GetMap())
}

// proposeMap commits m as the successor of epoch expected through the meta
// group (this node must lead it).
func (n *Node) proposeMap(ctx context.Context, expected uint64, m *ring.Map) (metaResult, error) {
	n.mu.RLock()
	meta := n.meta
	n.mu.RUnlock()
	if meta == nil {
		return metaResult{}, fmt.Errorf("%w: node %s is not in the meta group", ErrNotLeader, n.cfg.NodeID)
	}
	data, err := encodeMetaCommand(&kvpb.MetaCommand{ExpectedEpoch: expected, Map: m.Proto()})
	if err != nil {
		return metaResult{}, err
	}
	res, err := meta.propose(ctx, data)
	if err != nil {
		return metaResult{}, err
	}
	switch v := res.(type) {
	case metaResult:
		return v, nil
	case error:
		return metaResult{}, v
	default:
		return metaResult{}, fmt.Errorf("meta group returned %T", res)
	}
}

func containsString(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// collectGarbage stops and deletes the shard replicas on this node that m
// no longer places here: the running ones and any left on disk. A replica is
// dropped only if m knows of it — its sequence number is below m's
// NextReplicaSeq, so it was allocated before m and has since been removed —
// never one that a newer map than this node's may have placed here — and
// only once its shard's leader has taken it out of the raft configuration,
// so a replica still counted for quorum is never deleted. A replica that
// comes back from a partition after its removal is therefore deleted, not
// revived.
func (n *Node) collectGarbage(m *ring.Map) {
	want := map[string]bool{}
	for _, ref := range m.ReplicasOn(n.cfg.NodeID) {
		want[ref.Replica.ID] = true
	}
	peers := n.newPeerStatuses(m) // asked only when there is something to collect
	removed := func(id string) bool {
		if want[id] {
			return false
		}
		shard, nodeID, seq, err := ring.ParseReplicaID(id)
		if err != nil || nodeID != n.cfg.NodeID || seq >= m.NextReplicaSeq {
			return false
		}
		// The map drops a replica before its shard's leader takes it out of
		// the raft configuration; until then it may still count for quorum.
		if peers.inRaftConfig(shard, id) {
			n.logger.Debug("removed replica still in its raft configuration; keeping it for now", "replica", id)
			return false
		}
		return true
	}
	// Copy under the lock, decide outside it: removed asks this node's own
	// status, which takes the read lock again, and a recursive read lock
	// deadlocks once a writer (setMap) queues between the two.
	n.mu.RLock()
	candidates := make([]*replica, 0, len(n.replicas))
	for _, r := range n.replicas {
		if !r.spec.Meta {
			candidates = append(candidates, r)
		}
	}
	n.mu.RUnlock()
	var stale []*replica
	for _, r := range candidates {
		if removed(r.spec.ID) {
			stale = append(stale, r)
		}
	}
	for _, r := range stale {
		n.mu.Lock()
		if n.replicas[r.spec.ID] == r {
			delete(n.replicas, r.spec.ID)
		}
		if n.byShard[r.spec.Shard] == r {
			delete(n.byShard, r.spec.Shard)
		}
		n.mu.Unlock()
		if err := r.shutdown(); err != nil {
			n.logger.Warn("stopping removed replica", "replica", r.spec.ID, "err", err)
		}
	}
	groups, err := n.logDB.Groups()
	if err != nil {
		return
	}
	for _, id := range groups {
		n.mu.RLock()
		_, running := n.replicas[id]
		n.mu.RUnlock()
		if running || !removed(id) {
			continue
		}
		n.logger.Info("deleting removed replica", "replica", id, "epoch", m.Epoch)
		if err := n.logDB.DropGroup(id); err != nil {
			n.logger.Warn("delete raft log of removed replica", "replica", id, "err", err)
			continue
		}
		if err := n.stateDB.DropShard(id); err != nil {
			n.logger.Warn("delete state of removed replica", "replica", id, "err", err)
		}
		os.RemoveAll(filepath.Join(n.cfg.DataDir, "snapshots", groupDir(id)))
	}
}

// removedError says why a node the map marks removed may not run.
func removedError(m *ring.Map, nodeID string) error {
	if m == nil {
		return nil
	}
	if nd, ok := m.Node(nodeID); ok && nd.State == ring.NodeRemoved {
		return fmt.Errorf("replication: node %q was removed from cluster %s (map epoch %d) and may not rejoin with its old data: "+
			"to add this machine again, start it with a new --id and an empty --data-dir", nodeID, m.ClusterID, m.Epoch)
	}
	return nil
}

// stopMeta stops and deletes this node's meta replica once the map (which
// the meta group itself committed) no longer lists the node as a meta voter.
func (n *Node) stopMeta(m *ring.Map) {
	n.mu.Lock()
	r := n.meta
	if r == nil {
		n.mu.Unlock()
		return
	}
	n.meta, n.metaFSM = nil, nil
	delete(n.replicas, r.spec.ID)
	n.mu.Unlock()
	n.logger.Info("no longer a meta voter; stopping the meta replica", "epoch", m.Epoch)
	if err := r.shutdown(); err != nil {
		n.logger.Warn("stopping meta replica", "err", err)
	}
	if err := n.logDB.DropGroup(r.spec.ID); err != nil {
		n.logger.Warn("delete meta raft log", "err", err)
	}
	if err := n.stateDB.DropShard("meta"); err != nil {
		n.logger.Warn("delete meta state", "err", err)
	}
	os.RemoveAll(filepath.Join(n.cfg.DataDir, "snapshots", groupDir(r.spec.ID)))
}

// gossipMetaLoop re-gossips this node's metadata (its map epoch) whenever
// setMap adopts a newer map; kicks coalesce.
func (n *Node) gossipMetaLoop() {
	for {
		select {
		case <-n.stop:
			return
		case <-n.metaKick:
		}
		if err := n.members.UpdateMeta(time.Second); err != nil {
			n.logger.Debug("gossip metadata update", "err", err)
		}
	}
}
