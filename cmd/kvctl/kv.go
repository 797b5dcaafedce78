package main

import (
	"context"
	"fmt"
	"io"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/ridgeline-kv/ridgeline/client"
)

// getResult is the output of get.
type getResult struct {
	Key         string `json:"key"`
	Value       value  `json:"value"`
	Version     uint64 `json:"version"`
	showVersion bool
}

func (r *getResult) table(w io.Writer) {
	if !r.showVersion {
		w.Write(r.Value)
		fmt.Fprintln(w)
		return
	}
	fmt.Fprintln(w, "KEY\tVERSION\tVALUE")
	fmt.Fprintf(w, "%s\t%d\t%s\n", r.Key, r.Version, r.Value.short())
}

// writeResult is the output of put and del.
type writeResult struct {
	Op      string `json:"op"`
	Key     string `json:"key"`
	Version uint64 `json:"version"`
}

func (r *writeResult) table(w io.Writer) {
	fmt.Fprintf(w, "OK %s %q version %d\n", r.Op, r.Key, r.Version)
}

type getFlags struct {
	stale   bool
	version bool
}

func newGetCmd(a *app) *cobra.Command {
	var f getFlags
	cmd := &cobra.Command{
		Use:   "get KEY",
		Short: "Print the value of a key",
		Long: `Print the value of KEY (raw, followed by a newline). With --version the table
shows the key's version too. Exits 1 with "key not found" when KEY is absent.`,
		Args: exactArgs(1, "KEY"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				var ver uint64
				opts := []client.Option{client.WithVersion(&ver)}
				if f.stale {
					opts = append(opts, client.Stale())
				}
				v, err := c.Get(ctx, args[0], opts...)
				if err != nil {
					return err
				}
				return a.print(&getResult{Key: args[0], Value: v, Version: ver, showVersion: f.version})
			})
		},
	}
	cmd.Flags().BoolVar(&f.stale, "stale", false, "read from any replica (faster, may lag)")
	cmd.Flags().BoolVar(&f.version, "version", false, "show the key's version")
	return cmd
}

type writeFlags struct {
	ifVersion string // empty = unconditional
}

func (f *writeFlags) options(ver *uint64) ([]client.Option, error) {
	opts := []client.Option{client.WithVersion(ver)}
	if f.ifVersion != "" {
		v, err := strconv.ParseUint(f.ifVersion, 10, 64)
		if err != nil {
			return nil, usagef("--if-version %q is not a version number (0 = the key must not exist)", f.ifVersion)
		}
		opts = append(opts, client.IfVersion(v))
	}
	return opts, nil
}

func newPutCmd(a *app) *cobra.Command {
	var f writeFlags
	cmd := &cobra.Command{
		Use:   "put KEY VALUE",
		Short: "Store a value",
		Long: `Store VALUE at KEY. VALUE "-" reads the value from standard input.
With --if-version N the put applies only if the key's version is N (0 = the key
must not exist); otherwise kvctl exits 1 reporting the current version.`,
		Args: exactArgs(2, "KEY VALUE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			val := []byte(args[1])
			if args[1] == "-" {
				b, err := io.ReadAll(io.LimitReader(a.stdin, client.MaxValueSize+1))
				if err != nil {
					return fmt.Errorf("reading the value from stdin: %w", err)
				}
				val = b
			}
			var ver uint64
			opts, err := f.options(&ver)
			if err != nil {
				return err
			}
			return a.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				if err := c.Put(ctx, args[0], val, opts...); err != nil {
					return err
				}
				return a.print(&writeResult{Op: "put", Key: args[0], Version: ver})
			})
		},
	}
	cmd.Flags().StringVar(&f.ifVersion, "if-version", "", "apply only if the key's version is N (0 = must not exist)")
	return cmd
}

func newDelCmd(a *app) *cobra.Command {
	var f writeFlags
	cmd := &cobra.Command{
		Use:     "del KEY",
		Aliases: []string{"delete", "rm"},
		Short:   "Delete a key",
		Long: `Delete KEY. Deleting an absent key succeeds. With --if-version N the delete
applies only if the key's version is N.`,
		Args: exactArgs(1, "KEY"),
		RunE: func(cmd *cobra.Command, args []string) error {
			var ver uint64
			opts, err := f.options(&ver)
			if err != nil {
				return err
			}
			return a.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				if err := c.Delete(ctx, args[0], opts...); err != nil {
					return err
				}
				return a.print(&writeResult{Op: "del", Key: args[0], Version: ver})
			})
		},
	}
	cmd.Flags().StringVar(&f.ifVersion, "if-version", "", "apply only if the key's version is N")
	return cmd
}
