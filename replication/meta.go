package replication

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	"github.com/ridgeline-kv/ridgeline/replication/kvpb"
	"github.com/ridgeline-kv/ridgeline/ring"
	"github.com/ridgeline-kv/ridgeline/storage"
)

// metaMapKey is where the meta state machine keeps the committed map in its
// store's sys space (and where every node keeps the last map it learned).
var metaMapKey = []byte("cluster-map")

// metaFSM is the meta group's state machine: one cluster map, replaced by
// compare-and-set on its epoch (kvpb.MetaCommand). It is durable in the
// node's state store, like a shard.
type metaFSM struct {
	store   *storage.ShardStore
	logger  *slog.Logger
	onMap   func(*ring.Map) // called from raft's apply goroutine after a new map commits; must not block long
	onFatal func(error)

	applied appliedIndex
	// configIndex: the newest configuration entry applied (see shardFSM).
	configIndex atomic.Uint64

	mu  sync.Mutex
	cur *ring.Map
}

var (
	_ groupFSM                = (*metaFSM)(nil)
	_ raft.ConfigurationStore = (*metaFSM)(nil)
)

// metaResult is what Apply returns for a MetaCommand.
type metaResult struct {
	Applied bool
	Epoch   uint64 // the committed epoch after the command
}

func newMetaFSM(store *storage.ShardStore, logger *slog.Logger, onMap func(*ring.Map), onFatal func(error)) (*metaFSM, error) {
	f := &metaFSM{store: store, logger: logger, onMap: onMap, onFatal: onFatal}
	if err := f.load(); err != nil {
		return nil, err
	}
	return f, nil
}

func (f *metaFSM) load() error {
	return f.store.View(func(tx *storage.Tx) error {
		f.applied.store(tx.Applied())
		m, err := decodeMap(tx.SysGet(metaMapKey))
		if err != nil {
			return err
		}
		f.mu.Lock()
		f.cur = m
		f.mu.Unlock()
		return nil
	})
}

func decodeMap(b []byte) (*ring.Map, error) {
	if b == nil {
		return nil, nil
	}
	var pb kvpb.ClusterMap
	if err := proto.Unmarshal(b, &pb); err != nil {
		return nil, fmt.Errorf("decode stored cluster map: %w", err)
	}
	return ring.FromProto(&pb)
}

// Map returns the committed map, or nil before the cluster is initialised.
func (f *metaFSM) Map() *ring.Map {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cur
}

// StoreConfiguration records the index of each configuration entry raft
// applies (raft.ConfigurationStore); called on raft's FSM goroutine.
func (f *metaFSM) StoreConfiguration(index uint64, _ raft.Configuration) {
	f.configIndex.Store(index)
}

func (f *metaFSM) Apply(l *raft.Log) interface{} {
	if l.Index <= f.applied.load() {
		return nil // replay of an entry already in the durable state
	}
	var res any
	var next *ring.Map
	err := f.store.Update(func(tx *storage.Tx) error {
		if l.Type == raft.LogCommand {
			cmd, err := decodeMetaCommand(l.Data)
			if err != nil {
				res = err // deterministic: every replica rejects it alike
			} else {
				res, next, err = f.applyCommand(tx, cmd)
				if err != nil {
					return err
				}
			}
		}
		return tx.SetApplied(l.Index)
	})
	if err != nil {
		f.onFatal(fmt.Errorf("meta state store: %w", err))
		return err
	}
	f.applied.advance(l.Index)
	if next != nil {
		f.mu.Lock()
		f.cur = next
		f.mu.Unlock()
		if f.onMap != nil {
			f.onMap(next)
		}
	}
	return res
}

func (f *metaFSM) applyCommand(tx *storage.Tx, cmd *kvpb.MetaCommand) (any, *ring.Map, error) {
	f.mu.Lock()
	cur := f.cur
	f.mu.Unlock()
	var epoch uint64
	if cur != nil {
		epoch = cur.Epoch
	}
	if cmd.GetExpectedEpoch() != epoch || cmd.GetMap() == nil {
		return metaResult{Applied: false, Epoch: epoch}, nil, nil
	}
	pb := proto.Clone(cmd.GetMap()).(*kvpb.ClusterMap)
	pb.Epoch = epoch + 1
	next, err := ring.FromProto(pb)
	if err != nil {
		return fmt.Errorf("%w: proposed cluster map: %v", ErrInvalidArgument, err), nil, nil
	}
	if cur != nil && next.ClusterID != cur.ClusterID {
		return fmt.Errorf("%w: proposed map changes cluster ID %q to %q", ErrInvalidArgument, cur.ClusterID, next.ClusterID), nil, nil
	}
	b, err := proto.Marshal(pb)
	if err != nil {
		return nil, nil, err
	}
	if err := tx.SysPut(metaMapKey, b); err != nil {
		return nil, nil, err
	}
	return metaResult{Applied: true, Epoch: next.Epoch}, next, nil
}

func (f *metaFSM) Snapshot() (raft.FSMSnapshot, error) {
	sn, err := f.store.Snapshot()
	if err != nil {
		return nil, err
	}
	return storeSnapshot{sn}, nil
}

func (f *metaFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	idx, err := f.store.Restore(rc)
	if err != nil {
		return err
	}
	f.configIndex.Store(0) // the snapshot's configuration is newer: see shardFSM.configIndex
	if err := f.load(); err != nil {
		return err
	}
	f.applied.advance(idx)
	if m := f.Map(); m != nil && f.onMap != nil {
		f.onMap(m)
	}
	return nil
}

func (f *metaFSM) AppliedIndex() uint64 { return f.applied.load() }

func (f *metaFSM) WaitApplied(ctx context.Context, index uint64) error {
	return f.applied.wait(ctx, index)
}

// storeSnapshot adapts a storage snapshot to raft.FSMSnapshot.
type storeSnapshot struct{ sn *storage.Snapshot }

func (s storeSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := s.sn.WriteTo(sink); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s storeSnapshot) Release() { s.sn.Release() }
