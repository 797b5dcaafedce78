package storage

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"time"
)

// Options configure a node's combined store (Open).
type Options struct {
	// Logger receives commit failures and lifecycle messages; nil means
	// slog.Default().
	Logger *slog.Logger
	// OnCommit, if set, is called after every group commit with the raft log
	// entries written, the requests coalesced (log appends, truncations,
	// state updates of every shard) and the commit's duration (write +
	// fsync). It runs on the committer goroutine and must not block.
	OnCommit func(entries, txns int, d time.Duration)
	// GroupCommitLinger is how long a commit waits for more requests when
	// the store is under load (the previous commit carried more than one
	// request). 0 disables lingering.
	GroupCommitLinger time.Duration
	// FlushInterval is how often the applies of every shard (ShardStore.Apply)
	// are written from memory to the file; 0 means DefaultFlushInterval.
	FlushInterval time.Duration
}

// DB is a node's one bbolt file holding both the raft logs of all its groups
// and the state of all its shards, written through ONE committer: a raft log
// append of one shard, a state-machine apply of another and a follower's
// append of a third coalesce into one transaction and one fsync. A node's
// write path needs an fsync for the leader's append, the followers' appends
// and the apply; sharing the file halves the fsyncs a node issues compared
// with separate log and state files, which matters most when fsync is
// expensive (it is CPU time, not just waiting, on virtualised disks).
//
// Logs and State return views over the DB; closing the DB closes both.
type DB struct {
	logs  *LogDB
	state *StateDB
	c     *committer

	closeOnce sync.Once
	closeErr  error
}

// Open opens (creating if needed) the combined store at path.
func Open(path string, opts Options) (*DB, error) {
	db, err := openBolt(path, stateMmapSize)
	if err != nil {
		return nil, err
	}
	logger := defaultLogger(opts.Logger).With("db", filepath.Base(path))
	c := newCommitter(db, logger, opts.OnCommit)
	// State updates run exactly once and undo their own writes on failure;
	// a batch that cannot be cleaned fails as a whole rather than running
	// anyone's function twice (see StateDB).
	c.rerun = false
	c.linger = opts.GroupCommitLinger
	state := &StateDB{db: db, dir: filepath.Dir(path), logger: logger, c: c, shards: make(map[string]*ShardStore),
		shared: true}
	state.fl = newFlusher(state, opts.FlushInterval)
	logs, err := newLogDB(db, logger, c, true)
	if err != nil {
		c.close()
		_ = db.Close()
		return nil, err
	}
	return &DB{c: c, logs: logs, state: state}, nil
}

// Logs returns the raft log and stable store of every group on the node.
func (d *DB) Logs() *LogDB { return d.logs }

// State returns the state store of every shard on the node.
func (d *DB) State() *StateDB { return d.state }

// Close flushes the applies held in memory, stops the committer (requests
// not yet committed fail with ErrClosed) and closes the file, after every Snapshot has been released. Idempotent.
func (d *DB) Close() error {
	d.closeOnce.Do(func() {
		if err := d.state.fl.close(); err != nil {
			d.state.logger.Error("storage: final flush failed; raft replays the applies it held", "err", err)
		}
		d.c.close()
		if err := d.state.db.Close(); err != nil {
			d.closeErr = fmt.Errorf("storage: close: %w", err)
		}
	})
	return d.closeErr
}
