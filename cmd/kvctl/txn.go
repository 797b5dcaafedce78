package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ridgeline-kv/ridgeline/client"
)

const txnHelp = `Run a transaction read from standard input, in three blocks separated by
blank lines: compares, then the ops run when every compare holds, then the ops
run otherwise. All keys must be in one shard: give them a common hash tag,
e.g. {user:42}/name and {user:42}/balance.

Compares (one per line):
  ver("KEY") = N      the key's version is N (0 = absent); also !=, <, >
  missing("KEY")      the key does not exist
  exists("KEY")       the key exists
Ops (one per line):
  put KEY VALUE
  del KEY
  add KEY DELTA       add DELTA to the decimal counter at KEY
  get KEY
KEY and VALUE are bare words or Go-quoted strings ("with spaces\n").
Lines starting with # are comments.

Example:
  kvctl txn <<'EOF'
  ver("{u1}/balance") = 7

  put {u1}/balance 90
  add {u1}/withdrawals 1

  get {u1}/balance
  EOF`

// txnScript is a parsed txn script.
type txnScript struct {
	cmps      []client.Cmp
	then, els []scriptOp
}

// scriptOp is an op with what kvctl prints about it.
type scriptOp struct {
	op   client.Op
	name string
	key  string
}

// parseTxnScript parses the txn script format documented in txnHelp.
func parseTxnScript(r io.Reader) (*txnScript, error) {
	var s txnScript
	block, lineNo := 0, 0
	ended := false // a blank line ended the failure block
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 2<<20)
	for sc.Scan() {
		lineNo++
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") {
			continue
		}
		if line == "" {
			if block < 2 {
				block++
			} else if len(s.els) > 0 {
				ended = true
			}
			continue
		}
		if ended {
			return nil, usagef("txn line %d: more than three blocks; separate compares, success ops and failure ops by single blank lines", lineNo)
		}
		var err error
		switch block {
		case 0:
			var c client.Cmp
			c, err = parseCompare(line)
			s.cmps = append(s.cmps, c)
		default:
			var op scriptOp
			op, err = parseOp(line)
			if block == 1 {
				s.then = append(s.then, op)
			} else {
				s.els = append(s.els, op)
			}
		}
		if err != nil {
			return nil, usagef("txn line %d: %v", lineNo, err)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading the txn script: %w", err)
	}
	if len(s.cmps)+len(s.then)+len(s.els) == 0 {
		return nil, usagef("txn: empty script on stdin; see kvctl txn --help")
	}
	return &s, nil
}

// parseCompare parses `ver("k") OP N`, `missing("k")` or `exists("k")`.
func parseCompare(line string) (client.Cmp, error) {
	fn, rest, ok := strings.Cut(line, "(")
	if !ok {
		return client.Cmp{}, fmt.Errorf("compare %q: want ver(\"KEY\") = N, missing(\"KEY\") or exists(\"KEY\")", line)
	}
	fn = strings.TrimSpace(fn)
	key, rest, err := leadingToken(strings.TrimSpace(rest))
	if err != nil {
		return client.Cmp{}, fmt.Errorf("compare %q: %v", line, err)
	}
	rest = strings.TrimSpace(rest)
	if !strings.HasPrefix(rest, ")") {
		return client.Cmp{}, fmt.Errorf("compare %q: missing ')' after the key", line)
	}
	rest = strings.TrimSpace(rest[1:])
	switch fn {
	case "missing", "exists":
		if rest != "" {
			return client.Cmp{}, fmt.Errorf("compare %q: unexpected %q after %s(...)", line, rest, fn)
		}
		if fn == "missing" {
			return client.Missing(key), nil
		}
		return client.VersionGreater(key, 0), nil
	case "ver", "version":
	default:
		return client.Cmp{}, fmt.Errorf("compare %q: unknown function %q; use ver, missing or exists", line, fn)
	}
	var op string
	for _, o := range []string{"!=", "==", "=", "<", ">"} {
		if strings.HasPrefix(rest, o) {
			op = o
			break
		}
	}
	if op == "" {
		return client.Cmp{}, fmt.Errorf("compare %q: want one of = != < > after ver(...)", line)
	}
	n, err := strconv.ParseUint(strings.TrimSpace(rest[len(op):]), 10, 64)
	if err != nil {
		return client.Cmp{}, fmt.Errorf("compare %q: version must be a number", line)
	}
	switch op {
	case "=", "==":
		return client.VersionEquals(key, n), nil
	case "!=":
		return client.VersionNotEquals(key, n), nil
	case "<":
		return client.VersionLess(key, n), nil
	default:
		return client.VersionGreater(key, n), nil
	}
}

// parseOp parses `put K V`, `del K`, `add K N` or `get K`.
func parseOp(line string) (scriptOp, error) {
	args, err := tokens(line)
	if err != nil {
		return scriptOp{}, err
	}
	want := map[string]int{"put": 3, "del": 2, "delete": 2, "add": 3, "get": 2}
	n, ok := want[args[0]]
	if !ok {
		return scriptOp{}, fmt.Errorf("unknown op %q; use put, del, add or get", args[0])
	}
	if len(args) != n {
		return scriptOp{}, fmt.Errorf("%s takes %d argument(s), got %d", args[0], n-1, len(args)-1)
	}
	key := args[1]
	switch args[0] {
	case "put":
		return scriptOp{client.OpPut(key, []byte(args[2])), "put", key}, nil
	case "del", "delete":
		return scriptOp{client.OpDelete(key), "del", key}, nil
	case "add":
		d, err := strconv.ParseInt(args[2], 10, 64)
		if err != nil {
			return scriptOp{}, fmt.Errorf("add %s: delta %q is not an integer", key, args[2])
		}
		return scriptOp{client.OpAdd(key, d), "add", key}, nil
	default:
		return scriptOp{client.OpGet(key), "get", key}, nil
	}
}

// tokens splits line into bare or Go-quoted words.
func tokens(line string) ([]string, error) {
	var out []string
	for line = strings.TrimSpace(line); line != ""; line = strings.TrimSpace(line) {
		tok, rest, err := leadingToken(line)
		if err != nil {
			return nil, err
		}
		out = append(out, tok)
		line = rest
	}
	return out, nil
}

// leadingToken returns the first word of s (quoted or bare) and the rest.
func leadingToken(s string) (tok, rest string, err error) {
	if s == "" {
		return "", "", fmt.Errorf("missing key")
	}
	if s[0] == '"' || s[0] == '`' {
		q, err := strconv.QuotedPrefix(s)
		if err != nil {
			return "", "", fmt.Errorf("bad quoted string in %q", s)
		}
		tok, _ = strconv.Unquote(q)
		return tok, s[len(q):], nil
	}
	end := strings.IndexAny(s, " \t)")
	if end < 0 {
		return s, "", nil
	}
	return s[:end], s[end:], nil
}

// txnOpResult is one op's result in txn output.
type txnOpResult struct {
	Op      string `json:"op"`
	Key     string `json:"key"`
	Version uint64 `json:"version"`
	Counter *int64 `json:"counter,omitempty"`
	Found   *bool  `json:"found,omitempty"`
	Value   value  `json:"value,omitempty"`
}

// txnResult is the output of txn.
type txnResult struct {
	Succeeded bool          `json:"succeeded"`
	Results   []txnOpResult `json:"results"`
}

func (r *txnResult) table(w io.Writer) {
	if r.Succeeded {
		fmt.Fprintln(w, "SUCCESS")
	} else {
		fmt.Fprintln(w, "FAILURE")
	}
	if len(r.Results) == 0 {
		return
	}
	fmt.Fprintln(w, "OP\tKEY\tVERSION\tRESULT")
	for _, o := range r.Results {
		res := ""
		switch {
		case o.Counter != nil:
			res = strconv.FormatInt(*o.Counter, 10)
		case o.Op == "get" && o.Found != nil && !*o.Found:
			res = "(not found)"
		case o.Op == "get":
			res = o.Value.short()
		case o.Op == "del" && o.Found != nil && !*o.Found:
			res = "(absent)"
		}
		fmt.Fprintf(w, "%s\t%s\t%d\t%s\n", o.Op, o.Key, o.Version, res)
	}
}

func newTxnCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "txn < SCRIPT",
		Short: "Run a conditional transaction read from stdin",
		Long:  txnHelp,
		Args:  exactArgs(0, "none (the script is read from stdin)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := parseTxnScript(a.stdin)
			if err != nil {
				return err
			}
			return a.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				t := c.Txn(ctx).If(s.cmps...)
				for _, op := range s.then {
					t.Then(op.op)
				}
				for _, op := range s.els {
					t.Else(op.op)
				}
				res, err := t.Commit()
				if err != nil {
					return err
				}
				ran := s.then
				if !res.Succeeded {
					ran = s.els
				}
				out := &txnResult{Succeeded: res.Succeeded, Results: []txnOpResult{}}
				for i, r := range res.Results {
					o := txnOpResult{Version: r.Version}
					if i < len(ran) {
						o.Op, o.Key = ran[i].name, ran[i].key
					}
					switch o.Op {
					case "add":
						o.Counter = &r.Counter
					case "get":
						o.Found, o.Value = &r.Found, r.Value
					case "del":
						o.Found = &r.Found
					}
					out.Results = append(out.Results, o)
				}
				return a.print(out)
			})
		},
	}
}
