package main

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"unicode/utf8"
)

// printer writes a command's result in one output format.
type printer interface {
	print(w io.Writer, v tabler) error
}

// tabler is a result that can render itself as a table (or plain text).
type tabler interface {
	table(w io.Writer)
}

func (a *app) printer() (printer, error) {
	switch a.flags.output {
	case "table", "":
		return tablePrinter{}, nil
	case "json":
		return jsonPrinter{}, nil
	}
	return nil, usagef("--output %q is not supported: use table or json", a.flags.output)
}

// print writes v to stdout in the chosen format.
func (a *app) print(v tabler) error {
	p, err := a.printer()
	if err != nil {
		return err
	}
	return p.print(a.stdout, v)
}

type tablePrinter struct{}

func (tablePrinter) print(w io.Writer, v tabler) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	v.table(tw)
	return tw.Flush()
}

type jsonPrinter struct{}

func (jsonPrinter) print(w io.Writer, v tabler) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	_, err = w.Write(b)
	return err
}

// value is a stored value for display: text when it is UTF-8, else base64
// in JSON and a hex dump marker in tables.
type value []byte

func (v value) MarshalJSON() ([]byte, error) {
	if utf8.Valid(v) {
		return json.Marshal(string(v))
	}
	return json.Marshal(map[string][]byte{"base64": v})
}

// short renders v for a table cell: printable, at most 64 characters.
func (v value) short() string {
	if !utf8.Valid(v) {
		return fmt.Sprintf("<%d bytes binary>", len(v))
	}
	s := fmt.Sprintf("%q", string(v))
	s = s[1 : len(s)-1]
	if len(s) > 64 {
		s = s[:61] + "..."
	}
	return s
}
