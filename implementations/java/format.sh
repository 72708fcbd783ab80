#!/usr/bin/env bash
# Formats the Java sources (src/main/java; the generated stubs under target/ are not touched)
# with palantir-java-format, the google-java-format fork with a 120-column line width, run by
# spotless-maven-plugin; both are pinned in pom.xml, which is the formatter's configuration.
# Maven fetches them from Maven Central into ~/.m2 on first use (offline afterwards).
#   ./format.sh          format in place
#   ./format.sh --check  change nothing; exit non-zero naming the unformatted files (with a diff)
set -euo pipefail
cd "$(dirname "$0")"
case "${1:-}" in
  "") goal=apply ;;
  --check) goal=check ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac
# Debian's Maven 3.8 prints colour resets (ESC[0m) even with -q and style.color=never; drop them
# so that a run with nothing to do prints nothing.
rc=0
out=$(mvn -q -B -Dstyle.color=never com.diffplug.spotless:spotless-maven-plugin:"$goal" 2>&1) || rc=$?
out=${out//$'\e[0m'/}
if [ -n "$out" ]; then printf '%s\n' "$out" >&2; fi
exit "$rc"
