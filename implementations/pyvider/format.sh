#!/usr/bin/env bash
# Formats this folder's Python sources with ../python's ruff and settings (../python/ruff.toml: 120 columns).
# `./format.sh` rewrites in place; `./format.sh --check` changes nothing and exits 1, naming the files, when
# something is not formatted. ../python/format.sh installs that ruff when it is missing.
set -euo pipefail
cd "$(dirname "$0")"

case "${1:-}" in
  "") mode=() ;;
  --check) mode=(--check) ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

ruff=../python/.venv/bin/ruff
[ -x "$ruff" ] || ../python/format.sh --check >/dev/null || true
if ! "$ruff" format --quiet --no-cache --config ../python/ruff.toml "${mode[@]}" .; then
  [ ${#mode[@]} -gt 0 ] && echo "pyvider: not formatted (run implementations/pyvider/format.sh)" >&2
  exit 1
fi
