package replication

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sync"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// snapshotStore is a replica's raft snapshot store: hashicorp/raft's
// FileSnapshotStore, except that it keeps the snapshot closed last rather
// than the one with the highest term and index.
//
// The difference matters when a leader sends a follower a snapshot older than
// one the follower took itself (a follower whose log was compacted past the
// leader's next index for it gets one). FileSnapshotStore reaps on close by
// (term, index), so with one snapshot retained it deleted the snapshot it had
// just received before raft could open it to restore the state machine: the
// install failed with "failed to open snapshot … meta.json: no such file", and
// kept failing on every retry, so the follower never caught up. The snapshot
// closed last is the one raft's state refers to (it restores from it, or
// records it as its last snapshot), so it is the one to keep.
type snapshotStore struct {
	*raft.FileSnapshotStore
	dir    string // where FileSnapshotStore keeps the snapshot directories
	logger hclog.Logger
	mu     sync.Mutex // serialises close-and-reap
}

func newSnapshotStore(base string, logger hclog.Logger) (*snapshotStore, error) {
	// FileSnapshotStore's own reaping is disabled: it would keep the highest
	// (term, index). snapshotStore reaps after each close instead.
	fs, err := raft.NewFileSnapshotStoreWithLogger(base, math.MaxInt32, logger)
	if err != nil {
		return nil, err
	}
	return &snapshotStore{FileSnapshotStore: fs, dir: filepath.Join(base, "snapshots"), logger: logger}, nil
}

// Create starts a snapshot; closing its sink reaps every other snapshot.
func (s *snapshotStore) Create(version raft.SnapshotVersion, index, term uint64, configuration raft.Configuration,
	configurationIndex uint64, trans raft.Transport) (raft.SnapshotSink, error) {
	sink, err := s.FileSnapshotStore.Create(version, index, term, configuration, configurationIndex, trans)
	if err != nil {
		return nil, err
	}
	return &reapingSink{SnapshotSink: sink, s: s}, nil
}

// reapExcept deletes every complete snapshot but keep. Snapshots still being
// written (".tmp") are not listed and stay.
func (s *snapshotStore) reapExcept(keep string) error {
	metas, err := s.FileSnapshotStore.List()
	if err != nil {
		return fmt.Errorf("list snapshots to reap: %w", err)
	}
	for _, m := range metas {
		if m.ID == keep {
			continue
		}
		s.logger.Info("reaping snapshot", "id", m.ID, "kept", keep)
		if err := os.RemoveAll(filepath.Join(s.dir, m.ID)); err != nil {
			return fmt.Errorf("reap snapshot %s: %w", m.ID, err)
		}
	}
	return nil
}

type reapingSink struct {
	raft.SnapshotSink
	s *snapshotStore
}

// Close completes the snapshot, then deletes every other one. An error in
// reaping leaves extra snapshots behind, not a missing one: it is logged and
// the next close retries.
func (k *reapingSink) Close() error {
	k.s.mu.Lock()
	defer k.s.mu.Unlock()
	if err := k.SnapshotSink.Close(); err != nil {
		return err
	}
	if err := k.s.reapExcept(k.ID()); err != nil {
		k.s.logger.Warn("reaping old snapshots failed; will retry after the next snapshot", "error", err)
	}
	return nil
}
