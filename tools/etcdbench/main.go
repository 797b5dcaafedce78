package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/ridgeline-kv/ridgeline/client/ycsb"
)

// Exit codes, as kvctl's.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// flags are etcdbench's flags: the connection's, then kvctl bench's.
type flags struct {
	endpoints    string
	timeout      time.Duration
	clients      int
	serializable bool
	output       string
	bench        ycsb.Config
}

func parseFlags(args []string, stderr io.Writer) (*flags, error) {
	f := &flags{bench: ycsb.DefaultConfig()}
	fs := flag.NewFlagSet("etcdbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.endpoints, "endpoints", "127.0.0.1:2379,127.0.0.1:22379,127.0.0.1:32379", "comma-separated etcd client URLs or host:port")
	fs.DurationVar(&f.timeout, "timeout", 10*time.Second, "deadline of each request (and of connecting), as kvctl's --timeout")
	fs.IntVar(&f.clients, "clients", 1, "number of clientv3 instances the workers share round-robin")
	fs.BoolVar(&f.serializable, "serializable", false, "serializable reads from the local member (possibly stale; kvctl bench --stale)")
	fs.StringVar(&f.output, "output", "table", "output format: table or json")
	fs.StringVar(&f.output, "o", "table", "shorthand for --output")
	f.bench.RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	var errs []error
	if fs.NArg() > 0 {
		errs = append(errs, fmt.Errorf("unexpected arguments %q", fs.Args()))
	}
	if len(f.endpointList()) == 0 {
		errs = append(errs, errors.New("--endpoints is empty"))
	}
	if f.timeout <= 0 {
		errs = append(errs, fmt.Errorf("--timeout must be positive, got %v", f.timeout))
	}
	if f.clients <= 0 {
		errs = append(errs, fmt.Errorf("--clients must be positive, got %d", f.clients))
	}
	if f.output != "table" && f.output != "json" {
		errs = append(errs, fmt.Errorf("--output %q is not supported: use table or json", f.output))
	}
	errs = append(errs, f.bench.ValidateFlags(0))
	return f, errors.Join(errs...)
}

func (f *flags) endpointList() []string {
	var eps []string
	for _, e := range strings.Split(f.endpoints, ",") {
		if e = strings.TrimSpace(e); e != "" {
			eps = append(eps, e)
		}
	}
	return eps
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintln(stderr, "Error:", err)
		return exitUsage
	}
	s, err := newStore(ctx, f.endpointList(), f.clients, f.timeout, f.serializable)
	if err != nil {
		fmt.Fprintln(stderr, "Error:", err)
		return exitError
	}
	defer s.Close()
	cfg := f.bench
	cfg.IsNotFound = func(err error) bool { return errors.Is(err, errNotFound) }
	res, err := ycsb.Run(ctx, s, cfg)
	if err != nil {
		fmt.Fprintln(stderr, "Error:", err)
		return exitError
	}
	res.Stale = f.serializable
	if f.output == "json" {
		err = res.WriteJSON(stdout)
	} else {
		err = res.WriteTable(stdout)
	}
	if err != nil {
		fmt.Fprintln(stderr, "Error:", err)
		return exitError
	}
	return exitOK
}
