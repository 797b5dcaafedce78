package replication

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/ridgeline-kv/ridgeline/replication/kvpb"
	"github.com/ridgeline-kv/ridgeline/storage"
)

// Exactly-once writes: the session table.
//
// Contract. Every write carries a WriteHeader (session, seq). A session is
// used by one request at a time; its seq grows with every new request, and a
// retry of a request reuses its (session, seq). For each session the shard FSM
// remembers, in the state store's sys space and therefore in snapshots, the
// last seq it applied, the command time it last saw the session, and the
// encoded CommandResult of that seq. When a command arrives:
//
//   - seq == last seq: the write is not applied again; the remembered result is
//     returned, equal (proto.Equal) to the first outcome.
//   - seq <  last seq: nothing is applied; the result is an error wrapping
//     ErrSessionSuperseded, and it is not remembered.
//   - seq >  last seq, or the session is unknown or expired: the write is
//     applied and its result remembered under seq.
//
// Deterministic rejections (CommandResult.error, e.g. add on a non-integer)
// are outcomes and are remembered like any other result.
//
// Time. The FSM never reads a clock. Its notion of now is the largest
// Command.now_unix_nano (stamped by the proposing leader) it has applied,
// persisted in the sys space, so it never runs backwards when leaders with
// skewed clocks alternate and is the same on every replica. A command with
// now_unix_nano 0 does not advance it.
//
// Expiry. A session idle for more than the TTL (command time since the last
// command of the session) is expired: it is treated as unknown on lookup, so
// expiry does not depend on when records are swept. Records are swept when
// now has advanced by at least TTL/4 since the last sweep; the sweep deletes
// every expired record. A client must therefore not retry a write later than
// one TTL after it first sent it; the default TTL (10 min) is far beyond any
// client retry window.
//
// A command without a session (session 0, which validation rejects before
// raft) is applied without deduplication.

// sys-space keys of the FSM.
var (
	sysSessionPrefix = []byte("sess/")     // + 8-byte big-endian session ID
	sysClockKey      = []byte("fsm/clock") // 8-byte big-endian command time
	sysLastSweepKey  = []byte("fsm/sweep") // 8-byte big-endian command time
)

const sessionRecordV1 = 1

// sessionRecord is one session's entry in the session table.
type sessionRecord struct {
	lastSeq      uint64
	lastSeenNano int64
	result       []byte // marshalled kvpb.CommandResult of lastSeq
}

func sessionKey(session uint64) []byte {
	k := make([]byte, len(sysSessionPrefix)+8)
	copy(k, sysSessionPrefix)
	binary.BigEndian.PutUint64(k[len(sysSessionPrefix):], session)
	return k
}

// encode: version byte, uvarint lastSeq, varint lastSeenNano, result.
func (r *sessionRecord) encode() []byte {
	b := make([]byte, 0, 1+2*binary.MaxVarintLen64+len(r.result))
	b = append(b, sessionRecordV1)
	b = binary.AppendUvarint(b, r.lastSeq)
	b = binary.AppendVarint(b, r.lastSeenNano)
	return append(b, r.result...)
}

func decodeSessionRecord(b []byte) (sessionRecord, error) {
	var r sessionRecord
	if len(b) == 0 || b[0] != sessionRecordV1 {
		return r, errors.New("replication: session record has an unknown encoding")
	}
	b = b[1:]
	seq, n := binary.Uvarint(b)
	if n <= 0 {
		return r, errors.New("replication: session record: bad seq")
	}
	b = b[n:]
	seen, n := binary.Varint(b)
	if n <= 0 {
		return r, errors.New("replication: session record: bad time")
	}
	r.lastSeq, r.lastSeenNano = seq, seen
	r.result = append([]byte(nil), b[n:]...)
	return r, nil
}

// sessionTable is the session table as seen by one storage transaction.
// It is created per ApplyBatch transaction and not safe for concurrent use.
type sessionTable struct {
	tx        *storage.Tx
	ttl       int64 // nanoseconds
	now       int64 // FSM clock: max command time seen
	lastSweep int64
	dirtyTime bool
}

func loadSessionTable(tx *storage.Tx, ttl time.Duration) *sessionTable {
	return &sessionTable{
		tx:        tx,
		ttl:       int64(ttl),
		now:       getInt64(tx.SysGet(sysClockKey)),
		lastSweep: getInt64(tx.SysGet(sysLastSweepKey)),
	}
}

// advance moves the FSM clock to the command time t (never backwards) and
// sweeps expired sessions when a quarter TTL has passed since the last sweep.
func (s *sessionTable) advance(t int64) error {
	if t > s.now {
		s.now = t
		s.dirtyTime = true
	}
	if s.now-s.lastSweep < s.ttl/4 {
		return nil
	}
	var expired [][]byte
	err := s.tx.SysForEach(func(k, v []byte) error {
		if len(k) != len(sysSessionPrefix)+8 || string(k[:len(sysSessionPrefix)]) != string(sysSessionPrefix) {
			return nil
		}
		rec, err := decodeSessionRecord(v)
		if err != nil || s.expired(rec) {
			expired = append(expired, append([]byte(nil), k...))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("replication: sweep sessions: %w", err)
	}
	for _, k := range expired {
		if err := s.tx.SysDelete(k); err != nil {
			return fmt.Errorf("replication: sweep sessions: %w", err)
		}
	}
	s.lastSweep = s.now
	s.dirtyTime = true
	return nil
}

func (s *sessionTable) expired(r sessionRecord) bool {
	return s.now-r.lastSeenNano > s.ttl
}

// lookup returns the live record of session, if any. A record that cannot
// be decoded is treated as absent (it is rewritten on the next write).
func (s *sessionTable) lookup(session uint64) (sessionRecord, bool) {
	v := s.tx.SysGet(sessionKey(session))
	if v == nil {
		return sessionRecord{}, false
	}
	rec, err := decodeSessionRecord(v)
	if err != nil || s.expired(rec) {
		return sessionRecord{}, false
	}
	return rec, true
}

// record remembers res as the outcome of (session, seq).
func (s *sessionTable) record(session, seq uint64, res *kvpb.CommandResult) error {
	b, err := marshalOpts.Marshal(res)
	if err != nil {
		return fmt.Errorf("replication: encode session result: %w", err)
	}
	rec := sessionRecord{lastSeq: seq, lastSeenNano: s.now, result: b}
	if err := s.tx.SysPut(sessionKey(session), rec.encode()); err != nil {
		return fmt.Errorf("replication: store session %d: %w", session, err)
	}
	return nil
}

// touch refreshes the idle time of a session whose retry was answered from
// the table.
func (s *sessionTable) touch(session uint64, rec sessionRecord) error {
	if rec.lastSeenNano == s.now {
		return nil
	}
	rec.lastSeenNano = s.now
	if err := s.tx.SysPut(sessionKey(session), rec.encode()); err != nil {
		return fmt.Errorf("replication: store session %d: %w", session, err)
	}
	return nil
}

// flush persists the FSM clock and sweep time if they changed.
func (s *sessionTable) flush() error {
	if !s.dirtyTime {
		return nil
	}
	if err := s.tx.SysPut(sysClockKey, putInt64(s.now)); err != nil {
		return fmt.Errorf("replication: store fsm clock: %w", err)
	}
	if err := s.tx.SysPut(sysLastSweepKey, putInt64(s.lastSweep)); err != nil {
		return fmt.Errorf("replication: store fsm clock: %w", err)
	}
	s.dirtyTime = false
	return nil
}

// cachedResult decodes a remembered result.
func (r sessionRecord) cachedResult() (*kvpb.CommandResult, error) {
	res := new(kvpb.CommandResult)
	if err := proto.Unmarshal(r.result, res); err != nil {
		return nil, fmt.Errorf("replication: decode session result: %w", err)
	}
	return res, nil
}

func getInt64(b []byte) int64 {
	if len(b) != 8 {
		return 0
	}
	return int64(binary.BigEndian.Uint64(b))
}

func putInt64(v int64) []byte {
	return binary.BigEndian.AppendUint64(nil, uint64(v))
}
