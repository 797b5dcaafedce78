package storage

import (
	"log/slog"
	"testing"
	"time"
)

func testingLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// waitFor polls cond until it holds, failing the test after 10 seconds.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(time.Millisecond)
	}
}

// crash closes d as a killed process leaves it: applies not yet flushed are
// lost, nothing else happens on the way out.
func crash(t *testing.T, d *StateDB) {
	t.Helper()
	f := d.fl
	close(f.stop)
	<-f.exited
	f.mu.Lock()
	f.err = ErrClosed
	f.cond.Broadcast()
	f.mu.Unlock()
	d.c.close()
	if err := d.db.Close(); err != nil {
		t.Fatal(err)
	}
	d.closeOnce.Do(func() {}) // a later Close is a no-op
}
