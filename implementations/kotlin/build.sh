#!/bin/sh
# Builds target/stock.jar (server and client): Maven downloads every pinned
# artifact (protoc and its plugins too) from Maven Central into target/m2,
# generates code from ../../proto/stock.proto and kv.proto (legacy proto.KV,
# Java/Kotlin package `proto`) into target/generated-sources,
# and shades everything into one jar. Then a training run (a local server and
# a script over every method) writes the AppCDS archives target/server.jsa and
# target/client.jsa that the wrappers use to start faster.
# Idempotent; offline once target/m2 is complete.
set -eu
cd "$(dirname "$0")"
dir="$(pwd -P)"
repo="$dir/target/m2"
jar="$dir/target/stock.jar"
# The wrappers' flags: the archives must be recorded with them.
. ./jvm-flags.sh

if [ -f "$jar" ] && [ -f target/client.jsa ] && [ -f target/server.jsa ] &&
  [ -z "$(find pom.xml build.sh jvm-flags.sh src ../../proto -newer target/client.jsa | head -1)" ]; then
  echo "target/stock.jar is up to date" >&2
  exit 0
fi

rm -f target/client.jsa target/server.jsa
offline=""
if [ -f "$repo/.complete" ]; then
  offline="-o"
fi
mvn -B -q -Dstyle.color=never $offline -Dmaven.repo.local="$repo" -DskipTests package
touch "$repo/.complete"

# AppCDS training run, over mutual TLS when the runner can write certificates
# (TLS classes are most of what a TLS call loads; plaintext needs few more).
# A failure here only costs start-up time.
train() {
  tls=""
  certs="$dir/target/cds-certs"
  rm -rf "$certs"
  if [ -x ../../target/release/stock-matrix ] && ../../target/release/stock-matrix certs --out "$certs" >/dev/null 2>&1; then
    tls="--tls-mode mtls --ca-file $certs/ca.pem"
  fi
  fifo="$dir/target/cds-stdin"
  rm -f "$fifo" target/cds-server.out
  mkfifo "$fifo"
  # shellcheck disable=SC2086
  java $JAVA_FLAGS -XX:ArchiveClassesAtExit="$dir/target/server.jsa" -cp "$jar" stockmatrix.ServerKt --port 0 $tls --cert-file "$certs/server.pem" --key-file "$certs/server.key" <"$fifo" >target/cds-server.out 2>target/cds-server.log &
  pid=$!
  exec 3>"$fifo"
  port=""
  i=0
  while [ -z "$port" ] && [ $i -lt 600 ] && kill -0 $pid 2>/dev/null; do
    sleep 0.1
    i=$((i + 1))
    port="$(sed -n 's/^listening on .*:\([0-9][0-9]*\)$/\1/p' target/cds-server.out)"
  done
  if [ -n "$port" ]; then
    # shellcheck disable=SC2086
    timeout 60 java $JAVA_FLAGS $JAVA_CLIENT_FLAGS -XX:ArchiveClassesAtExit="$dir/target/client.jsa" -cp "$jar" stockmatrix.ClientKt --server "127.0.0.1:$port" $tls --cert-file "$certs/client.pem" --key-file "$certs/client.key" script >/dev/null 2>target/cds-client.log <<'STEPS' || true
{"id":"put","method":"Put","request":{"key":"cds/a","value":"aGk="},"metadata":{"x-stock-echo":"e"}}
{"id":"get","method":"Get","request":{"key":"cds/a"},"compression":"gzip","timeout_ms":5000}
{"id":"missing","method":"Get","request":{"key":"cds/missing"}}
{"id":"monitor","method":"Monitor","request":{"pattern":"cds/*","includeExisting":true,"maxEvents":2},"after_first":[{"id":"put2","method":"Put","request":{"key":"cds/b","value":""}}]}
{"id":"batch","method":"Batch","requests":[{"key":"cds/c","value":"eA=="},{"key":"cds/d"}],"fill":[{"request":1,"repeat":"eHk=","times":3}]}
{"id":"trade","method":"Trade","requests":[{"orderId":"1","symbol":"S","side":"BUY","quantity":1,"priceCents":1},{"orderId":"2","symbol":"S","side":"SELL","quantity":1,"priceCents":1}]}
{"id":"inventory","method":"Inventory"}
{"id":"audit","method":"Audit"}
{"id":"ledger","method":"Ledger.Balance"}
{"id":"kvput","method":"proto.KV.Put","request":{"key":"cds/kv","value":"aGk="}}
{"id":"kvget","method":"proto.KV.Get","request":{"key":"cds/kv"}}
{"id":"fail","method":"Inventory","metadata":{"x-stock-fail":"ABORTED"}}
{"id":"bad","method":"Put","request":{"key":""}}
{"id":"deadline","method":"Get","request":{"key":"cds/a"},"metadata":{"x-stock-delay-ms":"200"},"timeout_ms":50}
STEPS
  fi
  exec 3>&-
  wait $pid || true
  rm -f "$fifo"
}
train || true
if [ ! -f target/client.jsa ] || [ ! -f target/server.jsa ]; then
  echo "warning: AppCDS training failed (see target/cds-*.log); the wrappers run without archives" >&2
fi
