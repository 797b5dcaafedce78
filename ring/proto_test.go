package ring

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/ridgeline-kv/ridgeline/replication/kvpb"
)

func TestFromProto_roundTrip(t *testing.T) {
	m := testMap(t)
	m.Nodes[1].State = NodeDraining
	m.Nodes[2].Incarnation = 7
	m.Nodes[2].GossipAddr = "127.0.0.3:7946"
	m.Nodes[2].HTTPAddr = "127.0.0.3:8080"
	m.Shards[3].Replicas[2].Role = RoleLearner
	m.Epoch = 42

	pb := m.Proto()
	wire, err := proto.Marshal(pb)
	if err != nil {
		t.Fatal(err)
	}
	var back kvpb.ClusterMap
	if err := proto.Unmarshal(wire, &back); err != nil {
		t.Fatal(err)
	}
	got, err := FromProto(&back)
	if err != nil {
		t.Fatalf("FromProto: %v", err)
	}
	if !reflect.DeepEqual(got, m) {
		t.Errorf("round trip changed the map:\n got %+v\nwant %+v", got, m)
	}
	if pb.Nodes[1].State != kvpb.NodeState_NODE_STATE_DRAINING || pb.Shards[3].Replicas[2].Role != kvpb.ReplicaRole_REPLICA_ROLE_LEARNER {
		t.Errorf("enum mapping wrong: %v %v", pb.Nodes[1].State, pb.Shards[3].Replicas[2].Role)
	}
}

func TestFromProto_errors(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(pb *kvpb.ClusterMap)
		want   string
	}{
		{"unspecified node state", func(pb *kvpb.ClusterMap) { pb.Nodes[0].State = kvpb.NodeState_NODE_STATE_UNSPECIFIED }, "invalid state unspecified"},
		{"unknown node state", func(pb *kvpb.ClusterMap) { pb.Nodes[0].State = 300 }, "invalid state NodeState(255)"},
		{"unknown role", func(pb *kvpb.ClusterMap) { pb.Shards[0].Replicas[0].Role = 2 }, "invalid role Role(2)"},
		{"negative role", func(pb *kvpb.ClusterMap) { pb.Shards[0].Replicas[0].Role = -1 }, "invalid role Role(255)"},
		{"missing shards", func(pb *kvpb.ClusterMap) { pb.Shards = nil }, "map has 0 shards but shard count is 8"},
		{"nil shard and node entries", func(pb *kvpb.ClusterMap) { pb.Shards[0] = nil; pb.Nodes[0] = nil }, "node 0 has an empty ID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pb := testMap(t).Proto()
			tt.mutate(pb)
			_, err := FromProto(pb)
			if !errors.Is(err, ErrInvalidMap) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("FromProto error = %v, want ErrInvalidMap mentioning %q", err, tt.want)
			}
		})
	}
	if _, err := FromProto(nil); !errors.Is(err, ErrInvalidMap) {
		t.Errorf("FromProto(nil) = %v, want ErrInvalidMap", err)
	}
}

func FuzzFromProto(f *testing.F) {
	for _, n := range [][]string{{"a"}, {"a", "b", "c"}, {"n1", "n2", "n3", "n4", "n5"}} {
		m, err := NewMap("c", activeNodes(n...), 4, 3)
		if err != nil {
			f.Fatal(err)
		}
		m.Nodes[0].GossipAddr = "127.0.0.1:7946"
		wire, err := proto.Marshal(m.Proto())
		if err != nil {
			f.Fatal(err)
		}
		f.Add(wire)
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, wire []byte) {
		var pb kvpb.ClusterMap
		if proto.Unmarshal(wire, &pb) != nil {
			return
		}
		m, err := FromProto(&pb)
		if err != nil {
			if !errors.Is(err, ErrInvalidMap) {
				t.Fatalf("FromProto error %v does not wrap ErrInvalidMap", err)
			}
			return
		}
		// Valid maps survive Proto → wire → FromProto unchanged.
		wire2, err := proto.Marshal(m.Proto())
		if err != nil {
			t.Fatal(err)
		}
		var pb2 kvpb.ClusterMap
		if err := proto.Unmarshal(wire2, &pb2); err != nil {
			t.Fatal(err)
		}
		m2, err := FromProto(&pb2)
		if err != nil {
			t.Fatalf("re-decoding a valid map failed: %v", err)
		}
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("round trip changed the map:\n got %+v\nwant %+v", m2, m)
		}
		if !reflect.DeepEqual(m, m.Clone()) {
			t.Fatalf("Clone differs")
		}
		for _, n := range m.Nodes {
			for _, ref := range m.ReplicasOn(n.ID) {
				if s, r, ok := m.Replica(ref.Replica.ID); !ok || s != ref.Shard || r != ref.Replica {
					t.Fatalf("Replica(%q) = %d %+v %t, want %+v", ref.Replica.ID, s, r, ok, ref)
				}
			}
		}
	})
}
