package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestRun_UsageAndUnavailable(t *testing.T) {
	tests := []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"get"}, exitUsage, "get takes 1 argument(s)"},
		{[]string{"-o", "yaml", "get", "k"}, exitUsage, `--output "yaml" is not supported`},
		{[]string{"put", "k", "v", "--if-version", "x"}, exitUsage, "--if-version"},
		{[]string{"bench", "--workload", "Z", "--keys", "0"}, exitUsage, "--keys must be positive"},
		{[]string{"scan", "--limit", "0"}, exitUsage, "--limit must be positive"},
		{[]string{"--endpoints", "127.0.0.1:7001,bad", "get", "k"}, exitUsage, `--endpoints: "bad" is not host:port`},
		{[]string{"--endpoints", "127.0.0.1:1", "--timeout", "300ms", "get", "k"}, exitUnavailable, "unavailable"},
	}
	for _, tt := range tests {
		var out, errb bytes.Buffer
		code := run(context.Background(), tt.args, strings.NewReader(""), &out, &errb)
		if code != tt.code || !strings.Contains(errb.String(), tt.msg) {
			t.Errorf("kvctl %v: exit %d, stderr %q; want exit %d and %q", tt.args, code, errb.String(), tt.code, tt.msg)
		}
	}
}
