#!/bin/sh
# Idempotent build: checks the pinned gems (Gemfile.lock) are installed, then
# generates the Ruby code for ../../proto/stock.proto into gen/.
set -eu
cd "$(dirname "$0")"

# Bundler ships with Ruby; use its library to verify the pins offline.
BUNDLE_GEMFILE="$PWD/Gemfile" BUNDLE_FROZEN=true \
  ruby -e 'load Gem.bin_path("bundler", "bundle")' check >/dev/null

rm -rf gen.tmp
mkdir gen.tmp
grpc_tools_ruby_protoc -I../../proto --ruby_out=gen.tmp --grpc_out=gen.tmp ../../proto/stock.proto
rm -rf gen
mv gen.tmp gen
