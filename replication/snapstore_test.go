package replication

import (
	"io"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

func writeSnapshot(t *testing.T, s raft.SnapshotStore, term, index uint64, data string) string {
	t.Helper()
	sink, err := s.Create(raft.SnapshotVersionMax, index, term, raft.Configuration{}, 1, nil)
	if err != nil {
		t.Fatalf("create snapshot %d-%d: %v", term, index, err)
	}
	if _, err := sink.Write([]byte(data)); err != nil {
		t.Fatalf("write snapshot %d-%d: %v", term, index, err)
	}
	if err := sink.Close(); err != nil {
		t.Fatalf("close snapshot %d-%d: %v", term, index, err)
	}
	return sink.ID()
}

// Regression (make test, TestNode_FollowerCatchesUpBySnapshot under load): a
// follower that had taken its own snapshot at a higher index than the one
// its leader sent it deleted the received snapshot as it closed it, and
// every install failed with "failed to open snapshot". The store keeps the
// snapshot closed last, whatever its index.
func TestSnapshotStore_KeepsTheSnapshotClosedLast(t *testing.T) {
	s, err := newSnapshotStore(t.TempDir(), hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	writeSnapshot(t, s, 3, 296, "taken locally")
	installed := writeSnapshot(t, s, 3, 274, "sent by the leader")

	meta, rc, err := s.Open(installed)
	if err != nil {
		t.Fatalf("open the snapshot just installed: %v", err)
	}
	data, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || string(data) != "sent by the leader" || meta.Index != 274 {
		t.Fatalf("installed snapshot reads index %d %q (%v), want 274 %q", meta.Index, data, err, "sent by the leader")
	}
	list, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].ID != installed {
		ids := []string{}
		for _, m := range list {
			ids = append(ids, m.ID)
		}
		t.Fatalf("snapshots kept: %v, want only the one closed last (%s)", ids, installed)
	}

	// A newer local snapshot replaces it in turn.
	latest := writeSnapshot(t, s, 3, 300, "taken locally again")
	if list, _ := s.List(); len(list) != 1 || list[0].ID != latest {
		t.Fatalf("after a newer snapshot, kept %d snapshots, want only %s", len(list), latest)
	}
}
