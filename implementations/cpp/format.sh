#!/bin/sh
# Formats the C++ sources (src/*.cc, src/*.h) and step.proto with clang-format 14 and
# .clang-format (Google style, 120 columns). `./format.sh` rewrites in place; `./format.sh --check`
# changes nothing and fails, naming the files, when one is not formatted. build/ (CMake output and
# the code generated into build/gen) is left alone. clang-format-14 comes from Debian: installed
# with apt-get when missing and run as root (nothing is installed inside the folder).
set -eu
cd "$(dirname "$0")"
case "${1-}" in
  "") CHECK=0 ;;
  --check) CHECK=1 ;;
  *) echo "usage: ./format.sh [--check]" >&2; exit 2 ;;
esac
CF=clang-format-14
if ! command -v "$CF" >/dev/null 2>&1; then
  if [ "$(id -u)" != 0 ]; then
    echo "$CF not found: run ./format.sh as root (it installs it with apt-get) or apt-get install $CF" >&2
    exit 1
  fi
  echo "installing $CF (apt-get)" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt_install() { apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "$CF" >/dev/null; }
  apt_install || { apt-get -o DPkg::Lock::Timeout=300 update -qq && apt_install; }
fi
FILES=$(find . \( -path ./build -o -name '.*' ! -name . \) -prune -o \
  -type f \( -name '*.cc' -o -name '*.cpp' -o -name '*.h' -o -name '*.hpp' -o -name '*.proto' \) -print | sort)
[ -n "$FILES" ] || exit 0
# A file is formatted when clang-format's output is the file itself (a failure of clang-format
# stops the script).
OUT=$(mktemp)
trap 'rm -f "$OUT"' EXIT
BAD=""
for f in $FILES; do
  "$CF" --style=file "$f" >"$OUT"
  cmp -s "$OUT" "$f" || BAD="$BAD $f"
done
[ -n "$BAD" ] || exit 0
if [ "$CHECK" = 1 ]; then
  echo "not formatted (run ./format.sh):" >&2
  # shellcheck disable=SC2086
  printf '%s\n' $BAD >&2
  exit 1
fi
# shellcheck disable=SC2086
"$CF" --style=file -i $BAD
