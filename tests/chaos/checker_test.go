package chaos

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// The checkers must be able to fail: these feed them histories that are
// wrong on purpose (and some that are right despite unknown outcomes).

func put(client int, key, value string, call, ret int64, status string, version uint64) regOp {
	return regOp{Client: client, Key: key, Kind: opPut, Value: value, Status: status, Version: version, Call: call, Return: ret}
}

func get(client int, key string, call, ret int64, found bool, value string, version uint64) regOp {
	return regOp{Client: client, Key: key, Kind: opGet, Status: statusOK, Found: found, Out: value, Version: version, Call: call, Return: ret}
}

func cas(client int, key string, expVersion uint64, expValue, value string, call, ret int64, status string, version uint64) regOp {
	return regOp{Client: client, Key: key, Kind: opCAS, Value: value, ExpVersion: expVersion, ExpValue: expValue, Status: status, Version: version, Call: call, Return: ret}
}

func TestChecker_Linearizability(t *testing.T) {
	for _, tc := range []struct {
		name string
		ops  []regOp
		want porcupine.CheckResult
	}{
		{"read of a value never written", []regOp{
			put(0, "k", "a", 0, 10, statusOK, 5),
			get(1, "k", 20, 30, true, "zzz", 5),
		}, porcupine.Illegal},
		{"stale read after an acknowledged write", []regOp{
			put(0, "k", "a", 0, 10, statusOK, 5),
			put(0, "k", "b", 20, 30, statusOK, 7),
			get(1, "k", 40, 50, true, "a", 5),
		}, porcupine.Illegal},
		{"acknowledged write lost", []regOp{
			put(0, "k", "a", 0, 10, statusOK, 5),
			get(1, "k", 20, 30, false, "", 0),
		}, porcupine.Illegal},
		{"write certainly not applied, yet read", []regOp{
			put(0, "k", "a", 0, 10, statusFailed, 0),
			get(1, "k", 20, 30, true, "a", 5),
		}, porcupine.Illegal},
		{"two CASes from the same version both succeed", []regOp{
			put(0, "k", "a", 0, 10, statusOK, 5),
			cas(1, "k", 5, "a", "b", 20, 30, statusOK, 6),
			cas(2, "k", 5, "a", "c", 20, 30, statusOK, 7),
		}, porcupine.Illegal},
		{"CAS refused although the version matched", []regOp{
			put(0, "k", "a", 0, 10, statusOK, 5),
			cas(1, "k", 5, "a", "b", 20, 30, statusMismatch, 5),
		}, porcupine.Illegal},
		{"version goes backwards", []regOp{
			put(0, "k", "a", 0, 10, statusOK, 9),
			put(0, "k", "b", 20, 30, statusOK, 4),
		}, porcupine.Illegal},
		{"same value read with another version", []regOp{
			put(0, "k", "a", 0, 10, statusOK, 5),
			get(1, "k", 20, 30, true, "a", 6),
		}, porcupine.Illegal},
		{"a violation on one key among fine ones", []regOp{
			put(0, "x", "a", 0, 10, statusOK, 5),
			get(1, "x", 20, 30, true, "a", 5),
			put(0, "y", "b", 0, 10, statusOK, 6),
			get(1, "y", 20, 30, false, "", 0),
		}, porcupine.Illegal},

		{"concurrent read may see the old or the new value", []regOp{
			put(0, "k", "a", 0, 10, statusOK, 5),
			put(0, "k", "b", 20, 40, statusOK, 7),
			get(1, "k", 25, 30, true, "a", 5),
			get(2, "k", 26, 35, true, "b", 7),
		}, porcupine.Ok},
		{"unknown write applied later", []regOp{
			put(0, "k", "a", 0, 10, statusUnknown, 0),
			get(1, "k", 20, 30, false, "", 0),
			get(1, "k", 40, 50, true, "a", 8),
		}, porcupine.Ok},
		{"unknown write never applied", []regOp{
			put(0, "k", "a", 0, 10, statusOK, 5),
			put(1, "k", "b", 20, 30, statusUnknown, 0),
			get(2, "k", 40, 50, true, "a", 5),
		}, porcupine.Ok},
		{"CAS chain with a refusal", []regOp{
			cas(0, "k", 0, "", "a", 0, 10, statusOK, 3),
			cas(1, "k", 0, "", "b", 20, 30, statusMismatch, 3),
			cas(1, "k", 3, "a", "b", 40, 50, statusOK, 9),
			get(2, "k", 60, 70, true, "b", 9),
		}, porcupine.Ok},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := checkLinearizable(tc.ops, 10*time.Second)
			if res.Result != tc.want {
				t.Fatalf("checker said %s, want %s for %+v", res.Result, tc.want, tc.ops)
			}
			if res.Result == porcupine.Illegal {
				html := filepath.Join(t.TempDir(), "v.html")
				if err := res.writeVisualization(html); err != nil {
					t.Fatalf("visualization: %v", err)
				}
				if b, err := os.ReadFile(html); err != nil || !strings.Contains(string(b), "<html") {
					t.Fatalf("visualization not written: %v", err)
				}
			}
		})
	}
}

func TestChecker_Set(t *testing.T) {
	inserts := map[string]setResult{
		"set/a": {statusOK, "1"},
		"set/b": {statusUnknown, "2"},
		"set/c": {statusFailed, "3"},
	}
	if bad := checkSet(inserts, map[string]string{"set/a": "1", "set/b": "2"}); len(bad) != 0 {
		t.Fatalf("a correct set was flagged: %v", bad)
	}
	if bad := checkSet(inserts, map[string]string{"set/a": "1"}); len(bad) != 0 {
		t.Fatalf("an unknown insert that did not happen was flagged: %v", bad)
	}
	for name, final := range map[string]map[string]string{
		"lost acknowledged insert": {"set/b": "2"},
		"value never written":      {"set/a": "1", "set/zz": "9"},
		"corrupt value":            {"set/a": "2"},
		"failed insert applied":    {"set/a": "1", "set/c": "3"},
	} {
		if bad := checkSet(inserts, final); len(bad) == 0 {
			t.Errorf("%s: not detected", name)
		}
	}
}

func TestChecker_Counter(t *testing.T) {
	r := counterResult{Acked: 3, Unknown: 2, Failed: 4, Returned: []int64{1, 2, 4}}
	for _, final := range []int64{4, 5} {
		if bad := checkCounter("c", r, final); len(bad) != 0 {
			t.Errorf("final %d flagged: %v", final, bad)
		}
	}
	for _, final := range []int64{2, 6} {
		if bad := checkCounter("c", r, final); len(bad) == 0 {
			t.Errorf("final %d (acked 3, unknown 2) not detected", final)
		}
	}
	dup := counterResult{Acked: 2, Returned: []int64{1, 1}}
	if bad := checkCounter("c", dup, 2); len(bad) == 0 {
		t.Error("two adds returning the same value not detected")
	}
}
