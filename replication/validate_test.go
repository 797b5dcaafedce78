package replication

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/ridgeline-kv/ridgeline/replication/kvpb"
	"github.com/ridgeline-kv/ridgeline/ring"
)

const testShards = 32

var goodWrite = &kvpb.WriteHeader{Session: 1, Seq: 1}

// keysInDifferentShards returns two keys of different shards.
func keysInDifferentShards(t testing.TB) (string, string) {
	t.Helper()
	a := "k0"
	for i := 1; i < 1000; i++ {
		b := fmt.Sprintf("k%d", i)
		if ring.ShardForKey([]byte(a), testShards) != ring.ShardForKey([]byte(b), testShards) {
			return a, b
		}
	}
	t.Fatal("no two keys in different shards")
	return "", ""
}

func checkValidation(t *testing.T, err error, want string) {
	t.Helper()
	if want == "" {
		if err != nil {
			t.Errorf("error = %v, want nil", err)
		}
		return
	}
	if !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), want) {
		t.Errorf("error = %v, want ErrInvalidArgument containing %q", err, want)
	}
}

func TestValidate_GetPutDelete(t *testing.T) {
	big := bytes.Repeat([]byte("k"), MaxKeySize+1)
	maxKey := bytes.Repeat([]byte("k"), MaxKeySize)
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"get ok", validateGet(&kvpb.GetRequest{Key: []byte("a")}), ""},
		{"get nil", validateGet(nil), "get request is nil"},
		{"get empty key", validateGet(&kvpb.GetRequest{}), "key is empty; keys must be 1 B to 4 KiB"},
		{"get max key", validateGet(&kvpb.GetRequest{Key: maxKey}), ""},
		{"get long key", validateGet(&kvpb.GetRequest{Key: big}), "key is 4097 bytes; keys must be 1 B to 4 KiB: shorten the key or hash it"},
		{"put ok", validatePut(&kvpb.PutRequest{Write: goodWrite, Key: []byte("a"), Value: make([]byte, MaxValueSize)}), ""},
		{"put empty value", validatePut(&kvpb.PutRequest{Write: goodWrite, Key: []byte("a")}), ""},
		{"put nil", validatePut(nil), "put request is nil"},
		{"put no session", validatePut(&kvpb.PutRequest{Key: []byte("a")}), "write has no session"},
		{"put zero session", validatePut(&kvpb.PutRequest{Write: &kvpb.WriteHeader{Seq: 1}, Key: []byte("a")}), "write has no session"},
		{"put zero seq", validatePut(&kvpb.PutRequest{Write: &kvpb.WriteHeader{Session: 5}, Key: []byte("a")}), "write of session 5 has seq 0"},
		{"put long key", validatePut(&kvpb.PutRequest{Write: goodWrite, Key: big}), "key is 4097 bytes"},
		{"put big value", validatePut(&kvpb.PutRequest{Write: goodWrite, Key: []byte("a"), Value: make([]byte, MaxValueSize+1)}),
			"value is 524289 bytes; values must be at most 512 KiB"},
		{"delete ok", validateDelete(&kvpb.DeleteRequest{Write: goodWrite, Key: []byte("a"), ExpectedVersion: proto.Uint64(0)}), ""},
		{"delete nil", validateDelete(nil), "delete request is nil"},
		{"delete no session", validateDelete(&kvpb.DeleteRequest{Key: []byte("a")}), "write has no session"},
		{"delete empty key", validateDelete(&kvpb.DeleteRequest{Write: goodWrite}), "key is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkValidation(t, tt.err, tt.want) })
	}
}

func TestValidate_Txn(t *testing.T) {
	a, b := keysInDifferentShards(t)
	many := func(n int) []*kvpb.Op {
		ops := make([]*kvpb.Op, n)
		for i := range ops {
			ops[i] = opGet(fmt.Sprintf("{t}%d", i))
		}
		return ops
	}
	manyCmps := make([]*kvpb.Compare, MaxTxnOps+1)
	for i := range manyCmps {
		manyCmps[i] = cmp("{t}x", kvpb.Compare_EQUAL, 0)
	}
	txn := func(cmps []*kvpb.Compare, success, failure []*kvpb.Op) *kvpb.TxnRequest {
		return &kvpb.TxnRequest{Write: goodWrite, Compares: cmps, Success: success, Failure: failure}
	}
	tests := []struct {
		name   string
		req    *kvpb.TxnRequest
		shards uint32
		want   string
	}{
		{"ok", txn([]*kvpb.Compare{cmp("{u:1}/a", kvpb.Compare_LESS, 4)},
			[]*kvpb.Op{opPut("{u:1}/b", "x"), opAdd("{u:1}/n", 1)}, []*kvpb.Op{opGet("{u:1}/c"), opDel("{u:1}/d")}), testShards, ""},
		{"compares only", txn([]*kvpb.Compare{cmp("a", kvpb.Compare_EQUAL, 0)}, nil, nil), testShards, ""},
		{"max ops", txn(nil, many(MaxTxnOps/2), many(MaxTxnOps/2)), testShards, ""},
		{"nil", nil, testShards, "txn request is nil"},
		{"no shards", txn(nil, many(1), nil), 0, "cluster has 0 shards"},
		{"no session", &kvpb.TxnRequest{Success: many(1)}, testShards, "write has no session"},
		{"empty", txn(nil, nil, nil), testShards, "txn has no compares and no ops"},
		{"too many ops", txn(nil, many(100), many(29)), testShards, "txn has 129 ops (100 success + 29 failure); at most 128"},
		{"too many compares", txn(manyCmps, nil, nil), testShards, "txn has 129 compares; at most 128"},
		{"nil compare", txn([]*kvpb.Compare{nil}, nil, nil), testShards, "compare 0 is empty"},
		{"compare empty key", txn([]*kvpb.Compare{cmp("", kvpb.Compare_EQUAL, 0)}, nil, nil), testShards, "compare 0 key is empty"},
		{"compare unknown op", txn([]*kvpb.Compare{cmp("a", kvpb.Compare_Op(9), 0)}, nil, nil), testShards, "compare 0 has unknown op 9"},
		{"op without kind", txn(nil, many(2), []*kvpb.Op{{}}), testShards, "failure op 0 has no kind"},
		{"nil op", txn(nil, []*kvpb.Op{nil}, nil), testShards, "success op 0 has no kind"},
		{"op long key", txn(nil, []*kvpb.Op{opDel(strings.Repeat("x", MaxKeySize+1))}, nil), testShards, "success op 0 key is 4097 bytes"},
		{"op big value", txn(nil, []*kvpb.Op{opPut("a", strings.Repeat("x", MaxValueSize+1))}, nil), testShards, "success op 0 value is 524289 bytes"},
		{"too many value bytes", txn(nil, []*kvpb.Op{opPut("{t}a", strings.Repeat("x", MaxValueSize)), opPut("{t}b", strings.Repeat("x", MaxValueSize)),
			opPut("{t}c", strings.Repeat("x", MaxValueSize)), opPut("{t}d", "x")}, nil), testShards, "txn puts 1572865 bytes of values"},
		{"cross shard ops", txn(nil, []*kvpb.Op{opPut(a, "1"), opPut(b, "2")}, nil), testShards,
			fmt.Sprintf("txn keys %q (shard %d) and %q (shard %d) are in different shards", a, ring.ShardForKey([]byte(a), testShards), b, ring.ShardForKey([]byte(b), testShards))},
		{"cross shard compare and op", txn([]*kvpb.Compare{cmp(a, kvpb.Compare_EQUAL, 0)}, nil, []*kvpb.Op{opGet(b)}), testShards, "shared hash tag"},
		{"one shard cluster", txn(nil, []*kvpb.Op{opPut(a, "1"), opPut(b, "2")}, nil), 1, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			shard, err := validateTxn(tt.req, tt.shards)
			checkValidation(t, err, tt.want)
			if err == nil {
				var first []byte
				if len(tt.req.GetCompares()) > 0 {
					first = tt.req.GetCompares()[0].GetKey()
				} else {
					first, _ = checkOp("", append(tt.req.GetSuccess(), tt.req.GetFailure()...)[0])
				}
				if want := ring.ShardForKey(first, tt.shards); shard != want {
					t.Errorf("shard = %d, want %d", shard, want)
				}
			}
		})
	}
}

func TestValidate_Scan(t *testing.T) {
	tests := []struct {
		name string
		req  *kvpb.ScanRequest
		want string
	}{
		{"ok", &kvpb.ScanRequest{Shard: 31, Start: []byte("a"), End: []byte("b"), Limit: MaxScanKeys}, ""},
		{"whole shard", &kvpb.ScanRequest{}, ""},
		{"prefix", &kvpb.ScanRequest{Prefix: bytes.Repeat([]byte("p"), MaxKeySize)}, ""},
		{"end past longest key", &kvpb.ScanRequest{End: bytes.Repeat([]byte("p"), MaxKeySize+1)}, ""},
		{"nil", nil, "scan request is nil"},
		{"shard out of range", &kvpb.ScanRequest{Shard: 32}, "scan of shard 32, but the cluster has 32 shards (0 to 31): refresh the cluster map"},
		{"limit", &kvpb.ScanRequest{Limit: MaxScanKeys + 1}, "scan limit is 10001; at most 10000 keys per page"},
		{"long prefix", &kvpb.ScanRequest{Prefix: bytes.Repeat([]byte("p"), MaxKeySize+1)}, "scan prefix is 4097 bytes"},
		{"long start", &kvpb.ScanRequest{Start: bytes.Repeat([]byte("p"), MaxKeySize+2)}, "scan start is 4098 bytes"},
		{"start after end", &kvpb.ScanRequest{Start: []byte("b"), End: []byte("a")}, `scan start "b" is not before end "a"`},
		{"start equals end", &kvpb.ScanRequest{Start: []byte("b"), End: []byte("b")}, "is not before end"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkValidation(t, validateScan(tt.req, testShards), tt.want) })
	}
	checkValidation(t, validateScan(&kvpb.ScanRequest{}, 0), "the cluster has 0 shards")
}

// FuzzValidate unmarshals arbitrary bytes as each request type: validation
// never panics, and a request it accepts really is within the limits.
func FuzzValidate(f *testing.F) {
	seed := func(kind uint8, m proto.Message) {
		b, _ := proto.Marshal(m)
		f.Add(kind, b, uint8(testShards))
	}
	seed(0, &kvpb.GetRequest{Key: []byte("a")})
	seed(1, &kvpb.PutRequest{Write: goodWrite, Key: []byte("a"), Value: []byte("v")})
	seed(1, &kvpb.PutRequest{Write: goodWrite, Key: make([]byte, MaxKeySize+1)})
	seed(2, &kvpb.DeleteRequest{Write: goodWrite, Key: []byte("a")})
	seed(3, &kvpb.TxnRequest{Write: goodWrite, Compares: []*kvpb.Compare{cmp("{t}a", 1, 2)},
		Success: []*kvpb.Op{opPut("{t}b", "x"), opAdd("{t}c", 3)}, Failure: []*kvpb.Op{opGet("{t}d"), opDel("{t}e")}})
	seed(4, &kvpb.ScanRequest{Shard: 3, Start: []byte("a"), End: []byte("b"), Limit: 10})
	f.Fuzz(func(t *testing.T, kind uint8, b []byte, shardsB uint8) {
		shards := uint32(shardsB % 65)
		keyOK := func(k []byte) {
			if len(k) < 1 || len(k) > MaxKeySize {
				t.Fatalf("accepted key of %d bytes", len(k))
			}
		}
		writeOK := func(w *kvpb.WriteHeader) {
			if w.GetSession() == 0 || w.GetSeq() == 0 {
				t.Fatalf("accepted write header %v", w)
			}
		}
		switch kind % 5 {
		case 0:
			var req kvpb.GetRequest
			if proto.Unmarshal(b, &req) == nil && validateGet(&req) == nil {
				keyOK(req.GetKey())
			}
		case 1:
			var req kvpb.PutRequest
			if proto.Unmarshal(b, &req) == nil && validatePut(&req) == nil {
				keyOK(req.GetKey())
				writeOK(req.GetWrite())
				if len(req.GetValue()) > MaxValueSize {
					t.Fatalf("accepted value of %d bytes", len(req.GetValue()))
				}
			}
		case 2:
			var req kvpb.DeleteRequest
			if proto.Unmarshal(b, &req) == nil && validateDelete(&req) == nil {
				keyOK(req.GetKey())
				writeOK(req.GetWrite())
			}
		case 3:
			var req kvpb.TxnRequest
			if proto.Unmarshal(b, &req) != nil {
				return
			}
			shard, err := validateTxn(&req, shards)
			if err != nil {
				return
			}
			writeOK(req.GetWrite())
			if len(req.GetCompares()) > MaxTxnOps || len(req.GetSuccess())+len(req.GetFailure()) > MaxTxnOps {
				t.Fatalf("accepted txn with %d compares and %d ops", len(req.GetCompares()), len(req.GetSuccess())+len(req.GetFailure()))
			}
			if len(req.GetCompares())+len(req.GetSuccess())+len(req.GetFailure()) == 0 {
				t.Fatal("accepted empty txn")
			}
			inShard := func(k []byte) {
				keyOK(k)
				if s := ring.ShardForKey(k, shards); s != shard {
					t.Fatalf("key %q in shard %d, txn shard %d", k, s, shard)
				}
			}
			for _, c := range req.GetCompares() {
				inShard(c.GetKey())
				if c.GetOp() < kvpb.Compare_EQUAL || c.GetOp() > kvpb.Compare_GREATER {
					t.Fatalf("accepted compare op %d", c.GetOp())
				}
			}
			for _, op := range append(req.GetSuccess(), req.GetFailure()...) {
				if op.GetOp() == nil {
					t.Fatal("accepted op without kind")
				}
				for _, k := range [][]byte{op.GetPut().GetKey(), op.GetDelete().GetKey(), op.GetAdd().GetKey(), op.GetGet().GetKey()} {
					if k != nil {
						inShard(k)
					}
				}
				if len(op.GetPut().GetValue()) > MaxValueSize {
					t.Fatalf("accepted value of %d bytes", len(op.GetPut().GetValue()))
				}
			}
		case 4:
			var req kvpb.ScanRequest
			if proto.Unmarshal(b, &req) == nil && validateScan(&req, shards) == nil {
				if req.GetShard() >= shards || req.GetLimit() > MaxScanKeys || len(req.GetPrefix()) > MaxKeySize {
					t.Fatalf("accepted scan %v with %d shards", &req, shards)
				}
				if len(req.GetStart()) > 0 && len(req.GetEnd()) > 0 && bytes.Compare(req.GetStart(), req.GetEnd()) >= 0 {
					t.Fatalf("accepted empty range %v", &req)
				}
			}
		}
	})
}
