#!/bin/sh
# Formats the Kotlin sources (src/main/kotlin; the code generated under target/ is not touched) with
# ktfmt in the Kotlin coding conventions' style at 120 columns, run by spotless-maven-plugin; both are
# pinned in pom.xml, which holds the formatter's configuration (the plugin is bound to no build phase).
# Maven fetches them from Maven Central into target/m2, build.sh's repository, on first use; offline
# afterwards, until pom.xml changes.
#   ./format.sh          format in place
#   ./format.sh --check  change nothing; exit 1 naming the unformatted files (with a diff)
set -eu
cd "$(dirname "$0")"
case "${1-}" in
  "") goal=apply ;;
  --check) goal=check ;;
  *) echo "usage: ./format.sh [--check]" >&2; exit 2 ;;
esac
repo="$(pwd -P)/target/m2"
mark="$repo/.format-complete"
offline=""
if [ -f "$mark" ] && [ "$mark" -nt pom.xml ]; then
  offline="-o"
fi
mkdir -p target
out="target/format.out"
# shellcheck disable=SC2086 # $offline is empty or one flag
if mvn -B -q -Dstyle.color=never $offline -Dmaven.repo.local="$repo" spotless:"$goal" >"$out" 2>&1; then
  touch "$mark"
  rm -f "$out"
  exit 0
fi
# Spotless names the unformatted files one a line (the first with its diff); Maven colours some lines.
esc="$(printf '\033')"
sed -i "s/$esc\[[0-9;]*m//g" "$out"
bad="$(sed -n 's/^\[ERROR\] *\(src\/.*\.kt\)$/\1/p' "$out" | sort -u)"
if [ "$goal" = check ] && [ -n "$bad" ]; then
  touch "$mark"
  cat "$out" >&2
  echo "not formatted (run ./format.sh):" >&2
  printf '%s\n' "$bad" >&2
else
  cat "$out" >&2
fi
rm -f "$out"
exit 1
