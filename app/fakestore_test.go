package app

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/ridgeline-kv/ridgeline/client"
	"github.com/ridgeline-kv/ridgeline/ring"
)

// fakeStore is an in-memory Store for unit tests. It enforces what the real
// one does that the service relies on: Txn limits, every key of a Txn under
// one hash tag (stricter than one shard), versions, decimal counters.
type fakeStore struct {
	mu    sync.Mutex
	data  map[string]fakeVal
	index uint64
	// hook, when set, is called before each Commit; a non-nil error is
	// returned, after applying the Txn first if applyFirst (an outcome
	// lost on the way back).
	hook func(txn Txn) (err error, applyFirst bool)
}

type fakeVal struct {
	val     []byte
	version uint64
}

func newFakeStore() *fakeStore { return &fakeStore{data: make(map[string]fakeVal)} }

var _ Store = (*fakeStore)(nil)

func (f *fakeStore) Get(ctx context.Context, key string) ([]byte, uint64, error) {
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.data[key]
	if !ok {
		return nil, 0, fmt.Errorf("fake: key %q: %w", key, client.ErrNotFound)
	}
	return slices.Clone(v.val), v.version, nil
}

func (f *fakeStore) Scan(ctx context.Context, prefix, after string, limit int) ([]client.KV, bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var keys []string
	for k := range f.data {
		if strings.HasPrefix(k, prefix) && k > after {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	more := len(keys) > limit
	if more {
		keys = keys[:limit]
	}
	out := make([]client.KV, len(keys))
	for i, k := range keys {
		out[i] = client.KV{Key: k, Value: slices.Clone(f.data[k].val), Version: f.data[k].version}
	}
	return out, more, nil
}

func (f *fakeStore) Commit(ctx context.Context, txn Txn) (*client.TxnResult, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(txn.If) > client.MaxTxnOps || len(txn.Then)+len(txn.Else) > client.MaxTxnOps {
		return nil, fmt.Errorf("fake: txn has %d conditions and %d ops: %w", len(txn.If), len(txn.Then)+len(txn.Else), client.ErrInvalidArgument)
	}
	tag := ""
	check := func(k string) error {
		t := string(ring.HashTag([]byte(k)))
		if t == "" {
			return fmt.Errorf("fake: key %q has no hash tag", k)
		}
		if tag == "" {
			tag = t
		} else if t != tag {
			return fmt.Errorf("fake: txn mixes hash tags %q and %q: %w", tag, t, client.ErrInvalidArgument)
		}
		return nil
	}
	for _, c := range txn.If {
		if err := check(c.Key); err != nil {
			return nil, err
		}
	}
	for _, op := range append(slices.Clone(txn.Then), txn.Else...) {
		if err := check(op.Key); err != nil {
			return nil, err
		}
	}
	var hookErr error
	if f.hook != nil {
		err, applyFirst := f.hook(txn)
		if err != nil && !applyFirst {
			return nil, err
		}
		hookErr = err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	ok := true
	for _, c := range txn.If {
		v := f.data[c.Key].version
		switch c.Kind {
		case VersionIs:
			ok = ok && v == c.Version
		case Exists:
			ok = ok && v != 0
		default:
			return nil, fmt.Errorf("fake: condition kind %d", c.Kind)
		}
	}
	ops := txn.Then
	if !ok {
		ops = txn.Else
	}
	f.index++
	res := &client.TxnResult{Succeeded: ok}
	for _, op := range ops {
		cur, exists := f.data[op.Key]
		var r client.OpResult
		switch op.Kind {
		case OpPut:
			f.data[op.Key] = fakeVal{slices.Clone(op.Value), f.index}
			r.Version = f.index
		case OpDelete:
			delete(f.data, op.Key)
			r.Found, r.Version = exists, f.index
		case OpAdd:
			n := int64(0)
			if exists {
				var err error
				if n, err = strconv.ParseInt(string(cur.val), 10, 64); err != nil {
					return nil, fmt.Errorf("fake: add to non-counter %q", op.Key)
				}
			}
			n += op.Delta
			f.data[op.Key] = fakeVal{[]byte(strconv.FormatInt(n, 10)), f.index}
			r.Counter, r.Version = n, f.index
		case OpGet:
			r.Found, r.Version, r.Value = exists, cur.version, slices.Clone(cur.val)
		default:
			return nil, fmt.Errorf("fake: op kind %d: %w", op.Kind, client.ErrInvalidArgument)
		}
		res.Results = append(res.Results, r)
	}
	if hookErr != nil {
		return nil, hookErr
	}
	return res, nil
}

// counter reads a counter for assertions (0 when absent).
func (f *fakeStore) counter(key string) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, _ := strconv.ParseInt(string(f.data[key].val), 10, 64)
	return n
}
