package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/ridgeline-kv/ridgeline/client"
)

func Example() {
	endpoints, stop := startExampleCluster()
	defer stop()

	ctx := context.Background()
	c, err := client.New(ctx, client.Config{Endpoints: endpoints})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	if err := c.Put(ctx, "greeting", []byte("hello")); err != nil {
		log.Fatal(err)
	}
	v, err := c.Get(ctx, "greeting")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s\n", v)

	_, err = c.Get(ctx, "missing")
	fmt.Println(errors.Is(err, client.ErrNotFound))
	// Output:
	// hello
	// true
}

// Compare-and-set: read a version, write only if nobody wrote since.
func ExampleIfVersion() {
	endpoints, stop := startExampleCluster()
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.New(ctx, client.Config{Endpoints: endpoints})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	// Create only if absent (version 0).
	var ver uint64
	if err := c.Put(ctx, "config", []byte("v1"), client.IfVersion(0), client.WithVersion(&ver)); err != nil {
		log.Fatal(err)
	}
	// Update only if still at the version we wrote.
	if err := c.Put(ctx, "config", []byte("v2"), client.IfVersion(ver)); err != nil {
		log.Fatal(err)
	}
	// A stale version loses.
	err = c.Put(ctx, "config", []byte("v3"), client.IfVersion(ver))
	var vm *client.VersionMismatchError
	fmt.Println(errors.Is(err, client.ErrVersionMismatch), errors.As(err, &vm) && vm.Actual > ver)
	// Output:
	// true true
}

// A transaction over keys that share the hash tag {skier:42}.
func ExampleClient_Txn() {
	endpoints, stop := startExampleCluster()
	defer stop()
	ctx := context.Background()
	c, err := client.New(ctx, client.Config{Endpoints: endpoints})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	res, err := c.Txn(ctx).
		If(client.Missing("{skier:42}/profile")).
		Then(
			client.OpPut("{skier:42}/profile", []byte(`{"name":"Ana"}`)),
			client.OpAdd("{skier:42}/rides", 1),
		).
		Else(client.OpGet("{skier:42}/profile")).
		Commit()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.Succeeded, res.Results[1].Counter)
	// Output:
	// true 1
}

// Counters are exactly-once: a retried Add is applied once.
func ExampleClient_Add() {
	endpoints, stop := startExampleCluster()
	defer stop()
	ctx := context.Background()
	c, err := client.New(ctx, client.Config{Endpoints: endpoints})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	for range 3 {
		if _, err := c.Add(ctx, "{lift:7}/rides", 10); err != nil {
			log.Fatal(err)
		}
	}
	n, err := c.Add(ctx, "{lift:7}/rides", -5)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(n)
	// Output:
	// 25
}

// Scan a hash-tagged prefix (one shard), then everything (all shards,
// merged in key order), page by page.
func ExampleClient_Scan() {
	endpoints, stop := startExampleCluster()
	defer stop()
	ctx := context.Background()
	c, err := client.New(ctx, client.Config{Endpoints: endpoints})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	for _, k := range []string{"{skier:42}/ride/1", "{skier:42}/ride/2", "{skier:7}/ride/1", "lift/a"} {
		if err := c.Put(ctx, k, []byte("x")); err != nil {
			log.Fatal(err)
		}
	}
	page, err := c.Scan(ctx, client.ScanOptions{Prefix: "{skier:42}/ride/"})
	if err != nil {
		log.Fatal(err)
	}
	for _, kv := range page.KVs {
		fmt.Println(kv.Key)
	}

	opts := client.ScanOptions{Limit: 2, KeysOnly: true}
	for {
		page, err := c.Scan(ctx, opts)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(len(page.KVs), page.More)
		if !page.More {
			break
		}
		opts.Cursor = page.Cursor
	}
	// Output:
	// {skier:42}/ride/1
	// {skier:42}/ride/2
	// 2 true
	// 2 false
}

// ScanAll iterates over every page.
func ExampleClient_ScanAll() {
	endpoints, stop := startExampleCluster()
	defer stop()
	ctx := context.Background()
	c, err := client.New(ctx, client.Config{Endpoints: endpoints})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	for _, k := range []string{"b", "a", "c"} {
		if err := c.Put(ctx, "letters/"+k, []byte(k)); err != nil {
			log.Fatal(err)
		}
	}
	for kv, err := range c.ScanAll(ctx, client.ScanOptions{Prefix: "letters/", Limit: 1}) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(kv.Key, string(kv.Value))
	}
	// Output:
	// letters/a a
	// letters/b b
	// letters/c c
}
