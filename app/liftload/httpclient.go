package liftload

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
)

// newTransport returns a transport tuned for conns keep-alive connections
// to each of hosts hosts (no connection is closed for want of an idle slot)
// whose attempts wait at most timeout for the response headers.
func newTransport(conns, hosts int, timeout time.Duration) *http.Transport {
	d := &net.Dialer{Timeout: min(timeout, 5*time.Second), KeepAlive: 30 * time.Second}
	return &http.Transport{
		DialContext:           d.DialContext,
		MaxIdleConns:          conns*hosts + 16,
		MaxIdleConnsPerHost:   conns + 16,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: timeout,
		DisableCompression:    true,
		ForceAttemptHTTP2:     false,
		TLSHandshakeTimeout:   5 * time.Second,
	}
}

// Shared read-only headers; net/http does not modify a request's Header.
var (
	jsonHeader    = http.Header{"Content-Type": {"application/json"}}
	noCacheHeader = http.Header{"Cache-Control": {"no-cache"}}
	emptyHeader   = http.Header{}
)

// call is one logical request; the client may make several attempts.
type call struct {
	method string
	// path starts with / and may carry a query.
	path string
	// body, when non-nil, is sent as JSON.
	body []byte
	// ok404 accepts a 404 answer as success (GETs of things with no rides).
	ok404 bool
	// noCache sends Cache-Control: no-cache.
	noCache bool
	// into, when non-nil, receives the body of the accepted answer.
	into *bytes.Buffer
}

// target is one service replica.
type target struct {
	scheme, host, prefix string
}

// httpClient sends calls round-robin over the service's URLs with retries.
// It builds requests itself and calls the transport directly: the API has
// no redirects or cookies, and skipping http.Client saves a third of the
// allocations per request. It is safe for concurrent use.
type httpClient struct {
	rt      http.RoundTripper
	targets []target
	next    atomic.Uint64
	retries int
	backoff time.Duration
}

// newHTTPClient returns the client of c; c must be valid.
func newHTTPClient(c Config) *httpClient {
	rt := c.Transport
	if rt == nil {
		rt = newTransport(c.maxConcurrency(), len(c.URLs), c.AttemptTimeout)
	}
	targets := make([]target, len(c.URLs))
	for i, raw := range c.URLs {
		u, _ := url.Parse(raw) // validated
		targets[i] = target{scheme: u.Scheme, host: u.Host, prefix: strings.TrimRight(u.Path, "/")}
	}
	return &httpClient{rt: rt, targets: targets, retries: c.Retries, backoff: c.RetryBackoff}
}

// do makes up to retries+1 attempts of cl, each on the URL after the
// previous one's, until one is accepted: 2xx, or 404 when cl.ok404. It
// returns the last attempt's status (0 for a transport error), the number
// of attempts, and nil or the last attempt's error (matching
// ErrRequestFailed). It blocks until done or ctx is done.
func (c *httpClient) do(ctx context.Context, cl call) (code, attempts int, err error) {
	first := c.next.Add(1) - 1
	for attempt := range c.retries + 1 {
		if attempt > 0 && c.backoff > 0 {
			if werr := wait(ctx, min(c.backoff<<(attempt-1), maxBackoff)); werr != nil {
				return code, attempt, fmt.Errorf("%w: %w (after %v)", ErrRequestFailed, werr, err)
			}
		}
		t := &c.targets[(first+uint64(attempt))%uint64(len(c.targets))]
		code, err = c.once(ctx, t, cl)
		if err == nil {
			return code, attempt + 1, nil
		}
		if ctx.Err() != nil {
			return code, attempt + 1, err
		}
	}
	return code, c.retries + 1, err
}

// once makes one attempt on t.
func (c *httpClient) once(ctx context.Context, t *target, cl call) (int, error) {
	path, query, _ := strings.Cut(cl.path, "?")
	if t.prefix != "" {
		path = t.prefix + path
	}
	req := (&http.Request{
		Method:     cl.method,
		URL:        &url.URL{Scheme: t.scheme, Host: t.host, Path: path, RawQuery: query},
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     emptyHeader,
		Host:       t.host,
	}).WithContext(ctx)
	switch {
	case cl.body != nil:
		req.Header = jsonHeader
		req.Body = &bodyReader{b: cl.body}
		req.ContentLength = int64(len(cl.body))
	case cl.noCache:
		req.Header = noCacheHeader
	}
	resp, err := c.rt.RoundTrip(req)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrRequestFailed, err)
	}
	defer resp.Body.Close()
	ok := resp.StatusCode/100 == 2 || (cl.ok404 && resp.StatusCode == http.StatusNotFound)
	if !ok {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, &StatusError{Code: resp.StatusCode, Body: strings.TrimSpace(string(msg))}
	}
	if cl.into != nil {
		cl.into.Reset()
		if _, err := cl.into.ReadFrom(resp.Body); err != nil {
			return resp.StatusCode, fmt.Errorf("%w: reading body: %w", ErrRequestFailed, err)
		}
		return resp.StatusCode, nil
	}
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return resp.StatusCode, fmt.Errorf("%w: reading body: %w", ErrRequestFailed, err)
	}
	return resp.StatusCode, nil
}

// wait blocks for d or until ctx is done.
func wait(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// close closes the transport's idle connections.
func (c *httpClient) close() {
	if ci, ok := c.rt.(interface{ CloseIdleConnections() }); ok {
		ci.CloseIdleConnections()
	}
}

// bodyReader is a request body in one allocation (bytes.Reader plus
// io.NopCloser take two).
type bodyReader struct {
	b []byte
	i int
}

func (r *bodyReader) Read(p []byte) (int, error) {
	if r.i >= len(r.b) {
		return 0, io.EOF
	}
	n := copy(p, r.b[r.i:])
	r.i += n
	return n, nil
}

func (r *bodyReader) Close() error { return nil }
