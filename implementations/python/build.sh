#!/usr/bin/env bash
# Idempotent build: venv in .venv, pinned requirements, generated code in gen/.
set -euo pipefail
cd "$(dirname "$0")"

if [ ! -x .venv/bin/python ]; then
  if command -v python3.11 >/dev/null 2>&1; then py=python3.11; else py=python3; fi
  "$py" -m venv .venv
fi
stamp=.venv/.requirements.txt
if ! cmp -s requirements.txt "$stamp"; then
  .venv/bin/python -m pip install --disable-pip-version-check -q -r requirements.txt
  cp requirements.txt "$stamp"
fi

rm -rf gen.tmp
mkdir gen.tmp
.venv/bin/python -m grpc_tools.protoc -I../../proto --python_out=gen.tmp \
  --grpc_python_out=gen.tmp ../../proto/stock.proto ../../proto/kv.proto
rm -rf gen
mv gen.tmp gen
.venv/bin/python -m compileall -q gen *.py >/dev/null
