package ring

import (
	"errors"
	"strings"
	"testing"
)

func TestMemberMeta_Encode(t *testing.T) {
	tests := []MemberMeta{
		{},
		{NodeID: "node-1"},
		{NodeID: "node-1", Incarnation: 3, Addr: "127.0.0.1:7000", HTTPAddr: "127.0.0.1:8000", ClusterID: "3f1c0e5e-9d1a-4a5e-8d7e-1f2b3c4d5e6f", Epoch: 1 << 40, BootstrapExpect: 3},
		{NodeID: strings.Repeat("n", 200), Addr: strings.Repeat("a", 200), Incarnation: ^uint64(0), Epoch: ^uint64(0), BootstrapExpect: ^uint32(0)},
	}
	for _, m := range tests {
		b, err := m.Encode()
		if err != nil {
			t.Fatalf("Encode(%+v): %v", m, err)
		}
		got, err := DecodeMemberMeta(b)
		if err != nil || got != m {
			t.Errorf("DecodeMemberMeta(Encode(%+v)) = %+v, %v", m, got, err)
		}
	}
}

func TestMemberMeta_Encode_tooLarge(t *testing.T) {
	// version (1) + node ID length (2) + 502 bytes + seven 1-byte varints = 512.
	fits := MemberMeta{NodeID: strings.Repeat("x", 502)}
	if b, err := fits.Encode(); err != nil || len(b) != MaxMetaSize {
		t.Fatalf("Encode of a %d-byte meta: len %d, %v", MaxMetaSize, len(b), err)
	}
	over := MemberMeta{NodeID: strings.Repeat("x", 503)}
	if _, err := over.Encode(); !errors.Is(err, ErrMetaTooLarge) || !strings.Contains(err.Error(), "513 bytes") {
		t.Errorf("Encode of a 513-byte meta = %v, want ErrMetaTooLarge saying 513 bytes", err)
	}
}

func TestDecodeMemberMeta_errors(t *testing.T) {
	good, err := MemberMeta{NodeID: "n", ClusterID: "c", Epoch: 300}.Encode()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "empty"},
		{"version 0", append([]byte{0}, good[1:]...), "version 0"},
		{"truncated", good[:len(good)-2], "truncated"},
		{"string overruns", []byte{1, 50, 'a'}, "node ID length 50 exceeds"},
		{"trailing bytes in v1", append(append([]byte{}, good...), 0), "1 trailing bytes"},
		{"bootstrap expect overflow", []byte{1, 0, 0, 0, 0, 0, 0, 0x80, 0x80, 0x80, 0x80, 0x10}, "bootstrap expect"},
		{"too long", make([]byte, MaxMetaSize+1), "513 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeMemberMeta(tt.b)
			if !errors.Is(err, ErrBadMeta) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("DecodeMemberMeta = %v, want ErrBadMeta mentioning %q", err, tt.want)
			}
		})
	}
}

func TestDecodeMemberMeta_futureVersion(t *testing.T) {
	b, err := MemberMeta{NodeID: "n", Epoch: 5}.Encode()
	if err != nil {
		t.Fatal(err)
	}
	b[0] = 2
	b = append(b, 0xAA, 0xBB) // fields a newer node appends
	got, err := DecodeMemberMeta(b)
	if err != nil || got.NodeID != "n" || got.Epoch != 5 {
		t.Errorf("DecodeMemberMeta(v2) = %+v, %v; want the v1 fields", got, err)
	}
}

func FuzzDecodeMemberMeta(f *testing.F) {
	for _, m := range []MemberMeta{{}, {NodeID: "node-1", Incarnation: 2, Addr: "127.0.0.1:7000", ClusterID: "c", Epoch: 9, BootstrapExpect: 3}} {
		b, err := m.Encode()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0, 1}) // leaving flag
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeMemberMeta(b)
		if err != nil {
			if !errors.Is(err, ErrBadMeta) {
				t.Fatalf("error %v does not wrap ErrBadMeta", err)
			}
			return
		}
		enc, err := m.Encode()
		if err != nil {
			t.Fatalf("Encode of decoded %+v: %v", m, err)
		}
		m2, err := DecodeMemberMeta(enc)
		if err != nil || m2 != m {
			t.Fatalf("Decode(Encode(%+v)) = %+v, %v", m, m2, err)
		}
	})
}
