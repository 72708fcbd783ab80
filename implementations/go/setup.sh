#!/bin/sh
# Installs protoc (Debian's protobuf-compiler) when it is missing; idempotent and quick.
set -eu
if ! command -v protoc >/dev/null 2>&1; then
  echo "installing: protobuf-compiler"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update
  apt-get install -y --no-install-recommends protobuf-compiler
fi
