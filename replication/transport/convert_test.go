package transport

import (
	"reflect"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	"github.com/ridgeline-kv/ridgeline/replication/kvpb"
)

// wire marshals and unmarshals m, as gRPC does between the two ends.
func wire[M proto.Message](t testing.TB, m M, into M) M {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatalf("marshal %T: %v", m, err)
	}
	if err := proto.Unmarshal(b, into); err != nil {
		t.Fatalf("unmarshal %T: %v", m, err)
	}
	return into
}

var testHeader = raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("7/node-a/12"), Addr: []byte("127.0.0.2:7001")}

func testEntries(n, size int) []*raft.Log {
	logs := make([]*raft.Log, n)
	for i := range logs {
		data := make([]byte, size)
		for j := range data {
			data[j] = byte(i + j)
		}
		logs[i] = &raft.Log{
			Index:      uint64(100 + i),
			Term:       3,
			Type:       raft.LogType(i % 6),
			Data:       data,
			AppendedAt: time.Unix(0, 1_700_000_000_000_000_000+int64(i)),
		}
		if i%2 == 0 {
			logs[i].Extensions = []byte{0xEE, byte(i)}
		}
	}
	return logs
}

func TestConvert_RoundTrip(t *testing.T) {
	const target = raft.ServerID("7/node-b/3")
	tests := []struct {
		name      string
		roundTrip func(t *testing.T) (got, want any)
	}{
		{"AppendEntriesRequest/entries", func(t *testing.T) (any, any) {
			want := &raft.AppendEntriesRequest{RPCHeader: testHeader, Term: 3, Leader: []byte("127.0.0.2:7001"),
				PrevLogEntry: 99, PrevLogTerm: 2, Entries: testEntries(5, 33), LeaderCommitIndex: 98}
			want.Entries[1].AppendedAt = time.Time{}
			p := wire(t, appendEntriesRequestToProto(target, want), new(kvpb.AppendEntriesRequest))
			if p.Header.Target != string(target) {
				t.Errorf("target = %q, want %q", p.Header.Target, target)
			}
			return appendEntriesRequestFromProto(p), want
		}},
		{"AppendEntriesRequest/heartbeat", func(t *testing.T) (any, any) {
			want := &raft.AppendEntriesRequest{RPCHeader: testHeader, Term: 9, Leader: []byte("x")}
			return appendEntriesRequestFromProto(wire(t, appendEntriesRequestToProto(target, want), new(kvpb.AppendEntriesRequest))), want
		}},
		{"AppendEntriesRequest/zero", func(t *testing.T) (any, any) {
			want := &raft.AppendEntriesRequest{}
			return appendEntriesRequestFromProto(wire(t, appendEntriesRequestToProto(target, want), new(kvpb.AppendEntriesRequest))), want
		}},
		{"AppendEntriesResponse", func(t *testing.T) (any, any) {
			want := &raft.AppendEntriesResponse{RPCHeader: testHeader, Term: 4, LastLog: 1234, Success: true, NoRetryBackoff: true}
			got := new(raft.AppendEntriesResponse)
			appendEntriesResponseFromProto(wire(t, appendEntriesResponseToProto(want), new(kvpb.AppendEntriesResponse)), got)
			return got, want
		}},
		{"RequestVoteRequest", func(t *testing.T) (any, any) {
			want := &raft.RequestVoteRequest{RPCHeader: testHeader, Term: 5, Candidate: []byte("c"), LastLogIndex: 77, LastLogTerm: 4, LeadershipTransfer: true}
			return requestVoteRequestFromProto(wire(t, requestVoteRequestToProto(target, want), new(kvpb.RequestVoteRequest))), want
		}},
		{"RequestVoteResponse", func(t *testing.T) (any, any) {
			want := &raft.RequestVoteResponse{RPCHeader: testHeader, Term: 5, Peers: []byte("p"), Granted: true}
			got := new(raft.RequestVoteResponse)
			requestVoteResponseFromProto(wire(t, requestVoteResponseToProto(want), new(kvpb.RequestVoteResponse)), got)
			return got, want
		}},
		{"RequestPreVoteRequest", func(t *testing.T) (any, any) {
			want := &raft.RequestPreVoteRequest{RPCHeader: testHeader, Term: 6, LastLogIndex: 8, LastLogTerm: 5}
			return requestPreVoteRequestFromProto(wire(t, requestPreVoteRequestToProto(target, want), new(kvpb.RequestPreVoteRequest))), want
		}},
		{"RequestPreVoteResponse", func(t *testing.T) (any, any) {
			want := &raft.RequestPreVoteResponse{RPCHeader: testHeader, Term: 6, Granted: true}
			got := new(raft.RequestPreVoteResponse)
			requestPreVoteResponseFromProto(wire(t, requestPreVoteResponseToProto(want), new(kvpb.RequestPreVoteResponse)), got)
			return got, want
		}},
		{"TimeoutNowRequest", func(t *testing.T) (any, any) {
			want := &raft.TimeoutNowRequest{RPCHeader: testHeader}
			return timeoutNowRequestFromProto(wire(t, timeoutNowRequestToProto(target, want), new(kvpb.TimeoutNowRequest))), want
		}},
		{"TimeoutNowResponse", func(t *testing.T) (any, any) {
			want := &raft.TimeoutNowResponse{RPCHeader: testHeader}
			got := new(raft.TimeoutNowResponse)
			timeoutNowResponseFromProto(wire(t, timeoutNowResponseToProto(want), new(kvpb.TimeoutNowResponse)), got)
			return got, want
		}},
		{"InstallSnapshotRequest", func(t *testing.T) (any, any) {
			want := &raft.InstallSnapshotRequest{RPCHeader: testHeader, SnapshotVersion: raft.SnapshotVersionMax, Term: 7,
				Leader: []byte("l"), LastLogIndex: 500, LastLogTerm: 6, Peers: []byte("peers"),
				Configuration: []byte("conf"), ConfigurationIndex: 450, Size: 3 << 20}
			return installSnapshotRequestFromProto(wire(t, installSnapshotRequestToProto(target, want), new(kvpb.InstallSnapshotRequest))), want
		}},
		{"InstallSnapshotResponse", func(t *testing.T) (any, any) {
			want := &raft.InstallSnapshotResponse{RPCHeader: testHeader, Term: 7, Success: true}
			got := new(raft.InstallSnapshotResponse)
			installSnapshotResponseFromProto(wire(t, installSnapshotResponseToProto(want), new(kvpb.InstallSnapshotResponse)), got)
			return got, want
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, want := tt.roundTrip(t)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("round trip:\n got %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestIsHeartbeat(t *testing.T) {
	tests := []struct {
		name string
		req  raft.AppendEntriesRequest
		want bool
	}{
		{"heartbeat via Addr", raft.AppendEntriesRequest{RPCHeader: testHeader, Term: 2}, true},
		{"heartbeat via Leader", raft.AppendEntriesRequest{Term: 2, Leader: []byte("l")}, true},
		{"no term", raft.AppendEntriesRequest{RPCHeader: testHeader}, false},
		{"no leader", raft.AppendEntriesRequest{Term: 2}, false},
		{"prev log", raft.AppendEntriesRequest{RPCHeader: testHeader, Term: 2, PrevLogEntry: 1}, false},
		{"prev term", raft.AppendEntriesRequest{RPCHeader: testHeader, Term: 2, PrevLogTerm: 1}, false},
		{"commit", raft.AppendEntriesRequest{RPCHeader: testHeader, Term: 2, LeaderCommitIndex: 1}, false},
		{"entries", raft.AppendEntriesRequest{RPCHeader: testHeader, Term: 2, Entries: testEntries(1, 1)}, false},
	}
	for _, tt := range tests {
		if got := isHeartbeat(&tt.req); got != tt.want {
			t.Errorf("%s: isHeartbeat = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// FuzzAppendEntriesCodec: decode(encode(x)) == x for arbitrary field values,
// and arbitrary bytes on the wire never make the conversion panic.
func FuzzAppendEntriesCodec(f *testing.F) {
	f.Add(uint64(3), uint64(99), uint64(2), uint64(98), []byte("cmd"), []byte{}, int64(1), uint8(0), 3)
	f.Add(uint64(0), uint64(0), uint64(0), uint64(0), []byte{}, []byte("ext"), int64(0), uint8(5), 0)
	f.Fuzz(func(t *testing.T, term, prev, prevTerm, commit uint64, data, ext []byte, at int64, typ uint8, n int) {
		n = max(0, n%8)
		if len(data) == 0 {
			data = nil
		}
		if len(ext) == 0 {
			ext = nil
		}
		want := &raft.AppendEntriesRequest{RPCHeader: testHeader, Term: term, PrevLogEntry: prev, PrevLogTerm: prevTerm, LeaderCommitIndex: commit}
		for i := range n {
			want.Entries = append(want.Entries, &raft.Log{Index: prev + uint64(i), Term: term, Type: raft.LogType(typ), Data: data, Extensions: ext, AppendedAt: unixNanoToTime(at)})
		}
		got := appendEntriesRequestFromProto(wire(t, appendEntriesRequestToProto("x", want), new(kvpb.AppendEntriesRequest)))
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, want)
		}
		// Garbage: the fuzzed bytes as a wire message.
		var p kvpb.AppendEntriesRequest
		if proto.Unmarshal(data, &p) == nil {
			_ = appendEntriesRequestFromProto(&p)
		}
		var c kvpb.InstallSnapshotChunk
		if proto.Unmarshal(ext, &c) == nil && c.Request != nil {
			_ = installSnapshotRequestFromProto(c.Request)
		}
	})
}
