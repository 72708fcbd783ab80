#!/bin/sh
# Builds target/stock-scala-all.jar (server + client) with Maven; dependencies
# go to .m2/ inside this folder. Then records AppCDS archives for faster start-up.
set -eu
dir=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd)
cd "$dir"
mvn_args="-B -q -Dmaven.repo.local=$dir/.m2/repository"
# Offline first when the dependencies are already here; online otherwise.
if [ -d .m2/repository ] && mvn $mvn_args -o package 2>/dev/null; then :; else
  mvn $mvn_args package
fi
./cds.sh
