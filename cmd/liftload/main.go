// Command liftload is the standard load test of the lift-ride service:
// 200,000 generated ride POSTs, an optional GET phase and exact
// verification. All logic is in package app/liftload; run with -h for flags.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/ridgeline-kv/ridgeline/app/liftload"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := liftload.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
