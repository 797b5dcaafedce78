package liftload

import (
	"errors"
	"fmt"
)

// Sentinel errors of package liftload. Compare with errors.Is.
var (
	// ErrInvalidConfig: a Config field is out of range; the joined errors
	// name each field and value.
	ErrInvalidConfig = errors.New("liftload: invalid config")
	// ErrSetup: the seasons could not be created, so no ride was sent.
	ErrSetup = errors.New("liftload: setup failed")
	// ErrRequestFailed: a request failed on every attempt.
	ErrRequestFailed = errors.New("liftload: request failed")
)

// StatusError is a request's last attempt answered with an unaccepted HTTP
// status. It matches ErrRequestFailed.
type StatusError struct {
	Code int
	// Body is the start of the error body ({"message": "..."}).
	Body string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("liftload: HTTP %d: %s", e.Code, e.Body)
}

// Is reports whether target is ErrRequestFailed.
func (e *StatusError) Is(target error) bool { return target == ErrRequestFailed }
