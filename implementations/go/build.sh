#!/bin/sh
# Builds bin/server and bin/client (cmd/server/ over service/, cmd/client/): pinned protoc plugins into .bin/,
# generated code into gen/stockpb/ and gen/kvpb/, then the two binaries. Idempotent.
set -eu
cd "$(dirname "$0")"
if command -v go >/dev/null 2>&1; then GO=go; else GO=/usr/local/go/bin/go; fi
command -v protoc >/dev/null 2>&1 || { echo "protoc not found: run ./setup.sh (Debian protobuf-compiler)" >&2; exit 1; }
export GOBIN="$PWD/.bin"
$GO install -p 2 google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
$GO install -p 2 google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2
mkdir -p gen/stockpb gen/kvpb
PATH="$GOBIN:$PATH" protoc -I ../../proto \
  --go_out=gen/stockpb --go_opt=paths=source_relative --go_opt=Mstock.proto=stockmatrix/gen/stockpb \
  --go-grpc_out=gen/stockpb --go-grpc_opt=paths=source_relative --go-grpc_opt=Mstock.proto=stockmatrix/gen/stockpb \
  stock.proto
# kv.proto (legacy package `proto`) has no go_package: the M flag gives it one.
PATH="$GOBIN:$PATH" protoc -I ../../proto \
  --go_out=gen/kvpb --go_opt=paths=source_relative --go_opt=Mkv.proto=stockmatrix/gen/kvpb \
  --go-grpc_out=gen/kvpb --go-grpc_opt=paths=source_relative --go-grpc_opt=Mkv.proto=stockmatrix/gen/kvpb \
  kv.proto
$GO build -p 2 -mod=readonly -trimpath -o bin/ ./cmd/client ./cmd/server
