// Package srcdeps makes go test's result cache see the sources of the
// binaries a test builds and runs.
//
// go test caches a package's result until the test binary or the files and
// environment variables the test reads change. A test that runs kvnode built
// with "go build" depends on sources its own binary does not link (package
// main of cmd/kvnode, and any package only the command imports), so a change
// there would replay the cached result of the old code. Track stats each Go
// file of the module's packages the commands depend on, so that go test
// records them as inputs: a changed file (mtime or size) reruns the test.
package srcdeps

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Track records, as inputs of the running test, the go.mod and go.sum of
// the main module and every Go file of its packages that pkgs, built with
// tags (comma-separated, "" for none), depend on.
func Track(tags string, pkgs ...string) error {
	args := []string{"list", "-deps", "-tags", tags, "-f", "{{if and .Module .Module.Main}}{{.Dir}}{{end}}"}
	args = append(args, pkgs...)
	out, err := exec.Command("go", args...).Output()
	if err != nil {
		return fmt.Errorf("srcdeps: go %s: %w", strings.Join(args, " "), err)
	}
	mod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return fmt.Errorf("srcdeps: go env GOMOD: %w", err)
	}
	if gomod := strings.TrimSpace(string(mod)); gomod != "" && gomod != os.DevNull {
		_, _ = os.Stat(gomod)
		_, _ = os.Stat(filepath.Join(filepath.Dir(gomod), "go.sum"))
	}
	for _, dir := range strings.Fields(string(out)) {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return fmt.Errorf("srcdeps: %w", err)
		}
		for _, e := range entries {
			if !e.IsDir() && strings.HasSuffix(e.Name(), ".go") {
				if _, err := os.Stat(filepath.Join(dir, e.Name())); err != nil {
					return fmt.Errorf("srcdeps: %w", err)
				}
			}
		}
	}
	return nil
}
