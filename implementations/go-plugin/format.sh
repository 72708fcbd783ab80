#!/bin/sh
# Formats the Go sources with gofmt (it comes with Go: nothing to install; it has no line-width
# setting, so the repo's 120 columns are kept by hand). `./format.sh` rewrites in place;
# `./format.sh --check` changes nothing and fails, naming the files, when one is not formatted.
# bin/ (the build output) and any vendor/ are left alone.
set -eu
cd "$(dirname "$0")"
case "${1-}" in
  "") CHECK=0 ;;
  --check) CHECK=1 ;;
  *) echo "usage: ./format.sh [--check]" >&2; exit 2 ;;
esac
if command -v gofmt >/dev/null 2>&1; then GOFMT=gofmt; else GOFMT=/usr/local/go/bin/gofmt; fi
[ -x "$(command -v "$GOFMT")" ] || { echo "gofmt not found: install Go (see README.md)" >&2; exit 1; }
FILES=$(find . \( -path ./bin -o -name vendor \) -prune -o -name '*.go' -type f -print | sort)
[ -n "$FILES" ] || exit 0
# gofmt -l lists the files whose formatting differs (and fails on a syntax error).
# shellcheck disable=SC2086
BAD=$($GOFMT -l $FILES)
[ -n "$BAD" ] || exit 0
if [ "$CHECK" = 1 ]; then
  echo "not formatted (run ./format.sh):" >&2
  printf '%s\n' "$BAD" >&2
  exit 1
fi
# shellcheck disable=SC2086
$GOFMT -w $BAD
