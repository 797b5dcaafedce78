package client

import (
	"context"
	"fmt"

	"github.com/ridgeline-kv/ridgeline/replication/kvpb"
)

// Limits enforced before a request is sent (DESIGN §6).
const (
	MaxKeySize   = 4 << 10
	MaxValueSize = 512 << 10
	MaxTxnOps    = 128
	// maxRequestSize is gRPC's request limit on the server.
	maxRequestSize = 3 << 19 // 1.5 MiB
)

func validateKey(key string) error {
	if len(key) == 0 {
		return newError("client: invalid argument: key is empty; keys are 1 B to 4 KiB", ErrInvalidArgument)
	}
	if len(key) > MaxKeySize {
		return newError(fmt.Sprintf("client: too large: key is %d bytes; keys are at most %d bytes", len(key), MaxKeySize), ErrTooLarge, ErrInvalidArgument)
	}
	return nil
}

func validateValue(key string, v []byte) error {
	if len(v) > MaxValueSize {
		return newError(fmt.Sprintf("client: too large: value of key %q is %d bytes; values are at most %d bytes (512 KiB)", key, len(v), MaxValueSize), ErrTooLarge, ErrInvalidArgument)
	}
	return nil
}

// shardOf returns the shard of key under the cached map.
func (c *Client) shardOf(key []byte) (uint32, error) {
	rt := c.routes.Load()
	if rt == nil || c.closed.Load() {
		return 0, ErrClosed
	}
	return rt.ks.ShardForKey(key), nil
}

// Get returns the value of key; errors.Is(err, ErrNotFound) when it does not
// exist. It reads from the shard leader (linearizable) unless Stale is given.
// WithVersion receives the key's version (0 when absent).
func (c *Client) Get(ctx context.Context, key string, opts ...Option) ([]byte, error) {
	o := applyOptions(opts)
	if err := validateKey(key); err != nil {
		return nil, err
	}
	k := []byte(key)
	shard, err := c.shardOf(k)
	if err != nil {
		return nil, err
	}
	kind := kindRead
	if o.stale {
		kind = kindStaleRead
	}
	var msg struct {
		req kvpb.GetRequest
		hdr kvpb.RequestHeader
	}
	msg.req.Header, msg.req.Key, msg.req.Stale = &msg.hdr, k, o.stale
	var resp *kvpb.GetResponse
	_, err = c.invoke(ctx, shard, kind, func(ctx context.Context, cn *conn, epoch uint64) (*kvpb.ResponseHeader, error) {
		msg.hdr.Epoch = epoch
		r, err := cn.kv.Get(ctx, &msg.req)
		if err != nil {
			return nil, err
		}
		resp = r
		return r.GetHeader(), nil
	})
	if err != nil {
		return nil, err
	}
	if !resp.GetFound() {
		if o.version != nil {
			*o.version = 0
		}
		return nil, newError(fmt.Sprintf("client: key not found: %q", key), ErrNotFound)
	}
	if o.version != nil {
		*o.version = resp.GetKv().GetVersion()
	}
	return resp.GetKv().GetValue(), nil
}

// Put stores value at key. With IfVersion it applies only if the key's
// version matches, else it returns a *VersionMismatchError. WithVersion
// receives the version written. Retries are exactly-once.
func (c *Client) Put(ctx context.Context, key string, value []byte, opts ...Option) error {
	o := applyOptions(opts)
	if err := validateKey(key); err != nil {
		return err
	}
	if err := validateValue(key, value); err != nil {
		return err
	}
	k := []byte(key)
	shard, err := c.shardOf(k)
	if err != nil {
		return err
	}
	var msg struct {
		req kvpb.PutRequest
		hdr kvpb.RequestHeader
		wh  kvpb.WriteHeader
	}
	msg.req.Header, msg.req.Write, msg.req.Key, msg.req.Value = &msg.hdr, &msg.wh, k, value
	if o.hasIfVersion {
		msg.req.ExpectedVersion = &o.ifVersion
	}
	s := c.sessions.get()
	msg.wh.Session, msg.wh.Seq = s.id, s.seq
	var resp *kvpb.PutResponse
	out, err := c.invoke(ctx, shard, kindWrite, func(ctx context.Context, cn *conn, epoch uint64) (*kvpb.ResponseHeader, error) {
		msg.hdr.Epoch = epoch
		r, err := cn.kv.Put(ctx, &msg.req)
		if err != nil {
			return nil, err
		}
		resp = r
		return r.GetHeader(), nil
	})
	c.sessions.put(s, out.reached)
	if err != nil {
		return err
	}
	if !resp.GetSucceeded() {
		return &VersionMismatchError{Key: key, Expected: o.ifVersion, Actual: resp.GetVersion()}
	}
	if o.version != nil {
		*o.version = resp.GetVersion()
	}
	return nil
}

// Delete removes key. Deleting an absent key is not an error. With
// IfVersion it applies only if the key's version matches, else it returns a
// *VersionMismatchError. WithVersion receives the version of the delete.
func (c *Client) Delete(ctx context.Context, key string, opts ...Option) error {
	o := applyOptions(opts)
	if err := validateKey(key); err != nil {
		return err
	}
	k := []byte(key)
	shard, err := c.shardOf(k)
	if err != nil {
		return err
	}
	var msg struct {
		req kvpb.DeleteRequest
		hdr kvpb.RequestHeader
		wh  kvpb.WriteHeader
	}
	msg.req.Header, msg.req.Write, msg.req.Key = &msg.hdr, &msg.wh, k
	if o.hasIfVersion {
		msg.req.ExpectedVersion = &o.ifVersion
	}
	s := c.sessions.get()
	msg.wh.Session, msg.wh.Seq = s.id, s.seq
	var resp *kvpb.DeleteResponse
	out, err := c.invoke(ctx, shard, kindWrite, func(ctx context.Context, cn *conn, epoch uint64) (*kvpb.ResponseHeader, error) {
		msg.hdr.Epoch = epoch
		r, err := cn.kv.Delete(ctx, &msg.req)
		if err != nil {
			return nil, err
		}
		resp = r
		return r.GetHeader(), nil
	})
	c.sessions.put(s, out.reached)
	if err != nil {
		return err
	}
	if !resp.GetSucceeded() {
		return &VersionMismatchError{Key: key, Expected: o.ifVersion, Actual: resp.GetVersion()}
	}
	if o.version != nil {
		*o.version = resp.GetVersion()
	}
	return nil
}

// Add atomically adds delta to the integer counter at key (stored as decimal
// ASCII; an absent key counts as 0) and returns the new value. Retries are
// exactly-once, so a counter is never double-counted.
func (c *Client) Add(ctx context.Context, key string, delta int64) (int64, error) {
	res, err := c.Txn(ctx).Then(OpAdd(key, delta)).Commit()
	if err != nil {
		return 0, err
	}
	if len(res.Results) != 1 {
		return 0, fmt.Errorf("client: add on key %q: server returned %d results, want 1", key, len(res.Results))
	}
	return res.Results[0].Counter, nil
}
