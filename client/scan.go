package client

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"iter"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/ridgeline-kv/ridgeline/replication/kvpb"
	"github.com/ridgeline-kv/ridgeline/ring"
)

// Scan limits.
const (
	DefaultScanLimit = 1000
	MaxScanLimit     = 10000
	// scanConcurrency bounds the shards a scatter-gather scan reads at once.
	scanConcurrency = 8
)

// ScanOptions selects the keys of a Scan.
type ScanOptions struct {
	Prefix string // only keys with this prefix
	Start  string // inclusive lower bound ("" = from the first key)
	End    string // exclusive upper bound ("" = to the last key)
	// Limit is the page size: default 1000, at most 10000.
	Limit int
	// Cursor continues a previous scan (ScanPage.Cursor), with the same
	// Prefix, Start and End.
	Cursor   string
	KeysOnly bool // leave values out
	Stale    bool // read from any replica; may lag behind the latest writes
}

// KV is one key-value pair of a scan.
type KV struct {
	Key     string
	Value   []byte
	Version uint64
}

// ScanPage is one page of a scan, in key order.
type ScanPage struct {
	KVs []KV
	// Cursor continues the scan after the last key of KVs; empty when done.
	Cursor string
	More   bool // more keys remain: scan again with Cursor
}

// Scan returns up to opts.Limit keys in byte order. When the prefix has a
// complete hash tag ("{user:42}/...") it reads that one shard; otherwise it
// reads every shard concurrently and merges. Each page is a consistent read
// of each shard, but not one snapshot across shards or across pages.
func (c *Client) Scan(ctx context.Context, opts ScanOptions) (*ScanPage, error) {
	limit := opts.Limit
	switch {
	case limit == 0:
		limit = DefaultScanLimit
	case limit < 0 || limit > MaxScanLimit:
		return nil, newError(fmt.Sprintf("client: invalid argument: scan limit %d out of range; use 1 to %d (0 = %d) and paginate with Cursor", limit, MaxScanLimit, DefaultScanLimit), ErrInvalidArgument)
	}
	start := []byte(opts.Start)
	if opts.Cursor != "" {
		last, err := base64.RawURLEncoding.DecodeString(opts.Cursor)
		if err != nil || len(last) == 0 {
			return nil, newError(fmt.Sprintf("client: invalid argument: scan cursor %q is malformed; pass ScanPage.Cursor unchanged", opts.Cursor), ErrInvalidArgument)
		}
		after := append(last, 0) // the successor of the last key returned
		if bytes.Compare(after, start) > 0 {
			start = after
		}
	}
	// Narrow to the prefix so shards need not check it for us.
	if opts.Prefix != "" && bytes.Compare(start, []byte(opts.Prefix)) < 0 {
		start = []byte(opts.Prefix)
	}
	end := []byte(opts.End)
	if len(end) > 0 && bytes.Compare(start, end) >= 0 {
		return &ScanPage{}, nil
	}
	if opts.Prefix != "" && !strings.HasPrefix(string(start), opts.Prefix) && bytes.Compare(start, []byte(opts.Prefix)) > 0 {
		return &ScanPage{}, nil // past the prefix
	}

	rt := c.routes.Load()
	if rt == nil || c.closed.Load() {
		return nil, ErrClosed
	}
	var shards []uint32
	if p := []byte(opts.Prefix); ring.HashTag(p) != nil {
		shards = []uint32{rt.ks.ShardForKey(p)}
	} else {
		shards = make([]uint32, len(rt.shards))
		for i := range shards {
			shards[i] = uint32(i)
		}
	}
	perShard := limit
	if len(shards) > 1 {
		// Most pages are spread evenly; fetch a fair share plus slack and
		// fetch more from a shard only when the merge needs it.
		perShard = min(limit, max(64, 2*limit/len(shards)+16))
	}

	streams := make([]*scanStream, len(shards))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(scanConcurrency)
	for i, s := range shards {
		st := &scanStream{shard: s, next: start}
		streams[i] = st
		g.Go(func() error { return c.scanShard(gctx, st, opts, end, perShard) })
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}

	page := &ScanPage{KVs: make([]KV, 0, min(limit, 256))}
	for len(page.KVs) < limit {
		best := -1
		for i, st := range streams {
			if st.pos == len(st.kvs) {
				if !st.more {
					continue
				}
				if err := c.scanShard(ctx, st, opts, end, max(limit-len(page.KVs), 16)); err != nil {
					return nil, err
				}
				if st.pos == len(st.kvs) {
					continue
				}
			}
			if best < 0 || bytes.Compare(st.kvs[st.pos].GetKey(), streams[best].kvs[streams[best].pos].GetKey()) < 0 {
				best = i
			}
		}
		if best < 0 {
			break
		}
		st := streams[best]
		kv := st.kvs[st.pos]
		st.pos++
		page.KVs = append(page.KVs, KV{Key: string(kv.GetKey()), Value: kv.GetValue(), Version: kv.GetVersion()})
	}
	for _, st := range streams {
		if st.pos < len(st.kvs) || st.more {
			page.More = true
			break
		}
	}
	if page.More && len(page.KVs) > 0 {
		page.Cursor = base64.RawURLEncoding.EncodeToString([]byte(page.KVs[len(page.KVs)-1].Key))
	}
	return page, nil
}

// scanStream is the part of one shard's range read so far.
type scanStream struct {
	shard uint32
	kvs   []*kvpb.KeyValue
	pos   int
	more  bool
	next  []byte // where the next page starts
}

// scanShard reads the next page (up to limit keys) of one shard into st.
func (c *Client) scanShard(ctx context.Context, st *scanStream, opts ScanOptions, end []byte, limit int) error {
	kind := kindRead
	if opts.Stale {
		kind = kindStaleRead
	}
	req := &kvpb.ScanRequest{
		Header:   &kvpb.RequestHeader{},
		Shard:    st.shard,
		Start:    st.next,
		End:      end,
		Prefix:   []byte(opts.Prefix),
		Limit:    uint32(limit),
		KeysOnly: opts.KeysOnly,
		Stale:    opts.Stale,
	}
	var resp *kvpb.ScanResponse
	_, err := c.invoke(ctx, st.shard, kind, func(ctx context.Context, cn *conn, epoch uint64) (*kvpb.ResponseHeader, error) {
		req.Header.Epoch = epoch
		r, err := cn.kv.Scan(ctx, req)
		if err != nil {
			return nil, err
		}
		resp = r
		return r.GetHeader(), nil
	})
	if err != nil {
		return err
	}
	st.kvs, st.pos = resp.GetKvs(), 0
	st.more = resp.GetMore()
	if st.more {
		switch {
		case len(resp.GetNextKey()) > 0:
			st.next = resp.GetNextKey()
		case len(st.kvs) > 0:
			st.next = append(bytes.Clone(st.kvs[len(st.kvs)-1].GetKey()), 0)
		default:
			return fmt.Errorf("client: shard %d returned an empty scan page with more=true and no next key", st.shard)
		}
	}
	return nil
}

// ScanAll iterates over every key opts selects, in order, fetching pages of
// opts.Limit keys. It stops at the first error, which it yields.
func (c *Client) ScanAll(ctx context.Context, opts ScanOptions) iter.Seq2[KV, error] {
	return func(yield func(KV, error) bool) {
		for {
			page, err := c.Scan(ctx, opts)
			if err != nil {
				yield(KV{}, err)
				return
			}
			for _, kv := range page.KVs {
				if !yield(kv, nil) {
					return
				}
			}
			if !page.More {
				return
			}
			opts.Cursor = page.Cursor
		}
	}
}
