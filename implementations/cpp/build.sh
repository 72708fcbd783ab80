#!/bin/sh
# Configures once, then builds build/server and build/client (code generated into build/gen).
set -eu
cd "$(dirname "$0")"
if [ ! -f build/CMakeCache.txt ]; then
  cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
fi
cmake --build build -j2
