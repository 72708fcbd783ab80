#!/usr/bin/env bash
# Idempotent build. Maven fetches the pinned dependencies (and protoc plus
# protoc-gen-grpc-java) from Maven Central into ~/.m2 once; later builds work
# offline. The stubs are generated from ../../proto/stock.proto and kv.proto
# (the legacy proto.KV, Java package `proto`) into target/generated-sources
# and everything is shaded into one jar. Then an AppCDS archive
# (target/stock.jsa) is made from the classes a server and a client load in
# short training runs (plaintext, and mTLS when openssl is there); it roughly
# halves the JVM start-up of every client process.
set -euo pipefail
cd "$(dirname "$0")"
. ./jvm-flags.sh

jar=target/stock-java-all.jar
archive=target/stock.jsa
if [ ! -f "$jar" ] || [ -n "$(find pom.xml src ../../proto -newer "$jar" -print -quit)" ]; then
  mvn -q -B -Dstyle.color=never package -DskipTests
fi
if [ -f "$archive" ] && [ "$archive" -nt "$jar" ] && [ "$archive" -nt cds-training.jsonl ] && [ "$archive" -nt jvm-flags.sh ]; then
  exit 0
fi

cds=target/cds
rm -rf "$cds" "$archive"
mkdir -p "$cds"

# train MODE: one server and one client script run, recording loaded classes.
train() {
  local mode=$1 server_tls=() client_tls=() line port
  if [ "$mode" = mtls ]; then
    server_tls=(--tls-mode mtls --cert-file "$cds/server.pem" --key-file "$cds/server.key" --ca-file "$cds/ca.pem")
    client_tls=(--tls-mode mtls --ca-file "$cds/ca.pem" --cert-file "$cds/client.pem" --key-file "$cds/client.key" --server-name localhost)
  fi
  coproc SERVER {
    exec java $JAVA_FLAGS -XX:DumpLoadedClassList="$cds/server-$mode.classlist" -cp "$jar" \
      stockmatrix.ServerMain --port 0 "${server_tls[@]}" 2>"$cds/server-$mode.log"
  }
  local pid=$SERVER_PID
  if ! read -r -t 60 line <&"${SERVER[0]}"; then
    echo "build.sh: CDS training server ($mode) did not start; see $cds/server-$mode.log" >&2
    kill "$pid" 2>/dev/null || true
    return 1
  fi
  port=${line##*:}
  java $JAVA_FLAGS -XX:DumpLoadedClassList="$cds/client-$mode.classlist" -cp "$jar" \
    stockmatrix.ClientMain --server "127.0.0.1:$port" "${client_tls[@]}" script \
    <cds-training.jsonl >"$cds/client-$mode.out" 2>"$cds/client-$mode.log" || true
  eval "exec ${SERVER[1]}>&-" # stdin EOF stops the server
  wait "$pid" || true
}

# A throwaway EC P-256 CA, server and client certificate for the mTLS run.
make_certs() {
  local name
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj /CN=cds-training-ca -keyout "$cds/ca.key" -out "$cds/ca.pem"
  for name in server client; do
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$name" \
      -keyout "$cds/$name.key" -out "$cds/$name.csr"
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' >"$cds/$name.ext"
    openssl x509 -req -days 2 -in "$cds/$name.csr" -CA "$cds/ca.pem" -CAkey "$cds/ca.key" \
      -CAcreateserial -extfile "$cds/$name.ext" -out "$cds/$name.pem"
  done
}

train none || true
if command -v openssl >/dev/null 2>&1 && make_certs 2>"$cds/openssl.log"; then
  train mtls || true
fi
cat "$cds"/*.classlist >"$cds/all.classlist" 2>/dev/null || true
if [ -s "$cds/all.classlist" ]; then
  java $JAVA_FLAGS -Xshare:dump -XX:SharedClassListFile="$cds/all.classlist" \
    -XX:SharedArchiveFile="$archive" -cp "$jar" >"$cds/dump.log" 2>&1 ||
    echo "build.sh: no CDS archive (see $cds/dump.log); the JVM starts without it" >&2
fi
