#!/bin/sh
# Installs the Debian packages the Ruby implementation needs, when missing
# (grpc-proto: the reflection.proto and health.proto that build.sh compiles).
set -eu
missing=""
for pkg in ruby ruby-grpc ruby-grpc-tools ruby-googleapis-common-protos-types grpc-proto; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
    missing="$missing $pkg"
  fi
done
if [ -n "$missing" ]; then
  echo "installing:$missing"
  apt-get update
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing
fi
