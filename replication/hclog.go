package replication

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"

	"github.com/hashicorp/go-hclog"
)

// hclogAdapter routes hashicorp/raft's hclog output into the node's slog
// logger, keeping levels and key/value pairs.
type hclogAdapter struct {
	l     *slog.Logger
	name  string
	level hclog.Level
	args  []any
}

var _ hclog.Logger = (*hclogAdapter)(nil)

func newHCLogger(l *slog.Logger, name string, level hclog.Level) hclog.Logger {
	return &hclogAdapter{l: l, name: name, level: level}
}

func (h *hclogAdapter) slogLevel(level hclog.Level) slog.Level {
	switch level {
	case hclog.Trace, hclog.Debug:
		return slog.LevelDebug
	case hclog.Info, hclog.NoLevel, hclog.DefaultLevel:
		return slog.LevelInfo
	case hclog.Warn:
		return slog.LevelWarn
	default:
		return slog.LevelError
	}
}

func (h *hclogAdapter) Log(level hclog.Level, msg string, args ...interface{}) {
	if level < h.level && level != hclog.NoLevel {
		return
	}
	all := append(append([]any{}, h.args...), args...)
	for i := 0; i+1 < len(all); i += 2 { // hclog values may be errors or Stringers: keep them readable
		if err, ok := all[i+1].(error); ok {
			all[i+1] = err.Error()
		}
	}
	h.l.Log(context.Background(), h.slogLevel(level), msg, all...)
}

func (h *hclogAdapter) Trace(msg string, args ...interface{}) { h.Log(hclog.Trace, msg, args...) }
func (h *hclogAdapter) Debug(msg string, args ...interface{}) { h.Log(hclog.Debug, msg, args...) }
func (h *hclogAdapter) Info(msg string, args ...interface{})  { h.Log(hclog.Info, msg, args...) }
func (h *hclogAdapter) Warn(msg string, args ...interface{})  { h.Log(hclog.Warn, msg, args...) }
func (h *hclogAdapter) Error(msg string, args ...interface{}) { h.Log(hclog.Error, msg, args...) }
func (h *hclogAdapter) IsTrace() bool                         { return h.level <= hclog.Trace }
func (h *hclogAdapter) IsDebug() bool                         { return h.level <= hclog.Debug }
func (h *hclogAdapter) IsInfo() bool                          { return h.level <= hclog.Info }
func (h *hclogAdapter) IsWarn() bool                          { return h.level <= hclog.Warn }
func (h *hclogAdapter) IsError() bool                         { return h.level <= hclog.Error }
func (h *hclogAdapter) ImpliedArgs() []interface{}            { return h.args }
func (h *hclogAdapter) Name() string                          { return h.name }
func (h *hclogAdapter) SetLevel(level hclog.Level)            { h.level = level }
func (h *hclogAdapter) GetLevel() hclog.Level                 { return h.level }

func (h *hclogAdapter) With(args ...interface{}) hclog.Logger {
	c := *h
	c.args = append(append([]any{}, h.args...), args...)
	return &c
}

func (h *hclogAdapter) Named(name string) hclog.Logger {
	c := *h
	if c.name != "" {
		name = c.name + "." + name
	}
	c.name = name
	c.l = h.l.With("component", name)
	return &c
}

func (h *hclogAdapter) ResetNamed(name string) hclog.Logger {
	c := *h
	c.name = name
	c.l = h.l.With("component", name)
	return &c
}

func (h *hclogAdapter) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	return log.New(h.StandardWriter(opts), "", 0)
}

func (h *hclogAdapter) StandardWriter(*hclog.StandardLoggerOptions) io.Writer {
	return writerFunc(func(p []byte) (int, error) {
		h.Log(hclog.Info, string(trimNewline(p)))
		return len(p), nil
	})
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func trimNewline(p []byte) []byte {
	for len(p) > 0 && (p[len(p)-1] == '\n' || p[len(p)-1] == '\r') {
		p = p[:len(p)-1]
	}
	return p
}

var _ fmt.Stringer = (*replica)(nil)
