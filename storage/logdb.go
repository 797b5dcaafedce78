package storage

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

const (
	// Each group has two top-level buckets (flat, so that appending to a
	// group's log dirties as few pages as possible): its log and its stable
	// store.
	logPrefix     = "log/"
	stablePrefix  = "stable/"
	logMmapSize   = 256 << 20
	stateMmapSize = 1 << 30
)

// LogDBOptions configures OpenLogDB. The zero value is valid.
type LogDBOptions struct {
	// Logger receives commit failures and lifecycle messages; nil means
	// slog.Default().
	Logger *slog.Logger
	// OnCommit, if set, is called after every successful group commit with
	// the number of log entries written, the number of requests (StoreLog,
	// StoreLogs, DeleteRange, Set, ...) coalesced, and the duration of the
	// commit (write + fsync). It runs on the committer goroutine and must not
	// block.
	OnCommit func(entries int, txns int, fsync time.Duration)
	// GroupCommitLinger: see Options.
	GroupCommitLinger time.Duration
}

// LogDB is the node-wide raft log and stable store: one bbolt file holding a
// bucket per raft group. Writes from all groups are group-committed. It is
// safe for concurrent use.
type LogDB struct {
	db     *bolt.DB
	logger *slog.Logger
	c      *committer

	mu     sync.Mutex // guards groups
	groups map[string]*LogStore

	// shared: the file and committer belong to a DB (Open), which closes them.
	shared bool

	closeOnce sync.Once
	closeErr  error
}

// OpenLogDB opens (creating if needed) the log database at path and starts
// its committer goroutine.
func OpenLogDB(path string, opts LogDBOptions) (*LogDB, error) {
	db, err := openBolt(path, logMmapSize)
	if err != nil {
		return nil, err
	}
	logger := defaultLogger(opts.Logger).With("db", "raftlog")
	var onCommit func(int, int, time.Duration)
	if opts.OnCommit != nil {
		onCommit = opts.OnCommit
	}
	d := &LogDB{
		db:     db,
		logger: logger,
		c:      newCommitter(db, logger, onCommit),
		groups: make(map[string]*LogStore),
	}
	d.c.linger = opts.GroupCommitLinger
	return d, nil
}

// Close stops the committer (requests not yet committed fail with ErrClosed)
// and closes the file. It blocks until open read transactions finish. It is
// idempotent.
func (d *LogDB) Close() error {
	if d.shared {
		return nil
	}
	d.closeOnce.Do(func() {
		d.c.close()
		if err := d.db.Close(); err != nil {
			d.closeErr = fmt.Errorf("storage: close log db: %w", err)
		}
	})
	return d.closeErr
}

// Group returns the LogStore of raft group id, creating its buckets if
// missing. Every call for the same id returns the same *LogStore.
func (d *LogDB) Group(id string) (*LogStore, error) {
	if err := validID(id); err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if s, ok := d.groups[id]; ok {
		return s, nil
	}
	s := &LogStore{d: d, id: id, name: []byte(logPrefix + id), stable: []byte(stablePrefix + id)}
	r := d.c.getRequest()
	defer d.c.putRequest(r)
	r.apply = func(tx *bolt.Tx) error {
		lb, err := tx.CreateBucketIfNotExists(s.name)
		if err != nil {
			return err
		}
		if _, err := tx.CreateBucketIfNotExists(s.stable); err != nil {
			return err
		}
		s.first, s.last = bounds(lb)
		return nil
	}
	if err := d.c.do(r); err != nil {
		return nil, fmt.Errorf("storage: open raft group %q: %w", id, err)
	}
	d.groups[id] = s
	return s, nil
}

// DropGroup deletes raft group id's log and stable data. LogStore handles of
// the group fail with ErrGroupNotFound afterwards. Dropping a missing group is
// not an error.
func (d *LogDB) DropGroup(id string) error {
	if err := validID(id); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	r := d.c.getRequest()
	defer d.c.putRequest(r)
	r.apply = func(tx *bolt.Tx) error {
		for _, name := range []string{logPrefix + id, stablePrefix + id} {
			if err := tx.DeleteBucket([]byte(name)); err != nil && !errors.Is(err, berrors.ErrBucketNotFound) {
				return err
			}
		}
		return nil
	}
	if err := d.c.do(r); err != nil {
		return fmt.Errorf("storage: drop raft group %q: %w", id, err)
	}
	if s, ok := d.groups[id]; ok {
		s.dropped.Store(true)
		delete(d.groups, id)
	}
	return nil
}

// Groups lists the raft groups stored in the file, in byte order.
func (d *LogDB) Groups() ([]string, error) {
	return listBuckets(d.db, logPrefix)
}

// bounds returns the first and last index in log bucket lb (0, 0 if empty).
func bounds(lb *bolt.Bucket) (first, last uint64) {
	c := lb.Cursor()
	k, _ := c.First()
	if k == nil {
		return 0, 0
	}
	first = be64(k)
	k, _ = c.Last()
	return first, be64(k)
}
