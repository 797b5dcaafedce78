package replication

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/protoadapt"

	"github.com/ridgeline-kv/ridgeline/replication/kvpb"
)

// toStatus is the one table from package errors to gRPC statuses (STYLE 8).
// Statuses a client acts on carry a detail: NotLeader (with the leader hint),
// WrongShard, OutcomeUnknown.
func (n *Node) toStatus(err error, shard uint32, r *replica) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok && !isOurs(err) {
		return err
	}
	msg := err.Error()
	var epoch uint64
	if m := n.currentMap(); m != nil {
		epoch = m.Epoch
	}
	switch {
	case errors.Is(err, ErrInvalidArgument):
		return status.Error(codes.InvalidArgument, msg)
	case errors.Is(err, ErrRefused):
		return status.Error(codes.FailedPrecondition, msg)
	case errors.Is(err, ErrTooManyProposals):
		return status.Error(codes.ResourceExhausted, msg)
	case errors.Is(err, ErrNotLeader), errors.Is(err, ErrNoLeader):
		nl := &kvpb.NotLeader{Shard: shard, Epoch: epoch}
		if r != nil {
			nl.LeaderId, nl.LeaderAddr = n.leaderOf(r)
			if nl.LeaderId == n.cfg.NodeID { // we are (were) the leader but could not serve: no useful hint
				nl.LeaderId, nl.LeaderAddr = "", ""
			}
		}
		if nl.LeaderAddr == "" {
			return withDetail(codes.Unavailable, fmt.Sprintf("shard %d has no leader right now (%v); retry shortly", shard, err), nl)
		}
		return withDetail(codes.FailedPrecondition, fmt.Sprintf("node %s does not lead shard %d; its leader is %s at %s", n.cfg.NodeID, shard, nl.LeaderId, nl.LeaderAddr), nl)
	case errors.Is(err, ErrWrongShard):
		return withDetail(codes.FailedPrecondition, msg, &kvpb.WrongShard{Shard: shard, Epoch: epoch})
	case errors.Is(err, ErrOutcomeUnknown):
		return withDetail(codes.Unavailable, msg+"; retrying the same request (same session and sequence) is safe", &kvpb.OutcomeUnknown{Shard: shard})
	case errors.Is(err, ErrSessionSuperseded):
		return status.Error(codes.Aborted, msg)
	case errors.Is(err, ErrStopped):
		return status.Error(codes.Unavailable, "node is shutting down; retry on another node")
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, msg)
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, msg)
	}
	return status.Error(codes.Internal, msg)
}

// isOurs reports whether err wraps one of the package's sentinels (a
// status-carrying error from elsewhere passes through unchanged).
func isOurs(err error) bool {
	for _, s := range []error{ErrInvalidArgument, ErrRefused, ErrTooManyProposals, ErrNotLeader, ErrNoLeader,
		ErrOutcomeUnknown, ErrWrongShard, ErrStopped, ErrSessionSuperseded} {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

func withDetail(c codes.Code, msg string, detail proto.Message) error {
	st, err := status.New(c, msg).WithDetails(protoadapt.MessageV1Of(detail))
	if err != nil {
		return status.Error(c, msg)
	}
	return st.Err()
}

// limitRequestSize rejects KV requests over MaxRequestBytes before they are
// handled. The server's transport limit is higher because raft messages
// share the server.
//
// Only a Txn can exceed the limit once validated (a Put is at most a 4 KiB
// key and a 512 KiB value), so only a Txn pays for measuring its size.
func limitRequestSize(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if m, ok := req.(*kvpb.TxnRequest); ok {
		if sz := proto.Size(m); sz > MaxRequestBytes {
			return nil, status.Errorf(codes.ResourceExhausted,
				"request is %d bytes; a request may be at most %d bytes (1.5 MiB): split it into smaller requests", sz, MaxRequestBytes)
		}
	}
	return handler(ctx, req)
}
