package transport

import (
	"time"

	"github.com/hashicorp/raft"

	"github.com/ridgeline-kv/ridgeline/replication/kvpb"
)

// Conversions between hashicorp/raft's RPC structs and the kvpb wire
// messages. They are on the replication hot path, so they alias byte slices
// instead of copying (raft never mutates a request after sending it, and
// proto unmarshalling does not alias gRPC's receive buffers) and allocate
// each message together with its header.

func headerToProto(h *raft.RPCHeader, target raft.ServerID, dst *kvpb.RPCHeader) *kvpb.RPCHeader {
	dst.ProtocolVersion = int64(h.ProtocolVersion)
	dst.Id = h.ID
	dst.Addr = h.Addr
	dst.Target = string(target)
	return dst
}

func headerFromProto(p *kvpb.RPCHeader) raft.RPCHeader {
	if p == nil {
		return raft.RPCHeader{}
	}
	return raft.RPCHeader{
		ProtocolVersion: raft.ProtocolVersion(p.ProtocolVersion),
		ID:              p.Id,
		Addr:            p.Addr,
	}
}

func timeToUnixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func unixNanoToTime(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// entriesSize is the payload size of a batch, used to scale its deadline.
func entriesSize(entries []*raft.Log) int {
	n := 0
	for _, e := range entries {
		n += len(e.Data) + len(e.Extensions)
	}
	return n
}

type appendEntriesRequestPB struct {
	req kvpb.AppendEntriesRequest
	hdr kvpb.RPCHeader
}

func appendEntriesRequestToProto(target raft.ServerID, r *raft.AppendEntriesRequest) *kvpb.AppendEntriesRequest {
	m := new(appendEntriesRequestPB)
	p := &m.req
	p.Header = headerToProto(&r.RPCHeader, target, &m.hdr)
	p.Term = r.Term
	p.Leader = r.Leader
	p.PrevLogEntry = r.PrevLogEntry
	p.PrevLogTerm = r.PrevLogTerm
	p.LeaderCommitIndex = r.LeaderCommitIndex
	if n := len(r.Entries); n > 0 {
		logs := make([]kvpb.RaftLog, n)
		p.Entries = make([]*kvpb.RaftLog, n)
		for i, e := range r.Entries {
			l := &logs[i]
			l.Index = e.Index
			l.Term = e.Term
			l.Type = kvpb.RaftLog_Type(e.Type)
			l.Data = e.Data
			l.Extensions = e.Extensions
			l.AppendedAtUnixNano = timeToUnixNano(e.AppendedAt)
			p.Entries[i] = l
		}
	}
	return p
}

func appendEntriesRequestFromProto(p *kvpb.AppendEntriesRequest) *raft.AppendEntriesRequest {
	r := &raft.AppendEntriesRequest{
		RPCHeader:         headerFromProto(p.Header),
		Term:              p.Term,
		Leader:            p.Leader,
		PrevLogEntry:      p.PrevLogEntry,
		PrevLogTerm:       p.PrevLogTerm,
		LeaderCommitIndex: p.LeaderCommitIndex,
	}
	if n := len(p.Entries); n > 0 {
		logs := make([]raft.Log, n)
		r.Entries = make([]*raft.Log, n)
		for i, e := range p.Entries {
			l := &logs[i]
			l.Index = e.Index
			l.Term = e.Term
			l.Type = raft.LogType(e.Type)
			l.Data = e.Data
			l.Extensions = e.Extensions
			l.AppendedAt = unixNanoToTime(e.AppendedAtUnixNano)
			r.Entries[i] = l
		}
	}
	return r
}

// isHeartbeat mirrors raft's NetworkTransport: an AppendEntries without
// entries, previous log or commit index, from a known leader.
func isHeartbeat(r *raft.AppendEntriesRequest) bool {
	leader := r.Addr
	if len(leader) == 0 {
		leader = r.Leader
	}
	return r.Term != 0 && leader != nil &&
		r.PrevLogEntry == 0 && r.PrevLogTerm == 0 &&
		len(r.Entries) == 0 && r.LeaderCommitIndex == 0
}

type appendEntriesResponsePB struct {
	resp kvpb.AppendEntriesResponse
	hdr  kvpb.RPCHeader
}

func appendEntriesResponseToProto(r *raft.AppendEntriesResponse) *kvpb.AppendEntriesResponse {
	m := new(appendEntriesResponsePB)
	p := &m.resp
	p.Header = headerToProto(&r.RPCHeader, "", &m.hdr)
	p.Term = r.Term
	p.LastLog = r.LastLog
	p.Success = r.Success
	p.NoRetryBackoff = r.NoRetryBackoff
	return p
}

func appendEntriesResponseFromProto(p *kvpb.AppendEntriesResponse, r *raft.AppendEntriesResponse) {
	r.RPCHeader = headerFromProto(p.Header)
	r.Term = p.Term
	r.LastLog = p.LastLog
	r.Success = p.Success
	r.NoRetryBackoff = p.NoRetryBackoff
}

func requestVoteRequestToProto(target raft.ServerID, r *raft.RequestVoteRequest) *kvpb.RequestVoteRequest {
	return &kvpb.RequestVoteRequest{
		Header:             headerToProto(&r.RPCHeader, target, new(kvpb.RPCHeader)),
		Term:               r.Term,
		Candidate:          r.Candidate,
		LastLogIndex:       r.LastLogIndex,
		LastLogTerm:        r.LastLogTerm,
		LeadershipTransfer: r.LeadershipTransfer,
	}
}

func requestVoteRequestFromProto(p *kvpb.RequestVoteRequest) *raft.RequestVoteRequest {
	return &raft.RequestVoteRequest{
		RPCHeader:          headerFromProto(p.Header),
		Term:               p.Term,
		Candidate:          p.Candidate,
		LastLogIndex:       p.LastLogIndex,
		LastLogTerm:        p.LastLogTerm,
		LeadershipTransfer: p.LeadershipTransfer,
	}
}

func requestVoteResponseToProto(r *raft.RequestVoteResponse) *kvpb.RequestVoteResponse {
	return &kvpb.RequestVoteResponse{
		Header:  headerToProto(&r.RPCHeader, "", new(kvpb.RPCHeader)),
		Term:    r.Term,
		Peers:   r.Peers,
		Granted: r.Granted,
	}
}

func requestVoteResponseFromProto(p *kvpb.RequestVoteResponse, r *raft.RequestVoteResponse) {
	r.RPCHeader = headerFromProto(p.Header)
	r.Term = p.Term
	r.Peers = p.Peers
	r.Granted = p.Granted
}

func requestPreVoteRequestToProto(target raft.ServerID, r *raft.RequestPreVoteRequest) *kvpb.RequestPreVoteRequest {
	return &kvpb.RequestPreVoteRequest{
		Header:       headerToProto(&r.RPCHeader, target, new(kvpb.RPCHeader)),
		Term:         r.Term,
		LastLogIndex: r.LastLogIndex,
		LastLogTerm:  r.LastLogTerm,
	}
}

func requestPreVoteRequestFromProto(p *kvpb.RequestPreVoteRequest) *raft.RequestPreVoteRequest {
	return &raft.RequestPreVoteRequest{
		RPCHeader:    headerFromProto(p.Header),
		Term:         p.Term,
		LastLogIndex: p.LastLogIndex,
		LastLogTerm:  p.LastLogTerm,
	}
}

func requestPreVoteResponseToProto(r *raft.RequestPreVoteResponse) *kvpb.RequestPreVoteResponse {
	return &kvpb.RequestPreVoteResponse{
		Header:  headerToProto(&r.RPCHeader, "", new(kvpb.RPCHeader)),
		Term:    r.Term,
		Granted: r.Granted,
	}
}

func requestPreVoteResponseFromProto(p *kvpb.RequestPreVoteResponse, r *raft.RequestPreVoteResponse) {
	r.RPCHeader = headerFromProto(p.Header)
	r.Term = p.Term
	r.Granted = p.Granted
}

func timeoutNowRequestToProto(target raft.ServerID, r *raft.TimeoutNowRequest) *kvpb.TimeoutNowRequest {
	return &kvpb.TimeoutNowRequest{Header: headerToProto(&r.RPCHeader, target, new(kvpb.RPCHeader))}
}

func timeoutNowRequestFromProto(p *kvpb.TimeoutNowRequest) *raft.TimeoutNowRequest {
	return &raft.TimeoutNowRequest{RPCHeader: headerFromProto(p.Header)}
}

func timeoutNowResponseToProto(r *raft.TimeoutNowResponse) *kvpb.TimeoutNowResponse {
	return &kvpb.TimeoutNowResponse{Header: headerToProto(&r.RPCHeader, "", new(kvpb.RPCHeader))}
}

func timeoutNowResponseFromProto(p *kvpb.TimeoutNowResponse, r *raft.TimeoutNowResponse) {
	r.RPCHeader = headerFromProto(p.Header)
}

func installSnapshotRequestToProto(target raft.ServerID, r *raft.InstallSnapshotRequest) *kvpb.InstallSnapshotRequest {
	return &kvpb.InstallSnapshotRequest{
		Header:             headerToProto(&r.RPCHeader, target, new(kvpb.RPCHeader)),
		SnapshotVersion:    int64(r.SnapshotVersion),
		Term:               r.Term,
		Leader:             r.Leader,
		LastLogIndex:       r.LastLogIndex,
		LastLogTerm:        r.LastLogTerm,
		Peers:              r.Peers,
		Configuration:      r.Configuration,
		ConfigurationIndex: r.ConfigurationIndex,
		Size:               r.Size,
	}
}

func installSnapshotRequestFromProto(p *kvpb.InstallSnapshotRequest) *raft.InstallSnapshotRequest {
	return &raft.InstallSnapshotRequest{
		RPCHeader:          headerFromProto(p.Header),
		SnapshotVersion:    raft.SnapshotVersion(p.SnapshotVersion),
		Term:               p.Term,
		Leader:             p.Leader,
		LastLogIndex:       p.LastLogIndex,
		LastLogTerm:        p.LastLogTerm,
		Peers:              p.Peers,
		Configuration:      p.Configuration,
		ConfigurationIndex: p.ConfigurationIndex,
		Size:               p.Size,
	}
}

func installSnapshotResponseToProto(r *raft.InstallSnapshotResponse) *kvpb.InstallSnapshotResponse {
	return &kvpb.InstallSnapshotResponse{
		Header:  headerToProto(&r.RPCHeader, "", new(kvpb.RPCHeader)),
		Term:    r.Term,
		Success: r.Success,
	}
}

func installSnapshotResponseFromProto(p *kvpb.InstallSnapshotResponse, r *raft.InstallSnapshotResponse) {
	r.RPCHeader = headerFromProto(p.Header)
	r.Term = p.Term
	r.Success = p.Success
}
