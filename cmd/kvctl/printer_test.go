package main

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/ridgeline-kv/ridgeline/client"
	"github.com/ridgeline-kv/ridgeline/ring"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

// goldenCase is one printed result and the name of its golden files.
type goldenCase struct {
	name string
	v    tabler
}

// goldenPrints prints each case as a table and as JSON and compares them
// with testdata/<name>.txt and testdata/<name>.json.
func goldenPrints(t *testing.T, tests []goldenCase) {
	t.Helper()
	for _, tt := range tests {
		for _, format := range []string{"table", "json"} {
			t.Run(tt.name+"/"+format, func(t *testing.T) {
				a := &app{flags: globalFlags{output: format}}
				var buf bytes.Buffer
				a.stdout = &buf
				if err := a.print(tt.v); err != nil {
					t.Fatal(err)
				}
				ext := ".txt"
				if format == "json" {
					ext = ".json"
				}
				golden(t, tt.name+ext, buf.Bytes())
			})
		}
	}
}

func testMap() *ring.Map {
	m := &ring.Map{ClusterID: "c-1234", Epoch: 7, ShardCount: 2, RF: 3, MetaVoters: []string{"n1", "n2", "n3"}, NextReplicaSeq: 7}
	for _, id := range []string{"n1", "n2", "n3"} {
		m.Nodes = append(m.Nodes, ring.Node{ID: id, Incarnation: 1, Addr: "127.0.0." + id[1:] + ":7001", State: ring.NodeActive})
	}
	m.Shards = []ring.Shard{
		{ID: 0, Replicas: []ring.Replica{{ID: "0/n1/0", NodeID: "n1"}, {ID: "0/n2/1", NodeID: "n2"}, {ID: "0/n3/2", NodeID: "n3"}}},
		{ID: 1, Replicas: []ring.Replica{{ID: "1/n2/3", NodeID: "n2"}, {ID: "1/n3/4", NodeID: "n3"}, {ID: "1/n1/6", NodeID: "n1", Role: ring.RoleLearner}}},
	}
	return m
}

func testStatus() *statusResult {
	reports := map[string]*client.NodeStatus{
		"n1": {NodeID: "n1", Epoch: 7, Replicas: []client.ReplicaStatus{
			{Meta: true, State: "Leader"},
			{Shard: 0, State: "Leader", AppliedIndex: 120},
			{Shard: 1, State: "Follower", LeaderID: "n2", AppliedIndex: 80},
		}},
		"n2": {NodeID: "n2", Epoch: 7, Replicas: []client.ReplicaStatus{
			{Meta: true, State: "Follower"},
			{Shard: 0, State: "Follower", LeaderID: "n1", AppliedIndex: 118},
			{Shard: 1, State: "Leader", AppliedIndex: 95},
		}},
	}
	errs := map[string]error{"n3": errors.New("client: unavailable: node n3 at 127.0.0.3:7001 did not answer: context deadline exceeded")}
	return buildStatus(testMap(), reports, errs)
}

func TestPrinters_Golden(t *testing.T) {
	tests := []goldenCase{
		{"get", &getResult{Key: "greeting", Value: value("hello"), Version: 42}},
		{"get_version", &getResult{Key: "greeting", Value: value("hello"), Version: 42, showVersion: true}},
		{"get_binary", &getResult{Key: "bin", Value: value{0xff, 0x00, 0xfe}, Version: 3, showVersion: true}},
		{"scan", &scanResult{Count: 3, More: true, Cursor: "YQ", KVs: []scanKV{
			{Key: "a", Version: 5, Value: value("apple")},
			{Key: "b", Version: 6, Value: value("line\nbreak")},
			{Key: "{u1}/c", Version: 9, Value: value("0123456789012345678901234567890123456789012345678901234567890123456789")},
		}}},
		{"scan_keys_only", &scanResult{Count: 1, KVs: []scanKV{{Key: "a", Version: 5}}, keysOnly: true}},
		{"status", testStatus()},
		{"txn", &txnResult{Succeeded: true, Results: []txnOpResult{
			{Op: "put", Key: "{u}/a", Version: 10},
			{Op: "add", Key: "{u}/n", Version: 10, Counter: ptr(int64(3))},
			{Op: "get", Key: "{u}/a", Version: 10, Found: ptr(true), Value: value("x")},
		}}},
	}
	goldenPrints(t, tests)
}

func ptr[T any](v T) *T { return &v }
