package storage

import (
	"bytes"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func TestCodec_RoundTrip(t *testing.T) {
	tests := []struct {
		name string
		l    raft.Log
	}{
		{"zero", raft.Log{Index: 1}},
		{"all fields", raft.Log{Index: 7, Term: 1 << 40, Type: raft.LogConfiguration, Data: []byte("d"), Extensions: []byte("e"), AppendedAt: time.Unix(1, 2)}},
		{"extensions only", raft.Log{Index: 2, Extensions: []byte("ext")}},
		{"epoch time", raft.Log{Index: 3, AppendedAt: time.Unix(0, 0)}},
		{"negative time", raft.Log{Index: 4, AppendedAt: time.Unix(-100, 5)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			enc := appendLog(nil, &tt.l)
			if len(enc) > encodedLogLen(&tt.l) {
				t.Fatalf("encoded %d bytes > bound %d", len(enc), encodedLogLen(&tt.l))
			}
			var got raft.Log
			if err := decodeLog(tt.l.Index, enc, &got); err != nil {
				t.Fatal(err)
			}
			if got.Index != tt.l.Index || got.Term != tt.l.Term || got.Type != tt.l.Type ||
				!bytes.Equal(got.Data, tt.l.Data) || !bytes.Equal(got.Extensions, tt.l.Extensions) ||
				!got.AppendedAt.Equal(tt.l.AppendedAt) || got.AppendedAt.IsZero() != tt.l.AppendedAt.IsZero() {
				t.Fatalf("decode(encode(%+v)) = %+v", tt.l, got)
			}
		})
	}
}

func FuzzCodec(f *testing.F) {
	f.Add(uint64(1), uint64(2), uint8(0), []byte("data"), []byte("ext"), int64(12345), true)
	f.Add(uint64(0), uint64(0), uint8(255), []byte(nil), []byte(nil), int64(0), false)
	f.Fuzz(func(t *testing.T, index, term uint64, typ uint8, data, ext []byte, ns int64, hasTime bool) {
		l := raft.Log{Index: index, Term: term, Type: raft.LogType(typ), Data: data, Extensions: ext}
		if hasTime {
			l.AppendedAt = time.Unix(0, ns)
		}
		enc := appendLog(nil, &l)
		var got raft.Log
		if err := decodeLog(index, enc, &got); err != nil {
			t.Fatal(err)
		}
		if got.Term != term || got.Type != l.Type || !bytes.Equal(got.Data, data) ||
			!bytes.Equal(got.Extensions, ext) || !got.AppendedAt.Equal(l.AppendedAt) {
			t.Fatalf("round trip: %+v != %+v", got, l)
		}
		// Garbage never panics.
		_ = decodeLog(index, data, &got)
	})
}
