package storage

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

const (
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

// LogDB is the node-wide raft log and stable store: one bbolt file holding
// the entries of every group in one append-ordered bucket (see wal.go) and a
// stable-store bucket per group. Writes from all groups are group-committed.
// It is safe for concurrent use.
type LogDB struct {
	db     *bolt.DB
	logger *slog.Logger
	c      *committer

	mu     sync.Mutex // guards groups
	groups map[string]*LogStore

	// Owned by the committer goroutine: read and written only by request
	// functions (apply, after), and by newLogDB before any request.
	nextSeq   uint64               // next wal sequence
	committed uint64               // the sequences below it were assigned by committed requests
	nextNum   uint64               // next group number
	walKeys   int                  // keys in the wal bucket, live or not
	byNum     map[uint64]*LogStore // the groups in walgroups

	cleaning sync.Mutex // one clean at a time
	trimMax  int        // maxTrim (tests lower it)
	slack    int        // cleanSlack (tests lower it)

	// shared: the file and committer belong to a DB (Open), which closes them.
	shared bool

	closeOnce sync.Once
	closeErr  error
}

// newLogDB loads the wal index of db (migrating the first layout) into a
// LogDB that writes through c.
func newLogDB(db *bolt.DB, logger *slog.Logger, c *committer, shared bool) (*LogDB, error) {
	d := &LogDB{db: db, logger: logger, c: c, shared: shared,
		groups: make(map[string]*LogStore), byNum: make(map[uint64]*LogStore),
		trimMax: maxTrim, slack: cleanSlack}
	if err := db.Update(prepareWAL); err != nil {
		return nil, fmt.Errorf("storage: prepare raft log: %w", err)
	}
	err := db.View(func(tx *bolt.Tx) error {
		recs := make(map[uint64]groupRecord)
		if err := tx.Bucket(walGroupsBucket).ForEach(func(k, v []byte) error {
			r, err := parseGroupRecord(k, v)
			if err != nil {
				return err
			}
			s := d.newStore(string(k), r.num)
			s.floor, s.minSeq = r.floor, r.minSeq
			d.groups[s.id], d.byNum[r.num], recs[r.num] = s, s, r
			d.nextNum = max(d.nextNum, r.num+1)
			ab := tx.Bucket(s.archive)
			if ab == nil {
				return fmt.Errorf("%w: raft group %q has no archive bucket", ErrCorrupt, k)
			}
			return ab.ForEach(func(k, _ []byte) error {
				s.live = append(s.live, walPair{be64(k), archived})
				return nil
			})
		}); err != nil {
			return err
		}
		return tx.Bucket(walBucket).ForEach(func(k, v []byte) error {
			seq := be64(k)
			num, index, _, err := parseWALHeader(seq, v)
			if err != nil {
				return err
			}
			d.walKeys++
			d.nextSeq = seq + 1
			d.nextNum = max(d.nextNum, num+1)
			s, ok := d.byNum[num]
			switch {
			case !ok || seq < recs[num].minSeq: // garbage
			case index < recs[num].floor:
				s.dead = append(s.dead, walPair{index, seq})
			default:
				s.live = append(s.live, walPair{index, seq})
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("storage: load raft log: %w", err)
	}
	d.nextSeq = max(d.nextSeq, 1) // 0 marks archived entries
	d.committed = d.nextSeq
	for _, s := range d.byNum {
		byIndex := func(a, b walPair) int { return cmp.Compare(a.index, b.index) }
		slices.SortFunc(s.live, byIndex)
		slices.SortFunc(s.dead, byIndex)
		for i := 1; i < len(s.live); i++ {
			if s.live[i].index == s.live[i-1].index {
				return nil, fmt.Errorf("storage: load raft log: %w: raft group %q has two entries %d", ErrCorrupt, s.id, s.live[i].index)
			}
		}
		s.ordered = seqsOrdered(s.live)
	}
	return d, nil
}

func (d *LogDB) newStore(id string, num uint64) *LogStore {
	return &LogStore{d: d, id: id, num: num, stable: []byte(stablePrefix + id), archive: []byte(archivePrefix + id)}
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
	c := newCommitter(db, logger, onCommit)
	d, err := newLogDB(db, logger, c, false)
	if err != nil {
		c.close()
		_ = db.Close()
		return nil, err
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

// Group returns the LogStore of raft group id, creating it if missing.
// Every call for the same id returns the same *LogStore.
func (d *LogDB) Group(id string) (*LogStore, error) {
	if err := validID(id); err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if s, ok := d.groups[id]; ok {
		return s, nil
	}
	s := d.newStore(id, 0)
	r := d.c.getRequest()
	defer d.c.putRequest(r)
	r.apply = func(tx *bolt.Tx) error {
		for _, name := range [][]byte{s.stable, s.archive} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		s.num = d.nextNum
		return tx.Bucket(walGroupsBucket).Put([]byte(id), groupRecord{num: s.num}.encode())
	}
	r.after = func() {
		d.nextNum = s.num + 1
		d.byNum[s.num] = s
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
	s := d.groups[id]
	if s == nil {
		return nil
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	_ = s.waitPending() // the group goes: a failed append does not matter
	r := d.c.getRequest()
	defer d.c.putRequest(r)
	r.apply = func(tx *bolt.Tx) error {
		for _, name := range [][]byte{s.stable, s.archive} {
			if err := tx.DeleteBucket(name); err != nil && !errors.Is(err, berrors.ErrBucketNotFound) {
				return err
			}
		}
		// Its entries become garbage: the number is never reused.
		return tx.Bucket(walGroupsBucket).Delete([]byte(id))
	}
	r.after = func() { delete(d.byNum, s.num) }
	if err := d.c.do(r); err != nil {
		return fmt.Errorf("storage: drop raft group %q: %w", id, err)
	}
	s.dropped.Store(true)
	delete(d.groups, id)
	return nil
}

// Groups lists the raft groups stored in the file, in byte order.
func (d *LogDB) Groups() ([]string, error) {
	var ids []string
	err := d.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(walGroupsBucket).ForEach(func(k, _ []byte) error {
			ids = append(ids, string(k))
			return nil
		})
	})
	return ids, mapBoltErr(err)
}

// liveStats returns the lowest live sequence of all groups (or the first
// sequence not yet committed, if lower) and the number of live entries in
// the wal. A group in next is counted with the live pairs given there (its
// state once the running request commits). It runs on the committer
// goroutine.
func (d *LogDB) liveStats(next map[*LogStore][]walPair) (low uint64, total int) {
	// Requests earlier in the running commit may have written entries that
	// no group lists yet: they are at or above committed.
	low = d.committed
	for _, s := range d.byNum {
		live, ordered := s.live, s.ordered
		if l, ok := next[s]; ok {
			live, ordered = l, false // not known to be ordered: scan
		}
		if ordered {
			total += len(live) - walStart(live)
		} else {
			total += walCount(live)
		}
		low = min(low, minSeq(live, ordered))
	}
	return low, total
}

// trimFront deletes the wal keys below low, at most trimMax of them. It
// returns how many it deleted and the lowest sequence that may remain.
func (d *LogDB) trimFront(wb *bolt.Bucket, low uint64) (n int, cut uint64, err error) {
	c := wb.Cursor()
	k, _ := c.First()
	for ; k != nil && be64(k) < low && n < d.trimMax; k, _ = c.First() {
		if err := c.Delete(); err != nil {
			return n, 0, fmt.Errorf("storage: trim raft log: %w", err)
		}
		n++
	}
	if k == nil {
		return n, low, nil
	}
	return n, min(be64(k), low), nil
}

// trimmed records, after a commit, that the keys below cut are gone.
func (d *LogDB) trimmed(n int, cut uint64) {
	d.walKeys -= n
	for _, s := range d.byNum {
		if len(s.dead) > 0 && slices.ContainsFunc(s.dead, func(p walPair) bool { return p.seq < cut }) {
			s.mu.Lock()
			s.dead = slices.DeleteFunc(s.dead, func(p walPair) bool { return p.seq < cut })
			s.mu.Unlock()
		}
	}
}

// clean archives the live entries in the oldest part of the wal (moves them
// to their groups' archive buckets) and raises their groups' min sequence,
// so that the garbage around them can be trimmed: a log-structured
// cleaner, for the trailing logs of idle shards, which would otherwise hold
// back the front of the wal while busy shards move on. It picks the oldest
// part that is at most half live (and holds at most maxClean live entries),
// so it moves at most one entry per key it frees, and an entry is moved at
// most once. It is an optimisation: a
// failure is logged (the committer reports the same error to every writer).
func (d *LogDB) clean() {
	if !d.cleaning.TryLock() {
		return
	}
	defer d.cleaning.Unlock()
	type change struct {
		g      *LogStore
		live   []walPair
		minSeq uint64
	}
	var (
		changes []change
		deleted int // wal keys deleted besides the trim
		n       int
		cut     uint64
	)
	r := d.c.getRequest()
	defer d.c.putRequest(r)
	// Alone in its commit, it sees every group as committed; no other
	// request of any group can interleave.
	r.solo = true
	r.apply = func(tx *bolt.Tx) error {
		changes, deleted, n = changes[:0], 0, 0
		wb := tx.Bucket(walBucket)
		k, _ := wb.Cursor().First()
		if k == nil {
			return nil
		}
		front := be64(k)
		below := func(t uint64) (c int) {
			for _, g := range d.byNum {
				c += countBelow(g.live, g.ordered, t)
			}
			return c
		}
		t := d.committed
		for t > front && (2*below(t) > int(t-front) || below(t) > maxClean) {
			t = front + (t-front)/2
		}
		if t <= front {
			return nil
		}
		for _, g := range d.byNum {
			if countBelow(g.live, g.ordered, t) == 0 {
				continue
			}
			// Archive a prefix (by index) of the group's wal entries: every
			// one up to the last below t.
			var upTo uint64
			for _, p := range g.live {
				if p.seq != archived && p.seq < t {
					upTo = max(upTo, p.index)
				}
			}
			ab := tx.Bucket(g.archive)
			ab.FillPercent = 1.0
			live := slices.Clone(g.live)
			for i, p := range live {
				if p.seq == archived || p.index > upTo {
					continue
				}
				v := wb.Get(uint64Key(p.seq))
				if v == nil {
					return fmt.Errorf("%w: raft group %q: entry %d (wal %d) is missing", ErrCorrupt, g.id, p.index, p.seq)
				}
				if err := ab.Put(uint64Key(p.index), bytes.Clone(v)); err != nil {
					return err
				}
				if p.seq >= t { // not garbage by the new min sequence
					if err := wb.Delete(uint64Key(p.seq)); err != nil {
						return err
					}
					deleted++
				}
				live[i].seq = archived
			}
			c := change{g: g, live: live, minSeq: max(g.minSeq, t)}
			if err := tx.Bucket(walGroupsBucket).Put([]byte(g.id), groupRecord{num: g.num, floor: g.floor, minSeq: c.minSeq}.encode()); err != nil {
				return err
			}
			changes = append(changes, c)
		}
		next := make(map[*LogStore][]walPair, len(changes))
		for _, c := range changes {
			next[c.g] = c.live
		}
		low, _ := d.liveStats(next)
		var err error
		n, cut, err = d.trimFront(wb, low)
		return err
	}
	r.after = func() {
		for _, c := range changes {
			g := c.g
			g.mu.Lock()
			g.live, g.ordered, g.minSeq = c.live, seqsOrdered(c.live), c.minSeq
			g.dead = slices.DeleteFunc(g.dead, func(p walPair) bool { return p.seq < c.minSeq })
			g.mu.Unlock()
		}
		d.walKeys -= deleted
		d.trimmed(n, cut)
	}
	if err := d.c.do(r); err != nil && !errors.Is(err, ErrClosed) {
		d.logger.Error("storage: cleaning the raft log failed", "err", err)
	}
}
