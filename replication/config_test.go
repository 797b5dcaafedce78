package replication

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestConfig_ValidateReportsEachField(t *testing.T) {
	c := DefaultConfig()
	c.NodeID, c.DataDir, c.Addr, c.GossipAddr = "n1", t.TempDir(), "127.0.0.1:1", "127.0.0.1:2"
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	c.HeartbeatTimeout, c.ElectionTimeout, c.Shards = 200*time.Millisecond, 100*time.Millisecond, 0
	err := c.Validate()
	var fields []string
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var fe *FieldError
		if !errors.As(e, &fe) {
			t.Fatalf("%v is not a *FieldError", e)
		}
		fields = append(fields, fe.Field)
	}
	if got, want := strings.Join(fields, ","), "Shards,ElectionTimeout,LeaderLeaseTimeout"; got != want {
		t.Errorf("invalid fields = %s, want %s", got, want)
	}
	if msg := err.Error(); !strings.Contains(msg, "ElectionTimeout=100ms: must be ≥ HeartbeatTimeout") || strings.ContainsAny(msg, "{}") {
		t.Errorf("message %q: want the other field named plainly", msg)
	}
}
