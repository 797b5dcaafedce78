package replication

import (
	"bytes"
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/ridgeline-kv/ridgeline/replication/kvpb"
)

func sampleCommands() []*kvpb.Command {
	return []*kvpb.Command{
		{},
		casCmd("k", "v", 0),
		delCmd("k", 7),
		{
			Write:       &kvpb.WriteHeader{Session: 1 << 63, Seq: 42},
			NowUnixNano: -1,
			Op: &kvpb.Command_Txn{Txn: &kvpb.TxnRequest{
				Compares: []*kvpb.Compare{cmp("{t}a", kvpb.Compare_GREATER, 3)},
				Success:  []*kvpb.Op{opPut("{t}a", ""), opAdd("{t}n", -5), opGet("{t}a"), opDel("{t}b")},
				Failure:  []*kvpb.Op{{}},
			}},
		},
	}
}

func sampleMetaCommands() []*kvpb.MetaCommand {
	return []*kvpb.MetaCommand{
		{},
		{ExpectedEpoch: 9, Map: &kvpb.ClusterMap{ClusterId: "c1", Epoch: 9, ShardCount: 32, ReplicationFactor: 3, MetaVoters: []string{"n1", "n2"}}},
	}
}

func TestCodec_RoundTrip(t *testing.T) {
	for _, in := range sampleCommands() {
		b, err := encodeCommand(in)
		if err != nil {
			t.Fatalf("encodeCommand(%v): %v", in, err)
		}
		if b[0] != commandCodecV1 {
			t.Errorf("version byte = %#x, want %#x", b[0], commandCodecV1)
		}
		out, err := decodeCommand(b)
		if err != nil || !proto.Equal(in, out) {
			t.Errorf("decodeCommand(encodeCommand(%v)) = %v, %v", in, out, err)
		}
	}
	for _, in := range sampleMetaCommands() {
		b, err := encodeMetaCommand(in)
		if err != nil {
			t.Fatalf("encodeMetaCommand(%v): %v", in, err)
		}
		out, err := decodeMetaCommand(b)
		if err != nil || !proto.Equal(in, out) {
			t.Errorf("decodeMetaCommand(encodeMetaCommand(%v)) = %v, %v", in, out, err)
		}
	}
	if _, err := encodeCommand(nil); err == nil {
		t.Error("encodeCommand(nil) succeeded")
	}
	if _, err := encodeMetaCommand(nil); err == nil {
		t.Error("encodeMetaCommand(nil) succeeded")
	}
}

func TestCodec_DecodeErrors(t *testing.T) {
	meta, _ := encodeMetaCommand(sampleMetaCommands()[1])
	data, _ := encodeCommand(sampleCommands()[3])
	tests := []struct {
		name string
		b    []byte
		meta bool
		want string
	}{
		{"empty", nil, false, "empty command entry"},
		{"unknown version", []byte{0x02, 0x08, 0x01}, false, "encoding version 0x02, this node understands only 0x01"},
		{"meta entry in data fsm", meta, false, "encoding version 0x81"},
		{"data entry in meta fsm", data, true, "encoding version 0x01, this node understands only 0x81"},
		{"garbage proto", []byte{commandCodecV1, 0xff, 0xff, 0xff}, false, "command entry of 4 bytes"},
		{"truncated", data[:len(data)-3], false, "command entry"},
		{"meta empty", []byte{}, true, "empty meta command entry"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			if tt.meta {
				_, err = decodeMetaCommand(tt.b)
			} else {
				_, err = decodeCommand(tt.b)
			}
			if !errors.Is(err, errCorruptEntry) || !bytes.Contains([]byte(err.Error()), []byte(tt.want)) {
				t.Errorf("decode(%x) error = %v, want errCorruptEntry containing %q", tt.b, err, tt.want)
			}
		})
	}
}

// FuzzCommandCodec checks that decoding never panics and that every command
// that decodes survives a re-encoding unchanged.
func FuzzCommandCodec(f *testing.F) {
	for _, c := range sampleCommands() {
		b, _ := encodeCommand(c)
		f.Add(b)
		f.Add(b[1:])
	}
	for _, c := range sampleMetaCommands() {
		b, _ := encodeMetaCommand(c)
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{0x01, 0x1a, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		if cmd, err := decodeCommand(b); err == nil {
			checkCommandRoundTrip(t, cmd)
		}
		if cmd, err := decodeMetaCommand(b); err == nil {
			enc, err := encodeMetaCommand(cmd)
			if err != nil {
				t.Fatalf("encodeMetaCommand: %v", err)
			}
			out, err := decodeMetaCommand(enc)
			if err != nil || !proto.Equal(cmd, out) {
				t.Fatalf("meta round trip of %v = %v, %v", cmd, out, err)
			}
		}
		// b as a bare message: the payload of any well-formed entry.
		var cmd kvpb.Command
		if proto.Unmarshal(b, &cmd) == nil {
			checkCommandRoundTrip(t, &cmd)
		}
	})
}

func checkCommandRoundTrip(t *testing.T, cmd *kvpb.Command) {
	t.Helper()
	enc, err := encodeCommand(cmd)
	if err != nil {
		t.Fatalf("encodeCommand: %v", err)
	}
	out, err := decodeCommand(enc)
	if err != nil || !proto.Equal(cmd, out) {
		t.Fatalf("round trip of %v = %v, %v", cmd, out, err)
	}
}

func BenchmarkCodec_EncodeCommand(b *testing.B) {
	c := benchCommand()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := encodeCommand(c); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCodec_DecodeCommand(b *testing.B) {
	enc, _ := encodeCommand(benchCommand())
	b.ReportAllocs()
	b.SetBytes(int64(len(enc)))
	for b.Loop() {
		if _, err := decodeCommand(enc); err != nil {
			b.Fatal(err)
		}
	}
}

// benchCommand is a typical put: a 32-byte key and a 256-byte value.
func benchCommand() *kvpb.Command {
	return &kvpb.Command{
		Write:       &kvpb.WriteHeader{Session: 0x1234567890, Seq: 1000},
		NowUnixNano: 1_700_000_000_000_000_000,
		Op: &kvpb.Command_Put{Put: &kvpb.PutRequest{
			Write: &kvpb.WriteHeader{Session: 0x1234567890, Seq: 1000},
			Key:   bytes.Repeat([]byte("k"), 32),
			Value: bytes.Repeat([]byte("v"), 256),
		}},
	}
}
