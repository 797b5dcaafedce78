package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ridgeline-kv/ridgeline/client"
)

// rebalanceResult is the output of rebalance status, pause and resume.
type rebalanceResult struct {
	Epoch           uint64   `json:"epoch"`
	Paused          bool     `json:"paused"`
	Balanced        bool     `json:"balanced"`
	MovesInFlight   int      `json:"moves_in_flight"`
	MovesPlanned    int      `json:"moves_planned"`
	MovesDone       int      `json:"moves_done"`
	Pending         int      `json:"pending"`
	Misplaced       int      `json:"misplaced"`
	MinimumMoves    int      `json:"minimum_moves"`
	SnapshotBytes   uint64   `json:"snapshot_bytes"`
	ProgressPercent int      `json:"progress_percent"`
	PendingReasons  []string `json:"pending_reasons"`

	action string // "paused" or "resumed" for pause and resume; "" for status
}

func newRebalanceResult(st *client.RebalanceStatus, action string) *rebalanceResult {
	r := &rebalanceResult{
		Epoch: st.Epoch, Paused: st.Paused, Balanced: st.Balanced,
		MovesInFlight: st.MovesInFlight, MovesPlanned: st.MovesPlanned, MovesDone: st.MovesDone,
		Pending: st.Pending, Misplaced: st.Misplaced, MinimumMoves: st.MinimumMoves,
		SnapshotBytes: st.SnapshotBytes, PendingReasons: st.PendingReasons, action: action,
	}
	if r.PendingReasons == nil {
		r.PendingReasons = []string{}
	}
	r.ProgressPercent = progressPercent(r.MovesDone, r.Misplaced)
	return r
}

// progressPercent is the share of replica moves done out of done plus those
// still to make (misplaced replicas): 100 when nothing is misplaced.
func progressPercent(done, misplaced int) int {
	if misplaced <= 0 {
		return 100
	}
	return 100 * max(done, 0) / (max(done, 0) + misplaced)
}

// progressBar renders pct as a bar of width cells: "[#####.....]".
func progressBar(pct, width int) string {
	pct = min(max(pct, 0), 100)
	full := pct * width / 100
	return "[" + strings.Repeat("#", full) + strings.Repeat(".", width-full) + "]"
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func (r *rebalanceResult) state() string {
	if r.Paused {
		return "paused"
	}
	return "running"
}

func (r *rebalanceResult) table(w io.Writer) {
	if r.action != "" {
		fmt.Fprintf(w, "rebalancing %s (map epoch %d)\n\n", r.action, r.Epoch)
	}
	fmt.Fprintf(w, "epoch:\t%d\n", r.Epoch)
	fmt.Fprintf(w, "rebalancing:\t%s\n", r.state())
	fmt.Fprintf(w, "balanced:\t%s\n", yesNo(r.Balanced))
	fmt.Fprintf(w, "progress:\t%s %3d%% (%d moves done, %d replicas misplaced)\n", progressBar(r.ProgressPercent, 20), r.ProgressPercent, r.MovesDone, r.Misplaced)
	fmt.Fprintf(w, "moves in flight:\t%d\n", r.MovesInFlight)
	fmt.Fprintf(w, "moves planned:\t%d\n", r.MovesPlanned)
	fmt.Fprintf(w, "moves done:\t%d (since the meta leader took over)\n", r.MovesDone)
	fmt.Fprintf(w, "misplaced:\t%d replicas\n", r.Misplaced)
	fmt.Fprintf(w, "minimum moves:\t%d\n", r.MinimumMoves)
	fmt.Fprintf(w, "snapshot bytes:\t%d (sent by the answering node)\n", r.SnapshotBytes)
	fmt.Fprintf(w, "pending shards:\t%d\n", r.Pending)
	for _, p := range r.PendingReasons {
		fmt.Fprintf(w, "  %s\n", p)
	}
	if r.Paused && !r.Balanced {
		fmt.Fprintln(w, "\nmoves are paused: run kvctl rebalance resume to continue")
	}
}

// progressLine is the one-line summary printed while waiting.
func (r *rebalanceResult) progressLine() string {
	s := fmt.Sprintf("epoch %d: %s %3d%%  misplaced %d, in flight %d, planned %d, done %d, pending shards %d",
		r.Epoch, progressBar(r.ProgressPercent, 20), r.ProgressPercent, r.Misplaced, r.MovesInFlight, r.MovesPlanned, r.MovesDone, r.Pending)
	if r.Balanced {
		s += ", balanced"
	}
	if r.Paused {
		s += " (moves PAUSED: kvctl rebalance resume)"
	}
	return s
}

// waitFlags are the flags of commands that can block until the cluster
// converges. The wait budget is separate from the global --timeout, which
// bounds each request.
type waitFlags struct {
	wait     bool
	budget   time.Duration
	interval time.Duration
}

func (w *waitFlags) register(cmd *cobra.Command, until string) {
	fs := cmd.Flags()
	fs.BoolVar(&w.wait, "wait", false, "block until "+until+", printing progress to stderr")
	fs.DurationVar(&w.budget, "wait-timeout", 10*time.Minute, "with --wait: give up after this long (exit 1; the work goes on in the cluster). --timeout still bounds each request")
	fs.DurationVar(&w.interval, "poll-interval", time.Second, "with --wait: how often to poll progress")
	fs.MarkHidden("poll-interval")
}

func (w *waitFlags) validate() error {
	if w.budget <= 0 {
		return usagef("--wait-timeout must be positive, got %v", w.budget)
	}
	if w.interval <= 0 {
		return usagef("--poll-interval must be positive, got %v", w.interval)
	}
	return nil
}

// waitTimeoutError is returned when the wait budget passed before the
// condition held. It wraps the last poll's error when that poll failed
// (so an unreachable cluster still exits 3).
type waitTimeoutError struct {
	budget   time.Duration
	last     string // last progress line
	lastErr  error  // error of the last poll, if it failed
	notReady string // what did not happen, e.g. "node n4 is not drained"
	hint     string
}

func (e *waitTimeoutError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s after waiting %v", e.notReady, e.budget)
	if e.last != "" {
		fmt.Fprintf(&b, " (last seen: %s)", e.last)
	}
	if e.lastErr != nil {
		fmt.Fprintf(&b, "; last poll failed: %s", errorMessage(e.lastErr))
	}
	if e.hint != "" {
		b.WriteString("; " + e.hint)
	}
	return b.String()
}

func (e *waitTimeoutError) Unwrap() error { return e.lastErr }

// pollStep makes one observation: done when the condition holds, and a
// progress line describing the state.
type pollStep func(ctx context.Context) (done bool, line string, err error)

// poll runs step every w.interval until it reports done (nil), the wait
// budget passes (*waitTimeoutError), or ctx ends. Each step gets a context
// bounded by --timeout. Progress lines go to stderr when they change. A step
// failing with ErrUnavailable (a meta election, a node restarting) is
// reported and retried; any other error ends the wait.
func (a *app) poll(ctx context.Context, w waitFlags, notReady, hint string, step pollStep) error {
	deadline := time.Now().Add(w.budget)
	wctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	var last, lastPrinted string
	var lastErr error
	for {
		rctx, rcancel := context.WithTimeout(wctx, a.flags.timeout)
		done, line, err := step(rctx)
		rcancel()
		switch {
		case err == nil:
			last, lastErr = line, nil
			if line != lastPrinted {
				fmt.Fprintln(a.stderr, line)
				lastPrinted = line
			}
			if done {
				return nil
			}
		case ctx.Err() != nil:
			return ctx.Err()
		case !time.Now().Before(deadline):
			// The budget ran out during this step: its error says nothing
			// about the cluster. (By the clock, not wctx.Err(): gRPC fails a
			// call at its deadline before the context's own timer fires.)
		case errors.Is(err, client.ErrUnavailable):
			lastErr = err
			msg := "waiting: " + errorMessage(err) + "; retrying"
			if msg != lastPrinted {
				fmt.Fprintln(a.stderr, msg)
				lastPrinted = msg
			}
		default:
			return err
		}
		t := time.NewTimer(w.interval)
		select {
		case <-t.C:
		case <-wctx.Done():
			t.Stop()
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return &waitTimeoutError{budget: w.budget, last: last, lastErr: lastErr, notReady: notReady, hint: hint}
		}
	}
}

// withLongClient connects to the cluster and runs f with a client and no
// overall deadline, for commands that wait: f bounds each request itself
// (reqContextFrom). The client is closed when f returns.
func (a *app) withLongClient(cmd *cobra.Command, f func(c *client.Client) error) error {
	c, err := a.dial(cmd.Context())
	if err != nil {
		return err
	}
	defer c.Close()
	return f(c)
}

// reqContextFrom bounds one request made under parent by --timeout.
func (a *app) reqContextFrom(parent context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(parent, a.flags.timeout)
}

// subcommandArgs rejects arguments to a command that only groups
// subcommands (cobra would otherwise print help and exit 0 for a typo).
func subcommandArgs(subs ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) > 0 {
			return usagef("unknown command %q for %q: use one of %s", args[0], cmd.CommandPath(), strings.Join(subs, ", "))
		}
		return nil
	}
}

func newRebalanceCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rebalance",
		Short: "Show placement progress; pause or resume replica moves",
		Long: `The cluster moves replicas on its own to reach its target placement: after a
node joins, while a node drains, and when a node has been down past the grace
period. rebalance shows how far that has come, and pauses or resumes it.`,
		Args: subcommandArgs("status", "pause", "resume"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return usagef("%s needs a subcommand: status, pause or resume", cmd.CommandPath())
		},
	}
	cmd.AddCommand(newRebalanceStatusCmd(a), newRebalanceActionCmd(a, client.RebalancePause), newRebalanceActionCmd(a, client.RebalanceResume))
	return cmd
}

func newRebalanceStatusCmd(a *app) *cobra.Command {
	var w waitFlags
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show placement progress (optionally wait until balanced)",
		Long: `Show placement progress as the meta leader sees it: whether moves are paused,
whether placement is balanced, moves in flight, planned and done, replicas
still misplaced, the minimum number of moves left, and why shards are pending.
Progress is done / (done + misplaced); "done" counts moves since the current
meta leader took over.

With --wait, poll until placement is balanced, printing a progress line to
stderr whenever it changes, then print the status. It exits 1 if placement is
not balanced within --wait-timeout (default 10m; the global --timeout bounds
each request, not the wait), and 3 if the cluster cannot be reached.`,
		Args: exactArgs(0, "none"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := w.validate(); err != nil {
				return err
			}
			return a.withLongClient(cmd, func(c *client.Client) error {
				if !w.wait {
					ctx, cancel := a.reqContextFrom(cmd.Context())
					defer cancel()
					st, err := c.Rebalance(ctx, client.RebalanceStatusOnly)
					if err != nil {
						return err
					}
					return a.print(newRebalanceResult(st, ""))
				}
				var res *rebalanceResult
				err := a.poll(cmd.Context(), w, "placement is not balanced",
					"moves go on in the background; run kvctl rebalance status to check again",
					func(ctx context.Context) (bool, string, error) {
						st, err := c.Rebalance(ctx, client.RebalanceStatusOnly)
						if err != nil {
							return false, "", err
						}
						res = newRebalanceResult(st, "")
						return st.Balanced, res.progressLine(), nil
					})
				if err != nil {
					return err
				}
				return a.print(res)
			})
		},
	}
	w.register(cmd, "placement is balanced")
	return cmd
}

func newRebalanceActionCmd(a *app, action client.RebalanceAction) *cobra.Command {
	use, short, done := "pause", "Stop starting replica moves (moves in flight finish)", "paused"
	if action == client.RebalanceResume {
		use, short, done = "resume", "Start replica moves again", "resumed"
	}
	return &cobra.Command{
		Use:   use,
		Short: short,
		Long: short + `. The setting is part of the cluster map, so it
survives meta leader changes. Pausing or resuming twice is harmless. Draining
nodes and replacing dead ones make no progress while moves are paused.`,
		Args: exactArgs(0, "none"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				st, err := c.Rebalance(ctx, action)
				if err != nil {
					return err
				}
				return a.print(newRebalanceResult(st, done))
			})
		},
	}
}
