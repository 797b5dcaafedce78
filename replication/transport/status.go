package transport

import (
	"context"
	"errors"
	"fmt"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// unknownReplicaError names the replica a request targeted; it is
// ErrUnknownReplica for errors.Is.
type unknownReplicaError struct{ id string }

func (e unknownReplicaError) Error() string        { return "no replica " + e.id + " on this node" }
func (e unknownReplicaError) Is(target error) bool { return target == ErrUnknownReplica }

// remoteError is an error returned by the receiving raft replica's handler.
type remoteError struct{ msg string }

func (e remoteError) Error() string        { return e.msg }
func (e remoteError) Is(target error) bool { return target == ErrRemote }

// toStatus maps a server-side error to the gRPC status sent to the peer.
// It is the only place that chooses codes for this service.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	var code codes.Code
	switch {
	case errors.Is(err, ErrUnknownReplica):
		code = codes.NotFound
	case errors.Is(err, ErrClosed), errors.Is(err, raft.ErrTransportShutdown):
		code = codes.Unavailable
	case errors.Is(err, ErrInvalidRequest):
		code = codes.InvalidArgument
	case errors.Is(err, ErrRemote):
		code = codes.Unknown
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, errSenderStalled):
		code = codes.DeadlineExceeded
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	default:
		code = codes.Internal
	}
	return status.Error(code, err.Error())
}

// fromStatus maps an error returned by a Raft client call back to this
// package's sentinels and adds which RPC and which replica it concerned.
// The status error stays wrapped, so status.Code still works.
func fromStatus(err error, rpc string, id raft.ServerID, addr raft.ServerAddress) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if ok {
		switch st.Code() {
		case codes.NotFound:
			err = fmt.Errorf("%w: %w", ErrUnknownReplica, err)
		case codes.Unknown:
			err = fmt.Errorf("%w: %w", ErrRemote, err)
		}
	}
	return fmt.Errorf("transport: %s to %s at %s: %w", rpc, id, addr, err)
}
