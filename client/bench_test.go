package client

import (
	"io"
	"log/slog"
	"testing"
)

func benchClient(b *testing.B) *Client {
	fc := newTestCluster(b, 3, testShards)
	c, err := New(b.Context(), Config{Endpoints: fc.Endpoints(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return c
}

func BenchmarkClient_Get(b *testing.B) {
	c := benchClient(b)
	if err := c.Put(b.Context(), "k", []byte("v")); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Get(b.Context(), "k"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkClient_Put(b *testing.B) {
	c := benchClient(b)
	v := make([]byte, 256)
	b.ReportAllocs()
	for b.Loop() {
		if err := c.Put(b.Context(), "k", v); err != nil {
			b.Fatal(err)
		}
	}
}
