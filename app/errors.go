package app

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/ridgeline-kv/ridgeline/client"
)

// Sentinel errors of package app.
var (
	// ErrShuttingDown: the replica is stopping and takes no new rides;
	// send the request to another replica.
	ErrShuttingDown = errors.New("app: replica is shutting down")
)

// apiError is an error answered with an HTTP status and a message body.
type apiError struct {
	code int
	msg  string
}

func (e *apiError) Error() string { return e.msg }

// badRequest is a 400 whose message says what is wrong.
func badRequest(format string, args ...any) error {
	return &apiError{http.StatusBadRequest, "invalid inputs: " + fmt.Sprintf(format, args...)}
}

// notFound is a 404 whose message says what is missing.
func notFound(format string, args ...any) error {
	return &apiError{http.StatusNotFound, "data not found: " + fmt.Sprintf(format, args...)}
}

// toHTTP maps an error to a status and message: the one table of the
// service's error answers.
func toHTTP(err error) (int, string) {
	var ae *apiError
	switch {
	case errors.As(err, &ae):
		return ae.code, ae.msg
	case errors.Is(err, ErrShuttingDown):
		return http.StatusServiceUnavailable, err.Error() + "; retry on another replica"
	case errors.Is(err, client.ErrOutcomeUnknown):
		return http.StatusServiceUnavailable, "the data tier did not confirm the write in time (" + err.Error() + "); retry the request, it will not be counted twice"
	case errors.Is(err, client.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable, "the data tier is unavailable (" + err.Error() + "); retry shortly"
	case errors.Is(err, context.Canceled):
		return 499, "request canceled"
	default:
		return http.StatusInternalServerError, "internal error: " + err.Error()
	}
}
