package ycsb

import "context"

// Store is what a benchmark drives. Run calls it from Config.Concurrency
// goroutines at once, so it must be safe for concurrent use.
type Store interface {
	// Read reads key. It returns nil, an error that Config.IsNotFound
	// recognises when the key is absent, or a failure.
	Read(ctx context.Context, key string) error
	// Update writes value to key. Run reuses value's memory as soon as
	// Update returns, so Update must not retain it.
	Update(ctx context.Context, key string, value []byte) error
}
