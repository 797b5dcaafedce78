package main

import (
	"strings"
	"testing"
)

func TestParseTxnScript(t *testing.T) {
	script := `# move funds
ver("{u1}/balance") = 7
ver("{u1}/audit") != 0
version("{u1}/x") < 9
ver({u1}/y) > 2
missing("{u1}/lock")
exists("{u1}/acct")

put {u1}/balance 90
put "{u1}/note" "two words\n"
add {u1}/withdrawals -1
del {u1}/lock

get {u1}/balance
`
	s, err := parseTxnScript(strings.NewReader(script))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.cmps) != 6 || len(s.then) != 4 || len(s.els) != 1 {
		t.Fatalf("parsed %d compares, %d then, %d else; want 6, 4, 1", len(s.cmps), len(s.then), len(s.els))
	}
	var names []string
	for _, op := range append(s.then, s.els...) {
		names = append(names, op.name+" "+op.key)
	}
	want := "put {u1}/balance,put {u1}/note,add {u1}/withdrawals,del {u1}/lock,get {u1}/balance"
	if got := strings.Join(names, ","); got != want {
		t.Errorf("ops = %s; want %s", got, want)
	}
}

func TestParseTxnScript_Errors(t *testing.T) {
	tests := []struct {
		script string
		want   string
	}{
		{"", "empty script"},
		{"ver(\"k\") ~ 3\n", "want one of"},
		{"ver(\"k\") = x\n", "version must be a number"},
		{"frob(\"k\")\n", "unknown function"},
		{"\nput k\n", "put takes 2 argument(s)"},
		{"\nadd k x\n", "not an integer"},
		{"\nzap k\n", "unknown op"},
		{"\nput k v\n\nget k\n\nget k\n", "more than three blocks"},
		{"\nput \"k v\n", "bad quoted string"},
	}
	for _, tt := range tests {
		_, err := parseTxnScript(strings.NewReader(tt.script))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("parseTxnScript(%q) = %v; want an error containing %q", tt.script, err, tt.want)
		}
		if err != nil && exitCode(err) != exitUsage {
			t.Errorf("parseTxnScript(%q): exit code %d; want %d", tt.script, exitCode(err), exitUsage)
		}
	}
}
