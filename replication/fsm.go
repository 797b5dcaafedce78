package replication

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/ridgeline-kv/ridgeline/replication/kvpb"
	"github.com/ridgeline-kv/ridgeline/storage"
)

// fsmOptions configures a shard state machine.
type fsmOptions struct {
	Shard  uint32
	Shards uint32
	// SessionTTL is how long an idle write session is remembered, in command
	// time (see session.go); 0 means DefaultSessionTTL.
	SessionTTL time.Duration
	// Logger, expected to carry the shard attribute already; nil means
	// slog.Default().With("shard", Shard).
	Logger *slog.Logger
	// OnApplyBatch, if set, is called on raft's FSM goroutine after a batch
	// was durably applied, with the number of entries applied (skipped
	// replays not counted). It must not block.
	OnApplyBatch func(n int)
	// OnFatal is called, on raft's FSM goroutine, when the state store fails
	// to apply a batch. The replica's state is then unknown and the node must
	// stop loudly. Called at most once. It must not block on the FSM.
	OnFatal func(error)
}

// shardFSM is the replicated state machine of one data shard. It applies
// kvpb.Command entries to the shard's bbolt bucket together with the applied
// index and the session table, in one storage transaction per batch.
//
// raft calls ApplyBatch, Apply, Snapshot and Restore from its FSM goroutine,
// one at a time. AppliedIndex, WaitApplied and View are safe for concurrent
// use from any goroutine.
type shardFSM struct {
	store *storage.ShardStore
	opts  fsmOptions
	log   *slog.Logger

	// applied is the index of the last entry applied to the store (visible
	// to readers); once the store failed it also holds that error and the
	// FSM refuses all work.
	applied appliedIndex
	// configIndex is the index of the newest configuration entry applied
	// (0 = unknown: none seen since start or since a snapshot was restored;
	// a snapshot's configuration is raft's, not the FSM's): the prevIndex
	// that guards the next configuration change. A stale non-zero value
	// would make every change this replica tries as leader fail for good.
	configIndex atomic.Uint64
}

var _ raft.BatchingFSM = (*shardFSM)(nil)

// newShardFSM returns the state machine of the shard held by store, with its
// applied index loaded from the store.
func newShardFSM(store *storage.ShardStore, opts fsmOptions) (*shardFSM, error) {
	if store == nil {
		return nil, errors.New("replication: shard fsm: nil store")
	}
	if opts.SessionTTL <= 0 {
		opts.SessionTTL = DefaultSessionTTL
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default().With("shard", opts.Shard)
	}
	f := &shardFSM{store: store, opts: opts, log: opts.Logger}
	idx, err := store.AppliedIndex()
	if err != nil {
		return nil, fmt.Errorf("replication: shard %d: load applied index: %w", opts.Shard, err)
	}
	f.applied.store(idx)
	return f, nil
}

// AppliedIndex returns the index of the last entry applied to the store.
func (f *shardFSM) AppliedIndex() uint64 { return f.applied.load() }

// View runs fn in a read transaction over the shard's current state.
func (f *shardFSM) View(fn func(tx *storage.Tx) error) error { return f.store.View(fn) }

// Apply applies one log entry; see ApplyBatch.
func (f *shardFSM) Apply(l *raft.Log) interface{} {
	return f.ApplyBatch([]*raft.Log{l})[0]
}

// ApplyBatch applies committed entries in one durable storage transaction:
// data, session table and applied index together. Entries at or below the
// stored applied index were applied before (raft replays the log after the
// last snapshot on restart) and are skipped with a nil result. Entries that
// are not commands only advance the applied index (nil result).
//
// For a command the result is a *kvpb.CommandResult, or an error for entries
// that are not outcomes: a superseded sequence (ErrSessionSuperseded), an
// undecodable entry, or a storage failure (which also calls OnFatal).
func (f *shardFSM) ApplyBatch(logs []*raft.Log) []interface{} {
	results := make([]interface{}, len(logs))
	for _, l := range logs {
		if l.Type == raft.LogConfiguration {
			f.configIndex.Store(l.Index)
		}
	}
	if errp := f.applied.fatal.Load(); errp != nil {
		for i := range results {
			results[i] = *errp
		}
		return results
	}
	var last uint64
	applied := 0
	apply := func(tx *storage.Tx) error {
		clear(results)
		stored := tx.Applied()
		last, applied = stored, 0
		sessions := loadSessionTable(tx, f.opts.SessionTTL)
		for i, l := range logs {
			if l.Index <= last {
				continue
			}
			if l.Type == raft.LogCommand {
				res, err := f.applyCommand(tx, sessions, l)
				if err != nil {
					return err
				}
				results[i] = res
			}
			last = l.Index
			applied++
		}
		if last == stored {
			return nil
		}
		if err := sessions.flush(); err != nil {
			return err
		}
		return tx.SetApplied(last)
	}
	// The batch's writes are visible to readers when Apply returns and
	// durable with the state store's next flush: raft's log holds these
	// entries on a majority and replays them after a crash, from the
	// applied index that was durable.
	if err := f.store.Apply(apply); err != nil {
		err = fmt.Errorf("replication: shard %d: apply entries %d..%d: %w",
			f.opts.Shard, logs[0].Index, logs[len(logs)-1].Index, err)
		f.fail(err)
		for i := range results {
			results[i] = err
		}
		return results
	}
	if applied > 0 {
		f.advance(last)
		if f.opts.OnApplyBatch != nil {
			f.opts.OnApplyBatch(applied)
		}
	}
	return results
}

// fail records a fatal storage error, reports it once and wakes waiters.
func (f *shardFSM) fail(err error) {
	if !f.applied.fail(err) {
		return
	}
	f.log.Error("state store failed; this replica must stop", "err", err)
	if f.opts.OnFatal != nil {
		f.opts.OnFatal(err)
	}
}

// applyCommand applies one command entry within tx. A returned error is a
// storage failure; everything else is a result.
func (f *shardFSM) applyCommand(tx *storage.Tx, sessions *sessionTable, l *raft.Log) (interface{}, error) {
	cmd, err := decodeCommand(l.Data)
	if err != nil {
		f.log.Error("rejecting undecodable entry", "index", l.Index, "err", err)
		return fmt.Errorf("shard %d entry %d: %w", f.opts.Shard, l.Index, err), nil
	}
	if err := sessions.advance(cmd.GetNowUnixNano()); err != nil {
		return nil, err
	}
	w := commandWriteHeader(cmd)
	session, seq := w.GetSession(), w.GetSeq()
	if session != 0 {
		if rec, ok := sessions.lookup(session); ok {
			switch {
			case seq == rec.lastSeq:
				res, err := rec.cachedResult()
				if err != nil {
					return nil, err
				}
				return res, sessions.touch(session, rec)
			case seq < rec.lastSeq:
				return fmt.Errorf("%w: session %d seq %d is older than its last write (seq %d); its outcome is no longer remembered",
					ErrSessionSuperseded, session, seq, rec.lastSeq), nil
			}
		}
	}
	res, err := f.execute(tx, cmd, l.Index)
	if err != nil {
		return nil, err
	}
	if session != 0 {
		if err := sessions.record(session, seq, res); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// commandWriteHeader returns the command's write header, falling back to
// the one inside its request.
func commandWriteHeader(cmd *kvpb.Command) *kvpb.WriteHeader {
	if w := cmd.GetWrite(); w.GetSession() != 0 {
		return w
	}
	switch op := cmd.GetOp().(type) {
	case *kvpb.Command_Put:
		return op.Put.GetWrite()
	case *kvpb.Command_Delete:
		return op.Delete.GetWrite()
	case *kvpb.Command_Txn:
		return op.Txn.GetWrite()
	}
	return nil
}

// execute applies the command's operation at index and returns its result.
// A returned error is a storage failure.
func (f *shardFSM) execute(tx *storage.Tx, cmd *kvpb.Command, index uint64) (*kvpb.CommandResult, error) {
	switch op := cmd.GetOp().(type) {
	case *kvpb.Command_Put:
		resp, err := applyPut(tx, op.Put, index)
		if err != nil {
			return nil, err
		}
		return &kvpb.CommandResult{Result: &kvpb.CommandResult_Put{Put: resp}}, nil
	case *kvpb.Command_Delete:
		resp, err := applyDelete(tx, op.Delete, index)
		if err != nil {
			return nil, err
		}
		return &kvpb.CommandResult{Result: &kvpb.CommandResult_Delete{Delete: resp}}, nil
	case *kvpb.Command_Txn:
		return applyTxn(tx, op.Txn, index)
	default:
		return resultError("command has no operation: set put, delete or txn"), nil
	}
}

func resultError(msg string) *kvpb.CommandResult {
	return &kvpb.CommandResult{Result: &kvpb.CommandResult_Error{Error: msg}}
}

func applyPut(tx *storage.Tx, req *kvpb.PutRequest, index uint64) (*kvpb.PutResponse, error) {
	if req.ExpectedVersion != nil {
		var cur uint64
		if v, ok := tx.Get(req.GetKey()); ok {
			cur = v.Version
		}
		if cur != req.GetExpectedVersion() {
			return &kvpb.PutResponse{Succeeded: false, Version: cur}, nil
		}
	}
	if err := tx.Put(req.GetKey(), req.GetValue(), index); err != nil {
		return nil, err
	}
	return &kvpb.PutResponse{Succeeded: true, Version: index}, nil
}

func applyDelete(tx *storage.Tx, req *kvpb.DeleteRequest, index uint64) (*kvpb.DeleteResponse, error) {
	if req.ExpectedVersion != nil {
		var cur uint64
		v, ok := tx.Get(req.GetKey())
		if ok {
			cur = v.Version
		}
		if cur != req.GetExpectedVersion() {
			return &kvpb.DeleteResponse{Succeeded: false, Existed: ok, Version: cur}, nil
		}
	}
	existed, err := tx.Delete(req.GetKey())
	if err != nil {
		return nil, err
	}
	return &kvpb.DeleteResponse{Succeeded: true, Existed: existed, Version: index}, nil
}

// txnOverlay stages a txn's writes in memory so that later ops see earlier
// ones and a rejected txn writes nothing. The store's transaction is shared
// with other shards' commits, so it is never rolled back mid-batch.
type txnOverlay struct {
	tx     *storage.Tx
	staged map[string]stagedValue
}

type stagedValue struct {
	value   []byte
	version uint64
	present bool
}

func (o *txnOverlay) get(key []byte) stagedValue {
	if s, ok := o.staged[string(key)]; ok {
		return s
	}
	v, ok := o.tx.Get(key)
	if !ok {
		return stagedValue{}
	}
	return stagedValue{value: v.Data, version: v.Version, present: true}
}

func (o *txnOverlay) set(key []byte, s stagedValue) {
	if o.staged == nil {
		o.staged = make(map[string]stagedValue)
	}
	o.staged[string(key)] = s
}

// commit writes the staged values in key order.
func (o *txnOverlay) commit() error {
	keys := make([]string, 0, len(o.staged))
	for k := range o.staged {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		s := o.staged[k]
		if s.present {
			if err := o.tx.Put([]byte(k), s.value, s.version); err != nil {
				return err
			}
		} else if _, err := o.tx.Delete([]byte(k)); err != nil {
			return err
		}
	}
	return nil
}

func compareHolds(c *kvpb.Compare, version uint64) (bool, error) {
	switch c.GetOp() {
	case kvpb.Compare_EQUAL:
		return version == c.GetVersion(), nil
	case kvpb.Compare_NOT_EQUAL:
		return version != c.GetVersion(), nil
	case kvpb.Compare_LESS:
		return version < c.GetVersion(), nil
	case kvpb.Compare_GREATER:
		return version > c.GetVersion(), nil
	}
	return false, fmt.Errorf("unknown compare op %d", int32(c.GetOp()))
}

// applyTxn evaluates the compares, runs the success or failure ops in order
// against an overlay and, unless an op rejects the txn, writes the overlay.
// A rejected txn writes nothing and yields a CommandResult.error.
func applyTxn(tx *storage.Tx, req *kvpb.TxnRequest, index uint64) (*kvpb.CommandResult, error) {
	o := &txnOverlay{tx: tx}
	succeeded := true
	for i, c := range req.GetCompares() {
		holds, err := compareHolds(c, o.get(c.GetKey()).version)
		if err != nil {
			return resultError(fmt.Sprintf("txn rejected, nothing applied: compare %d on key %s: %v; use EQUAL, NOT_EQUAL, LESS or GREATER",
				i, quoteKey(c.GetKey()), err)), nil
		}
		if !holds {
			succeeded = false
			break
		}
	}
	ops, branch := req.GetSuccess(), "success"
	if !succeeded {
		ops, branch = req.GetFailure(), "failure"
	}
	results := make([]*kvpb.OpResult, 0, len(ops))
	for i, op := range ops {
		var r kvpb.OpResult
		switch op := op.GetOp().(type) {
		case *kvpb.Op_Put_:
			o.set(op.Put.GetKey(), stagedValue{value: op.Put.GetValue(), version: index, present: true})
			r.Version = index
		case *kvpb.Op_Delete_:
			r.Found = o.get(op.Delete.GetKey()).present
			o.set(op.Delete.GetKey(), stagedValue{})
			r.Version = index
		case *kvpb.Op_Add_:
			key := op.Add.GetKey()
			cur := o.get(key)
			var n int64
			if cur.present {
				var err error
				n, err = strconv.ParseInt(string(cur.value), 10, 64)
				if err != nil {
					return resultError(fmt.Sprintf("txn rejected, nothing applied: %s op %d: add to key %s: its value %s is not a decimal int64; "+
						"add only to counters written by add or as decimal ASCII", branch, i, quoteKey(key), quoteKey(cur.value))), nil
				}
			}
			d := op.Add.GetDelta()
			if (d > 0 && n > math.MaxInt64-d) || (d < 0 && n < math.MinInt64-d) {
				return resultError(fmt.Sprintf("txn rejected, nothing applied: %s op %d: add %d to key %s (value %d) overflows int64",
					branch, i, d, quoteKey(key), n)), nil
			}
			n += d
			o.set(key, stagedValue{value: strconv.AppendInt(nil, n, 10), version: index, present: true})
			r.Version, r.Counter = index, n
		case *kvpb.Op_Get_:
			cur := o.get(op.Get.GetKey())
			r.Found, r.Version = cur.present, cur.version
			if cur.present {
				r.Value = bytes.Clone(cur.value)
				if r.Value == nil {
					r.Value = []byte{}
				}
			}
		default:
			return resultError(fmt.Sprintf("txn rejected, nothing applied: %s op %d has no kind: set put, delete, add or get", branch, i)), nil
		}
		results = append(results, &r)
	}
	if err := o.commit(); err != nil {
		return nil, err
	}
	return &kvpb.CommandResult{Result: &kvpb.CommandResult_Txn{Txn: &kvpb.TxnResponse{Succeeded: succeeded, Results: results}}}, nil
}

// Snapshot captures the shard's state in a storage read transaction; the
// expensive streaming happens in Persist, concurrently with Apply.
func (f *shardFSM) Snapshot() (raft.FSMSnapshot, error) {
	// The store flushes first: raft compacts its log up to the snapshot's
	// index, so that index must be durable in the state store.
	s, err := f.store.Snapshot()
	if err != nil {
		return nil, fmt.Errorf("replication: shard %d: snapshot: %w", f.opts.Shard, err)
	}
	return &fsmSnapshot{snap: s}, nil
}

// Restore replaces the shard's state with a snapshot stream, atomically,
// then sets the applied index to the snapshot's and wakes waiters.
func (f *shardFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	idx, err := f.store.Restore(rc)
	if err != nil {
		return fmt.Errorf("replication: shard %d: restore snapshot: %w", f.opts.Shard, err)
	}
	f.log.Info("restored snapshot", "index", idx)
	// The snapshot holds a configuration newer than any entry applied
	// here (see configIndex).
	f.configIndex.Store(0)
	f.applied.advance(idx)
	return nil
}

type fsmSnapshot struct {
	snap *storage.Snapshot
	once sync.Once
}

// Persist streams the snapshot into sink and closes it, or cancels it on error.
func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := s.snap.WriteTo(sink); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("replication: persist snapshot at index %d: %w", s.snap.Index(), err)
	}
	return sink.Close()
}

// Release ends the snapshot's read transaction. It is idempotent.
func (s *fsmSnapshot) Release() { s.once.Do(s.snap.Release) }

// advance publishes a new applied index and wakes the waiters it satisfies.
func (f *shardFSM) advance(index uint64) { f.applied.advance(index) }

// WaitApplied blocks until the applied index is at least index, ctx is done
// (returning ctx's error) or the state store failed (returning that error).
func (f *shardFSM) WaitApplied(ctx context.Context, index uint64) error {
	return f.applied.wait(ctx, index)
}
