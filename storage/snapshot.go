package storage

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"sync"

	bolt "go.etcd.io/bbolt"
)

// Snapshot stream format, version 1:
//
//	[8]byte  magic "RLSHARD\x00"
//	byte     format version (1)
//	uvarint  applied index
//	uvarint  number of data records
//	records, data sub-space first then sys, each in byte order:
//	  byte     kind (1 = data, 2 = sys)
//	  uvarint  key length, key
//	  uvarint  value length, value (data: 8-byte version || bytes, as stored)
//	byte     0 (end)
//	[4]byte  CRC-32C (Castagnoli), big-endian, of every preceding byte
const (
	snapMagic   = "RLSHARD\x00"
	snapVersion = 1
	recEnd      = 0
	recData     = 1
	recSys      = 2

	maxSnapValue = 64 << 20 // larger lengths are treated as corruption
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Snapshot is a consistent, point-in-time view of one shard, backed by a
// bbolt read transaction. Writes continue while it is open, but it pins the
// pages it sees (the file grows) and StateDB.Close waits for it: always
// Release it. Index and Release are safe for concurrent use; WriteTo must not
// be called concurrently with itself.
type Snapshot struct {
	s     *ShardStore
	t     *Tx // read-only, ended by Release
	index uint64
	keys  uint64
	once  sync.Once
	mu    sync.Mutex // serialises WriteTo against Release
	done  bool
}

// Snapshot flushes the StateDB, so that the snapshot's applied index is
// durable (raft may compact its log up to it), and opens a read transaction
// on the shard. The caller must call Release.
func (s *ShardStore) Snapshot() (*Snapshot, error) {
	if err := s.d.Flush(); err != nil {
		return nil, err
	}
	t, err := s.begin(false)
	if err != nil {
		return nil, err
	}
	return &Snapshot{s: s, t: t, index: t.Applied(), keys: t.Keys()}, nil
}

// Index returns the applied index of the view.
func (sn *Snapshot) Index() uint64 { return sn.index }

// Release ends the read transaction. It is idempotent.
func (sn *Snapshot) Release() {
	sn.once.Do(func() {
		sn.mu.Lock()
		defer sn.mu.Unlock()
		sn.done = true
		sn.t.end()
	})
}

type crcWriter struct {
	w   *bufio.Writer
	crc uint32
	n   int64
	tmp [binary.MaxVarintLen64]byte
}

func (c *crcWriter) Write(p []byte) (int, error) {
	c.crc = crc32.Update(c.crc, castagnoli, p)
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func (c *crcWriter) uvarint(v uint64) error {
	_, err := c.Write(binary.AppendUvarint(c.tmp[:0], v))
	return err
}

func (c *crcWriter) record(kind byte, k, v []byte) error {
	c.tmp[0] = kind
	if _, err := c.Write(c.tmp[:1]); err != nil {
		return err
	}
	if err := c.uvarint(uint64(len(k))); err != nil {
		return err
	}
	if _, err := c.Write(k); err != nil {
		return err
	}
	if err := c.uvarint(uint64(len(v))); err != nil {
		return err
	}
	_, err := c.Write(v)
	return err
}

// WriteTo streams the shard (data, sys and applied index) in the versioned,
// checksummed snapshot format and returns the number of bytes written.
func (sn *Snapshot) WriteTo(w io.Writer) (int64, error) {
	sn.mu.Lock()
	defer sn.mu.Unlock()
	if sn.done {
		return 0, errors.New("storage: snapshot used after Release")
	}
	cw := &crcWriter{w: bufio.NewWriterSize(w, 256<<10)}
	hdr := append([]byte(snapMagic), snapVersion)
	hdr = binary.AppendUvarint(hdr, sn.index)
	hdr = binary.AppendUvarint(hdr, sn.keys)
	if _, err := cw.Write(hdr); err != nil {
		return cw.n, err
	}
	var n uint64
	t := sn.t
	for it := newMergeIter(t.v, false, t.b.data, nil, nil); it.next(); {
		n++
		if err := cw.record(recData, it.cur.key, it.cur.val); err != nil {
			return cw.n, err
		}
	}
	if n != sn.keys {
		return cw.n, fmt.Errorf("%w: shard %q key counter is %d but %d keys are stored", ErrCorrupt, sn.s.id, sn.keys, n)
	}
	for it := newMergeIter(t.v, true, t.b.sys, nil, nil); it.next(); {
		if err := cw.record(recSys, it.cur.key, it.cur.val); err != nil {
			return cw.n, err
		}
	}
	if _, err := cw.Write([]byte{recEnd}); err != nil {
		return cw.n, err
	}
	var sum [4]byte
	binary.BigEndian.PutUint32(sum[:], cw.crc)
	if _, err := cw.Write(sum[:]); err != nil {
		return cw.n, err
	}
	return cw.n, cw.w.Flush()
}

type crcReader struct {
	r   *bufio.Reader
	crc uint32
	one [1]byte
}

func (c *crcReader) ReadByte() (byte, error) {
	b, err := c.r.ReadByte()
	if err != nil {
		return 0, err
	}
	c.one[0] = b
	c.crc = crc32.Update(c.crc, castagnoli, c.one[:])
	return b, nil
}

func (c *crcReader) full(p []byte) error {
	if _, err := io.ReadFull(c.r, p); err != nil {
		return err
	}
	c.crc = crc32.Update(c.crc, castagnoli, p)
	return nil
}

func (c *crcReader) bytes(buf []byte, max uint64, what string) ([]byte, error) {
	n, err := binary.ReadUvarint(c)
	if err != nil {
		return nil, err
	}
	if n > max {
		return nil, fmt.Errorf("%s length %d exceeds %d", what, n, max)
	}
	if uint64(cap(buf)) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	return buf, c.full(buf)
}

// readSnapshot parses and verifies a snapshot stream, calling visit (if not
// nil) for every record; k and v are only valid during the call. Every
// format error wraps ErrBadSnapshot.
func readSnapshot(r io.Reader, visit func(kind byte, k, v []byte) error) (applied, keys uint64, err error) {
	defer func() {
		if err != nil && !errors.Is(err, ErrBadSnapshot) {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			err = fmt.Errorf("%w: %w", ErrBadSnapshot, err)
		}
	}()
	cr := &crcReader{r: bufio.NewReaderSize(r, 256<<10)}
	magic := make([]byte, len(snapMagic)+1)
	if err := cr.full(magic); err != nil {
		return 0, 0, err
	}
	if string(magic[:len(snapMagic)]) != snapMagic {
		return 0, 0, errors.New("not a ridgeline shard snapshot (bad magic)")
	}
	if magic[len(snapMagic)] != snapVersion {
		return 0, 0, fmt.Errorf("unsupported snapshot format version %d (want %d)", magic[len(snapMagic)], snapVersion)
	}
	if applied, err = binary.ReadUvarint(cr); err != nil {
		return 0, 0, err
	}
	if keys, err = binary.ReadUvarint(cr); err != nil {
		return 0, 0, err
	}
	var kb, vb []byte
	var n uint64
	for {
		kind, err := cr.ReadByte()
		if err != nil {
			return 0, 0, err
		}
		if kind == recEnd {
			break
		}
		if kind != recData && kind != recSys {
			return 0, 0, fmt.Errorf("unknown record kind %d", kind)
		}
		if kb, err = cr.bytes(kb, bolt.MaxKeySize, "key"); err != nil {
			return 0, 0, err
		}
		if vb, err = cr.bytes(vb, maxSnapValue, "value"); err != nil {
			return 0, 0, err
		}
		if len(kb) == 0 {
			return 0, 0, errors.New("empty key")
		}
		if kind == recData {
			n++
			if len(vb) < 8 {
				return 0, 0, fmt.Errorf("data value of %d bytes (want >= 8)", len(vb))
			}
		}
		if visit != nil {
			if err := visit(kind, kb, vb); err != nil {
				return 0, 0, err
			}
		}
	}
	want := cr.crc
	var sum [4]byte
	if _, err := io.ReadFull(cr.r, sum[:]); err != nil {
		return 0, 0, err
	}
	if got := binary.BigEndian.Uint32(sum[:]); got != want {
		return 0, 0, fmt.Errorf("checksum mismatch (stream says %08x, content is %08x)", got, want)
	}
	if n != keys {
		return 0, 0, fmt.Errorf("header says %d data keys, stream has %d", keys, n)
	}
	return applied, keys, nil
}

// Restore atomically replaces the shard's data, sys sub-space and applied
// index with the snapshot stream r and returns the restored applied index.
//
// The stream is first spooled to a temporary file next to the database and
// fully verified, so a slow or broken stream never holds the write lock;
// then it is applied in one transaction of its own. On a truncated, corrupt
// or unknown stream, the error wraps ErrBadSnapshot and nothing changes.
// Restore creates the shard if it was dropped.
func (s *ShardStore) Restore(r io.Reader) (index uint64, err error) {
	f, err := os.CreateTemp(s.d.dir, "restore-*.tmp")
	if err != nil {
		return 0, fmt.Errorf("storage: restore shard %q: spool file: %w", s.id, err)
	}
	defer func() {
		_ = f.Close()
		_ = os.Remove(f.Name())
	}()
	bw := bufio.NewWriterSize(f, 256<<10)
	if _, _, err := readSnapshot(io.TeeReader(r, bw), nil); err != nil {
		return 0, fmt.Errorf("storage: restore shard %q: %w", s.id, err)
	}
	if err := bw.Flush(); err != nil {
		return 0, fmt.Errorf("storage: restore shard %q: spool file: %w", s.id, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return 0, fmt.Errorf("storage: restore shard %q: spool file: %w", s.id, err)
	}
	// Everything applied before is made durable first, so that nothing of
	// the shard is in memory only if this transaction fails.
	if err := s.d.Flush(); err != nil {
		return 0, fmt.Errorf("storage: restore shard %q: %w", s.id, err)
	}
	req := s.d.c.getRequest()
	defer s.d.c.putRequest(req)
	req.solo = true
	req.apply = func(tx *bolt.Tx) error {
		s.discard(false) // the snapshot replaces whatever it held
		if err := s.drop(tx); err != nil {
			return err
		}
		b, err := s.create(tx)
		if err != nil {
			return err
		}
		data, sys := b.data, b.sys
		data.FillPercent, sys.FillPercent = 1.0, 1.0 // sorted bulk load
		applied, keys, err := readSnapshot(f, func(kind byte, k, v []byte) error {
			dst := data
			if kind == recSys {
				dst = sys
			}
			// bbolt keeps the value slice until commit: copy it.
			return dst.Put(k, append([]byte(nil), v...))
		})
		if err != nil {
			return err
		}
		if err := b.meta.Put(s.appliedKey, uint64Key(applied)); err != nil {
			return err
		}
		if err := b.meta.Put(s.keysKey, uint64Key(keys)); err != nil {
			return err
		}
		index = applied
		return nil
	}
	if err := s.d.c.do(req); err != nil {
		return 0, fmt.Errorf("storage: restore shard %q: %w", s.id, err)
	}
	s.d.mu.Lock()
	if _, ok := s.d.shards[s.id]; !ok {
		s.d.shards[s.id] = s
	}
	s.d.mu.Unlock()
	return index, nil
}
