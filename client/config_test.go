package client

import (
	"strings"
	"testing"
	"time"
)

func TestConfig_Validate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want []string // substrings of the error; nil = valid
	}{
		{"valid", Config{Endpoints: []string{"127.0.0.1:7001", "localhost:7002"}}, nil},
		{"defaults", DefaultConfig(), nil},
		{"no endpoints", Config{}, []string{"Endpoints is empty"}},
		{"bad endpoint", Config{Endpoints: []string{"127.0.0.1"}}, []string{`Endpoints[0] = "127.0.0.1"`}},
		{"every bad field", Config{
			Endpoints:      []string{"ok:1", "nope"},
			DialTimeout:    -1,
			RequestTimeout: -time.Second,
			AttemptTimeout: -2,
			KeepaliveTime:  time.Second,
			LocalAddr:      "not-an-ip",
		}, []string{`Endpoints[1] = "nope"`, "DialTimeout = -1ns", "RequestTimeout = -1s", "AttemptTimeout", "KeepaliveTime = 1s", `LocalAddr = "not-an-ip"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Validate() = %v; want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil; want errors %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q; want it to contain %q", err, w)
				}
			}
		})
	}
}
