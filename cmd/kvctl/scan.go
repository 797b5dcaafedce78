package main

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/ridgeline-kv/ridgeline/client"
)

type scanFlags struct {
	prefix   string
	start    string
	end      string
	limit    int
	keysOnly bool
	stale    bool
}

// scanKV is one row of scan output.
type scanKV struct {
	Key     string `json:"key"`
	Version uint64 `json:"version"`
	Value   value  `json:"value,omitempty"`
}

// scanResult is the output of scan.
type scanResult struct {
	KVs      []scanKV `json:"kvs"`
	Count    int      `json:"count"`
	More     bool     `json:"more"`
	Cursor   string   `json:"cursor,omitempty"`
	keysOnly bool
}

func (r *scanResult) table(w io.Writer) {
	if r.keysOnly {
		fmt.Fprintln(w, "KEY\tVERSION")
	} else {
		fmt.Fprintln(w, "KEY\tVERSION\tVALUE")
	}
	for _, kv := range r.KVs {
		if r.keysOnly {
			fmt.Fprintf(w, "%s\t%d\n", kv.Key, kv.Version)
		} else {
			fmt.Fprintf(w, "%s\t%d\t%s\n", kv.Key, kv.Version, kv.Value.short())
		}
	}
	if r.More {
		fmt.Fprintf(w, "(%d keys; more remain: raise --limit)\n", r.Count)
	} else {
		if r.Count == 1 {
			fmt.Fprintln(w, "(1 key)")
		} else {
			fmt.Fprintf(w, "(%d keys)\n", r.Count)
		}
	}
}

func newScanCmd(a *app) *cobra.Command {
	var f scanFlags
	cmd := &cobra.Command{
		Use:   "scan",
		Short: "List keys in order",
		Long: `List keys in byte order: those with --prefix, and/or in [--start, --end).
A prefix starting with a hash tag ("{user:42}/") reads one shard; anything else
reads every shard and merges. Pages through the cluster up to --limit keys.`,
		Args: exactArgs(0, "none"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if f.limit <= 0 {
				return usagef("--limit must be positive, got %d", f.limit)
			}
			return a.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				res := &scanResult{KVs: []scanKV{}, keysOnly: f.keysOnly}
				opts := client.ScanOptions{Prefix: f.prefix, Start: f.start, End: f.end, KeysOnly: f.keysOnly, Stale: f.stale}
				for len(res.KVs) < f.limit {
					opts.Limit = min(f.limit-len(res.KVs), client.MaxScanLimit)
					page, err := c.Scan(ctx, opts)
					if err != nil {
						return err
					}
					for _, kv := range page.KVs {
						res.KVs = append(res.KVs, scanKV{Key: kv.Key, Version: kv.Version, Value: kv.Value})
					}
					res.More, res.Cursor = page.More, page.Cursor
					if !page.More {
						break
					}
					opts.Cursor = page.Cursor
				}
				res.Count = len(res.KVs)
				return a.print(res)
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.prefix, "prefix", "", "only keys with this prefix")
	fl.StringVar(&f.start, "start", "", "first key (inclusive)")
	fl.StringVar(&f.end, "end", "", "end key (exclusive)")
	fl.IntVar(&f.limit, "limit", 100, "maximum number of keys to list")
	fl.BoolVar(&f.keysOnly, "keys-only", false, "list keys and versions without values")
	fl.BoolVar(&f.stale, "stale", false, "read from any replica (faster, may lag)")
	return cmd
}
