package ring

import (
	"bytes"
	"context"
	"log"
	"log/slog"
)

// newMemberlistLogger adapts memberlist's *log.Logger into l. memberlist
// writes lines like "[DEBUG] memberlist: Stream connection from=..."; the
// bracketed level picks the slog level and the "memberlist: " prefix is
// dropped.
func newMemberlistLogger(l *slog.Logger) *log.Logger {
	return log.New(&memberlistLogWriter{l: l.With("component", "memberlist")}, "", 0)
}

type memberlistLogWriter struct{ l *slog.Logger }

func (w *memberlistLogWriter) Write(p []byte) (int, error) {
	n := len(p)
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
