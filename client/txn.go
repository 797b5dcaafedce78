package client

import (
	"context"
	"fmt"

	"github.com/ridgeline-kv/ridgeline/replication/kvpb"
)

// Cmp is one comparison of a Txn on a key's version (0 = absent).
type Cmp struct {
	key     string
	op      kvpb.Compare_Op
	version uint64
}

// VersionEquals holds when key's version is v (0 = the key is absent).
func VersionEquals(key string, v uint64) Cmp { return Cmp{key, kvpb.Compare_EQUAL, v} }

// VersionNotEquals holds when key's version is not v.
func VersionNotEquals(key string, v uint64) Cmp { return Cmp{key, kvpb.Compare_NOT_EQUAL, v} }

// VersionLess holds when key's version is below v.
func VersionLess(key string, v uint64) Cmp { return Cmp{key, kvpb.Compare_LESS, v} }

// VersionGreater holds when key's version is above v (v = 0: the key exists).
func VersionGreater(key string, v uint64) Cmp { return Cmp{key, kvpb.Compare_GREATER, v} }

// Missing holds when key does not exist.
func Missing(key string) Cmp { return VersionEquals(key, 0) }

type opKind uint8

const (
	opPut opKind = iota + 1
	opDelete
	opAdd
	opGet
)

// Op is one operation of a Txn.
type Op struct {
	kind  opKind
	key   string
	value []byte
	delta int64
}

// OpPut stores value at key.
func OpPut(key string, value []byte) Op { return Op{kind: opPut, key: key, value: value} }

// OpDelete removes key.
func OpDelete(key string) Op { return Op{kind: opDelete, key: key} }

// OpAdd adds delta to the decimal integer at key (absent = 0).
func OpAdd(key string, delta int64) Op { return Op{kind: opAdd, key: key, delta: delta} }

// OpGet reads key.
func OpGet(key string) Op { return Op{kind: opGet, key: key} }

// OpResult is the result of one Op, in the order of the branch that ran.
type OpResult struct {
	Version uint64 // version written (put, add, delete) or read (get)
	Counter int64  // new value, for add
	Found   bool   // for get and delete: the key existed
	Value   []byte // for get
}

// TxnResult says which branch ran and what its operations returned.
type TxnResult struct {
	Succeeded bool // every comparison held; the Then branch ran
	Results   []OpResult
}

// Txn is a transaction under construction: if every Cmp holds, the Then ops
// run, otherwise the Else ops; atomically. All keys must be in one shard —
// give them a common hash tag, e.g. "{user:42}/balance" and
// "{user:42}/history". A Txn is not safe for concurrent use.
type Txn struct {
	c    *Client
	ctx  context.Context
	cmps []Cmp
	then []Op
	els  []Op
}

// Txn starts a transaction bound to ctx.
func (c *Client) Txn(ctx context.Context) *Txn { return &Txn{c: c, ctx: ctx} }

// If adds comparisons; all must hold for the Then branch to run.
func (t *Txn) If(cmps ...Cmp) *Txn { t.cmps = append(t.cmps, cmps...); return t }

// Then adds operations run when every comparison holds.
func (t *Txn) Then(ops ...Op) *Txn { t.then = append(t.then, ops...); return t }

// Else adds operations run when a comparison fails.
func (t *Txn) Else(ops ...Op) *Txn { t.els = append(t.els, ops...); return t }

// Commit sends the transaction and blocks until it is applied (or fails).
// Retries are exactly-once.
func (t *Txn) Commit() (*TxnResult, error) {
	c := t.c
	if len(t.then)+len(t.els) > MaxTxnOps || len(t.cmps) > MaxTxnOps {
		return nil, newError(fmt.Sprintf("client: invalid argument: txn has %d compares and %d ops; at most %d of each", len(t.cmps), len(t.then)+len(t.els), MaxTxnOps), ErrInvalidArgument)
	}
	if len(t.cmps)+len(t.then)+len(t.els) == 0 {
		return nil, newError("client: invalid argument: txn is empty; add compares or ops", ErrInvalidArgument)
	}
	rt := c.routes.Load()
	if rt == nil || c.closed.Load() {
		return nil, ErrClosed
	}
	req := &kvpb.TxnRequest{Header: &kvpb.RequestHeader{}}
	var (
		shard    uint32
		firstKey string
		size     int
	)
	checkKey := func(key string) ([]byte, error) {
		if err := validateKey(key); err != nil {
			return nil, err
		}
		k := []byte(key)
		s := rt.ks.ShardForKey(k)
		if firstKey == "" {
			shard, firstKey = s, key
		} else if s != shard {
			return nil, newError(fmt.Sprintf("client: invalid argument: txn keys %q and %q are in different shards; keys of one txn must share a hash tag, e.g. {user:42}/a and {user:42}/b", firstKey, key), ErrInvalidArgument)
		}
		size += len(k)
		return k, nil
	}
	for _, cmp := range t.cmps {
		k, err := checkKey(cmp.key)
		if err != nil {
			return nil, err
		}
		req.Compares = append(req.Compares, &kvpb.Compare{Key: k, Op: cmp.op, Version: cmp.version})
	}
	conv := func(ops []Op) ([]*kvpb.Op, error) {
		out := make([]*kvpb.Op, 0, len(ops))
		for _, op := range ops {
			k, err := checkKey(op.key)
			if err != nil {
				return nil, err
			}
			var pb *kvpb.Op
			switch op.kind {
			case opPut:
				if err := validateValue(op.key, op.value); err != nil {
					return nil, err
				}
				size += len(op.value)
				pb = &kvpb.Op{Op: &kvpb.Op_Put_{Put: &kvpb.Op_Put{Key: k, Value: op.value}}}
			case opDelete:
				pb = &kvpb.Op{Op: &kvpb.Op_Delete_{Delete: &kvpb.Op_Delete{Key: k}}}
			case opAdd:
				pb = &kvpb.Op{Op: &kvpb.Op_Add_{Add: &kvpb.Op_Add{Key: k, Delta: op.delta}}}
			case opGet:
				pb = &kvpb.Op{Op: &kvpb.Op_Get_{Get: &kvpb.Op_Get{Key: k}}}
			default:
				return nil, newError("client: invalid argument: zero Op in txn; build ops with OpPut, OpDelete, OpAdd or OpGet", ErrInvalidArgument)
			}
			out = append(out, pb)
		}
		return out, nil
	}
	var err error
	if req.Success, err = conv(t.then); err != nil {
		return nil, err
	}
	if req.Failure, err = conv(t.els); err != nil {
		return nil, err
	}
	if size > maxRequestSize-64<<10 {
		return nil, newError(fmt.Sprintf("client: too large: txn carries %d bytes; a request is at most 1.5 MiB", size), ErrTooLarge, ErrInvalidArgument)
	}

	s := c.sessions.get()
	req.Write = s.header()
	var resp *kvpb.TxnResponse
	out, err := c.invoke(t.ctx, shard, kindWrite, func(ctx context.Context, cn *conn, epoch uint64) (*kvpb.ResponseHeader, error) {
		req.Header.Epoch = epoch
		r, err := cn.kv.Txn(ctx, req)
		if err != nil {
			return nil, err
		}
		resp = r
		return r.GetHeader(), nil
	})
	c.sessions.put(s, out.reached)
	if err != nil {
		return nil, err
	}
	res := &TxnResult{Succeeded: resp.GetSucceeded(), Results: make([]OpResult, len(resp.GetResults()))}
	for i, r := range resp.GetResults() {
		res.Results[i] = OpResult{Version: r.GetVersion(), Counter: r.GetCounter(), Found: r.GetFound(), Value: r.GetValue()}
	}
	return res, nil
}
