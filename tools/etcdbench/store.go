package main

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/ridgeline-kv/ridgeline/client/ycsb"
)

var errNotFound = errors.New("etcdbench: key not found")

// store runs the benchmark's operations as etcd Gets and Puts over one or
// more clientv3 instances. It is safe for concurrent use.
type store struct {
	clients []*clientv3.Client
	next    atomic.Uint64 // round-robin over clients when there are several
	timeout time.Duration
	getOpts []clientv3.OpOption
}

var _ ycsb.Store = (*store)(nil)

// newStore connects n clientv3 instances to endpoints, waiting at most
// timeout for each.
func newStore(ctx context.Context, endpoints []string, n int, timeout time.Duration, serializable bool) (*store, error) {
	s := &store{timeout: timeout}
	if serializable {
		s.getOpts = []clientv3.OpOption{clientv3.WithSerializable()}
	}
	for range n {
		c, err := clientv3.New(clientv3.Config{
			Endpoints:   endpoints,
			DialTimeout: timeout,
			Context:     ctx,
			Logger:      zap.NewNop(),
		})
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("connect to etcd at %v: %w", endpoints, err)
		}
		s.clients = append(s.clients, c)
		// clientv3.New does not wait for a connection: check one now.
		sctx, cancel := context.WithTimeout(ctx, timeout)
		_, err = c.Status(sctx, endpoints[0])
		cancel()
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("etcd at %s did not answer: %w", endpoints[0], err)
		}
	}
	return s, nil
}

func (s *store) client() *clientv3.Client {
	if len(s.clients) == 1 {
		return s.clients[0]
	}
	return s.clients[s.next.Add(1)%uint64(len(s.clients))]
}

// Read is a Get: linearizable unless the store was made serializable.
func (s *store) Read(ctx context.Context, key string) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	resp, err := s.client().Get(ctx, key, s.getOpts...)
	if err != nil {
		return err
	}
	if len(resp.Kvs) == 0 {
		return errNotFound
	}
	return nil
}

// Update is a Put. The value is copied into a string, so the caller may
// reuse it.
func (s *store) Update(ctx context.Context, key string, value []byte) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	_, err := s.client().Put(ctx, key, string(value))
	return err
}

// Close closes every client.
func (s *store) Close() error {
	var errs []error
	for _, c := range s.clients {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}
