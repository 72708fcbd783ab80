#!/bin/sh
# Idempotent build: checks the pinned gems (Gemfile.lock) are installed, then
# generates the Ruby code for ../../proto/stock.proto and ../../proto/kv.proto
# into gen/ (kv.proto's package `proto` becomes the Ruby module Proto, apart
# from stock.proto's Stock::V1, so their same-named messages do not clash).
set -eu
cd "$(dirname "$0")"

# Bundler ships with Ruby; use its library to verify the pins offline.
BUNDLE_GEMFILE="$PWD/Gemfile" BUNDLE_FROZEN=true \
  ruby -e 'load Gem.bin_path("bundler", "bundle")' check >/dev/null

rm -rf gen.tmp
mkdir gen.tmp
grpc_tools_ruby_protoc -I../../proto --ruby_out=gen.tmp --grpc_out=gen.tmp \
  ../../proto/stock.proto ../../proto/kv.proto
rm -rf gen
mv gen.tmp gen
