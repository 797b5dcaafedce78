package transport

import "errors"

// Sentinel errors of package transport. Compare with errors.Is.
var (
	// ErrClosed: the Manager or the Transport has been closed.
	ErrClosed = errors.New("transport: closed")
	// ErrUnknownReplica: the receiving node has no replica with the target
	// ServerID (codes.NotFound on the wire). The replica may have been
	// removed or not started yet; raft retries with backoff.
	ErrUnknownReplica = errors.New("transport: no such replica on the target node")
	// ErrAlreadyRegistered: Manager.Transport was called for a ServerID that
	// already has an open Transport on this node; close the old one first.
	ErrAlreadyRegistered = errors.New("transport: replica already registered")
	// ErrRemote: the remote raft replica handled the request and returned an
	// error; the wrapping error carries its message.
	ErrRemote = errors.New("transport: remote raft error")
	// ErrInvalidRequest: a malformed request reached the server (for
	// example an InstallSnapshot stream without its request header).
	ErrInvalidRequest = errors.New("transport: invalid request")
)
