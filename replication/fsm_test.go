package replication

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	"github.com/ridgeline-kv/ridgeline/replication/kvpb"
	"github.com/ridgeline-kv/ridgeline/storage"
)

// --- helpers ---------------------------------------------------------------

type testShard struct {
	db    *storage.StateDB
	store *storage.ShardStore
	path  string
}

func openTestShard(t testing.TB, path string) *testShard {
	t.Helper()
	db, err := storage.OpenStateDB(path, storage.StateDBOptions{})
	if err != nil {
		t.Fatalf("OpenStateDB: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	store, err := db.Shard("s0")
	if err != nil {
		t.Fatalf("Shard: %v", err)
	}
	return &testShard{db: db, store: store, path: path}
}

func newTestFSM(t testing.TB, opts fsmOptions) (*shardFSM, *testShard) {
	t.Helper()
	s := openTestShard(t, filepath.Join(t.TempDir(), "state.db"))
	return newFSMOn(t, s, opts), s
}

func newFSMOn(t testing.TB, s *testShard, opts fsmOptions) *shardFSM {
	t.Helper()
	if opts.Shards == 0 {
		opts.Shards = 1
	}
	if opts.OnFatal == nil {
		opts.OnFatal = func(err error) { t.Errorf("OnFatal: %v", err) }
	}
	f, err := newShardFSM(s.store, opts)
	if err != nil {
		t.Fatalf("newShardFSM: %v", err)
	}
	return f
}

func checksum(t testing.TB, s *storage.ShardStore) (applied, sum, keys uint64) {
	t.Helper()
	applied, sum, keys, err := s.Checksum()
	if err != nil {
		t.Fatalf("Checksum: %v", err)
	}
	return applied, sum, keys
}

func commandLog(t testing.TB, index uint64, cmd *kvpb.Command) *raft.Log {
	t.Helper()
	b, err := encodeCommand(cmd)
	if err != nil {
		t.Fatalf("encodeCommand: %v", err)
	}
	return &raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: b}
}

// wh is a write header; tests use a fresh session per command unless they
// test sessions.
var nextTestSession uint64 = 1 << 40

func wh() *kvpb.WriteHeader {
	nextTestSession++
	return &kvpb.WriteHeader{Session: nextTestSession, Seq: 1}
}

func putCmd(key, value string) *kvpb.Command {
	return &kvpb.Command{Write: wh(), Op: &kvpb.Command_Put{Put: &kvpb.PutRequest{Key: []byte(key), Value: []byte(value)}}}
}

func casCmd(key, value string, expected uint64) *kvpb.Command {
	c := putCmd(key, value)
	c.GetPut().ExpectedVersion = proto.Uint64(expected)
	return c
}

func delCmd(key string, expected ...uint64) *kvpb.Command {
	d := &kvpb.DeleteRequest{Key: []byte(key)}
	if len(expected) > 0 {
		d.ExpectedVersion = proto.Uint64(expected[0])
	}
	return &kvpb.Command{Write: wh(), Op: &kvpb.Command_Delete{Delete: d}}
}

func txnCmd(cmps []*kvpb.Compare, success, failure []*kvpb.Op) *kvpb.Command {
	return &kvpb.Command{Write: wh(), Op: &kvpb.Command_Txn{Txn: &kvpb.TxnRequest{Compares: cmps, Success: success, Failure: failure}}}
}

func cmp(key string, op kvpb.Compare_Op, version uint64) *kvpb.Compare {
	return &kvpb.Compare{Key: []byte(key), Op: op, Version: version}
}

func opPut(key, value string) *kvpb.Op {
	return &kvpb.Op{Op: &kvpb.Op_Put_{Put: &kvpb.Op_Put{Key: []byte(key), Value: []byte(value)}}}
}
func opDel(key string) *kvpb.Op {
	return &kvpb.Op{Op: &kvpb.Op_Delete_{Delete: &kvpb.Op_Delete{Key: []byte(key)}}}
}
func opAdd(key string, d int64) *kvpb.Op {
	return &kvpb.Op{Op: &kvpb.Op_Add_{Add: &kvpb.Op_Add{Key: []byte(key), Delta: d}}}
}
func opGet(key string) *kvpb.Op {
	return &kvpb.Op{Op: &kvpb.Op_Get_{Get: &kvpb.Op_Get{Key: []byte(key)}}}
}

func putRes(ok bool, v uint64) *kvpb.CommandResult {
	return &kvpb.CommandResult{Result: &kvpb.CommandResult_Put{Put: &kvpb.PutResponse{Succeeded: ok, Version: v}}}
}
func delRes(ok, existed bool, v uint64) *kvpb.CommandResult {
	return &kvpb.CommandResult{Result: &kvpb.CommandResult_Delete{Delete: &kvpb.DeleteResponse{Succeeded: ok, Existed: existed, Version: v}}}
}
func txnRes(ok bool, rs ...*kvpb.OpResult) *kvpb.CommandResult {
	return &kvpb.CommandResult{Result: &kvpb.CommandResult_Txn{Txn: &kvpb.TxnResponse{Succeeded: ok, Results: rs}}}
}
func errRes(substr string) *kvpb.CommandResult {
	return &kvpb.CommandResult{Result: &kvpb.CommandResult_Error{Error: substr}}
}

// getValue reads key from the FSM's store.
func getValue(t testing.TB, f *shardFSM, key string) (storage.Value, bool) {
	t.Helper()
	var v storage.Value
	var ok bool
	err := f.View(func(tx *storage.Tx) error {
		v, ok = tx.Get([]byte(key))
		v.Data = bytes.Clone(v.Data)
		return nil
	})
	if err != nil {
		t.Fatalf("View: %v", err)
	}
	return v, ok
}

// --- semantics -------------------------------------------------------------

// TestShardFSM_Apply feeds each case's commands at indexes 1, 2, ... and
// checks every result and the final state. An errRes want matches by
// substring.
func TestShardFSM_Apply(t *testing.T) {
	type kv struct {
		value   string
		version uint64
	}
	tests := []struct {
		name  string
		cmds  []*kvpb.Command
		want  []*kvpb.CommandResult
		state map[string]*kv // nil value = must be absent
	}{
		{
			name:  "put versions are raft indexes",
			cmds:  []*kvpb.Command{putCmd("a", "1"), putCmd("b", "2"), putCmd("a", "3")},
			want:  []*kvpb.CommandResult{putRes(true, 1), putRes(true, 2), putRes(true, 3)},
			state: map[string]*kv{"a": {"3", 3}, "b": {"2", 2}},
		},
		{
			name:  "cas create only if absent",
			cmds:  []*kvpb.Command{casCmd("a", "1", 0), casCmd("a", "2", 0)},
			want:  []*kvpb.CommandResult{putRes(true, 1), putRes(false, 1)},
			state: map[string]*kv{"a": {"1", 1}},
		},
		{
			name:  "cas on version",
			cmds:  []*kvpb.Command{putCmd("a", "1"), casCmd("a", "2", 7), casCmd("a", "3", 1), casCmd("b", "x", 3)},
			want:  []*kvpb.CommandResult{putRes(true, 1), putRes(false, 1), putRes(true, 3), putRes(false, 0)},
			state: map[string]*kv{"a": {"3", 3}, "b": nil},
		},
		{
			name:  "delete",
			cmds:  []*kvpb.Command{delCmd("a"), putCmd("a", "1"), delCmd("a", 9), delCmd("a", 2), delCmd("a")},
			want:  []*kvpb.CommandResult{delRes(true, false, 1), putRes(true, 2), delRes(false, true, 2), delRes(true, true, 4), delRes(true, false, 5)},
			state: map[string]*kv{"a": nil},
		},
		{
			name: "delete cas on absent",
			cmds: []*kvpb.Command{delCmd("a", 0), delCmd("a", 1)},
			want: []*kvpb.CommandResult{delRes(true, false, 1), delRes(false, false, 0)},
		},
		{
			name: "txn compares choose branch",
			cmds: []*kvpb.Command{
				putCmd("k", "v"), // version 1
				txnCmd([]*kvpb.Compare{cmp("k", kvpb.Compare_EQUAL, 1)}, []*kvpb.Op{opPut("r", "eq")}, []*kvpb.Op{opPut("r", "neq")}),
				txnCmd([]*kvpb.Compare{cmp("k", kvpb.Compare_NOT_EQUAL, 1)}, []*kvpb.Op{opPut("s", "1")}, []*kvpb.Op{opPut("s", "2")}),
				txnCmd([]*kvpb.Compare{cmp("k", kvpb.Compare_LESS, 2), cmp("k", kvpb.Compare_GREATER, 0)}, []*kvpb.Op{opGet("k")}, nil),
				txnCmd([]*kvpb.Compare{cmp("k", kvpb.Compare_LESS, 1)}, nil, []*kvpb.Op{opGet("k")}),
				txnCmd([]*kvpb.Compare{cmp("nope", kvpb.Compare_EQUAL, 0)}, []*kvpb.Op{opGet("nope")}, nil),
				txnCmd([]*kvpb.Compare{cmp("k", kvpb.Compare_GREATER, 1)}, nil, nil),
			},
			want: []*kvpb.CommandResult{
				putRes(true, 1),
				txnRes(true, &kvpb.OpResult{Version: 2}),
				txnRes(false, &kvpb.OpResult{Version: 3}),
				txnRes(true, &kvpb.OpResult{Version: 1, Found: true, Value: []byte("v")}),
				txnRes(false, &kvpb.OpResult{Version: 1, Found: true, Value: []byte("v")}),
				txnRes(true, &kvpb.OpResult{}),
				txnRes(false),
			},
			state: map[string]*kv{"k": {"v", 1}, "r": {"eq", 2}, "s": {"2", 3}},
		},
		{
			name: "txn ops see earlier ops",
			cmds: []*kvpb.Command{
				putCmd("a", "old"),
				txnCmd(nil, []*kvpb.Op{opGet("a"), opPut("a", "new"), opGet("a"), opDel("a"), opGet("a"), opDel("a"), opPut("b", "x")}, nil),
			},
			want: []*kvpb.CommandResult{
				putRes(true, 1),
				txnRes(true,
					&kvpb.OpResult{Version: 1, Found: true, Value: []byte("old")},
					&kvpb.OpResult{Version: 2},
					&kvpb.OpResult{Version: 2, Found: true, Value: []byte("new")},
					&kvpb.OpResult{Version: 2, Found: true},
					&kvpb.OpResult{},
					&kvpb.OpResult{Version: 2, Found: false},
					&kvpb.OpResult{Version: 2},
				),
			},
			state: map[string]*kv{"a": nil, "b": {"x", 2}},
		},
		{
			name: "add",
			cmds: []*kvpb.Command{
				txnCmd(nil, []*kvpb.Op{opAdd("c", 5)}, nil),
				txnCmd(nil, []*kvpb.Op{opAdd("c", 7), opAdd("c", -20), opGet("c")}, nil),
				putCmd("d", "-9223372036854775807"),
				txnCmd(nil, []*kvpb.Op{opAdd("d", -1)}, nil),
			},
			want: []*kvpb.CommandResult{
				txnRes(true, &kvpb.OpResult{Version: 1, Counter: 5}),
				txnRes(true, &kvpb.OpResult{Version: 2, Counter: 12}, &kvpb.OpResult{Version: 2, Counter: -8},
					&kvpb.OpResult{Version: 2, Found: true, Value: []byte("-8")}),
				putRes(true, 3),
				txnRes(true, &kvpb.OpResult{Version: 4, Counter: math.MinInt64}),
			},
			state: map[string]*kv{"c": {"-8", 2}, "d": {"-9223372036854775808", 4}},
		},
		{
			name: "add on non-integer rejects whole txn",
			cmds: []*kvpb.Command{
				putCmd("n", "12abc"),
				txnCmd(nil, []*kvpb.Op{opPut("other", "x"), opAdd("c", 1), opAdd("n", 1)}, nil),
				putCmd("sp", " 1"),
				txnCmd(nil, []*kvpb.Op{opAdd("sp", 1)}, nil),
			},
			want: []*kvpb.CommandResult{
				putRes(true, 1),
				errRes(`success op 2: add to key "n": its value "12abc" is not a decimal int64`),
				putRes(true, 3),
				errRes(`key "sp"`),
			},
			state: map[string]*kv{"n": {"12abc", 1}, "other": nil, "c": nil, "sp": {" 1", 3}},
		},
		{
			name: "add overflow rejects whole txn",
			cmds: []*kvpb.Command{
				txnCmd(nil, []*kvpb.Op{opAdd("c", math.MaxInt64)}, nil),
				txnCmd(nil, []*kvpb.Op{opDel("x"), opAdd("c", 1)}, nil),
				txnCmd(nil, []*kvpb.Op{opAdd("m", math.MinInt64), opAdd("m", -1)}, nil),
			},
			want: []*kvpb.CommandResult{
				txnRes(true, &kvpb.OpResult{Version: 1, Counter: math.MaxInt64}),
				errRes("overflows int64"),
				errRes(`add -1 to key "m" (value -9223372036854775808) overflows int64`),
			},
			state: map[string]*kv{"c": {"9223372036854775807", 1}, "m": nil},
		},
		{
			name:  "command without op",
			cmds:  []*kvpb.Command{{Write: wh()}},
			want:  []*kvpb.CommandResult{errRes("command has no operation")},
			state: map[string]*kv{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, s := newTestFSM(t, fsmOptions{})
			for i, c := range tt.cmds {
				idx := uint64(i + 1)
				got := f.Apply(commandLog(t, idx, c))
				checkResult(t, fmt.Sprintf("command %d", idx), got, tt.want[i])
			}
			for k, want := range tt.state {
				v, ok := getValue(t, f, k)
				switch {
				case want == nil && ok:
					t.Errorf("key %q = %q@%d, want absent", k, v.Data, v.Version)
				case want != nil && (!ok || string(v.Data) != want.value || v.Version != want.version):
					t.Errorf("key %q = %q@%d (found %v), want %q@%d", k, v.Data, v.Version, ok, want.value, want.version)
				}
			}
			n := uint64(len(tt.cmds))
			if got := f.AppliedIndex(); got != n {
				t.Errorf("AppliedIndex() = %d, want %d", got, n)
			}
			if applied, _, _ := checksum(t, s.store); applied != n {
				t.Errorf("stored applied index = %d, want %d", applied, n)
			}
		})
	}
}

func checkResult(t testing.TB, what string, got interface{}, want *kvpb.CommandResult) {
	t.Helper()
	res, ok := got.(*kvpb.CommandResult)
	if !ok {
		t.Errorf("%s: result %T %v, want *kvpb.CommandResult", what, got, got)
		return
	}
	if wantErr, isErr := want.GetResult().(*kvpb.CommandResult_Error); isErr {
		if !bytes.Contains([]byte(res.GetError()), []byte(wantErr.Error)) {
			t.Errorf("%s: result %v, want error containing %q", what, res, wantErr.Error)
		}
		return
	}
	if !proto.Equal(res, want) {
		t.Errorf("%s:\n got %v\nwant %v", what, res, want)
	}
}

func TestShardFSM_ApplyBatch_NonCommandEntries(t *testing.T) {
	f, _ := newTestFSM(t, fsmOptions{})
	var batches []int
	f.opts.OnApplyBatch = func(n int) { batches = append(batches, n) }
	res := f.ApplyBatch([]*raft.Log{
		{Index: 1, Type: raft.LogConfiguration, Data: []byte("whatever")},
		commandLog(t, 2, putCmd("a", "x")),
		{Index: 3, Type: raft.LogConfiguration},
		{Index: 4, Type: raft.LogCommand, Data: []byte{0x7f, 1, 2}},
	})
	if len(res) != 4 || res[0] != nil || res[2] != nil {
		t.Fatalf("results = %v, want nil for configuration entries", res)
	}
	checkResult(t, "put", res[1], putRes(true, 2))
	if err, ok := res[3].(error); !ok || !errors.Is(err, errCorruptEntry) {
		t.Errorf("garbage entry result = %v, want error wrapping errCorruptEntry", res[3])
	}
	if got := f.AppliedIndex(); got != 4 {
		t.Errorf("AppliedIndex() = %d, want 4", got)
	}
	if len(batches) != 1 || batches[0] != 4 {
		t.Errorf("OnApplyBatch calls = %v, want [4]", batches)
	}
}

// --- determinism and replay ------------------------------------------------

// randomCommands returns n commands over a small key space, with sessions
// that retry, go backwards and time that moves on (sometimes backwards).
func randomCommands(r *rand.Rand, n int) []*kvpb.Command {
	keys := []string{"a", "b", "c", "{t}x", "{t}y", "n"}
	key := func() string { return keys[r.IntN(len(keys))] }
	seqs := map[uint64]uint64{}
	now := int64(1_700_000_000_000_000_000)
	cmds := make([]*kvpb.Command, 0, n)
	for range n {
		session := uint64(r.IntN(8) + 1)
		seq := seqs[session] + 1
		switch r.IntN(10) {
		case 0: // retry
			seq = max(seqs[session], 1)
		case 1: // stale
			seq = seqs[session] / 2
		}
		seqs[session] = max(seqs[session], seq)
		now += int64(r.IntN(int(time.Minute)))
		if r.IntN(20) == 0 {
			now -= int64(time.Minute)
		}
		var c *kvpb.Command
		switch r.IntN(6) {
		case 0:
			c = putCmd(key(), fmt.Sprint(r.IntN(100)))
		case 1:
			c = casCmd(key(), "cas", uint64(r.IntN(int(1+len(cmds)))))
		case 2:
			c = delCmd(key())
		case 3:
			c = delCmd(key(), uint64(r.IntN(1+len(cmds))))
		default:
			ops := func() []*kvpb.Op {
				var ops []*kvpb.Op
				for range r.IntN(4) {
					switch r.IntN(4) {
					case 0:
						ops = append(ops, opPut(key(), fmt.Sprint(r.IntN(50)-25)))
					case 1:
						ops = append(ops, opDel(key()))
					case 2:
						ops = append(ops, opAdd(key(), r.Int64N(100)-50))
					case 3:
						ops = append(ops, opGet(key()))
					}
				}
				return ops
			}
			c = txnCmd([]*kvpb.Compare{cmp(key(), kvpb.Compare_Op(r.IntN(4)), uint64(r.IntN(1+len(cmds))))}, ops(), ops())
		}
		c.Write = &kvpb.WriteHeader{Session: session, Seq: seq}
		c.NowUnixNano = now
		cmds = append(cmds, c)
	}
	return cmds
}

func logsOf(t testing.TB, cmds []*kvpb.Command) []*raft.Log {
	logs := make([]*raft.Log, len(cmds))
	for i, c := range cmds {
		logs[i] = commandLog(t, uint64(i+1), c)
		if i%37 == 36 {
			logs[i] = &raft.Log{Index: uint64(i + 1), Type: raft.LogConfiguration}
		}
	}
	return logs
}

// applyInBatches applies logs in random-sized batches and returns the
// results in order.
func applyInBatches(f *shardFSM, logs []*raft.Log, r *rand.Rand) []interface{} {
	var out []interface{}
	for len(logs) > 0 {
		n := min(len(logs), 1+r.IntN(16))
		out = append(out, f.ApplyBatch(logs[:n])...)
		logs = logs[n:]
	}
	return out
}

func sameResult(a, b interface{}) bool {
	switch a := a.(type) {
	case *kvpb.CommandResult:
		b, ok := b.(*kvpb.CommandResult)
		return ok && proto.Equal(a, b)
	case error:
		b, ok := b.(error)
		return ok && a.Error() == b.Error()
	case nil:
		return b == nil
	}
	return false
}

func TestShardFSM_Determinism(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 1))
	logs := logsOf(t, randomCommands(r, 600))

	opts := fsmOptions{SessionTTL: 5 * time.Minute}
	f1, s1 := newTestFSM(t, opts)
	f2, s2 := newTestFSM(t, opts)
	res1 := applyInBatches(f1, logs, rand.New(rand.NewPCG(seed, 2)))
	res2 := applyInBatches(f2, logs, rand.New(rand.NewPCG(seed, 3)))
	for i := range res1 {
		if !sameResult(res1[i], res2[i]) {
			t.Errorf("entry %d: results differ: %v vs %v (seed %d)", i+1, res1[i], res2[i], seed)
		}
	}
	a1, sum1, k1 := checksum(t, s1.store)
	a2, sum2, k2 := checksum(t, s2.store)
	if a1 != a2 || sum1 != sum2 || k1 != k2 {
		t.Errorf("checksums differ (seed %d): (%d, %x, %d) vs (%d, %x, %d)", seed, a1, sum1, k1, a2, sum2, k2)
	}
	if a1 != uint64(len(logs)) {
		t.Errorf("applied = %d, want %d", a1, len(logs))
	}
}

func TestShardFSM_Replay(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 1))
	logs := logsOf(t, randomCommands(r, 300))

	path := filepath.Join(t.TempDir(), "state.db")
	s := openTestShard(t, path)
	f := newFSMOn(t, s, fsmOptions{})
	applyInBatches(f, logs, r)
	a0, sum0, k0 := checksum(t, s.store)

	check := func(what string, f *shardFSM, s *testShard) {
		t.Helper()
		// Replay everything, and a tail overlapping new entries' boundary.
		res := applyInBatches(f, logs, r)
		for i, x := range res {
			if x != nil {
				t.Fatalf("%s: replayed entry %d returned %v, want nil (seed %d)", what, i+1, x, seed)
			}
		}
		if a, sum, k := checksum(t, s.store); a != a0 || sum != sum0 || k != k0 {
			t.Errorf("%s: checksum (%d, %x, %d), want (%d, %x, %d) (seed %d)", what, a, sum, k, a0, sum0, k0, seed)
		}
		if got := f.AppliedIndex(); got != a0 {
			t.Errorf("%s: AppliedIndex() = %d, want %d", what, got, a0)
		}
	}
	check("same fsm", f, s)

	f2 := newFSMOn(t, s, fsmOptions{})
	if got := f2.AppliedIndex(); got != uint64(len(logs)) {
		t.Fatalf("new fsm AppliedIndex() = %d, want %d", got, len(logs))
	}
	check("new fsm, same store", f2, s)

	if err := s.db.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	s3 := openTestShard(t, path)
	check("reopened store", newFSMOn(t, s3, fsmOptions{}), s3)

	// A batch straddling the applied index applies only the new part.
	f4 := newFSMOn(t, s3, fsmOptions{})
	n := uint64(len(logs))
	res := f4.ApplyBatch([]*raft.Log{logs[n-1], commandLog(t, n+1, putCmd("new", "v"))})
	if res[0] != nil {
		t.Errorf("straddling batch: old entry result %v, want nil", res[0])
	}
	checkResult(t, "straddling batch: new entry", res[1], putRes(true, n+1))
}

// --- snapshots -------------------------------------------------------------

type memSink struct {
	bytes.Buffer
	closed, canceled bool
}

func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Close() error  { s.closed = true; return nil }
func (s *memSink) Cancel() error { s.canceled = true; return nil }

func TestShardFSM_SnapshotRestore(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 1))
	logs := logsOf(t, randomCommands(r, 200))

	src, ss := newTestFSM(t, fsmOptions{})
	applyInBatches(src, logs[:150], r)
	snap, err := src.Snapshot()
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	a0, sum0, k0 := checksum(t, ss.store)
	// Applies after Snapshot must not leak into it.
	applyInBatches(src, logs[150:], r)

	var sink memSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatalf("Persist: %v", err)
	}
	snap.Release()
	snap.Release() // idempotent
	if !sink.closed || sink.canceled {
		t.Fatalf("sink closed=%v canceled=%v, want closed", sink.closed, sink.canceled)
	}

	dst, ds := newTestFSM(t, fsmOptions{})
	dst.ApplyBatch([]*raft.Log{commandLog(t, 1, putCmd("stale", "x"))}) // discarded by restore

	waitErr := make(chan error, 1)
	go func() { waitErr <- dst.WaitApplied(context.Background(), 150) }()

	if err := dst.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if err := <-waitErr; err != nil {
		t.Errorf("WaitApplied across restore: %v", err)
	}
	if got := dst.AppliedIndex(); got != 150 {
		t.Errorf("AppliedIndex() after restore = %d, want 150", got)
	}
	if a, sum, k := checksum(t, ds.store); a != a0 || sum != sum0 || k != k0 {
		t.Errorf("restored checksum (%d, %x, %d), want (%d, %x, %d)", a, sum, k, a0, sum0, k0)
	}
	// Applying the rest on the restored replica converges with the source,
	// sessions included.
	res := applyInBatches(dst, logs, r)
	for i, x := range res[:150] {
		if x != nil {
			t.Fatalf("entry %d at or below the snapshot returned %v, want nil", i+1, x)
		}
	}
	a1, sum1, k1 := checksum(t, ss.store)
	if a, sum, k := checksum(t, ds.store); a != a1 || sum != sum1 || k != k1 {
		t.Errorf("after catching up: checksum (%d, %x, %d), want (%d, %x, %d) (seed %d)", a, sum, k, a1, sum1, k1, seed)
	}
}

func TestShardFSM_RestoreBadStream(t *testing.T) {
	f, s := newTestFSM(t, fsmOptions{})
	f.Apply(commandLog(t, 1, putCmd("a", "1")))
	a0, sum0, _ := checksum(t, s.store)
	if err := f.Restore(io.NopCloser(bytes.NewReader([]byte("garbage")))); err == nil {
		t.Fatal("Restore(garbage) succeeded, want error")
	}
	if a, sum, _ := checksum(t, s.store); a != a0 || sum != sum0 || f.AppliedIndex() != 1 {
		t.Errorf("state changed by failed restore")
	}
}

// --- WaitApplied -----------------------------------------------------------

func TestShardFSM_WaitApplied(t *testing.T) {
	f, _ := newTestFSM(t, fsmOptions{})
	ctx := context.Background()

	if err := f.WaitApplied(ctx, 0); err != nil {
		t.Fatalf("WaitApplied(0) = %v", err)
	}

	const waiters = 50
	var wg sync.WaitGroup
	errs := make(chan error, waiters)
	for i := range waiters {
		wg.Go(func() {
			if err := f.WaitApplied(ctx, uint64(i%5+1)); err != nil {
				errs <- err
			}
		})
	}
	// A canceled waiter for an index never reached returns and leaves no
	// trace.
	cctx, cancel := context.WithCancel(ctx)
	canceled := make(chan error, 1)
	go func() { canceled <- f.WaitApplied(cctx, 1000) }()
	cancel()
	if err := <-canceled; !errors.Is(err, context.Canceled) {
		t.Errorf("canceled WaitApplied = %v, want context.Canceled", err)
	}

	for i := uint64(1); i <= 5; i++ {
		f.Apply(commandLog(t, i, putCmd("k", "v")))
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("WaitApplied: %v", err)
	}

	dctx, dcancel := context.WithTimeout(ctx, time.Millisecond)
	defer dcancel()
	if err := f.WaitApplied(dctx, 6); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WaitApplied past deadline = %v, want DeadlineExceeded", err)
	}

	f.applied.mu.Lock()
	n := len(f.applied.waiters)
	f.applied.mu.Unlock()
	if n != 0 {
		t.Errorf("%d waiters left registered, want 0", n)
	}
}

func TestShardFSM_StorageFailureIsFatal(t *testing.T) {
	var fatal []error
	f, s := newTestFSM(t, fsmOptions{OnFatal: func(err error) { fatal = append(fatal, err) }})
	f.Apply(commandLog(t, 1, putCmd("a", "1")))

	waitErr := make(chan error, 1)
	go func() { waitErr <- f.WaitApplied(context.Background(), 10) }()

	if err := s.db.Close(); err != nil {
		t.Fatal(err)
	}
	res := f.ApplyBatch([]*raft.Log{commandLog(t, 2, putCmd("b", "1")), commandLog(t, 3, putCmd("c", "1"))})
	for i, r := range res {
		if _, ok := r.(error); !ok {
			t.Errorf("result %d = %v, want error", i, r)
		}
	}
	if len(fatal) != 1 {
		t.Fatalf("OnFatal called %d times, want 1", len(fatal))
	}
	if err := <-waitErr; err == nil {
		t.Error("WaitApplied returned nil after fatal store error")
	}
	// Later batches fail without touching the store or calling OnFatal again.
	if _, ok := f.Apply(commandLog(t, 4, putCmd("d", "1"))).(error); !ok {
		t.Error("Apply after fatal error did not return an error")
	}
	if len(fatal) != 1 {
		t.Errorf("OnFatal called %d times, want 1", len(fatal))
	}
	if got := f.AppliedIndex(); got != 1 {
		t.Errorf("AppliedIndex() = %d, want 1", got)
	}
}

// --- benchmarks ------------------------------------------------------------

func BenchmarkShardFSM_ApplyBatch64x256(b *testing.B) {
	f, _ := newTestFSM(b, fsmOptions{})
	value := bytes.Repeat([]byte("v"), 256)
	var index uint64
	logs := make([]*raft.Log, 64)
	b.ReportAllocs()
	b.SetBytes(64 * 256)
	for b.Loop() {
		for i := range logs {
			index++
			c := &kvpb.Command{
				Write:       &kvpb.WriteHeader{Session: uint64(i + 1), Seq: index},
				NowUnixNano: int64(index),
				Op:          &kvpb.Command_Put{Put: &kvpb.PutRequest{Key: fmt.Appendf(nil, "key-%d", index%4096), Value: value}},
			}
			logs[i] = commandLog(b, index, c)
		}
		for _, r := range f.ApplyBatch(logs) {
			if _, ok := r.(*kvpb.CommandResult); !ok {
				b.Fatalf("result %v", r)
			}
		}
	}
}

// TestShardFSM_RestoreForgetsTheConfigurationIndex: the configuration index
// (the prevIndex of the next membership change this replica makes as
// leader) is unknown after a snapshot restore, not the index of the last
// configuration entry applied before it: the snapshot carries raft's newer
// configuration, and a stale index made every change fail for good (a
// long chaos run's drain stalled on a learner its leader could never add).
func TestShardFSM_RestoreForgetsTheConfigurationIndex(t *testing.T) {
	src, _ := newTestFSM(t, fsmOptions{})
	src.ApplyBatch([]*raft.Log{commandLog(t, 1, putCmd("a", "1")), commandLog(t, 2, putCmd("b", "2"))})
	snap, err := src.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var sink memSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	snap.Release()

	dst, _ := newTestFSM(t, fsmOptions{})
	conf := &raft.Log{Index: 1, Term: 1, Type: raft.LogConfiguration,
		Data: raft.EncodeConfiguration(raft.Configuration{Servers: []raft.Server{{ID: "x", Address: "a", Suffrage: raft.Voter}}})}
	dst.ApplyBatch([]*raft.Log{conf})
	if got := dst.configIndex.Load(); got != 1 {
		t.Fatalf("configuration index %d after applying a configuration entry at 1; want 1", got)
	}
	if err := dst.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	if got := dst.configIndex.Load(); got != 0 {
		t.Errorf("configuration index %d after a restore; want 0 (unknown)", got)
	}
}
