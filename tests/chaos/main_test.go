package chaos

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	// The test binary depends on the server's code, so `go test` does not
	// serve a cached result after the server changed (kvnode is built from it).
	// srcdeps covers what kvnode alone links (its package main).
	_ "github.com/ridgeline-kv/ridgeline/replication"
	"github.com/ridgeline-kv/ridgeline/tests/internal/srcdeps"
)

var longRun = flag.Bool("long", false, "run the long randomized chaos suite (TestChaosLong); see SEED and DURATION")

const (
	envInNetns  = "RIDGELINE_CHAOS_NETNS"  // "1": this process runs in the private namespace
	envKvnode   = "RIDGELINE_CHAOS_KVNODE" // path of a prebuilt kvnode binary
	envOwnBin   = "RIDGELINE_CHAOS_OWNBIN" // directory to remove at exit (built by the parent)
	envRace     = "CHAOS_RACE"             // "1"/"0": force the race detector in kvnode on/off
	clientIP    = "127.0.0.100"            // the clients' source address; never partitioned
	nodeIPBase  = 11                       // nodes are 127.0.0.11, .12, ...
	chaosShards = 8
)

var (
	kvnodeBin string
	// netnsReason is empty when partitions can be made; otherwise why not.
	netnsReason string
)

func TestMain(m *testing.M) {
	flag.Parse()
	if os.Getenv(envInNetns) == "" {
		if why := netnsUnavailable(); why != "" {
			netnsReason = why
		} else {
			reexecInNetns() // only returns on failure, with netnsReason set
		}
	} else if err := exec.Command("iptables", "-S").Run(); err != nil {
		netnsReason = fmt.Sprintf("iptables does not work in the namespace: %v", err)
	}
	if os.Getenv(envInNetns) == "" && netnsReason == "" {
		netnsReason = "not in a private network namespace"
	}

	code := func() int {
		if bin := os.Getenv(envKvnode); bin != "" {
			kvnodeBin = bin
			if d := os.Getenv(envOwnBin); d != "" {
				defer os.RemoveAll(d)
			}
		} else if needsKvnode() {
			dir, bin, err := buildKvnode("")
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			defer os.RemoveAll(dir)
			kvnodeBin = bin
		}
		defer removeTaggedBins()
		return m.Run()
	}()
	os.Exit(code)
}

// needsKvnode is false under -short, where only the checker tests run.
func needsKvnode() bool { return !testing.Short() }

// netnsUnavailable says why this process cannot re-execute itself in a
// private network namespace with iptables, or "" when it can.
func netnsUnavailable() string {
	if os.Geteuid() != 0 {
		return "needs root (for unshare --net and iptables)"
	}
	for _, tool := range []string{"unshare", "iptables", "ip", "sh"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Sprintf("needs %s in PATH: %v", tool, err)
		}
	}
	return ""
}

// reexecInNetns replaces this process with itself inside a new network
// namespace (loopback up). kvnode is built first, outside, and handed over.
func reexecInNetns() {
	self, err := os.Executable()
	if err != nil {
		netnsReason = fmt.Sprintf("cannot find the test binary to re-execute: %v", err)
		return
	}
	// Probe first: unshare can be present but forbidden (containers without
	// CAP_SYS_ADMIN); then fall back to skipping rather than failing.
	probe := exec.Command("unshare", "--net", "--", "sh", "-c", "ip link set lo up && iptables -S >/dev/null")
	if out, err := probe.CombinedOutput(); err != nil {
		netnsReason = fmt.Sprintf("unshare --net with iptables failed: %v: %s", err, out)
		return
	}
	env := append(os.Environ(), envInNetns+"=1")
	if needsKvnode() {
		dir, bin, err := buildKvnode("")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		env = append(env, envKvnode+"="+bin, envOwnBin+"="+dir)
	}
	unshare, _ := exec.LookPath("unshare")
	args := append([]string{"unshare", "--net", "--", "sh", "-c", `ip link set lo up && exec "$0" "$@"`, self}, os.Args[1:]...)
	err = syscall.Exec(unshare, args, env)
	netnsReason = fmt.Sprintf("exec unshare: %v", err)
}

// buildKvnode builds cmd/kvnode with the given build tags (comma-separated,
// "" for none), with the race detector when the tests themselves run with it
// (or CHAOS_RACE=1).
func buildKvnode(tags string) (dir, bin string, err error) {
	dir, err = os.MkdirTemp("", "ridgeline-chaos-bin-")
	if err != nil {
		return "", "", err
	}
	bin = filepath.Join(dir, "kvnode")
	args := []string{"build", "-o", bin}
	race := raceEnabled
	switch os.Getenv(envRace) {
	case "1":
		race = true
	case "0":
		race = false
	}
	if race {
		args = append(args, "-race")
	}
	if tags != "" {
		args = append(args, "-tags", tags)
	}
	args = append(args, "github.com/ridgeline-kv/ridgeline/cmd/kvnode")
	if out, err := exec.Command("go", args...).CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return "", "", fmt.Errorf("go %v: %v\n%s", args, err, out)
	}
	return dir, bin, nil
}

// taggedBins caches the kvnode binaries built with build tags, per tag set,
// for the life of the test binary (the untagged one is kvnodeBin).
var taggedBins struct {
	sync.Mutex
	bins map[string]string // tags → binary
	dirs []string          // removed at exit
}

// kvnodeWithTags returns a kvnode binary built with tags ("" is kvnodeBin),
// building it on first use.
func kvnodeWithTags(t *testing.T, tags string) string {
	t.Helper()
	requireKvnode(t)
	if tags == "" {
		return kvnodeBin
	}
	taggedBins.Lock()
	defer taggedBins.Unlock()
	if bin, ok := taggedBins.bins[tags]; ok {
		return bin
	}
	start := time.Now()
	dir, bin, err := buildKvnode(tags)
	if err != nil {
		t.Fatalf("build kvnode with tags %q: %v", tags, err)
	}
	trackKvnodeSources(t, tags)
	if taggedBins.bins == nil {
		taggedBins.bins = map[string]string{}
	}
	taggedBins.bins[tags] = bin
	taggedBins.dirs = append(taggedBins.dirs, dir)
	t.Logf("built kvnode with -tags %s in %.1fs", tags, time.Since(start).Seconds())
	return bin
}

func removeTaggedBins() {
	taggedBins.Lock()
	defer taggedBins.Unlock()
	for _, d := range taggedBins.dirs {
		os.RemoveAll(d)
	}
}

// requireKvnode skips under -short (only the checker tests run there).
func requireKvnode(t *testing.T) {
	t.Helper()
	if testing.Short() || kvnodeBin == "" {
		t.Skip("chaos scenarios start real processes; skipped under -short")
	}
	trackKvnodeSources(t, "")
}

// tracked holds the build tags whose kvnode sources go test already records
// as inputs of this run (see srcdeps); it must happen inside a test, where
// go test's input log is open.
var tracked sync.Map

func trackKvnodeSources(t *testing.T, tags string) {
	t.Helper()
	if _, done := tracked.LoadOrStore(tags, true); done {
		return
	}
	if err := srcdeps.Track(tags, "github.com/ridgeline-kv/ridgeline/cmd/kvnode"); err != nil {
		t.Fatal(err)
	}
}

// requireNetns skips a test that makes partitions when it cannot.
func requireNetns(t *testing.T) {
	t.Helper()
	if netnsReason != "" {
		t.Skipf("needs root and iptables in a private network namespace: %s", netnsReason)
	}
}
