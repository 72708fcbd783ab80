#!/bin/sh
# Installs the pinned npm packages into node_modules/ (npm ci; npm install
# only when there is no lock file yet), generates TypeScript from
# ../../proto/stock.proto, ../../proto/kv.proto (legacy proto.KV, into its own
# gen/kv_pb.ts), ../../proto/google/rpc/{status,error_details}.proto (the rich
# error details: the protobuf-es google.rpc SDK is on the Buf registry, not npm) and
# proto/grpc/health/v1/health.proto and proto/grpc/reflection/{v1,v1alpha}/reflection.proto
# (server reflection, which Connect for Node lacks) into gen/ with
# buf + protoc-gen-es, and compiles src/ and gen/ with tsc into dist/.
# Idempotent: npm ci is skipped while node_modules matches package-lock.json.
set -eu
cd "$(dirname "$0")"
if [ ! -f package-lock.json ]; then
  npm install --no-audit --no-fund --ignore-scripts
  cp package-lock.json node_modules/.stock-matrix-lock
elif ! cmp -s package-lock.json node_modules/.stock-matrix-lock 2>/dev/null; then
  npm ci --no-audit --no-fund --ignore-scripts
  cp package-lock.json node_modules/.stock-matrix-lock
fi
export PATH="$PWD/node_modules/.bin:$PATH"
buf generate
rm -rf dist
tsc -p tsconfig.json
