#!/bin/sh
# Formats this folder's Ruby sources with rubocop's Layout cops (.rubocop.yml:
# Layout only, 120 columns; gen/ is excluded). `./format.sh` corrects the files
# in place; `./format.sh --check` changes nothing and exits 1, naming the files,
# when something is not formatted. rubocop is Debian bookworm's `rubocop`
# package (1.39.0), installed here with apt-get when missing (root only).
set -eu
cd "$(dirname "$0")"
want=1.39.0

case "${1:-}" in
  "") mode=fix ;;
  --check) mode=check ;;
  *) echo "usage: ./format.sh [--check]" >&2; exit 2 ;;
esac

if ! command -v rubocop >/dev/null 2>&1; then
  if [ "$(id -u)" != 0 ]; then
    echo "format.sh: rubocop is missing: install Debian's package (apt-get install rubocop) or run this as root" >&2
    exit 1
  fi
  echo "format.sh: installing rubocop (apt-get)" >&2
  apt_install() {
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq \
      --no-install-recommends rubocop >/dev/null
  }
  apt_install || { apt-get -o DPkg::Lock::Timeout=300 update -qq && apt_install; }
fi
have=$(rubocop --version)
if [ "$have" != "$want" ]; then
  echo "format.sh: note: rubocop $have, not $want (Debian bookworm's): its layout rules may differ" >&2
fi

if [ "$mode" = check ]; then
  # emacs format: one "file:line:col: message" line per offense, nothing when clean.
  if out=$(rubocop --format emacs 2>&1); then
    exit 0
  fi
  printf '%s\n' "$out" >&2
  files=$(printf '%s\n' "$out" | sed -n "s|^$PWD/\([^:]*\):[0-9]*:[0-9]*: .*|\1|p" | sort -u | tr '\n' ' ' | sed 's/ $//')
  echo "format.sh: not formatted: ${files:-see above} (run ./format.sh)" >&2
  exit 1
fi
# Safe autocorrection only; what it cannot correct (a line over 120 columns
# that no layout rule can break) is reported and the exit status is 1.
rubocop --autocorrect --format emacs
