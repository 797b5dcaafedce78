package client

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ridgeline-kv/ridgeline/replication/kvpb"
)

// Retry policy. Backoff is exponential with full jitter over [d/2, d].
const (
	backoffBase = 15 * time.Millisecond
	backoffCap  = 500 * time.Millisecond
	// maxHintHops is how many NotLeader hints a call follows without
	// backing off (guards against two nodes pointing at each other).
	maxHintHops = 3
)

// reqKind says how a request is routed and retried.
type reqKind uint8

const (
	kindRead      reqKind = iota // linearizable read: the leader
	kindWrite                    // write with a session: the leader
	kindStaleRead                // any replica, local or fastest first
)

// attemptFunc performs one attempt on one node and returns the response
// header. epoch is the map epoch the request was routed with.
type attemptFunc func(ctx context.Context, c *conn, epoch uint64) (*kvpb.ResponseHeader, error)

// outcome describes what the attempts of a call did, for the session pool.
type outcome struct {
	// reached: some attempt may have been proposed to raft (or was
	// answered), so the write's sequence number is spent.
	reached bool
}

// callContext applies Config.RequestTimeout when ctx has no deadline.
func (c *Client) callContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, c.cfg.RequestTimeout)
}

// invoke runs fn against the right replica of shard until it succeeds, fails
// finally, or ctx ends. It follows NotLeader hints at once, moves to another
// replica after a transport error, attempt timeout or missing leader, backs
// off between rounds, and refreshes the map on WrongShard, on a newer epoch
// in a response, and after a round in which every replica failed. Reads are
// always safe to retry; writes are too, because a retry reuses the write's
// session and sequence.
func (c *Client) invoke(ctx context.Context, shard uint32, kind reqKind, fn attemptFunc) (outcome, error) {
	var out outcome
	if c.closed.Load() {
		return out, ErrClosed
	}
	ctx, cancel := c.callContext(ctx)
	defer cancel()

	var (
		tried    uint64 // replicas tried in this round, by index
		forced   *target
		hops     int
		retries  int
		lastErr  error
		maybeApp bool // a write attempt's outcome is unknown
	)
	backoff := func() error {
		d := min(backoffCap, backoffBase<<min(retries, 10))
		retries++
		d = d/2 + rand.N(d/2+1)
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-c.done:
			return ErrClosed
		}
	}
	giveUp := func() error {
		if c.closed.Load() {
			return ErrClosed
		}
		return c.giveUpError(ctx, kind, lastErr, maybeApp)
	}

	for {
		rt := c.routes.Load()
		if int(shard) >= len(rt.shards) {
			return out, newError("client: shard out of range of the cluster map", ErrInvalidArgument)
		}
		sr := rt.shards[shard]
		var t target
		idx := -1
		if forced != nil {
			t, forced = *forced, nil
			idx = sr.replicaIndex(t.nodeID)
		} else {
			idx = pickReplica(sr, kind, tried)
			if idx < 0 {
				// Every replica failed this round: refresh the map in the
				// background, back off, start a new round.
				tried = 0
				c.refreshAsync()
				if err := backoff(); err != nil {
					return out, giveUp()
				}
				continue
			}
			t = sr.replicas[idx]
		}
		if idx >= 0 && idx < 64 {
			tried |= 1 << idx
		}

		actx, acancel := context.WithTimeout(ctx, c.cfg.AttemptTimeout)
		start := time.Now()
		hdr, err := fn(actx, t.conn, rt.epoch())
		acancel()
		if err == nil {
			out.reached = true
			t.conn.observe(time.Since(start))
			if hdr != nil && hdr.GetEpoch() > rt.epoch() {
				c.refreshAsync()
			}
			if kind != kindStaleRead {
				if cur := sr.leader.Load(); cur == nil || cur.conn != t.conn {
					nt := t
					sr.leader.Store(&nt)
				}
			}
			return out, nil
		}
		lastErr = err
		if c.closed.Load() {
			return out, ErrClosed
		}
		if ctx.Err() != nil {
			// The call's deadline passed or its caller cancelled it while
			// this attempt was in flight: a write may have been proposed.
			if kind == kindWrite && inFlight(err) {
				maybeApp, out.reached = true, true
			}
			return out, giveUp()
		}

		st, _ := status.FromError(err)
		var notLeader *kvpb.NotLeader
		var wrongShard *kvpb.WrongShard
		var unknown bool
		for _, d := range st.Details() {
			switch d := d.(type) {
			case *kvpb.NotLeader:
				notLeader = d
			case *kvpb.WrongShard:
				wrongShard = d
			case *kvpb.OutcomeUnknown:
				unknown = true
			}
		}
		if c.log.Enabled(ctx, slog.LevelDebug) {
			c.log.Debug("client: attempt failed", "shard", shard, "node", t.nodeID, "addr", t.conn.addr, "code", st.Code(), "err", st.Message())
		}

		switch st.Code() {
		case codes.DeadlineExceeded:
			// This attempt timed out; the node may be hung. Try another.
			if kind == kindWrite {
				maybeApp, out.reached = true, true
			}
			t.conn.markSuspect()

		case codes.FailedPrecondition:
			switch {
			case wrongShard != nil:
				if err := c.refreshSync(ctx); err != nil && ctx.Err() != nil {
					return out, giveUp()
				}
				tried = 0
				if c.routes.Load() == rt {
					if err := backoff(); err != nil {
						return out, giveUp()
					}
				}
			case notLeader != nil:
				if notLeader.GetEpoch() > rt.epoch() {
					c.refreshAsync()
				}
				if h := c.hintTarget(rt, notLeader); h != nil {
					sr.leader.Store(h)
					if h.conn != t.conn && hops < maxHintHops && !h.conn.suspect() {
						hops++
						forced = h
						continue
					}
					tried = 0
					if err := backoff(); err != nil {
						return out, giveUp()
					}
				}
				// No hint: the next untried replica.
			default:
				out.reached = out.reached || kind == kindWrite
				return out, fromStatus(err)
			}

		case codes.Unavailable:
			switch {
			case unknown:
				maybeApp, out.reached = true, true
				if err := backoff(); err != nil {
					return out, giveUp()
				}
			case notLeader != nil:
				// No leader: an election is under way.
				if notLeader.GetEpoch() > rt.epoch() {
					c.refreshAsync()
				}
				if err := backoff(); err != nil {
					return out, giveUp()
				}
			default:
				// Transport error: node down, restarting, or unreachable.
				if kind == kindWrite && !isDialError(st.Message()) {
					maybeApp, out.reached = true, true
				}
				t.conn.markSuspect()
			}

		case codes.ResourceExhausted:
			if isMessageTooLarge(st.Message()) {
				return out, fromStatus(err)
			}
			// Too many proposals in flight: nothing applied; same node later.
			if idx >= 0 && idx < 64 {
				tried &^= 1 << idx
			}
			if err := backoff(); err != nil {
				return out, giveUp()
			}

		case codes.Canceled:
			// The connection was closing under the attempt.
			if kind == kindWrite {
				maybeApp, out.reached = true, true
			}
			if err := backoff(); err != nil {
				return out, giveUp()
			}

		default:
			// Final. Bad input never reaches raft; anything else may have.
			if kind == kindWrite && st.Code() != codes.InvalidArgument {
				out.reached = true
			}
			return out, fromStatus(err)
		}
	}
}

// pickReplica returns the index of the replica to try next among those not
// in tried, or -1 when every replica was tried. Leader requests go to the
// cached leader first; stale reads to a local replica, then the fastest.
// Replicas that failed recently come last.
func pickReplica(sr *shardRoute, kind reqKind, tried uint64) int {
	n := len(sr.replicas)
	if n == 0 {
		return -1
	}
	untried := func(i int) bool { return i >= 64 || tried&(1<<i) == 0 }
	if kind != kindStaleRead {
		if l := sr.leader.Load(); l != nil {
			if i := sr.replicaIndex(l.nodeID); i >= 0 && untried(i) && !l.conn.suspect() {
				return i
			}
		}
		for i := range n {
			if untried(i) && !sr.replicas[i].conn.suspect() {
				return i
			}
		}
		for i := range n {
			if untried(i) {
				return i
			}
		}
		return -1
	}
	best, bestScore := -1, int64(0)
	for i := range n {
		if !untried(i) {
			continue
		}
		c := sr.replicas[i].conn
		score := c.ewmaNanos.Load()
		if c.local {
			score -= int64(time.Hour)
		}
		if c.suspect() {
			score += int64(24 * time.Hour)
		}
		if best < 0 || score < bestScore {
			best, bestScore = i, score
		}
	}
	return best
}

// hintTarget resolves a NotLeader hint to a target, or nil when the hint is
// empty or unusable.
func (c *Client) hintTarget(rt *routeTable, nl *kvpb.NotLeader) *target {
	id, addr := nl.GetLeaderId(), nl.GetLeaderAddr()
	if id != "" {
		if t, ok := rt.byNode[id]; ok && (addr == "" || addr == t.conn.addr) {
			return &t
		}
	}
	if addr == "" {
		return nil
	}
	cn, err := c.pool.get(addr)
	if err != nil {
		return nil
	}
	return &target{nodeID: id, conn: cn}
}

// inFlight reports whether an attempt that ended with the call's context
// had been sent: it was cut off (DeadlineExceeded or Canceled) rather than
// refused before its request left (a dial error).
func inFlight(err error) bool {
	st := status.Convert(err)
	switch st.Code() {
	case codes.DeadlineExceeded, codes.Canceled:
		return !isDialError(st.Message())
	}
	return false
}

// isDialError reports whether a transport error happened before the request
// was sent (so a write cannot have been applied).
func isDialError(msg string) bool {
	return strings.Contains(msg, "while dialing") || strings.Contains(msg, "connection refused")
}

// giveUpError is the error of a call that ran out of time or was cancelled.
func (c *Client) giveUpError(ctx context.Context, kind reqKind, last error, maybeApplied bool) error {
	cause := ctx.Err()
	detail := "no reply"
	if last != nil {
		if st, ok := status.FromError(last); ok {
			detail = st.Code().String() + ": " + st.Message()
		} else {
			detail = last.Error()
		}
	}
	if kind == kindWrite && maybeApplied {
		return newError("client: outcome unknown: the write may or may not have been applied ("+causeText(cause)+"; last error: "+detail+")", ErrOutcomeUnknown, cause)
	}
	return newError("client: unavailable: no replica answered in time ("+causeText(cause)+"; last error: "+detail+"); check that a majority of the shard's replicas is up", ErrUnavailable, cause)
}

func causeText(err error) string {
	if err == nil {
		return "gave up"
	}
	return err.Error()
}
