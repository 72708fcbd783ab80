#!/bin/sh
# Formats the folder's sources (src/*.ts and the JSON, YAML and Markdown files) with prettier,
# pinned in package.json and package-lock.json; .prettierrc.json sets the repo's 120 columns and
# .prettierignore leaves out node_modules/, gen/, dist/, package-lock.json and proto/.
# `./format.sh` rewrites in place; `./format.sh --check` changes nothing and fails, naming the
# files, when one is not formatted. Prettier comes with build.sh's npm ci; when node_modules/
# lacks it, this runs the same npm ci first.
set -eu
cd "$(dirname "$0")"
case "${1-}" in
  "") MODE=--write ;;
  --check) MODE=--check ;;
  *) echo "usage: ./format.sh [--check]" >&2; exit 2 ;;
esac
if [ ! -x node_modules/.bin/prettier ] || ! cmp -s package-lock.json node_modules/.stock-matrix-lock 2>/dev/null; then
  npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
  cp package-lock.json node_modules/.stock-matrix-lock
fi
exec node_modules/.bin/prettier "$MODE" --log-level warn .
