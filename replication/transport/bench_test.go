package transport

import (
	"testing"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	"github.com/ridgeline-kv/ridgeline/replication/kvpb"
)

const benchEntries, benchEntrySize = 64, 256

func benchRequest() *raft.AppendEntriesRequest {
	return &raft.AppendEntriesRequest{RPCHeader: testHeader, Term: 3, Leader: []byte("127.0.0.2:7001"),
		PrevLogEntry: 99, PrevLogTerm: 3, Entries: testEntries(benchEntries, benchEntrySize), LeaderCommitIndex: 99}
}

func benchPair(b *testing.B) (*Transport, raft.ServerAddress) {
	a := startNode(b, "127.0.0.1", Config{})
	n := startNode(b, "127.0.0.1", Config{})
	ta := mustTransport(b, a.mgr, "1/a/1")
	tb := mustTransport(b, n.mgr, "1/b/1")
	serve(b, tb, okHandler)
	return ta, raft.ServerAddress(n.addr)
}

// BenchmarkTransport_AppendEntries: unary round trips over real sockets,
// 64 entries of 256 B each.
func BenchmarkTransport_AppendEntries(b *testing.B) {
	ta, addr := benchPair(b)
	req := benchRequest()
	var resp raft.AppendEntriesResponse
	b.SetBytes(benchEntries * benchEntrySize)
	b.ReportAllocs()
	for b.Loop() {
		if err := ta.AppendEntries("1/b/1", addr, req, &resp); err != nil || !resp.Success {
			b.Fatalf("AppendEntries: %+v, %v", resp, err)
		}
	}
}

// BenchmarkPipeline_AppendEntries: the same requests through a pipeline,
// with up to pipelineMaxInFlight outstanding.
func BenchmarkPipeline_AppendEntries(b *testing.B) {
	ta, addr := benchPair(b)
	p, err := ta.AppendEntriesPipeline("1/b/1", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	req := benchRequest()
	consumed := make(chan error, 1)
	sent := make(chan int, 1)
	go func() {
		n, want := 0, -1
		for want < 0 || n < want {
			select {
			case f := <-p.Consumer():
				if err := f.Error(); err != nil {
					consumed <- err
					return
				}
				n++
			case want = <-sent:
			}
		}
		consumed <- nil
	}()
	b.SetBytes(benchEntries * benchEntrySize)
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		if _, err := p.AppendEntries(req, new(raft.AppendEntriesResponse)); err != nil {
			b.Fatal(err)
		}
		n++
	}
	sent <- n
	if err := <-consumed; err != nil {
		b.Fatal(err)
	}
}

// BenchmarkConvert_AppendEntries: raft → proto → wire → proto → raft, the
// conversion and codec work of one request without the network.
func BenchmarkConvert_AppendEntries(b *testing.B) {
	req := benchRequest()
	b.Run("toProto", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = appendEntriesRequestToProto("1/b/1", req)
		}
	})
	wire, err := proto.Marshal(appendEntriesRequestToProto("1/b/1", req))
	if err != nil {
		b.Fatal(err)
	}
	var p kvpb.AppendEntriesRequest
	if err := proto.Unmarshal(wire, &p); err != nil {
		b.Fatal(err)
	}
	b.Run("fromProto", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = appendEntriesRequestFromProto(&p)
		}
	})
	b.Run("roundTrip", func(b *testing.B) {
		b.SetBytes(benchEntries * benchEntrySize)
		b.ReportAllocs()
		for b.Loop() {
			buf, err := proto.Marshal(appendEntriesRequestToProto("1/b/1", req))
			if err != nil {
				b.Fatal(err)
			}
			var q kvpb.AppendEntriesRequest
			if err := proto.Unmarshal(buf, &q); err != nil {
				b.Fatal(err)
			}
			_ = appendEntriesRequestFromProto(&q)
		}
	})
}
