package replication

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/ridgeline-kv/ridgeline/replication/kvpb"
)

// Raft log entries are a one-byte encoding version followed by a protobuf
// message. Data shards carry kvpb.Command, the meta group kvpb.MetaCommand.
// The two version bytes differ so that an entry fed to the wrong state
// machine is rejected instead of misread. A node refuses versions it does not
// know; a new version is only proposed once every node understands it.
const (
	commandCodecV1     byte = 0x01
	metaCommandCodecV1 byte = 0x81
)

// errCorruptEntry marks a raft log entry that could not be decoded. Every
// replica decodes the same bytes the same way, so rejecting it is
// deterministic.
var errCorruptEntry = errors.New("replication: undecodable log entry")

var marshalOpts = proto.MarshalOptions{Deterministic: true}

// encodeCommand encodes a data-shard command for raft.Apply.
func encodeCommand(cmd *kvpb.Command) ([]byte, error) {
	if cmd == nil {
		return nil, errors.New("replication: encode command: nil command")
	}
	return encodeVersioned(commandCodecV1, cmd)
}

// decodeCommand decodes an entry written by encodeCommand. It never panics;
// unknown versions and garbage yield an error wrapping errCorruptEntry.
func decodeCommand(b []byte) (*kvpb.Command, error) {
	cmd := new(kvpb.Command)
	if err := decodeVersioned("command", commandCodecV1, b, cmd); err != nil {
		return nil, err
	}
	return cmd, nil
}

// encodeMetaCommand encodes a meta-group command for raft.Apply.
func encodeMetaCommand(cmd *kvpb.MetaCommand) ([]byte, error) {
	if cmd == nil {
		return nil, errors.New("replication: encode meta command: nil command")
	}
	return encodeVersioned(metaCommandCodecV1, cmd)
}

// decodeMetaCommand decodes an entry written by encodeMetaCommand. It never
// panics; unknown versions and garbage yield an error wrapping
// errCorruptEntry.
func decodeMetaCommand(b []byte) (*kvpb.MetaCommand, error) {
	cmd := new(kvpb.MetaCommand)
	if err := decodeVersioned("meta command", metaCommandCodecV1, b, cmd); err != nil {
		return nil, err
	}
	return cmd, nil
}

func encodeVersioned(version byte, m proto.Message) ([]byte, error) {
	buf := make([]byte, 1, 1+marshalOpts.Size(m))
	buf[0] = version
	buf, err := marshalOpts.MarshalAppend(buf, m)
	if err != nil {
		return nil, fmt.Errorf("replication: encode %T: %w", m, err)
	}
	return buf, nil
}

func decodeVersioned(what string, version byte, b []byte, m proto.Message) error {
	if len(b) == 0 {
		return fmt.Errorf("%w: empty %s entry", errCorruptEntry, what)
	}
	if b[0] != version {
		return fmt.Errorf("%w: %s entry has encoding version 0x%02x, this node understands only 0x%02x: "+
			"upgrade this node or check that the entry belongs to this raft group", errCorruptEntry, what, b[0], version)
	}
	if err := proto.Unmarshal(b[1:], m); err != nil {
		return fmt.Errorf("%w: %s entry of %d bytes: %v", errCorruptEntry, what, len(b), err)
	}
	return nil
}
