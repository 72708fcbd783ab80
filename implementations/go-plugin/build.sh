#!/bin/sh
# Builds bin/plugin (main.go) over the service package of ../go, whose generated gen/ it needs: ../go/build.sh
# (idempotent) first. go-plugin v1.8.0 and the rest come from the Go module proxy, pinned by go.mod/go.sum.
set -eu
cd "$(dirname "$0")"
if command -v go >/dev/null 2>&1; then GO=go; else GO=/usr/local/go/bin/go; fi
../go/build.sh
$GO build -p 2 -mod=readonly -trimpath -o bin/plugin .
