package replication

import (
	"bytes"
	"fmt"

	"github.com/ridgeline-kv/ridgeline/replication/kvpb"
	"github.com/ridgeline-kv/ridgeline/ring"
)

// Request validation. It runs on the node that receives a request, before
// anything is proposed to raft, so bad input never reaches a log. Every error
// wraps ErrInvalidArgument and says what was wrong and what to do. The
// functions are pure and safe for concurrent use.

// validateGet checks a Get request.
func validateGet(req *kvpb.GetRequest) error {
	if req == nil {
		return fmt.Errorf("%w: get request is nil", ErrInvalidArgument)
	}
	return checkKey("key", req.GetKey())
}

// validatePut checks a Put request, including its write header.
func validatePut(req *kvpb.PutRequest) error {
	if req == nil {
		return fmt.Errorf("%w: put request is nil", ErrInvalidArgument)
	}
	if err := checkWriteHeader(req.GetWrite()); err != nil {
		return err
	}
	if err := checkKey("key", req.GetKey()); err != nil {
		return err
	}
	return checkValue("value", req.GetValue())
}

// validateDelete checks a Delete request, including its write header.
func validateDelete(req *kvpb.DeleteRequest) error {
	if req == nil {
		return fmt.Errorf("%w: delete request is nil", ErrInvalidArgument)
	}
	if err := checkWriteHeader(req.GetWrite()); err != nil {
		return err
	}
	return checkKey("key", req.GetKey())
}

// validateTxn checks a Txn request against a cluster of shards shards and
// returns the one shard that holds all of its keys.
func validateTxn(req *kvpb.TxnRequest, shards uint32) (shard uint32, err error) {
	if req == nil {
		return 0, fmt.Errorf("%w: txn request is nil", ErrInvalidArgument)
	}
	if shards == 0 {
		return 0, fmt.Errorf("%w: cluster has 0 shards: the node is not initialised yet; retry later", ErrInvalidArgument)
	}
	if err := checkWriteHeader(req.GetWrite()); err != nil {
		return 0, err
	}
	nc, ns, nf := len(req.GetCompares()), len(req.GetSuccess()), len(req.GetFailure())
	if nc+ns+nf == 0 {
		return 0, fmt.Errorf("%w: txn has no compares and no ops: add at least one op", ErrInvalidArgument)
	}
	if nc > MaxTxnOps {
		return 0, fmt.Errorf("%w: txn has %d compares; at most %d are allowed: split the txn", ErrInvalidArgument, nc, MaxTxnOps)
	}
	if ns+nf > MaxTxnOps {
		return 0, fmt.Errorf("%w: txn has %d ops (%d success + %d failure); at most %d are allowed: split the txn",
			ErrInvalidArgument, ns+nf, ns, nf, MaxTxnOps)
	}

	sc := shardCheck{shards: shards}
	for i, c := range req.GetCompares() {
		if c == nil {
			return 0, fmt.Errorf("%w: compare %d is empty: set its key, op and version", ErrInvalidArgument, i)
		}
		if err := checkKey(fmt.Sprintf("compare %d key", i), c.GetKey()); err != nil {
			return 0, err
		}
		if _, ok := kvpb.Compare_Op_name[int32(c.GetOp())]; !ok {
			return 0, fmt.Errorf("%w: compare %d has unknown op %d: use EQUAL, NOT_EQUAL, LESS or GREATER",
				ErrInvalidArgument, i, int32(c.GetOp()))
		}
		if err := sc.add(c.GetKey()); err != nil {
			return 0, err
		}
	}
	valueBytes := 0
	for _, branch := range []struct {
		name string
		ops  []*kvpb.Op
	}{{"success", req.GetSuccess()}, {"failure", req.GetFailure()}} {
		for i, op := range branch.ops {
			where := fmt.Sprintf("%s op %d", branch.name, i)
			key, err := checkOp(where, op)
			if err != nil {
				return 0, err
			}
			if err := sc.add(key); err != nil {
				return 0, err
			}
			valueBytes += len(op.GetPut().GetValue())
		}
	}
	if valueBytes > MaxRequestBytes {
		return 0, fmt.Errorf("%w: txn puts %d bytes of values; a request is at most %d bytes: split the txn",
			ErrInvalidArgument, valueBytes, MaxRequestBytes)
	}
	return sc.shard, nil
}

// validateScan checks a Scan request against a cluster of shards shards.
func validateScan(req *kvpb.ScanRequest, shards uint32) error {
	if req == nil {
		return fmt.Errorf("%w: scan request is nil", ErrInvalidArgument)
	}
	if req.GetShard() >= shards {
		return fmt.Errorf("%w: scan of shard %d, but the cluster has %d shards (0 to %d): refresh the cluster map",
			ErrInvalidArgument, req.GetShard(), shards, int64(shards)-1)
	}
	if req.GetLimit() > MaxScanKeys {
		return fmt.Errorf("%w: scan limit is %d; at most %d keys per page: lower the limit (0 = server maximum) and page with next_key",
			ErrInvalidArgument, req.GetLimit(), MaxScanKeys)
	}
	if n := len(req.GetPrefix()); n > MaxKeySize {
		return fmt.Errorf("%w: scan prefix is %d bytes; at most %s: shorten the prefix", ErrInvalidArgument, n, sizeStr(MaxKeySize))
	}
	// An exclusive end just past a longest key is one byte longer than a key.
	for _, b := range []struct {
		name string
		v    []byte
	}{{"start", req.GetStart()}, {"end", req.GetEnd()}} {
		if n := len(b.v); n > MaxKeySize+1 {
			return fmt.Errorf("%w: scan %s is %d bytes; at most %d: bounds are keys, which are at most %s",
				ErrInvalidArgument, b.name, n, MaxKeySize+1, sizeStr(MaxKeySize))
		}
	}
	if len(req.GetStart()) > 0 && len(req.GetEnd()) > 0 && bytes.Compare(req.GetStart(), req.GetEnd()) >= 0 {
		return fmt.Errorf("%w: scan start %s is not before end %s: the range [start, end) is empty; swap them or leave end empty",
			ErrInvalidArgument, quoteKey(req.GetStart()), quoteKey(req.GetEnd()))
	}
	return nil
}

// checkOp validates one txn op and returns its key.
func checkOp(where string, op *kvpb.Op) ([]byte, error) {
	var key []byte
	switch o := op.GetOp().(type) {
	case *kvpb.Op_Put_:
		key = o.Put.GetKey()
		if err := checkValue(where+" value", o.Put.GetValue()); err != nil {
			return nil, err
		}
	case *kvpb.Op_Delete_:
		key = o.Delete.GetKey()
	case *kvpb.Op_Add_:
		key = o.Add.GetKey()
	case *kvpb.Op_Get_:
		key = o.Get.GetKey()
	default:
		return nil, fmt.Errorf("%w: %s has no kind: set exactly one of put, delete, add or get", ErrInvalidArgument, where)
	}
	if err := checkKey(where+" key", key); err != nil {
		return nil, err
	}
	return key, nil
}

// shardCheck verifies that all keys of a txn map to one shard.
type shardCheck struct {
	shards  uint32
	first   []byte
	shard   uint32
	haveAny bool
}

func (c *shardCheck) add(key []byte) error {
	s := ring.ShardForKey(key, c.shards)
	if !c.haveAny {
		c.first, c.shard, c.haveAny = key, s, true
		return nil
	}
	if s != c.shard {
		return fmt.Errorf("%w: txn keys %s (shard %d) and %s (shard %d) are in different shards; a txn must stay in one shard: "+
			"give its keys a shared hash tag, e.g. {user:42}/a and {user:42}/b",
			ErrInvalidArgument, quoteKey(c.first), c.shard, quoteKey(key), s)
	}
	return nil
}

func checkWriteHeader(w *kvpb.WriteHeader) error {
	if w.GetSession() == 0 {
		return fmt.Errorf("%w: write has no session: every write needs a non-zero write.session and write.seq "+
			"so that retries apply once; use the Ridgeline client or set them", ErrInvalidArgument)
	}
	if w.GetSeq() == 0 {
		return fmt.Errorf("%w: write of session %d has seq 0: sequences start at 1 and grow by one per new write",
			ErrInvalidArgument, w.GetSession())
	}
	return nil
}

func checkKey(what string, key []byte) error {
	switch n := len(key); {
	case n == 0:
		return fmt.Errorf("%w: %s is empty; keys must be 1 B to %s: set a key", ErrInvalidArgument, what, sizeStr(MaxKeySize))
	case n > MaxKeySize:
		return fmt.Errorf("%w: %s is %d bytes; keys must be 1 B to %s: shorten the key or hash it",
			ErrInvalidArgument, what, n, sizeStr(MaxKeySize))
	}
	return nil
}

func checkValue(what string, v []byte) error {
	if n := len(v); n > MaxValueSize {
		return fmt.Errorf("%w: %s is %d bytes; values must be at most %s: split the value over several keys or store it elsewhere",
			ErrInvalidArgument, what, n, sizeStr(MaxValueSize))
	}
	return nil
}

// quoteKey renders a key for an error message, shortened if long.
func quoteKey(k []byte) string {
	const max = 64
	if len(k) > max {
		return fmt.Sprintf("%q… (%d bytes)", k[:max], len(k))
	}
	return fmt.Sprintf("%q", k)
}

func sizeStr(n int) string {
	switch {
	case n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}
