package client

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
)

func TestClient_ScanMergesShards(t *testing.T) {
	fc := newTestCluster(t, 3, testShards)
	fc.SetScanMax(3) // force shard-level pagination inside one page
	c := newTestClient(t, fc)
	ctx := t.Context()
	var want []string
	for i := range 57 {
		k := fmt.Sprintf("user/%03d", i)
		want = append(want, k)
		if err := c.Put(ctx, k, []byte("v"+k)); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Put(ctx, "other", []byte("x")); err != nil {
		t.Fatal(err)
	}
	sort.Strings(want)

	// Page by page with the cursor.
	var got []string
	opts := ScanOptions{Prefix: "user/", Limit: 10}
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("scan does not end")
		}
		page, err := c.Scan(ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		if len(page.KVs) > 10 {
			t.Fatalf("page has %d keys; limit 10", len(page.KVs))
		}
		for _, kv := range page.KVs {
			got = append(got, kv.Key)
			if string(kv.Value) != "v"+kv.Key || kv.Version == 0 {
				t.Errorf("kv %q = %q version %d", kv.Key, kv.Value, kv.Version)
			}
		}
		if !page.More {
			if page.Cursor != "" {
				t.Errorf("last page has cursor %q", page.Cursor)
			}
			break
		}
		opts.Cursor = page.Cursor
	}
	if !slices.Equal(got, want) {
		t.Errorf("scan = %v\nwant %v", got, want)
	}

	// ScanAll, ranges, keys only.
	got = got[:0]
	for kv, err := range c.ScanAll(ctx, ScanOptions{Start: "user/010", End: "user/020", Limit: 4, KeysOnly: true}) {
		if err != nil {
			t.Fatal(err)
		}
		if kv.Value != nil {
			t.Errorf("KeysOnly returned a value for %q", kv.Key)
		}
		got = append(got, kv.Key)
	}
	if !slices.Equal(got, want[10:20]) {
		t.Errorf("range scan = %v; want %v", got, want[10:20])
	}
	page, err := c.Scan(ctx, ScanOptions{})
	if err != nil || len(page.KVs) != 58 || page.More || page.KVs[57].Key != "user/056" {
		t.Errorf("full scan: %d keys, more %v, err %v", len(page.KVs), page.More, err)
	}
}

func TestClient_ScanHashTagReadsOneShard(t *testing.T) {
	fc := newTestCluster(t, 3, testShards)
	c := newTestClient(t, fc)
	ctx := t.Context()
	for i := range 5 {
		for _, u := range []string{"{u1}", "{u2}", "{u3}"} {
			if err := c.Put(ctx, fmt.Sprintf("%s/r/%d", u, i), []byte("v")); err != nil {
				t.Fatal(err)
			}
		}
	}
	before := len(callsOf(fc.Calls(), "Scan"))
	page, err := c.Scan(ctx, ScanOptions{Prefix: "{u2}/r/", Stale: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.KVs) != 5 || !strings.HasPrefix(page.KVs[0].Key, "{u2}/") {
		t.Errorf("scan = %+v; want 5 keys of {u2}", page.KVs)
	}
	if n := len(callsOf(fc.Calls(), "Scan")) - before; n != 1 {
		t.Errorf("hash-tag scan sent %d shard requests; want 1", n)
	}
	// A prefix without a complete tag scatters.
	before = len(callsOf(fc.Calls(), "Scan"))
	if _, err := c.Scan(ctx, ScanOptions{Prefix: "{u2"}); err != nil {
		t.Fatal(err)
	}
	if n := len(callsOf(fc.Calls(), "Scan")) - before; n != testShards {
		t.Errorf("untagged scan sent %d shard requests; want %d", n, testShards)
	}
}
