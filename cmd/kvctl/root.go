package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ridgeline-kv/ridgeline/client"
)

// Exit codes.
const (
	exitOK          = 0
	exitError       = 1 // the operation failed: key not found, version mismatch, server error
	exitUsage       = 2 // bad flags, arguments or input
	exitUnavailable = 3 // the cluster did not answer in time, or a write's outcome is unknown
)

const envEndpoints = "RIDGELINE_ENDPOINTS"

// globalFlags are the flags every command takes.
type globalFlags struct {
	endpoints string
	output    string
	timeout   time.Duration
	cpuProf   string
}

// app holds what commands share: the global flags and the I/O streams.
type app struct {
	flags  globalFlags
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

// usageError marks errors in how kvctl was invoked.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// exactArgs is cobra.ExactArgs reporting a usage error.
func exactArgs(n int, names string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usagef("%s takes %d argument(s): %s; got %d", cmd.Name(), n, names, len(args))
		}
		return nil
	}
}

func newRootCmd(a *app) *cobra.Command {
	root := &cobra.Command{
		Use:   "kvctl",
		Short: "Operate a Ridgeline cluster",
		Long: `kvctl reads and writes keys, runs transactions and scans, shows cluster
status and benchmarks a Ridgeline cluster.

Exit status: 0 success; 1 the operation failed (key not found, version
mismatch, server error); 2 bad usage or input; 3 the cluster did not answer in
time or a write's outcome is unknown.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	def := "127.0.0.1:7001"
	if env := os.Getenv(envEndpoints); env != "" {
		def = env
	}
	pf := root.PersistentFlags()
	pf.StringVar(&a.flags.endpoints, "endpoints", def, "comma-separated gRPC addresses of cluster nodes (env "+envEndpoints+")")
	pf.StringVarP(&a.flags.output, "output", "o", "table", "output format: table or json")
	pf.DurationVar(&a.flags.timeout, "timeout", 10*time.Second, "deadline of each request (and of connecting)")
	pf.StringVar(&a.flags.cpuProf, "cpuprofile", "", "write a CPU profile of kvctl itself to this file (for profiling the client under bench)")
	pf.MarkHidden("cpuprofile")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		if _, err := a.printer(); err != nil {
			return err
		}
		if a.flags.timeout <= 0 {
			return usagef("--timeout must be positive, got %v", a.flags.timeout)
		}
		if a.flags.cpuProf != "" {
			f, err := os.Create(a.flags.cpuProf)
			if err != nil {
				return err
			}
			if err := pprof.StartCPUProfile(f); err != nil {
				f.Close()
				return err
			}
			cobra.OnFinalize(func() { pprof.StopCPUProfile(); f.Close() })
		}
		return nil
	}
	root.SetIn(a.stdin)
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)

	root.AddCommand(newGetCmd(a), newPutCmd(a), newDelCmd(a), newScanCmd(a), newTxnCmd(a), newStatusCmd(a), newBenchCmd(a), newNodesCmd(a), newRebalanceCmd(a), newShardsCmd(a))
	return root
}

// run executes kvctl with args and returns the exit status.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr}
	root := newRootCmd(a)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	fmt.Fprintln(stderr, "Error:", errorMessage(err))
	return exitCode(err)
}

// errorMessage is the message shown for err.
func errorMessage(err error) string {
	var vm *client.VersionMismatchError
	switch {
	case errors.As(err, &vm):
		return fmt.Sprintf("version mismatch on key %q: expected %d, current %d", vm.Key, vm.Expected, vm.Actual)
	case errors.Is(err, client.ErrNotFound):
		return "key not found"
	}
	msg := err.Error()
	// Drop the client's package prefix; keep its explanation.
	return strings.ReplaceAll(msg, "client: ", "")
}

func exitCode(err error) int {
	var ue usageError
	switch {
	case errors.As(err, &ue), errors.Is(err, client.ErrInvalidArgument):
		return exitUsage
	case errors.Is(err, client.ErrUnavailable), errors.Is(err, client.ErrOutcomeUnknown),
		errors.Is(err, context.DeadlineExceeded):
		return exitUnavailable
	default:
		return exitError
	}
}

// dial connects to the cluster.
func (a *app) dial(ctx context.Context) (*client.Client, error) {
	var eps []string
	for _, e := range strings.Split(a.flags.endpoints, ",") {
		if e = strings.TrimSpace(e); e != "" {
			eps = append(eps, e)
		}
	}
	if len(eps) == 0 {
		return nil, usagef("--endpoints is empty: give host:port of at least one node (or set %s)", envEndpoints)
	}
	for _, e := range eps {
		if _, port, err := net.SplitHostPort(e); err != nil || port == "" {
			return nil, usagef("--endpoints: %q is not host:port (e.g. 127.0.0.1:7001; the default comes from %s)", e, envEndpoints)
		}
	}
	c, err := client.New(ctx, client.Config{
		Endpoints:      eps,
		DialTimeout:    a.flags.timeout,
		RequestTimeout: a.flags.timeout,
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// reqContext is the context of one request: the command's, with --timeout.
func (a *app) reqContext(cmd *cobra.Command) (context.Context, context.CancelFunc) {
	return context.WithTimeout(cmd.Context(), a.flags.timeout)
}

// withClient connects to the cluster, runs f with a client and a context
// bounded by --timeout, and closes the client.
func (a *app) withClient(cmd *cobra.Command, f func(ctx context.Context, c *client.Client) error) error {
	c, err := a.dial(cmd.Context())
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := a.reqContext(cmd)
	defer cancel()
	return f(ctx, c)
}
