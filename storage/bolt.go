package storage

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// openBolt opens a bbolt file with the options used for both stores.
//
// NoFreelistSync avoids writing the freelist on every commit (one fewer page
// per fsync; the freelist is rebuilt by scanning on open), the map freelist
// keeps allocation O(1) for large files, and a generous initial mmap avoids
// remaps, which must wait for every open read transaction (a long snapshot
// would otherwise stall all writes). NoSync is never set.
func openBolt(path string, mmapSize int) (*bolt.DB, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:         5 * time.Second,
		NoFreelistSync:  true,
		FreelistType:    bolt.FreelistMapType,
		InitialMmapSize: mmapSize,
	})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("storage: open %s: file is locked by another process: %w", path, err)
		}
		return nil, fmt.Errorf("storage: open %s: %w", path, err)
	}
	return db, nil
}

// mapBoltErr turns bbolt's "database not open" into ErrClosed.
func mapBoltErr(err error) error {
	if errors.Is(err, berrors.ErrDatabaseNotOpen) || errors.Is(err, berrors.ErrTxClosed) {
		return ErrClosed
	}
	return err
}

func validID(id string) error {
	if len(id) == 0 || len(id) > 256 {
		return fmt.Errorf("%w: %q", ErrInvalidID, id)
	}
	return nil
}

// listBuckets returns the IDs of the top-level buckets named prefix+ID.
func listBuckets(db *bolt.DB, prefix string) ([]string, error) {
	var ids []string
	err := db.View(func(tx *bolt.Tx) error {
		c := tx.Cursor()
		p := []byte(prefix)
		for k, _ := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, _ = c.Next() {
			ids = append(ids, string(k[len(p):]))
		}
		return nil
	})
	return ids, mapBoltErr(err)
}

func defaultLogger(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.Default()
	}
	return l
}
