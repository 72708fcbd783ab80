#!/bin/sh
# Formats this folder's Scala sources (src/main/scala) with scalafmt, run by
# spotless-maven-plugin; both versions are pinned in pom.xml, the style is .scalafmt.conf
# (maxColumn = 120). Generated stubs (target/) are never touched.
#   ./format.sh          formats in place
#   ./format.sh --check  changes nothing; exits non-zero, naming the files, if any is unformatted
# The plugin and scalafmt come from Maven Central into .m2/ (like build.sh's dependencies)
# on the first run; later runs are offline.
set -eu
dir=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd)
cd "$dir"
case "${1-}" in
  '') goal=apply ;;
  --check) goal=check ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac
if ! command -v mvn >/dev/null 2>&1; then
  echo "format.sh: mvn not found (Java 17 + Maven, as for build.sh)" >&2
  exit 1
fi
repo="$dir/.m2/repository"
mvn_args="-B -q -Dstyle.color=never -Dmaven.repo.local=$repo"
# Offline when the pinned plugin and scalafmt are already in .m2/; online otherwise.
sv=$(sed -n '/<artifactId>spotless-maven-plugin</{n;s/.*<version>\(.*\)<\/version>.*/\1/p;}' pom.xml)
fv=$(sed -n '/<scalafmt>/{n;s/.*<version>\(.*\)<\/version>.*/\1/p;}' pom.xml)
if [ -f "$repo/com/diffplug/spotless/spotless-maven-plugin/$sv/spotless-maven-plugin-$sv.jar" ] &&
  [ -f "$repo/org/scalameta/scalafmt-core_2.13/$fv/scalafmt-core_2.13-$fv.jar" ]; then
  mvn_args="$mvn_args -o"
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
rc=0
mvn $mvn_args "spotless:$goal" >"$log" 2>&1 || rc=$?
# Maven 3.8 writes bare ANSI resets even in batch mode: drop them, so a clean run prints nothing.
out=$(sed 's/\x1b\[[0-9;]*m//g' "$log")
if [ "$rc" -ne 0 ]; then
  printf '%s\n' "$out" >&2
  case $out in
    *'format violations'*) echo "format.sh: the files named above are not formatted; run ./format.sh" >&2 ;;
  esac
  exit 1
fi
[ -z "$out" ] || printf '%s\n' "$out"
