#!/usr/bin/env bash
# Formats this folder's Python sources with ruff (pinned in requirements-format.txt, settings in ruff.toml:
# 120 columns, gen/ excluded). `./format.sh` rewrites in place; `./format.sh --check` changes nothing and exits 1,
# naming the files, when something is not formatted. Installs ruff into .venv (the build's venv) when missing.
set -euo pipefail
cd "$(dirname "$0")"

case "${1:-}" in
  "") mode=() ;;
  --check) mode=(--check) ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

if [ ! -x .venv/bin/python ]; then
  if command -v python3.11 >/dev/null 2>&1; then py=python3.11; else py=python3; fi
  "$py" -m venv .venv
fi
stamp=.venv/.requirements-format.txt
if [ ! -x .venv/bin/ruff ] || ! cmp -s requirements-format.txt "$stamp"; then
  .venv/bin/python -m pip install --disable-pip-version-check -q -r requirements-format.txt
  cp requirements-format.txt "$stamp"
fi

if ! .venv/bin/ruff format --quiet --no-cache "${mode[@]}" .; then
  [ ${#mode[@]} -gt 0 ] && echo "python: not formatted (run implementations/python/format.sh)" >&2
  exit 1
fi
