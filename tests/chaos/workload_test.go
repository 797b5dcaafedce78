package chaos

import (
	"context"
	"errors"
	"fmt"
	"github.com/ridgeline-kv/ridgeline/replication/replicationtest"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ridgeline-kv/ridgeline/client"
)

// opTimeout bounds each operation, so faults produce errors (and unknown
// outcomes) rather than hung workers; a quarter of the operations get the
// short one, so that faults leave writes of unknown outcome in the history.
const (
	opTimeout      = 10 * time.Second
	shortOpTimeout = 1500 * time.Millisecond
)

func pickTimeout(rng *rand.Rand) time.Duration {
	if rng.IntN(4) == 0 {
		return shortOpTimeout
	}
	return opTimeout
}

// writeStatus classifies the error of a write. A write that failed with
// ErrUnavailable and not ErrOutcomeUnknown was not applied (client
// contract); anything unexpected counts as unknown.
func writeStatus(err error) string {
	switch {
	case err == nil:
		return statusOK
	case errors.Is(err, client.ErrVersionMismatch):
		return statusMismatch
	case errors.Is(err, client.ErrOutcomeUnknown):
		return statusUnknown
	case errors.Is(err, client.ErrUnavailable):
		return statusFailed
	}
	return statusUnknown
}

// workloads runs the register, set and counter workloads until stopped.
type workloads struct {
	hist  *history
	cycle atomic.Int64 // register keys rotate per cycle (long runs)
	stop  atomic.Bool
	wg    sync.WaitGroup

	acked atomic.Int64 // acknowledged writes of all workloads
	total atomic.Int64 // operations completed

	setMu   sync.Mutex
	inserts map[string]setResult

	ctrMu    sync.Mutex
	counters map[string]*counterResult

	errMu   sync.Mutex
	errKind map[string]int // unexpected error texts, counted (for the report)
}

const (
	regKeys     = 5
	regWorkers  = 5
	setWorkers  = 2
	ctrWorkers  = 2
	ctrKeys     = 2
	setPrefix   = "set/"
	ctrPrefix   = "ctr/"
	regKeyStart = "reg/"
)

func regKey(cycle int64, i int) string { return fmt.Sprintf("%s%03d/%d", regKeyStart, cycle, i) }
func ctrKey(i int) string              { return fmt.Sprintf("%s%d", ctrPrefix, i) }

// startWorkloads starts every workload; each worker's choices come from
// seed, so a seed replays the same sequence of requests.
func startWorkloads(regCl, setCl, ctrCl *client.Client, seed uint64) *workloads {
	w := &workloads{hist: newHistory(), inserts: map[string]setResult{}, counters: map[string]*counterResult{}, errKind: map[string]int{}}
	for i := range ctrKeys {
		w.counters[ctrKey(i)] = &counterResult{}
	}
	for i := range regWorkers {
		w.wg.Add(1)
		go w.register(regCl, i, rand.New(rand.NewPCG(seed, uint64(100+i))))
	}
	for i := range setWorkers {
		w.wg.Add(1)
		go w.set(setCl, i, rand.New(rand.NewPCG(seed, uint64(300+i))))
	}
	for i := range ctrWorkers {
		w.wg.Add(1)
		go w.counter(ctrCl, rand.New(rand.NewPCG(seed, uint64(200+i))))
	}
	return w
}

// halt stops the workers after their operation in flight and waits.
func (w *workloads) halt() {
	w.stop.Store(true)
	w.wg.Wait()
}

func (w *workloads) noteErr(err error) {
	if err == nil {
		return
	}
	w.errMu.Lock()
	defer w.errMu.Unlock()
	msg := err.Error()
	if len(msg) > 120 {
		msg = msg[:120]
	}
	w.errKind[msg]++
}

// register does reads, blind writes and CASes of unique values on a few keys.
func (w *workloads) register(cl *client.Client, id int, rng *rand.Rand) {
	defer w.wg.Done()
	type seen struct {
		version uint64
		value   string
	}
	last := map[string]seen{}
	for n := 0; !w.stop.Load(); n++ {
		key := regKey(w.cycle.Load(), rng.IntN(regKeys))
		op := regOp{Client: id, Key: key}
		ctx, cancel := context.WithTimeout(context.Background(), pickTimeout(rng))
		var err error
		switch r := rng.IntN(10); {
		case r < 4:
			op.Kind = opGet
			op.Call = w.hist.now()
			var v []byte
			v, err = cl.Get(ctx, key, client.WithVersion(&op.Version))
			op.Return = w.hist.now()
			switch {
			case err == nil:
				op.Status, op.Found, op.Out = statusOK, true, string(v)
				last[key] = seen{op.Version, op.Out}
			case errors.Is(err, client.ErrNotFound):
				op.Status, err = statusOK, nil
				last[key] = seen{}
			default:
				op.Status = statusFailed
			}
		case r < 7:
			op.Kind, op.Value = opPut, fmt.Sprintf("c%d-%d", id, n)
			op.Call = w.hist.now()
			err = cl.Put(ctx, key, []byte(op.Value), client.WithVersion(&op.Version))
			op.Return = w.hist.now()
			op.Status = writeStatus(err)
			if op.Status == statusOK {
				last[key] = seen{op.Version, op.Value}
			}
		default:
			s := last[key]
			op.Kind, op.Value, op.ExpVersion, op.ExpValue = opCAS, fmt.Sprintf("c%d-%d", id, n), s.version, s.value
			op.Call = w.hist.now()
			err = cl.Put(ctx, key, []byte(op.Value), client.IfVersion(s.version), client.WithVersion(&op.Version))
			op.Return = w.hist.now()
			op.Status = writeStatus(err)
			var vm *client.VersionMismatchError
			switch {
			case op.Status == statusOK:
				last[key] = seen{op.Version, op.Value}
			case errors.As(err, &vm):
				op.Version = vm.Actual
				err = nil
			}
		}
		cancel()
		if err != nil {
			op.Err = err.Error()
			if op.Status != statusFailed || op.Kind != opGet {
				w.noteErr(err)
			}
		}
		if op.Status != statusUnknown && op.Kind != opGet && op.Status != statusFailed {
			w.acked.Add(1)
		}
		w.total.Add(1)
		w.hist.add(op)
	}
}

// set inserts unique keys, one after another.
func (w *workloads) set(cl *client.Client, id int, rng *rand.Rand) {
	defer w.wg.Done()
	for n := 0; !w.stop.Load(); n++ {
		key, value := fmt.Sprintf("%s%d/%06d", setPrefix, id, n), fmt.Sprintf("s%d-%d", id, n)
		ctx, cancel := context.WithTimeout(context.Background(), pickTimeout(rng))
		err := cl.Put(ctx, key, []byte(value))
		cancel()
		st := writeStatus(err)
		w.noteErr(err)
		w.setMu.Lock()
		w.inserts[key] = setResult{Status: st, Value: value}
		w.setMu.Unlock()
		if st == statusOK {
			w.acked.Add(1)
		}
		w.total.Add(1)
	}
}

// counter adds 1 to random counters.
func (w *workloads) counter(cl *client.Client, rng *rand.Rand) {
	defer w.wg.Done()
	for !w.stop.Load() {
		key := ctrKey(rng.IntN(ctrKeys))
		ctx, cancel := context.WithTimeout(context.Background(), pickTimeout(rng))
		v, err := cl.Add(ctx, key, 1)
		cancel()
		w.noteErr(err)
		w.ctrMu.Lock()
		r := w.counters[key]
		switch writeStatus(err) {
		case statusOK:
			r.Acked++
			r.Returned = append(r.Returned, v)
			w.acked.Add(1)
		case statusFailed:
			r.Failed++
		default:
			r.Unknown++
		}
		w.ctrMu.Unlock()
		w.total.Add(1)
	}
}

// waitAcked waits until n more writes are acknowledged than now.
func (w *workloads) waitAcked(n int64, timeout time.Duration) error {
	target := w.acked.Load() + n
	return replicationtest.Eventually(timeout, func() error {
		if got := w.acked.Load(); got < target {
			return fmt.Errorf("only %d of %d acknowledged writes within %v", got, target, timeout)
		}
		return nil
	})
}

// readSet reads the set back with a linearizable scan.
func readSet(ctx context.Context, cl *client.Client) (map[string]string, error) {
	out := map[string]string{}
	for kv, err := range cl.ScanAll(ctx, client.ScanOptions{Prefix: setPrefix}) {
		if err != nil {
			return nil, err
		}
		out[kv.Key] = string(kv.Value)
	}
	return out, nil
}

// readCounter reads a counter (absent = 0).
func readCounter(ctx context.Context, cl *client.Client, key string) (int64, error) {
	v, err := cl.Get(ctx, key)
	if errors.Is(err, client.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(string(v), 10, 64)
}
