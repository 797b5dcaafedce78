package ring

import (
	"encoding/binary"
	"fmt"
	"math"
)

// MaxMetaSize is the largest encoded [MemberMeta] memberlist will gossip
// (memberlist.MetaMaxSize; memberlist panics above it).
const MaxMetaSize = 512

// metaVersion is the version byte that starts an encoded MemberMeta.
const metaVersion = 1

// MemberMeta is what a node advertises about itself in gossip. It is small by
// design: shard lists never go in gossip.
type MemberMeta struct {
	NodeID          string
	Incarnation     uint64
	Addr            string // gRPC address
	HTTPAddr        string
	ClusterID       string // "" before the node belongs to a cluster
	Epoch           uint64 // the newest cluster map epoch the node knows
	BootstrapExpect uint32 // the node's --bootstrap-expect, 0 if unset
}

// metaFlagLeaving marks the meta a node gossips just before it leaves, so
// peers can tell a graceful leave from a failure: memberlist v0.7.0 does not
// tell its EventDelegate which one it was.
const metaFlagLeaving = 1 << 0

// Encode returns m's compact binary form: a version byte (1) followed by the
// fields in declaration order and a flags word, strings as uvarint length +
// bytes, integers as uvarints. It fails with [ErrMetaTooLarge] above
// [MaxMetaSize] bytes.
func (m MemberMeta) Encode() ([]byte, error) { return m.encode(0) }

func (m MemberMeta) encode(flags uint64) ([]byte, error) {
	b := make([]byte, 0, 1+len(m.NodeID)+len(m.Addr)+len(m.HTTPAddr)+len(m.ClusterID)+4*binary.MaxVarintLen64)
	b = append(b, metaVersion)
	b = appendString(b, m.NodeID)
	b = binary.AppendUvarint(b, m.Incarnation)
	b = appendString(b, m.Addr)
	b = appendString(b, m.HTTPAddr)
	b = appendString(b, m.ClusterID)
	b = binary.AppendUvarint(b, m.Epoch)
	b = binary.AppendUvarint(b, uint64(m.BootstrapExpect))
	b = binary.AppendUvarint(b, flags)
	if len(b) > MaxMetaSize {
		return nil, fmt.Errorf("%w: node %.64q encodes to %d bytes, more than %d; shorten its addresses or IDs", ErrMetaTooLarge, m.NodeID, len(b), MaxMetaSize)
	}
	return b, nil
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// DecodeMemberMeta decodes what [MemberMeta.Encode] produced. Bytes after the
// version-1 fields are rejected in version 1 and ignored in later versions,
// so a newer node may append fields. Errors wrap [ErrBadMeta].
func DecodeMemberMeta(b []byte) (MemberMeta, error) {
	m, _, err := decodeMeta(b)
	return m, err
}

func decodeMeta(b []byte) (m MemberMeta, flags uint64, err error) {
	if len(b) == 0 {
		return m, 0, fmt.Errorf("%w: empty", ErrBadMeta)
	}
	if len(b) > MaxMetaSize {
		return m, 0, fmt.Errorf("%w: %d bytes, more than %d", ErrBadMeta, len(b), MaxMetaSize)
	}
	if b[0] == 0 {
		return m, 0, fmt.Errorf("%w: version 0", ErrBadMeta)
	}
	d := metaDecoder{b: b[1:]}
	m.NodeID = d.string("node ID")
	m.Incarnation = d.uvarint("incarnation")
	m.Addr = d.string("address")
	m.HTTPAddr = d.string("HTTP address")
	m.ClusterID = d.string("cluster ID")
	m.Epoch = d.uvarint("epoch")
	be := d.uvarint("bootstrap expect")
	if d.err == nil && be > math.MaxUint32 {
		d.err = fmt.Errorf("%w: bootstrap expect %d out of range", ErrBadMeta, be)
	}
	m.BootstrapExpect = uint32(be)
	flags = d.uvarint("flags")
	if d.err == nil && b[0] == metaVersion && len(d.b) > 0 {
		d.err = fmt.Errorf("%w: %d trailing bytes", ErrBadMeta, len(d.b))
	}
	if d.err != nil {
		return MemberMeta{}, 0, d.err
	}
	return m, flags, nil
}

type metaDecoder struct {
	b   []byte
	err error
}

func (d *metaDecoder) uvarint(field string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = fmt.Errorf("%w: truncated or invalid %s", ErrBadMeta, field)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *metaDecoder) string(field string) string {
	n := d.uvarint(field + " length")
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.b)) {
		d.err = fmt.Errorf("%w: %s length %d exceeds the %d bytes left", ErrBadMeta, field, n, len(d.b))
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}
