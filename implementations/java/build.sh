#!/usr/bin/env bash
# Idempotent build. Maven fetches the pinned dependencies (and protoc plus
# protoc-gen-grpc-java) from Maven Central into ~/.m2 once; later builds work
# offline. The stubs are generated from ../../proto/stock.proto and kv.proto
# (the legacy proto.KV, Java package `proto`) into target/generated-sources
# and everything is shaded into one jar. Then an AppCDS archive
# (target/stock.jsa) is made from the classes a server and a client load in
# short training runs (plaintext; and when openssl is there, mTLS with P-256
# certificates, the default OpenSSL provider, and with P-521 ones, the JDK's
# provider); it roughly halves the JVM start-up of every client process.
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

# train MODE [CURVE]: one server and one client script run, recording loaded
# classes; mtls with the certificates make_certs made for CURVE.
train() {
  local mode=$1 curve=${2:-} server_tls=() client_tls=() line port
  if [ "$mode" = mtls ]; then
    local d=$cds/$curve
    server_tls=(--tls-mode mtls --cert-file "$d/server.pem" --key-file "$d/server.key" --ca-file "$d/ca.pem")
    client_tls=(--tls-mode mtls --ca-file "$d/ca.pem" --cert-file "$d/client.pem" --key-file "$d/client.key" --server-name localhost)
    mode=mtls-$curve
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
  timeout 60 java $JAVA_FLAGS $JAVA_CLIENT_FLAGS -XX:DumpLoadedClassList="$cds/client-$mode.classlist" -cp "$jar" \
    stockmatrix.ClientMain --server "127.0.0.1:$port" "${client_tls[@]}" script \
    <cds-training.jsonl >"$cds/client-$mode.out" 2>"$cds/client-$mode.log" || true
  eval "exec ${SERVER[1]}>&-" # stdin EOF stops the server
  # within 10 s; one that does not (a server bug) is stopped, not waited for
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill "$pid" 2>/dev/null; then
    echo "build.sh: CDS training server ($mode) did not stop on stdin EOF within 10 s; sent SIGTERM" >&2
  fi
  wait "$pid" || true
}

# make_certs CURVE: a throwaway EC CA, server and client certificate on CURVE
# (P-256 or P-521) in $cds/CURVE for an mTLS run.
make_certs() {
  local curve=$1 d=$cds/$1 name
  mkdir -p "$d"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:"$curve" -nodes -days 2 \
    -subj /CN=cds-training-ca -keyout "$d/ca.key" -out "$d/ca.pem"
  for name in server client; do
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:"$curve" -nodes -subj "/CN=$name" \
      -keyout "$d/$name.key" -out "$d/$name.csr"
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' >"$d/$name.ext"
    openssl x509 -req -days 2 -in "$d/$name.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" \
      -CAcreateserial -extfile "$d/$name.ext" -out "$d/$name.pem"
  done
}

train none || true
for curve in P-256 P-521; do
  if command -v openssl >/dev/null 2>&1 && make_certs "$curve" 2>>"$cds/openssl.log"; then
    train mtls "$curve" || true
  fi
done
cat "$cds"/*.classlist >"$cds/all.classlist" 2>/dev/null || true
if [ -s "$cds/all.classlist" ]; then
  java $JAVA_FLAGS -Xshare:dump -XX:SharedClassListFile="$cds/all.classlist" \
    -XX:SharedArchiveFile="$archive" -cp "$jar" >"$cds/dump.log" 2>&1 ||
    echo "build.sh: no CDS archive (see $cds/dump.log); the JVM starts without it" >&2
fi
