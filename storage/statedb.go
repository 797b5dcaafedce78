package storage

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Layout: each shard has two top-level buckets, "data/<id>" and
// "sys/<id>"; the applied index and key counter of every shard live in the
// shared top-level bucket "meta" under "applied/<id>" and "keys/<id>". Flat
// buckets and a shared meta page keep the pages a group commit dirties close
// to one per shard.
const (
	dataPrefix = "data/"
	sysPrefix  = "sys/"
)

var bucketMeta = []byte("meta")

// StateDBOptions configures OpenStateDB. The zero value is valid.
type StateDBOptions struct {
	// Logger receives commit failures and lifecycle messages; nil means
	// slog.Default().
	Logger *slog.Logger
	// OnCommit, if set, is called after every successful group commit with
	// the number of requests (ShardStore.Update, Restore, ...) coalesced and
	// the duration of the commit (write + fsync). It runs on the committer
	// goroutine and must not block.
	OnCommit func(txns int, fsync time.Duration)
	// GroupCommitLinger: see Options.
	GroupCommitLinger time.Duration
	// FlushInterval: see Options.
	FlushInterval time.Duration
}

// StateDB is the node-wide replicated state store: one bbolt file with a
// bucket per shard. Updates of all shards are group-committed. It is safe for
// concurrent use.
type StateDB struct {
	db     *bolt.DB
	dir    string
	logger *slog.Logger
	c      *committer
	fl     *flusher

	mu     sync.Mutex // guards shards
	shards map[string]*ShardStore

	// shared: the file and committer belong to a DB (Open), which closes them.
	shared bool

	closeOnce sync.Once
	closeErr  error
}

// OpenStateDB opens (creating if needed) the state database at path and
// starts its committer goroutine.
func OpenStateDB(path string, opts StateDBOptions) (*StateDB, error) {
	db, err := openBolt(path, stateMmapSize)
	if err != nil {
		return nil, err
	}
	logger := defaultLogger(opts.Logger).With("db", "state")
	var onCommit func(int, int, time.Duration)
	if f := opts.OnCommit; f != nil {
		onCommit = func(_, txns int, d time.Duration) { f(txns, d) }
	}
	c := newCommitter(db, logger, onCommit)
	// A failing Update undoes its own writes; a failed undo cannot be
	// retried without calling other callers' functions twice, so it fails the
	// whole batch instead.
	c.rerun = false
	c.linger = opts.GroupCommitLinger
	d := &StateDB{
		db:     db,
		dir:    filepath.Dir(path),
		logger: logger,
		c:      c,
		shards: make(map[string]*ShardStore),
	}
	d.fl = newFlusher(d, opts.FlushInterval)
	return d, nil
}

// Flush blocks until every Apply that returned before the call is durable
// (fsynced), sharing a commit with whatever else is queued.
func (d *StateDB) Flush() error { return d.fl.wait() }

func (d *StateDB) published(s *ShardStore, size int) { d.fl.published(s, size) }

func (d *StateDB) failure() error { return d.fl.failure() }

// Close flushes the applies held in memory, stops the committer (requests
// not yet committed fail with ErrClosed) and closes the file. It blocks until
// every Snapshot has been released. It is idempotent.
func (d *StateDB) Close() error {
	if d.shared {
		return nil
	}
	d.closeOnce.Do(func() {
		if err := d.fl.close(); err != nil {
			d.logger.Error("storage: final flush failed; raft replays the applies it held", "err", err)
		}
		d.c.close()
		if err := d.db.Close(); err != nil {
			d.closeErr = fmt.Errorf("storage: close state db: %w", err)
		}
	})
	return d.closeErr
}

// Shard returns the store of shard id, creating its bucket if missing. Every
// call for the same id returns the same *ShardStore.
func (d *StateDB) Shard(id string) (*ShardStore, error) {
	if err := validID(id); err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	s, ok := d.shards[id]
	if ok && !s.isDropped() {
		return s, nil
	}
	if !ok {
		s = newShardStore(d, id)
	}
	r := d.c.getRequest()
	defer d.c.putRequest(r)
	r.apply = func(tx *bolt.Tx) error {
		if _, err := s.create(tx); err != nil {
			return err
		}
		s.discard(false)
		return nil
	}
	if err := d.c.do(r); err != nil {
		return nil, fmt.Errorf("storage: open shard %q: %w", id, err)
	}
	d.shards[id] = s
	return s, nil
}

// DropShard deletes shard id's bucket (data, sys and applied index), and
// its applies not yet flushed. ShardStore handles of the shard fail with
// ErrShardNotFound afterwards until Shard(id) (or Restore) creates it again.
// Dropping a missing shard is not an error.
func (d *StateDB) DropShard(id string) error {
	if err := validID(id); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	s, ok := d.shards[id]
	if !ok {
		s = newShardStore(d, id)
	}
	r := d.c.getRequest()
	defer d.c.putRequest(r)
	r.apply = func(tx *bolt.Tx) error {
		s.discard(true)
		return s.drop(tx)
	}
	if err := d.c.do(r); err != nil {
		return fmt.Errorf("storage: drop shard %q: %w", id, err)
	}
	return nil
}

// Shards lists the shards stored in the file, in byte order.
func (d *StateDB) Shards() ([]string, error) {
	return listBuckets(d.db, dataPrefix)
}
