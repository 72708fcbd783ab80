#!/usr/bin/env bash
# Formats this folder's own sources (src/*.js) with prettier, pinned as a
# devDependency in package.json and package-lock.json; .prettierrc.json sets
# the repo's 120-column width. ./format.sh rewrites in place, naming the files
# it changed; ./format.sh --check changes nothing, names the files that are not
# formatted and exits 1. build.sh's npm ci installs prettier with the rest;
# when node_modules lacks it, this adds what is missing from the lock file
# (npm install --no-save: package.json and the lock file stay as they are).
set -euo pipefail
cd "$(dirname "$0")"
case "${1:-}" in
  "") write=(--write) ;;
  --check) write=() ;;
  *) echo "usage: ./format.sh [--check]" >&2; exit 2 ;;
esac
prettier=node_modules/.bin/prettier
pinned='try { process.exit(require("./node_modules/prettier/package.json").version ===
  require("./package.json").devDependencies.prettier ? 0 : 1) } catch { process.exit(1) }'
if [ ! -x "$prettier" ] || ! node -e "$pinned"; then
  npm install --no-save --no-audit --no-fund --loglevel=error >&2
fi
exec "$prettier" "${write[@]}" --list-different src
