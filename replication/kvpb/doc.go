// Package kvpb holds Ridgeline's wire contract: the KV, Admin and Raft gRPC
// services and the raft command encodings, generated from the .proto files
// beside this file by `make proto`. The generated code is committed; it imports
// nothing of Ridgeline's.
package kvpb

//go:generate protoc --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative -I. admin.proto command.proto kv.proto raft.proto
