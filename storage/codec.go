package storage

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
)

// Log entry value encoding (the key is the 8-byte big-endian index):
//
//	byte    codec version (1)
//	byte    raft.LogType
//	byte    flags: bit 0 set if AppendedAt is present
//	uvarint Term
//	varint  AppendedAt as Unix nanoseconds (only if flag bit 0)
//	uvarint len(Data)
//	bytes   Data
//	bytes   Extensions (the rest of the value)
//
// Decoding does not preserve the difference between a nil and an empty
// Data/Extensions slice, nor AppendedAt's location and monotonic reading.
const (
	logCodecV1      = 1
	flagAppendedAt  = 1
	logHeaderMaxLen = 3 + 2*binary.MaxVarintLen64
)

func uint64Key(i uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], i)
	return b[:]
}

// encodedLogLen is an upper bound of the encoded size of l.
func encodedLogLen(l *raft.Log) int {
	return logHeaderMaxLen + binary.MaxVarintLen64 + len(l.Data) + len(l.Extensions)
}

// appendLog appends the encoding of l to dst.
func appendLog(dst []byte, l *raft.Log) []byte {
	var flags byte
	if !l.AppendedAt.IsZero() {
		flags |= flagAppendedAt
	}
	dst = append(dst, logCodecV1, byte(l.Type), flags)
	dst = binary.AppendUvarint(dst, l.Term)
	if flags&flagAppendedAt != 0 {
		dst = binary.AppendVarint(dst, l.AppendedAt.UnixNano())
	}
	dst = binary.AppendUvarint(dst, uint64(len(l.Data)))
	dst = append(dst, l.Data...)
	dst = append(dst, l.Extensions...)
	return dst
}

// decodeLog decodes val into l. l.Data and l.Extensions alias val.
func decodeLog(index uint64, val []byte, l *raft.Log) error {
	if len(val) < 3 || val[0] != logCodecV1 {
		return fmt.Errorf("%w: log entry %d: unknown encoding", ErrCorrupt, index)
	}
	typ, flags := val[1], val[2]
	p := val[3:]
	term, n := binary.Uvarint(p)
	if n <= 0 {
		return fmt.Errorf("%w: log entry %d: bad term", ErrCorrupt, index)
	}
	p = p[n:]
	var at time.Time
	if flags&flagAppendedAt != 0 {
		ns, n := binary.Varint(p)
		if n <= 0 {
			return fmt.Errorf("%w: log entry %d: bad timestamp", ErrCorrupt, index)
		}
		p = p[n:]
		at = time.Unix(0, ns)
	}
	dl, n := binary.Uvarint(p)
	if n <= 0 || dl > uint64(len(p)-n) {
		return fmt.Errorf("%w: log entry %d: bad data length", ErrCorrupt, index)
	}
	p = p[n:]
	*l = raft.Log{Index: index, Term: term, Type: raft.LogType(typ), AppendedAt: at}
	if dl > 0 {
		l.Data = p[:dl:dl]
	}
	if len(p) > int(dl) {
		l.Extensions = p[dl:]
	}
	return nil
}

func be64(b []byte) uint64 { return binary.BigEndian.Uint64(b) }

func putU64(b []byte, v uint64) { binary.BigEndian.PutUint64(b, v) }
