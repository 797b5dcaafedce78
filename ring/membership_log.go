package ring

import (
	"bytes"
	"context"
	"log"
	"log/slog"
	"sync"
)

// newMemberlistLogger adapts memberlist's *log.Logger into l. memberlist
// writes lines like "[DEBUG] memberlist: Stream connection from=..."; the
// bracketed level picks the slog level and the "memberlist: " prefix is
// dropped.
func newMemberlistLogger(l *slog.Logger) *log.Logger {
	return log.New(newMemberlistLogWriter(l), "", 0)
}

// newMemberlistLogWriter is the writer of newMemberlistLogger; closing it
// drops later lines.
func newMemberlistLogWriter(l *slog.Logger) *memberlistLogWriter {
	return &memberlistLogWriter{l: l.With("component", "memberlist")}
}

type memberlistLogWriter struct {
	l      *slog.Logger
	mu     sync.RWMutex
	closed bool
}

// close drops every line written from now on, and waits for lines being
// written. memberlist's Shutdown does not wait for its probe goroutines, so
// they may log after it returns, into a logger whose output is gone (a test
// that has ended).
func (w *memberlistLogWriter) close() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
}

func (w *memberlistLogWriter) Write(p []byte) (int, error) {
	n := len(p)
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed {
		return n, nil
	}
	msg, level := bytes.TrimSpace(p), slog.LevelInfo
	if len(msg) > 0 && msg[0] == '[' {
		if end := bytes.IndexByte(msg, ']'); end > 0 {
			switch string(msg[1:end]) {
			case "DEBUG", "TRACE":
				level = slog.LevelDebug
			case "INFO":
				level = slog.LevelInfo
			case "WARN":
				level = slog.LevelWarn
			case "ERR", "ERROR":
				level = slog.LevelError
			}
			msg = bytes.TrimSpace(msg[end+1:])
		}
	}
	msg = bytes.TrimPrefix(msg, []byte("memberlist: "))
	if w.l.Enabled(context.Background(), level) {
		w.l.Log(context.Background(), level, string(msg))
	}
	return n, nil
}
