package client

import (
	"context"
	"errors"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestFromStatus(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want []error
		msg  string
	}{
		{"not found", status.Error(codes.NotFound, "no such key"), []error{ErrNotFound}, "no such key"},
		{"invalid", status.Error(codes.InvalidArgument, "key is empty"), []error{ErrInvalidArgument}, "key is empty"},
		{"grpc too large", status.Error(codes.ResourceExhausted, "grpc: received message larger than max (2000000 vs. 1572864)"), []error{ErrTooLarge, ErrInvalidArgument}, "larger than max"},
		{"too many proposals", status.Error(codes.ResourceExhausted, "too many proposals"), []error{ErrUnavailable}, "too many proposals"},
		{"unavailable", status.Error(codes.Unavailable, "connection refused"), []error{ErrUnavailable}, "connection refused"},
		{"outcome unknown", OutcomeUnknownErr(3), []error{ErrOutcomeUnknown}, "outcome unknown"},
		{"not leader", (&FakeCluster{}).NotLeaderErr(1, -1), []error{ErrUnavailable}, "not the leader"},
		{"aborted", status.Error(codes.Aborted, "sequence superseded"), []error{ErrOutcomeUnknown}, "superseded"},
		{"canceled", status.Error(codes.Canceled, "bye"), []error{context.Canceled}, "bye"},
		{"ctx deadline", context.DeadlineExceeded, []error{context.DeadlineExceeded}, "deadline"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := fromStatus(tt.err)
			for _, w := range tt.want {
				if !errors.Is(got, w) {
					t.Errorf("fromStatus(%v) = %v; want errors.Is %v", tt.err, got, w)
				}
			}
			if !strings.Contains(got.Error(), tt.msg) {
				t.Errorf("fromStatus(%v) = %q; want the message to contain %q", tt.err, got, tt.msg)
			}
		})
	}
	if got := fromStatus(status.Error(codes.Internal, "boom")); errors.Is(got, ErrUnavailable) || !strings.Contains(got.Error(), "boom") {
		t.Errorf("fromStatus(Internal) = %v; want a plain error with the message", got)
	}
	if fromStatus(nil) != nil {
		t.Error("fromStatus(nil) != nil")
	}
}

func TestVersionMismatchError(t *testing.T) {
	var err error = &VersionMismatchError{Key: "k", Expected: 3, Actual: 5}
	if !errors.Is(err, ErrVersionMismatch) {
		t.Errorf("errors.Is(%v, ErrVersionMismatch) = false", err)
	}
	var vm *VersionMismatchError
	if !errors.As(err, &vm) || vm.Actual != 5 {
		t.Errorf("errors.As = %v", vm)
	}
}
