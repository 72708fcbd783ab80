#!/bin/sh
# Idempotent build: checks the pinned gems (Gemfile.lock) are installed, then
# generates the Ruby code for ../../proto/stock.proto and ../../proto/kv.proto
# into gen/ (kv.proto's package `proto` becomes the Ruby module Proto, apart
# from stock.proto's Stock::V1, so their same-named messages do not clash),
# and for grpc.reflection v1 and v1alpha (reflection.proto of Debian's
# grpc-proto). gen/descriptors.pb is the FileDescriptorSet that the server's
# reflection answers from: what it serves (health.proto of grpc-proto is the
# one the grpc gem's health_pb was generated from) and the google.rpc
# rich-error messages, with every import.
set -eu
cd "$(dirname "$0")"
GRPC_PROTO=/usr/share/grpc-proto
if [ ! -d "$GRPC_PROTO/grpc/reflection" ]; then
  echo "build.sh: $GRPC_PROTO/grpc/reflection is missing: run ./setup.sh (Debian's grpc-proto)" >&2
  exit 1
fi

# Bundler ships with Ruby; use its library to verify the pins offline.
BUNDLE_GEMFILE="$PWD/Gemfile" BUNDLE_FROZEN=true \
  ruby -e 'load Gem.bin_path("bundler", "bundle")' check >/dev/null

rm -rf gen.tmp
mkdir gen.tmp
grpc_tools_ruby_protoc -I../../proto --ruby_out=gen.tmp --grpc_out=gen.tmp \
  ../../proto/stock.proto ../../proto/kv.proto
grpc_tools_ruby_protoc -I"$GRPC_PROTO" --ruby_out=gen.tmp --grpc_out=gen.tmp \
  grpc/reflection/v1/reflection.proto grpc/reflection/v1alpha/reflection.proto
grpc_tools_ruby_protoc -I../../proto -I"$GRPC_PROTO" --include_imports \
  --descriptor_set_out=gen.tmp/descriptors.pb \
  stock.proto kv.proto google/rpc/status.proto google/rpc/error_details.proto \
  grpc/health/v1/health.proto grpc/reflection/v1/reflection.proto grpc/reflection/v1alpha/reflection.proto
rm -rf gen
mv gen.tmp gen
