package ring

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/buraksezer/consistent"
	"github.com/cespare/xxhash/v2"
)

func TestHashTag(t *testing.T) {
	tests := []struct {
		key  string
		want string // "" means no tag: the whole key is hashed
	}{
		{"{user:1}/a", "user:1"},
		{"{user:1}/b", "user:1"},
		{"x/{user:1}/c", "user:1"},
		{"{}x", ""},
		{"{}", ""},
		{"{}{a}", ""}, // first braces are empty: whole key, as in Redis
		{"x{", ""},
		{"x}", ""},
		{"}{", ""},
		{"x}{y", ""},
		{"a{b}c{d}", "b"},
		{"{{a}}", "{a"},
		{"{a{b}", "a{b"},
		{"plain", ""},
		{"", ""},
		{"{skier:42}/rides/2024", "skier:42"},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			got := HashTag([]byte(tt.key))
			if tt.want == "" {
				if got != nil {
					t.Errorf("HashTag(%q) = %q, want nil", tt.key, got)
				}
				return
			}
			if string(got) != tt.want {
				t.Errorf("HashTag(%q) = %q, want %q", tt.key, got, tt.want)
			}
		})
	}
}

func TestHashTag_doesNotLetAppendClobberKey(t *testing.T) {
	key := []byte("{ab}cd")
	tag := HashTag(key)
	_ = append(tag, 'X')
	if string(key) != "{ab}cd" {
		t.Errorf("appending to the tag changed the key to %q", key)
	}
}

func TestKeyspace_ShardForKey(t *testing.T) {
	ks := NewKeyspace(DefaultShards)
	same := [][2]string{
		{"{user:1}/a", "{user:1}/b"},
		{"{skier:42}/rides/1", "{skier:42}/vertical/2024"},
		{"a{b}c{d}", "{b}"},
		{"x{b}", "b"},
	}
	for _, p := range same {
		if a, b := ks.ShardForKey([]byte(p[0])), ks.ShardForKey([]byte(p[1])); a != b {
			t.Errorf("ShardForKey(%q) = %d, ShardForKey(%q) = %d, want equal", p[0], a, p[1], b)
		}
	}
	// Keys with empty or unclosed braces hash whole.
	for _, k := range []string{"{}x", "x{", "{}", "{}{a}"} {
		want := uint32(xxhash.Sum64String(k) % DefaultShards)
		if got := ks.ShardForKey([]byte(k)); got != want {
			t.Errorf("ShardForKey(%q) = %d, want %d (whole key hashed)", k, got, want)
		}
	}
}

func TestKeyspace_ShardForKey_matchesConsistent(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	for _, shards := range []uint32{1, 2, 7, 32, 64, 271, 1000} {
		c := consistent.New(nil, consistent.Config{
			Hasher:            xxhasher{},
			PartitionCount:    int(shards),
			ReplicationFactor: placementVnodes,
			Load:              placementLoad,
		})
		ks := NewKeyspace(shards)
		hit := make([]bool, shards)
		for i := range 20000 {
			var key []byte
			switch i % 3 {
			case 0:
				key = fmt.Appendf(nil, "key-%d", i)
			case 1:
				key = fmt.Appendf(nil, "{skier:%d}/rides/%d", rng.IntN(500), i)
			default:
				key = make([]byte, rng.IntN(64))
				for j := range key {
					key[j] = byte(rng.IntN(256))
				}
			}
			hashed := HashTag(key)
			if hashed == nil {
				hashed = key
			}
			want := uint32(c.FindPartitionID(hashed))
			got := ks.ShardForKey(key)
			if got != want {
				t.Fatalf("shards=%d key=%q: Keyspace.ShardForKey = %d, consistent.FindPartitionID = %d", shards, key, got, want)
			}
			if f := ShardForKey(key, shards); f != want {
				t.Fatalf("shards=%d key=%q: ShardForKey = %d, consistent.FindPartitionID = %d", shards, key, f, want)
			}
			hit[got] = true
		}
		for s, ok := range hit {
			if !ok && shards <= 64 {
				t.Errorf("shards=%d: no key of 20000 mapped to shard %d", shards, s)
			}
		}
	}
}

func TestShardForKey_zeroShards(t *testing.T) {
	if got := ShardForKey([]byte("k"), 0); got != 0 {
		t.Errorf("ShardForKey(k, 0) = %d, want 0", got)
	}
	var ks Keyspace
	if got := ks.ShardForKey([]byte("k")); got != 0 {
		t.Errorf("zero Keyspace.ShardForKey = %d, want 0", got)
	}
}

func TestKeyspace_ShardForKey_noAllocs(t *testing.T) {
	ks := NewKeyspace(DefaultShards)
	key := []byte("{skier:42}/rides/2024-01-01")
	if n := testing.AllocsPerRun(100, func() { ks.ShardForKey(key) }); n != 0 {
		t.Errorf("Keyspace.ShardForKey allocates %v times per call, want 0", n)
	}
	if n := testing.AllocsPerRun(100, func() { ShardForKey(key, DefaultShards) }); n != 0 {
		t.Errorf("ShardForKey allocates %v times per call, want 0", n)
	}
}

func FuzzShardForKey(f *testing.F) {
	for _, k := range []string{"", "{", "}", "{}", "{}x", "x{", "{a}", "a{b}c{d}", "{user:1}/a", "\xff{\x00}"} {
		f.Add([]byte(k), uint32(DefaultShards))
	}
	f.Add([]byte("k"), uint32(1))
	f.Add([]byte("k"), uint32(0))
	f.Fuzz(func(t *testing.T, key []byte, shards uint32) {
		shards = shards%4096 + 1
		orig := bytes.Clone(key)
		got := ShardForKey(key, shards)
		if got >= shards {
			t.Fatalf("ShardForKey(%q, %d) = %d, out of range", key, shards, got)
		}
		if ks := NewKeyspace(shards).ShardForKey(key); ks != got {
			t.Fatalf("Keyspace.ShardForKey(%q) = %d, ShardForKey = %d", key, ks, got)
		}
		if !bytes.Equal(key, orig) {
			t.Fatalf("ShardForKey modified the key")
		}
		tag := HashTag(key)
		want := uint32(xxhash.Sum64(key) % uint64(shards))
		if tag != nil {
			// The tag is the non-empty content of the first {...}.
			open := bytes.IndexByte(key, '{')
			if len(tag) == 0 || bytes.IndexByte(tag, '}') >= 0 || !bytes.HasPrefix(key[open+1:], append(bytes.Clone(tag), '}')) {
				t.Fatalf("HashTag(%q) = %q breaks the first-braces rule", key, tag)
			}
			want = uint32(xxhash.Sum64(tag) % uint64(shards))
			// Any key with the same tag lands on the same shard.
			other := append(append([]byte("prefix{"), tag...), "}suffix"...)
			if o := ShardForKey(other, shards); o != got {
				t.Fatalf("ShardForKey(%q) = %d, ShardForKey(%q) = %d; same tag, want equal", key, got, other, o)
			}
		} else if open := bytes.IndexByte(key, '{'); open >= 0 {
			if end := bytes.IndexByte(key[open+1:], '}'); end > 0 {
				t.Fatalf("HashTag(%q) = nil, but it has a non-empty tag", key)
			}
		}
		if got != want {
			t.Fatalf("ShardForKey(%q, %d) = %d, want %d", key, shards, got, want)
		}
	})
}

func BenchmarkKeyspace_ShardForKey(b *testing.B) {
	for _, key := range []string{"rides/2024-01-01/lift-7", "{skier:42}/rides/2024-01-01/lift-7"} {
		b.Run(fmt.Sprintf("len=%d,tag=%t", len(key), HashTag([]byte(key)) != nil), func(b *testing.B) {
			ks := NewKeyspace(DefaultShards)
			k := []byte(key)
			b.ReportAllocs()
			for b.Loop() {
				ks.ShardForKey(k)
			}
		})
	}
}

func BenchmarkShardForKey(b *testing.B) {
	k := []byte("{skier:42}/rides/2024-01-01/lift-7")
	b.ReportAllocs()
	for b.Loop() {
		ShardForKey(k, DefaultShards)
	}
}

// BenchmarkConsistent_FindPartitionID is the reference the Keyspace fast
// path is measured against.
func BenchmarkConsistent_FindPartitionID(b *testing.B) {
	c := consistent.New(nil, consistent.Config{Hasher: xxhasher{}, PartitionCount: DefaultShards, ReplicationFactor: placementVnodes, Load: placementLoad})
	k := []byte("skier:42")
	b.ReportAllocs()
	for b.Loop() {
		c.FindPartitionID(k)
	}
}
