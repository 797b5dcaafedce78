package chaos

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"os"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
)

// Operation kinds and outcomes of the register workload.
const (
	opGet = "get"
	opPut = "put"
	opCAS = "cas" // Put with IfVersion

	statusOK       = "ok"
	statusMismatch = "mismatch" // CAS refused: version differed
	statusUnknown  = "unknown"  // may or may not have been applied
	statusFailed   = "failed"   // certainly not applied (or a read that failed)
)

// regOp is one operation of a register history, as recorded.
type regOp struct {
	Client int    `json:"client"`
	Key    string `json:"key"`
	Kind   string `json:"kind"`
	// Input: the value written, and for a CAS the version (and its value,
	// known from the read that saw it) it requires; version 0 = absent.
	Value      string `json:"value,omitempty"`
	ExpVersion uint64 `json:"exp_version,omitempty"`
	ExpValue   string `json:"exp_value,omitempty"`
	// Output.
	Status  string `json:"status"`
	Found   bool   `json:"found,omitempty"`
	Out     string `json:"out,omitempty"`     // value read
	Version uint64 `json:"version,omitempty"` // read, written, or found by a refused CAS
	Err     string `json:"err,omitempty"`
	// Nanoseconds since the start of the history; Return is -1 while pending.
	Call   int64 `json:"call"`
	Return int64 `json:"return"`
}

// history records operations from concurrent clients.
type history struct {
	start time.Time
	mu    sync.Mutex
	ops   []regOp
}

func newHistory() *history { return &history{start: time.Now()} }

func (h *history) now() int64 { return time.Since(h.start).Nanoseconds() }

func (h *history) add(op regOp) {
	h.mu.Lock()
	h.ops = append(h.ops, op)
	h.mu.Unlock()
}

func (h *history) snapshot() []regOp {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]regOp(nil), h.ops...)
}

// regState is the state of one register: Version 0 with Exists means the
// version is not known (the value came from a write of unknown outcome).
type regState struct {
	Exists  bool
	Value   string
	Version uint64
}

type regInput struct {
	Key        string
	Kind       string
	Value      string
	ExpVersion uint64
	ExpValue   string
}

type regOutput struct {
	Status  string
	Found   bool
	Value   string
	Version uint64
}

// casMatches says whether a CAS requiring (ExpVersion, ExpValue) applies to
// s. Values are unique, so a version names one value and vice versa.
func casMatches(s regState, in regInput) bool {
	if in.ExpVersion == 0 {
		return !s.Exists
	}
	if !s.Exists || s.Value != in.ExpValue {
		return false
	}
	return s.Version == 0 || s.Version == in.ExpVersion
}

// newerVersion: versions are raft indexes, so each write to a key gets a
// higher one than the write before it.
func newerVersion(s regState, v uint64) bool {
	return v > 0 && (!s.Exists || s.Version == 0 || v > s.Version)
}

// regStep is the sequential specification of one versioned register.
func regStep(s regState, in regInput, out regOutput) (bool, regState) {
	switch in.Kind {
	case opGet:
		if out.Found != s.Exists {
			return false, s
		}
		if !out.Found {
			return true, s
		}
		if out.Value != s.Value || (s.Version != 0 && out.Version != s.Version) {
			return false, s
		}
		s.Version = out.Version
		return true, s
	case opPut:
		switch out.Status {
		case statusOK:
			return newerVersion(s, out.Version), regState{Exists: true, Value: in.Value, Version: out.Version}
		case statusUnknown:
			return true, regState{Exists: true, Value: in.Value}
		}
	case opCAS:
		match := casMatches(s, in)
		switch out.Status {
		case statusOK:
			return match && newerVersion(s, out.Version), regState{Exists: true, Value: in.Value, Version: out.Version}
		case statusMismatch:
			if match || out.Version == in.ExpVersion {
				return false, s
			}
			if !s.Exists {
				return out.Version == 0, s
			}
			if s.Version != 0 {
				return out.Version == s.Version, s
			}
			s.Version = out.Version
			return out.Version != 0, s
		case statusUnknown:
			if match {
				return true, regState{Exists: true, Value: in.Value}
			}
			return true, s
		}
	}
	return false, s
}

// registerModel is a porcupine model of independent versioned registers,
// partitioned by key.
var registerModel = porcupine.Model{
	Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range h {
			k := op.Input.(regInput).Key
			if _, ok := byKey[k]; !ok {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], op)
		}
		sort.Strings(keys)
		var out [][]porcupine.Operation
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() any { return regState{} },
	Step: func(state, input, output any) (bool, any) {
		return regStep(state.(regState), input.(regInput), output.(regOutput))
	},
	Hash: func(state any) uint64 {
		s := state.(regState)
		h := fnv.New64a()
		fmt.Fprintf(h, "%t|%s|%d", s.Exists, s.Value, s.Version)
		return h.Sum64()
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(regInput), output.(regOutput)
		switch in.Kind {
		case opGet:
			if !out.Found {
				return fmt.Sprintf("get(%s) → absent", in.Key)
			}
			return fmt.Sprintf("get(%s) → %s@%d", in.Key, out.Value, out.Version)
		case opPut:
			return fmt.Sprintf("put(%s, %s) → %s@%d", in.Key, in.Value, out.Status, out.Version)
		default:
			return fmt.Sprintf("cas(%s, %s@%d → %s) → %s@%d", in.Key, in.ExpValue, in.ExpVersion, in.Value, out.Status, out.Version)
		}
	},
	DescribeState: func(state any) string {
		s := state.(regState)
		if !s.Exists {
			return "absent"
		}
		if s.Version == 0 {
			return s.Value + "@?"
		}
		return s.Value + "@" + strconv.FormatUint(s.Version, 10)
	},
}

// porcupineOps converts a recorded history: failed operations are dropped
// (a failed read saw nothing; a failed write certainly did nothing), and an
// operation of unknown outcome never returns — it may take effect at any
// point after its call.
func porcupineOps(ops []regOp) []porcupine.Operation {
	var end int64
	for _, op := range ops {
		end = max(end, op.Call, op.Return)
	}
	end++
	var out []porcupine.Operation
	for _, op := range ops {
		if op.Status == statusFailed {
			continue
		}
		ret := op.Return
		if op.Status == statusUnknown || ret < 0 {
			ret = end
		}
		out = append(out, porcupine.Operation{
			ClientId: op.Client,
			Input:    regInput{Key: op.Key, Kind: op.Kind, Value: op.Value, ExpVersion: op.ExpVersion, ExpValue: op.ExpValue},
			Call:     op.Call,
			Output:   regOutput{Status: op.Status, Found: op.Found, Value: op.Out, Version: op.Version},
			Return:   ret,
		})
	}
	return out
}

// linResult is the outcome of a linearizability check.
type linResult struct {
	Result porcupine.CheckResult
	Ops    int
	Info   porcupine.LinearizationInfo
}

// checkLinearizable checks a register history with porcupine.
func checkLinearizable(ops []regOp, timeout time.Duration) linResult {
	pops := porcupineOps(ops)
	res, info := porcupine.CheckOperationsVerbose(registerModel, pops, timeout)
	return linResult{Result: res, Ops: len(pops), Info: info}
}

// writeVisualization writes porcupine's HTML visualisation of a check.
func (r linResult) writeVisualization(path string) error {
	return porcupine.VisualizePath(registerModel, r.Info, path)
}

// writeJSON writes v as indented JSON.
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", " ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// setResult is what the set workload knows about each insert.
type setResult struct {
	Status string // statusOK, statusUnknown or statusFailed
	Value  string
}

// checkSet checks the final contents of a set (key → value read back)
// against the inserts: every acknowledged insert is present with its value,
// and nothing appears that was never written or was certainly not applied.
func checkSet(inserts map[string]setResult, final map[string]string) []string {
	var bad []string
	keys := make([]string, 0, len(inserts))
	for k := range inserts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		in := inserts[k]
		v, ok := final[k]
		switch {
		case in.Status == statusOK && !ok:
			bad = append(bad, fmt.Sprintf("lost: acknowledged insert %s=%s is missing", k, in.Value))
		case ok && v != in.Value:
			bad = append(bad, fmt.Sprintf("corrupt: %s=%s, but %s was written", k, v, in.Value))
		case ok && in.Status == statusFailed:
			bad = append(bad, fmt.Sprintf("phantom: %s is present, but its insert failed as certainly not applied", k))
		}
	}
	var extra []string
	for k := range final {
		if _, ok := inserts[k]; !ok {
			extra = append(extra, k)
		}
	}
	sort.Strings(extra)
	for _, k := range extra {
		bad = append(bad, fmt.Sprintf("phantom: %s=%s was never written", k, final[k]))
	}
	return bad
}

// counterResult is what the counter workload knows about one counter.
type counterResult struct {
	Acked, Unknown, Failed int
	Returned               []int64 // values returned by acknowledged adds (delta 1)
}

// checkCounter checks a counter's final value: acked ≤ final ≤ acked +
// unknown, and acknowledged adds (exactly-once, delta 1) returned distinct
// values in [1, final].
func checkCounter(key string, r counterResult, final int64) []string {
	var bad []string
	if final < int64(r.Acked) {
		bad = append(bad, fmt.Sprintf("counter %s = %d, below the %d acknowledged adds: acknowledged adds were lost", key, final, r.Acked))
	}
	if final > int64(r.Acked+r.Unknown) {
		bad = append(bad, fmt.Sprintf("counter %s = %d, above %d acknowledged + %d unknown adds: an add was applied twice or a failed one applied", key, final, r.Acked, r.Unknown))
	}
	seen := map[int64]bool{}
	for _, v := range r.Returned {
		if seen[v] {
			bad = append(bad, fmt.Sprintf("counter %s: two acknowledged adds both returned %d", key, v))
		}
		seen[v] = true
		if v < 1 || v > final {
			bad = append(bad, fmt.Sprintf("counter %s: an acknowledged add returned %d, outside [1, final %d]", key, v, final))
		}
	}
	return bad
}
