package app

import (
	"context"

	"github.com/ridgeline-kv/ridgeline/client"
)

// Store is what the service needs from Ridgeline: point reads, prefix scans
// and single-shard transactions. Errors follow package client: a missing key
// matches client.ErrNotFound, a write whose outcome is unknown matches
// client.ErrOutcomeUnknown. Implementations must be safe for concurrent use.
//
// *client.Client provides exactly this, through [ClientStore]: the client's
// Txn builder hides its compares and operations, so a fake for unit tests
// could not interpret them; Store takes them as plain values instead.
type Store interface {
	// Get returns key's value and version; an absent key is an error
	// matching client.ErrNotFound.
	Get(ctx context.Context, key string) (value []byte, version uint64, err error)
	// Scan returns up to limit keys that start with prefix and sort after
	// the key after ("" = from the first), in key order, and whether more
	// may follow. A prefix that starts with a hash tag reads one shard.
	Scan(ctx context.Context, prefix, after string, limit int) (kvs []client.KV, more bool, err error)
	// Commit runs txn atomically: if every condition holds, its Then ops,
	// else its Else ops. All keys must share one shard.
	Commit(ctx context.Context, txn Txn) (*client.TxnResult, error)
}

// CondKind is the comparison of a Cond.
type CondKind uint8

// Comparisons on a key's version.
const (
	// VersionIs holds when the key's version equals Version (0 = absent).
	VersionIs CondKind = iota + 1
	// Exists holds when the key exists.
	Exists
)

// Cond is one condition of a Txn.
type Cond struct {
	Kind    CondKind
	Key     string
	Version uint64
}

// Absent holds when key does not exist.
func Absent(key string) Cond { return Cond{Kind: VersionIs, Key: key} }

// OpKind is what an Op does.
type OpKind uint8

// Operations of a Txn.
const (
	OpPut OpKind = iota + 1
	OpDelete
	OpAdd // adds Delta to the decimal counter at Key (absent = 0)
	OpGet
)

// Op is one operation of a Txn.
type Op struct {
	Kind  OpKind
	Key   string
	Value []byte
	Delta int64
}

// Txn is a transaction: conditions, then the ops run when all hold, else
// the ops run when one fails. At most client.MaxTxnOps conditions and
// client.MaxTxnOps ops (Then and Else together).
type Txn struct {
	If   []Cond
	Then []Op
	Else []Op
}

// ClientStore is the Store of a *client.Client.
type ClientStore struct{ C *client.Client }

var _ Store = ClientStore{}

// Get implements Store.
func (s ClientStore) Get(ctx context.Context, key string) ([]byte, uint64, error) {
	var v uint64
	val, err := s.C.Get(ctx, key, client.WithVersion(&v))
	return val, v, err
}

// Scan implements Store.
func (s ClientStore) Scan(ctx context.Context, prefix, after string, limit int) ([]client.KV, bool, error) {
	opts := client.ScanOptions{Prefix: prefix, Limit: limit}
	if after != "" {
		opts.Start = after + "\x00"
	}
	page, err := s.C.Scan(ctx, opts)
	if err != nil {
		return nil, false, err
	}
	return page.KVs, page.More, nil
}

// Commit implements Store.
func (s ClientStore) Commit(ctx context.Context, txn Txn) (*client.TxnResult, error) {
	t := s.C.Txn(ctx)
	for _, c := range txn.If {
		switch c.Kind {
		case Exists:
			t.If(client.VersionGreater(c.Key, 0))
		default:
			t.If(client.VersionEquals(c.Key, c.Version))
		}
	}
	t.Then(clientOps(txn.Then)...)
	t.Else(clientOps(txn.Else)...)
	return t.Commit()
}

func clientOps(ops []Op) []client.Op {
	out := make([]client.Op, len(ops))
	for i, op := range ops {
		switch op.Kind {
		case OpPut:
			out[i] = client.OpPut(op.Key, op.Value)
		case OpDelete:
			out[i] = client.OpDelete(op.Key)
		case OpAdd:
			out[i] = client.OpAdd(op.Key, op.Delta)
		case OpGet:
			out[i] = client.OpGet(op.Key)
		}
	}
	return out
}
