SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -euc
.DEFAULT_GOAL := build

GO      ?= go
BIN     := bin
PKGS    := ./...
# Packages whose tests run with the race detector in `make test`.
TEST_TIMEOUT ?= 9m

.PHONY: build test test-short run bench fuzz chaos lint verify proto clean clean-run

build:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/kvnode ./cmd/kvnode
	$(GO) build -o $(BIN)/kvctl ./cmd/kvctl
	$(GO) build -o $(BIN)/liftride ./cmd/liftride
	$(GO) build -o $(BIN)/liftload ./cmd/liftload

test: build
	$(GO) vet $(PKGS)
	$(GO) test -race -timeout $(TEST_TIMEOUT) $(PKGS)

test-short:
	$(GO) test -short $(PKGS)

run: build
	./scripts/run-cluster.sh

bench: build
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 2s ./storage/... ./ring/... ./replication/...

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzShardForKey -fuzztime 30s ./ring
	$(GO) test -run '^$$' -fuzz FuzzCommandCodec -fuzztime 30s ./replication
	$(GO) test -run '^$$' -fuzz FuzzValidate -fuzztime 30s ./replication

chaos: build
	$(GO) test -timeout 0 -run 'TestRegression_|TestChaosLong' ./tests/chaos -args -long

lint:
	$(GO) vet $(PKGS)
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }

proto:
	cd replication/kvpb && protoc --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative -I. admin.proto command.proto kv.proto raft.proto

verify: lint
	$(GO) mod tidy -diff
	@cp -r replication/kvpb /tmp/kvpb.verify.$$$$ && $(MAKE) -s proto && diff -r /tmp/kvpb.verify.$$$$ replication/kvpb >/dev/null || { echo "generated code in replication/kvpb is stale: run make proto"; exit 1; }

clean-run:
	rm -rf .run

clean:
	rm -rf $(BIN)
