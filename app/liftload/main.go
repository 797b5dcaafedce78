package liftload

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// Exit codes of Main.
const (
	ExitOK       = 0
	ExitFailed   = 1
	ExitBadFlags = 2
)

// Main is cmd/liftload: parse flags, run, print the report. It returns
// ExitOK when every request succeeded and verification (if asked) passed,
// ExitFailed on any failed request, mismatch or run error, and ExitBadFlags
// on bad flags. It blocks until the run ends or ctx is done.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, err := ParseFlags(args, stderr)
	if errors.Is(err, ErrHelp) {
		return ExitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "liftload: bad flags:\n%v\n", err)
		return ExitBadFlags
	}
	cfg.Out = stdout
	r, err := New(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "liftload: bad flags:\n%v\n", err)
		return ExitBadFlags
	}
	rep := r.Run(ctx)
	rep.Print(stdout, cfg)
	if !rep.OK() {
		return ExitFailed
	}
	return ExitOK
}
