package replicationtest

import (
	"fmt"
	"io"
	"os"
	"sync"
	"testing"
)

// T is the part of testing.TB a Cluster uses. *testing.T and *testing.B
// satisfy it; runnable examples, which have neither, use an ExampleT.
type T interface {
	Helper()
	Fatalf(format string, args ...any)
	Failed() bool
	Cleanup(func())
	TempDir() string
	Output() io.Writer
}

var _ T = (testing.TB)(nil)

// ExampleT lets a runnable Example start a Cluster: failures panic, temp
// dirs and cleanups are released by Close, and node logs are discarded.
type ExampleT struct {
	mu       sync.Mutex
	cleanups []func()
	dirs     []string
}

// NewExampleT returns an ExampleT; call Close when the example ends.
func NewExampleT() *ExampleT { return &ExampleT{} }

func (e *ExampleT) Helper() {}

func (e *ExampleT) Fatalf(format string, args ...any) { panic(fmt.Sprintf(format, args...)) }

func (e *ExampleT) Failed() bool { return false }

func (e *ExampleT) Output() io.Writer { return io.Discard }

func (e *ExampleT) Cleanup(f func()) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.cleanups = append(e.cleanups, f)
}

func (e *ExampleT) TempDir() string {
	d, err := os.MkdirTemp("", "ridgeline-example")
	if err != nil {
		panic(err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.dirs = append(e.dirs, d)
	return d
}

// Close runs the cleanups (last first) and removes the temp dirs.
func (e *ExampleT) Close() {
	e.mu.Lock()
	cs, ds := e.cleanups, e.dirs
	e.cleanups, e.dirs = nil, nil
	e.mu.Unlock()
	for i := len(cs) - 1; i >= 0; i-- {
		cs[i]()
	}
	for _, d := range ds {
		os.RemoveAll(d)
	}
}
