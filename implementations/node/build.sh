#!/usr/bin/env bash
# Idempotent build: installs the pinned npm dependencies into node_modules.
# Nothing is generated: src/proto.js loads ../../proto/stock.proto and
# ../../proto/kv.proto (the legacy proto.KV) at run time, and protobufjs loads
# ../../proto/google/rpc (google.rpc.Status, BadRequest, ErrorInfo) for the
# rich error details: grpc-js ships no google.rpc messages.
# Sources: src/client.js, src/server.js, src/hooks.js, src/store.js, and
# src/proto.js (proto3 JSON and google.rpc.Status, which grpc-js lacks).
set -euo pipefail
cd "$(dirname "$0")"
stamp=node_modules/.stock-matrix-lock.json
if [ ! -f package-lock.json ]; then
  npm install --no-audit --no-fund --loglevel=error
  cp package-lock.json "$stamp"
elif ! cmp -s package-lock.json "$stamp"; then
  npm ci --no-audit --no-fund --loglevel=error
  cp package-lock.json "$stamp"
fi
for f in src/*.js; do node --check "$f"; done
