package replication

import (
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	"github.com/ridgeline-kv/ridgeline/replication/kvpb"
	"github.com/ridgeline-kv/ridgeline/storage"
)

const t0 = int64(1_700_000_000_000_000_000)

// addCmd is a counter increment of session/seq at command time now.
func addCmd(session, seq uint64, now int64, key string) *kvpb.Command {
	c := txnCmd(nil, []*kvpb.Op{opAdd(key, 1)}, nil)
	c.Write = &kvpb.WriteHeader{Session: session, Seq: seq}
	c.NowUnixNano = now
	return c
}

// counter reads a counter written by addCmd.
func counter(t *testing.T, f *shardFSM, key string) string {
	t.Helper()
	v, _ := getValue(t, f, key)
	return string(v.Data)
}

func sessionRecordOf(t *testing.T, f *shardFSM, session uint64) (sessionRecord, bool) {
	t.Helper()
	var raw []byte
	if err := f.View(func(tx *storage.Tx) error {
		raw = append([]byte(nil), tx.SysGet(sessionKey(session))...)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(raw) == 0 {
		return sessionRecord{}, false
	}
	rec, err := decodeSessionRecord(raw)
	if err != nil {
		t.Fatalf("stored session record: %v", err)
	}
	return rec, true
}

func TestSession_ExactlyOnce(t *testing.T) {
	f, _ := newTestFSM(t, fsmOptions{})
	first := f.Apply(commandLog(t, 1, addCmd(7, 1, t0, "c")))
	// A retry in a later batch.
	again := f.Apply(commandLog(t, 2, addCmd(7, 1, t0+1, "c")))
	if !proto.Equal(first.(*kvpb.CommandResult), again.(*kvpb.CommandResult)) {
		t.Errorf("retry result %v, want first outcome %v", again, first)
	}
	if got := counter(t, f, "c"); got != "1" {
		t.Errorf("counter after retry = %q, want 1", got)
	}
	// A new write and its retry in the same batch.
	res := f.ApplyBatch([]*raft.Log{
		commandLog(t, 3, addCmd(7, 2, t0+2, "c")),
		commandLog(t, 4, addCmd(7, 2, t0+3, "c")),
	})
	if !proto.Equal(res[0].(*kvpb.CommandResult), res[1].(*kvpb.CommandResult)) {
		t.Errorf("same-batch retry result %v, want first outcome %v", res[1], res[0])
	}
	if got := res[0].(*kvpb.CommandResult).GetTxn().GetResults()[0].GetVersion(); got != 3 {
		t.Errorf("version = %d, want 3 (the first application's index)", got)
	}
	if got := counter(t, f, "c"); got != "2" {
		t.Errorf("counter = %q, want 2", got)
	}
	// Deterministic rejections are outcomes too and are remembered.
	f.Apply(commandLog(t, 5, &kvpb.Command{Write: &kvpb.WriteHeader{Session: 9, Seq: 1}, Op: &kvpb.Command_Put{Put: &kvpb.PutRequest{Key: []byte("s"), Value: []byte("x")}}}))
	rej := f.Apply(commandLog(t, 6, addCmd(7, 3, t0, "s")))
	f.Apply(commandLog(t, 7, &kvpb.Command{Write: &kvpb.WriteHeader{Session: 9, Seq: 2}, Op: &kvpb.Command_Put{Put: &kvpb.PutRequest{Key: []byte("s"), Value: []byte("5")}}}))
	rej2 := f.Apply(commandLog(t, 8, addCmd(7, 3, t0, "s")))
	if rej.(*kvpb.CommandResult).GetError() == "" || !proto.Equal(rej.(*kvpb.CommandResult), rej2.(*kvpb.CommandResult)) {
		t.Errorf("retried rejection = %v, want first outcome %v", rej2, rej)
	}
	if got := counter(t, f, "s"); got != "5" {
		t.Errorf("s = %q, want 5 (retry must not apply)", got)
	}
}

func TestSession_WriteHeaderInRequest(t *testing.T) {
	f, _ := newTestFSM(t, fsmOptions{})
	c := addCmd(0, 0, t0, "c")
	c.Write = nil
	c.GetTxn().Write = &kvpb.WriteHeader{Session: 3, Seq: 1}
	f.Apply(commandLog(t, 1, c))
	f.Apply(commandLog(t, 2, c))
	if got := counter(t, f, "c"); got != "1" {
		t.Errorf("counter = %q, want 1", got)
	}
}

func TestSession_WithoutSessionNotDeduplicated(t *testing.T) {
	f, _ := newTestFSM(t, fsmOptions{})
	f.Apply(commandLog(t, 1, addCmd(0, 0, t0, "c")))
	f.Apply(commandLog(t, 2, addCmd(0, 0, t0, "c")))
	if got := counter(t, f, "c"); got != "2" {
		t.Errorf("counter = %q, want 2", got)
	}
}

func TestSession_Superseded(t *testing.T) {
	f, _ := newTestFSM(t, fsmOptions{})
	f.Apply(commandLog(t, 1, addCmd(7, 1, t0, "c")))
	third := f.Apply(commandLog(t, 2, addCmd(7, 3, t0, "c")))
	res := f.Apply(commandLog(t, 3, addCmd(7, 2, t0, "c")))
	err, ok := res.(error)
	if !ok || !errors.Is(err, ErrSessionSuperseded) {
		t.Fatalf("older seq result = %v, want error wrapping ErrSessionSuperseded", res)
	}
	if got := counter(t, f, "c"); got != "2" {
		t.Errorf("counter = %q, want 2", got)
	}
	// The rejection was not remembered: seq 3 still answers its outcome.
	again := f.Apply(commandLog(t, 4, addCmd(7, 3, t0, "c")))
	if !proto.Equal(third.(*kvpb.CommandResult), again.(*kvpb.CommandResult)) {
		t.Errorf("retry of seq 3 = %v, want %v", again, third)
	}
	if got := f.AppliedIndex(); got != 4 {
		t.Errorf("AppliedIndex() = %d, want 4", got)
	}
}

func TestSession_ExpiryByCommandTime(t *testing.T) {
	ttl := time.Minute
	f, _ := newTestFSM(t, fsmOptions{SessionTTL: ttl})
	idx := uint64(0)
	apply := func(c *kvpb.Command) interface{} {
		idx++
		return f.Apply(commandLog(t, idx, c))
	}
	apply(addCmd(1, 1, t0, "a"))
	apply(addCmd(2, 1, t0, "b"))
	// Session 1 stays alive by retrying within the TTL; a retry refreshes it.
	apply(addCmd(1, 1, t0+int64(ttl)-1, "a"))
	apply(addCmd(1, 1, t0+2*int64(ttl)-2, "a"))
	if got := counter(t, f, "a"); got != "1" {
		t.Fatalf("a = %q after retries within the TTL, want 1", got)
	}
	// Session 2 has been idle for more than the TTL (command time): swept.
	if _, ok := sessionRecordOf(t, f, 2); ok {
		t.Errorf("session 2 still stored after %v idle with TTL %v", 2*ttl, ttl)
	}
	if _, ok := sessionRecordOf(t, f, 1); !ok {
		t.Errorf("session 1 swept although active")
	}
	// Its retry is now a new write.
	apply(addCmd(2, 1, t0+2*int64(ttl), "b"))
	if got := counter(t, f, "b"); got != "2" {
		t.Errorf("b = %q, want 2 (expired session forgets its outcome)", got)
	}
	// Expiry does not wait for a sweep: a sweep runs just before session 1
	// expires, and the next command finds it expired at lookup although no
	// sweep has removed it.
	apply(addCmd(4, 1, t0+3*int64(ttl)-3, "d"))
	if _, ok := sessionRecordOf(t, f, 1); !ok {
		t.Fatalf("session 1 swept before it expired")
	}
	apply(addCmd(1, 1, t0+3*int64(ttl), "a"))
	if got := counter(t, f, "a"); got != "2" {
		t.Errorf("a = %q, want 2", got)
	}
}

func TestSession_ClockNeverRunsBackwards(t *testing.T) {
	ttl := time.Minute
	f, _ := newTestFSM(t, fsmOptions{SessionTTL: ttl})
	f.Apply(commandLog(t, 1, addCmd(1, 1, t0, "a")))
	f.Apply(commandLog(t, 2, addCmd(2, 1, t0+10*int64(ttl), "b")))
	// A leader with a slow clock stamps an old time; session 1 is still
	// expired, and session 3 is recorded at the FSM clock, not the stamp.
	f.Apply(commandLog(t, 3, addCmd(1, 1, t0, "a")))
	f.Apply(commandLog(t, 4, addCmd(3, 1, 0, "c")))
	if got := counter(t, f, "a"); got != "2" {
		t.Errorf("a = %q, want 2", got)
	}
	rec, ok := sessionRecordOf(t, f, 3)
	if !ok || rec.lastSeenNano != t0+10*int64(ttl) {
		t.Errorf("session 3 record %+v (found %v), want lastSeen %d", rec, ok, t0+10*int64(ttl))
	}
}

func TestSessionRecord_Codec(t *testing.T) {
	in := sessionRecord{lastSeq: 1<<63 + 5, lastSeenNano: -42, result: []byte{1, 2, 3}}
	out, err := decodeSessionRecord(in.encode())
	if err != nil || out.lastSeq != in.lastSeq || out.lastSeenNano != in.lastSeenNano || string(out.result) != string(in.result) {
		t.Errorf("decode(encode(%+v)) = %+v, %v", in, out, err)
	}
	for _, b := range [][]byte{nil, {}, {9}, {sessionRecordV1}, {sessionRecordV1, 0x80}, {sessionRecordV1, 1, 0x80}} {
		if _, err := decodeSessionRecord(b); err == nil {
			t.Errorf("decodeSessionRecord(%x) succeeded, want error", b)
		}
	}
}
