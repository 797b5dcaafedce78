package replication

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/ridgeline-kv/ridgeline/replication/kvpb"
	"github.com/ridgeline-kv/ridgeline/replication/transport"
	"github.com/ridgeline-kv/ridgeline/storage"
)

// groupFSM is what a replica needs of its state machine beyond raft.FSM.
type groupFSM interface {
	raft.FSM
	AppliedIndex() uint64
	WaitApplied(ctx context.Context, index uint64) error
}

// replicaSpec says which raft group a replica belongs to.
type replicaSpec struct {
	ID    string // raft ServerID, fresh per placement
	Shard uint32
	Meta  bool
	// Bootstrap, when set and the replica has no raft state yet, is the
	// initial configuration written with BootstrapCluster. Every replica of
	// a new group writes the identical configuration.
	Bootstrap *raft.Configuration
}

// replicaDeps are the node-wide parts a replica uses.
type replicaDeps struct {
	cfg       *Config
	logger    *slog.Logger
	logDB     *storage.LogDB
	transport *transport.Manager
	metrics   *metrics
	snapDir   string
	onFatal   func(error)
}

// replica is one raft group member hosted by this node: a data shard replica
// or the node's meta replica. It is safe for concurrent use.
type replica struct {
	spec   replicaSpec
	logger *slog.Logger
	raft   *raft.Raft
	fsm    groupFSM
	data   *shardFSM // set for data shard replicas
	trans  *transport.Transport
	m      *groupMetrics
	reads  *readIndex
	// inflight bounds proposals in flight (DESIGN.md §6).
	inflight chan struct{}

	stopOnce sync.Once
	stop     chan struct{}
	wg       sync.WaitGroup
}

func (r *replica) String() string { return r.spec.ID }

// groupDir turns a replica ID into a file-system-safe name.
func groupDir(id string) string { return strings.ReplaceAll(id, "/", "_") }

func startReplica(d replicaDeps, spec replicaSpec, fsm groupFSM) (_ *replica, err error) {
	label := shardLabel(spec.Shard)
	if spec.Meta {
		label = "meta"
	}
	logger := d.logger.With("replica", spec.ID, "shard", label)
	r := &replica{
		spec:     spec,
		logger:   logger,
		fsm:      fsm,
		m:        d.metrics.group(label),
		inflight: make(chan struct{}, d.cfg.MaxProposalsInFlight),
		stop:     make(chan struct{}),
	}
	logs, err := d.logDB.Group(spec.ID)
	if err != nil {
		return nil, fmt.Errorf("open raft log of %s: %w", spec.ID, err)
	}
	snapDir := filepath.Join(d.snapDir, groupDir(spec.ID))
	if err := os.MkdirAll(snapDir, 0o755); err != nil {
		return nil, err
	}
	hl := newHCLogger(logger, "raft", hclog.Warn)
	snaps, err := newSnapshotStore(snapDir, hl)
	if err != nil {
		return nil, fmt.Errorf("open snapshot store of %s: %w", spec.ID, err)
	}
	trans, err := d.transport.Transport(raft.ServerID(spec.ID))
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			trans.Close()
		}
	}()
	r.trans = trans

	conf := raft.DefaultConfig()
	conf.LocalID = raft.ServerID(spec.ID)
	conf.HeartbeatTimeout = d.cfg.HeartbeatTimeout
	conf.ElectionTimeout = d.cfg.ElectionTimeout
	conf.LeaderLeaseTimeout = d.cfg.LeaderLeaseTimeout
	conf.CommitTimeout = d.cfg.CommitTimeout
	conf.SnapshotThreshold = d.cfg.SnapshotThreshold
	conf.SnapshotInterval = d.cfg.SnapshotInterval
	conf.TrailingLogs = d.cfg.TrailingLogs
	conf.MaxAppendEntries = 64
	conf.BatchApplyCh = true
	// The state machine is durable in bbolt (applied index in the same
	// transaction), so a restart resumes from it instead of re-restoring
	// the last snapshot; entries after the snapshot are skipped by index.
	conf.NoSnapshotRestoreOnStart = true
	conf.NoLegacyTelemetry = true
	conf.Logger = hl
	if err := raft.ValidateConfig(conf); err != nil {
		return nil, fmt.Errorf("raft config for %s: %w", spec.ID, err)
	}

	cached, err := raft.NewLogCache(512, logs)
	if err != nil {
		return nil, err
	}
	if spec.Bootstrap != nil {
		has, err := raft.HasExistingState(cached, logs, snaps)
		if err != nil {
			return nil, fmt.Errorf("inspect raft state of %s: %w", spec.ID, err)
		}
		if !has {
			if err := raft.BootstrapCluster(conf, cached, logs, snaps, trans, *spec.Bootstrap); err != nil {
				return nil, fmt.Errorf("bootstrap %s: %w", spec.ID, err)
			}
			logger.Info("bootstrapped raft group", "voters", len(spec.Bootstrap.Servers))
		}
	}
	var started atomic.Pointer[raft.Raft]
	if !spec.Meta {
		isLeader := func() bool {
			ra := started.Load()
			return ra != nil && ra.State() == raft.Leader
		}
		acks := newFollowerAcks(conf.LocalID, func() raft.Configuration {
			ra := started.Load()
			if ra == nil {
				return raft.Configuration{}
			}
			// Called on raft's state machine goroutine, which must never wait
			// for raft's main loop (that loop may be waiting for it):
			// hashicorp/raft v1.8 answers GetConfiguration at once from its
			// copy of the latest configuration, without the main loop.
			f := ra.GetConfiguration()
			if f.Error() != nil {
				return raft.Configuration{}
			}
			return f.Configuration()
		}, r.m.appliedAhead.Inc)
		fsm = enableEarlyLeaderAppends(logs, trans, fsm, isLeader, acks, d.onFatal)
		r.fsm = fsm
	}
	ra, err := raft.NewRaft(conf, fsm, cached, logs, snaps, trans)
	if err != nil {
		return nil, fmt.Errorf("start raft %s: %w", spec.ID, err)
	}
	started.Store(ra)
	r.raft = ra
	r.reads = newReadIndex(ra, cached, fsm, r.m, r.stop)
	r.wg.Add(2)
	go func() { defer r.wg.Done(); r.reads.run() }()
	go func() { defer r.wg.Done(); r.watchLeadership() }()
	return r, nil
}

// watchLeadership keeps the is_leader gauge and leader-change counter.
func (r *replica) watchLeadership() {
	ch := make(chan raft.Observation, 8)
	obs := raft.NewObserver(ch, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	r.raft.RegisterObserver(obs)
	defer r.raft.DeregisterObserver(obs)
	for {
		select {
		case <-r.stop:
			return
		case <-ch:
			r.m.leaderChanges.Inc()
			if r.raft.State() == raft.Leader {
				r.m.isLeader.Set(1)
			} else {
				r.m.isLeader.Set(0)
			}
		}
	}
}

// isLeader reports whether this replica currently believes it leads.
func (r *replica) isLeader() bool { return r.raft.State() == raft.Leader }

// leader returns the replica ID of the leader this replica knows, or "".
func (r *replica) leader() string {
	_, id := r.raft.LeaderWithID()
	return string(id)
}

// propose replicates cmd and returns the state machine's result. It blocks
// until the entry is applied, leadership is lost, or ctx ends.
//
// Errors: ErrNotLeader / ErrTooManyProposals (nothing applied, safe to
// retry anywhere), ErrOutcomeUnknown (the entry may or may not commit: retry
// with the same session and sequence), ErrStopped.
func (r *replica) propose(ctx context.Context, data []byte) (any, error) {
	if r.raft.State() != raft.Leader {
		return nil, ErrNotLeader
	}
	select {
	case r.inflight <- struct{}{}:
	default:
		r.m.proposalError("in_flight_limit")
		return nil, fmt.Errorf("%w: %d proposals already in flight on shard %s; nothing was applied: back off and retry", ErrTooManyProposals, cap(r.inflight), r.m.label)
	}
	defer func() { <-r.inflight }()

	start := time.Now()
	timeout := 10 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
		if timeout <= 0 {
			return nil, ctx.Err()
		}
	}
	f := r.raft.Apply(data, timeout)
	r.m.proposals.Inc()
	if ackBeforeCommit { // test-only fault (build tag ridgeline_ackearly): acknowledge before commit
		return earlyAck(data), nil
	}
	if err := await(ctx, r.stop, f); err != nil {
		switch {
		case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipTransferInProgress):
			r.m.proposalError("not_leader")
			return nil, ErrNotLeader
		case errors.Is(err, raft.ErrEnqueueTimeout):
			r.m.proposalError("enqueue_timeout")
			return nil, fmt.Errorf("%w: raft did not accept the proposal in time; retry", ErrTooManyProposals)
		case errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, raft.ErrRaftShutdown),
			errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled), errors.Is(err, ErrStopped):
			r.m.proposalError("outcome_unknown")
			return nil, fmt.Errorf("%w: %v", ErrOutcomeUnknown, err)
		default:
			r.m.proposalError("other")
			return nil, fmt.Errorf("%w: %v", ErrOutcomeUnknown, err)
		}
	}
	r.m.commitLatency.Observe(since(start))
	return f.Response(), nil
}

// linearizable blocks until a read issued now may be served from local
// state: leadership confirmed after the call and the state machine caught up
// with the commit index observed then.
func (r *replica) linearizable(ctx context.Context) error {
	if r.raft.State() != raft.Leader {
		return ErrNotLeader
	}
	return r.reads.wait(ctx)
}

// staleness is how far behind a stale read from this replica may be.
func (r *replica) staleness() time.Duration {
	if r.raft.State() == raft.Leader {
		return 0
	}
	lc := r.raft.LastContact()
	if lc.IsZero() {
		return time.Duration(1<<63 - 1)
	}
	return time.Since(lc)
}

// shutdown stops the replica; idempotent.
func (r *replica) shutdown() error {
	var err error
	r.stopOnce.Do(func() {
		close(r.stop)
		// Transport first: it cancels this replica's RPCs in flight (a
		// snapshot send to a peer that stopped reading would otherwise hold
		// raft's shutdown for the whole snapshot timeout).
		err = r.trans.Close()
		if serr := r.raft.Shutdown().Error(); err == nil {
			err = serr
		}
		r.wg.Wait()
	})
	return err
}

// await bridges a raft future to ctx and the stop channel. Wait for every
// raft future of a replica through it: hashicorp/raft drops the futures of
// entries committed but not yet applied when it shuts down (they sit in its
// FSM queue), and a configuration change, Apply or Barrier future has no
// shutdown channel, so its Error would block forever. The helper goroutine
// then stays blocked with it.
func await(ctx context.Context, stop <-chan struct{}, f raft.Future) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-stop:
		return ErrStopped
	}
}

// status reports the replica for Admin.NodeStatus.
// hasVoter reports whether id is a voter in the replica's latest raft
// configuration (which need not be committed yet). Non-blocking.
func (r *replica) hasVoter(id string) bool {
	for _, srv := range r.raft.GetConfiguration().Configuration().Servers {
		if string(srv.ID) == id {
			return srv.Suffrage == raft.Voter
		}
	}
	return false
}

func (r *replica) status(leaderNode func(replicaID string) string) *kvpb.ReplicaStatus {
	st := &kvpb.ReplicaStatus{
		Shard:        r.spec.Shard,
		Meta:         r.spec.Meta,
		ReplicaId:    r.spec.ID,
		State:        r.raft.State().String(),
		LeaderId:     leaderNode(r.leader()),
		Term:         r.raft.CurrentTerm(),
		CommitIndex:  r.raft.CommitIndex(),
		AppliedIndex: r.fsm.AppliedIndex(),
		LastLogIndex: r.raft.LastIndex(),
	}
	stats := r.raft.Stats()
	if v, err := strconv.ParseUint(stats["last_snapshot_index"], 10, 64); err == nil {
		st.LastSnapshotIndex = v
	}
	if v, err := strconv.ParseUint(stats["num_peers"], 10, 32); err == nil && stats["state"] != "Shutdown" {
		st.Voters = uint32(v) + 1 // num_peers counts the other voters
	}
	for _, srv := range r.raft.GetConfiguration().Configuration().Servers { // non-blocking: the latest configuration
		if srv.Suffrage == raft.Voter {
			st.ConfigVoters = append(st.ConfigVoters, string(srv.ID))
		} else {
			st.ConfigLearners = append(st.ConfigLearners, string(srv.ID))
		}
	}
	if lc := r.raft.LastContact(); !lc.IsZero() && r.raft.State() != raft.Leader {
		st.LastContactMs = time.Since(lc).Milliseconds()
	}
	return st
}
