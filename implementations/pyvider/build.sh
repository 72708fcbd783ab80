#!/usr/bin/env bash
# Idempotent build: ../python's build (its gen/ and modules are this plugin's Stock service), then this folder's
# venv in .venv with the pinned requirements.txt (pyvider-rpcplugin and grpcio).
set -euo pipefail
cd "$(dirname "$0")"

../python/build.sh

if [ ! -x .venv/bin/python ]; then
  if command -v python3.11 >/dev/null 2>&1; then py=python3.11; else py=python3; fi
  "$py" -m venv .venv
fi
stamp=.venv/.requirements.txt
if ! cmp -s requirements.txt "$stamp"; then
  .venv/bin/python -m pip install --disable-pip-version-check -q -r requirements.txt
  cp requirements.txt "$stamp"
fi
.venv/bin/python -m compileall -q *.py >/dev/null
