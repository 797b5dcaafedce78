package client

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ridgeline-kv/ridgeline/replication/kvpb"
)

// Sentinel errors of package client. Compare with errors.Is; the error text
// carries the server's message, which says what was wrong.
var (
	// ErrNotFound: the key does not exist.
	ErrNotFound = errors.New("client: key not found")
	// ErrVersionMismatch: a conditional write (IfVersion) found another
	// version. The error is a *VersionMismatchError.
	ErrVersionMismatch = errors.New("client: version mismatch")
	// ErrInvalidArgument: the request was rejected as malformed; retrying it
	// unchanged will fail again.
	ErrInvalidArgument = errors.New("client: invalid argument")
	// ErrUnavailable: no replica could serve the request before the deadline
	// (or retries were exhausted). A write that fails with ErrUnavailable
	// and not ErrOutcomeUnknown was not applied.
	ErrUnavailable = errors.New("client: unavailable")
	// ErrOutcomeUnknown: a write may or may not have been applied; the
	// deadline passed, or the caller cancelled the call, while an attempt
	// was in flight. The error also matches the context's error.
	ErrOutcomeUnknown = errors.New("client: outcome unknown")
	// ErrClosed: the Client was closed.
	ErrClosed = errors.New("client: closed")
	// ErrTooLarge: a key, value or request exceeds the limits (key 4 KiB,
	// value 512 KiB, request 1.5 MiB). It also matches ErrInvalidArgument.
	ErrTooLarge = errors.New("client: too large")
)

// VersionMismatchError is returned by a Put or Delete with IfVersion when the
// key's version differs. It matches ErrVersionMismatch.
type VersionMismatchError struct {
	Key      string
	Expected uint64 // the version the caller required (0 = absent)
	Actual   uint64 // the key's version (0 = absent)
}

func (e *VersionMismatchError) Error() string {
	return fmt.Sprintf("client: version mismatch on key %q: expected version %d, found %d", e.Key, e.Expected, e.Actual)
}

// Is reports whether target is ErrVersionMismatch.
func (e *VersionMismatchError) Is(target error) bool { return target == ErrVersionMismatch }

// kindError is an error of one or more sentinel kinds with its own message.
type kindError struct {
	msg   string
	kinds []error // sentinels (and causes) errors.Is matches
}

func (e *kindError) Error() string   { return e.msg }
func (e *kindError) Unwrap() []error { return e.kinds }

func newError(msg string, kinds ...error) error { return &kindError{msg: msg, kinds: kinds} }

// grpcLimitMsg marks gRPC's own ResourceExhausted for an oversized message,
// which must not be retried.
func isMessageTooLarge(msg string) bool {
	return strings.Contains(msg, "larger than max")
}

// fromStatus maps an error returned by a final attempt (gRPC status) to this
// package's errors, keeping the server's message. It is the one table that
// maps gRPC codes back; the retry loop decides what is retried before it.
func fromStatus(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return err
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	msg := st.Message()
	var kind []error
	switch st.Code() {
	case codes.NotFound:
		kind = []error{ErrNotFound}
	case codes.InvalidArgument, codes.OutOfRange:
		kind = []error{ErrInvalidArgument}
	case codes.ResourceExhausted:
		if isMessageTooLarge(msg) {
			kind = []error{ErrTooLarge, ErrInvalidArgument}
		} else {
			kind = []error{ErrUnavailable}
		}
	case codes.Unavailable:
		kind = []error{ErrUnavailable}
		for _, d := range st.Details() {
			if _, ok := d.(*kvpb.OutcomeUnknown); ok {
				kind = []error{ErrOutcomeUnknown}
			}
		}
	case codes.FailedPrecondition, codes.DeadlineExceeded:
		// Not leader / wrong shard when retries ran out, or a server-side
		// deadline: nothing was applied.
		kind = []error{ErrUnavailable}
	case codes.Aborted:
		// A superseded sequence: the original outcome is no longer known.
		kind = []error{ErrOutcomeUnknown}
	case codes.Canceled:
		kind = []error{context.Canceled}
	default:
		return fmt.Errorf("client: server error (%s): %s", st.Code(), msg)
	}
	return newError(kind[0].Error()+": "+msg, kind...)
}
