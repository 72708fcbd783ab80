#!/bin/sh
# Records AppCDS archives (target/server.jsa, target/client.jsa) from one
# training run of the server and the client; the wrappers use them when present.
# Optional: without the archives everything works, only slower to start.
set -eu
dir=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd)
t="$dir/target"
jar="$t/stock-scala-all.jar"
# The wrappers' flags: an archive records what they load.
. "$dir/jvm-flags.sh"
rm -f "$t/server.jsa" "$t/client.jsa" "$t/cds.fifo" "$t/cds-server.out"

# The server runs until its stdin (the fifo) is closed.
mkfifo "$t/cds.fifo"
java $JAVA_FLAGS -XX:ArchiveClassesAtExit="$t/server.jsa" -cp "$jar" stockmatrix.ServerMain --port 0 \
  <"$t/cds.fifo" >"$t/cds-server.out" 2>"$t/cds-server.log" &
pid=$!
exec 3>"$t/cds.fifo"
i=0
until grep -q '^listening on ' "$t/cds-server.out" 2>/dev/null; do
  i=$((i + 1))
  if [ $i -gt 600 ] || ! kill -0 $pid 2>/dev/null; then
    echo "cds.sh: training server did not start (see $t/cds-server.log); skipping AppCDS" >&2
    exec 3>&-
    wait $pid || true
    rm -f "$t/server.jsa" "$t/cds.fifo"
    exit 0
  fi
  sleep 0.1
done
addr=$(sed -n 's/^listening on //p' "$t/cds-server.out")

timeout 60 java $JAVA_FLAGS $JAVA_CLIENT_FLAGS -XX:ArchiveClassesAtExit="$t/client.jsa" -cp "$jar" stockmatrix.ClientMain \
  --server "$addr" script >/dev/null 2>"$t/cds-client.log" <<'STEPS' || true
{"id":"put","method":"Put","request":{"key":"k","value":"aGk="},"compression":"gzip"}
{"id":"get","method":"Get","request":{"key":"k"},"metadata":{"x-stock-echo":"e"}}
{"id":"missing","method":"Get","request":{"key":"nope"}}
{"id":"fail","method":"Get","request":{"key":"k"},"metadata":{"x-stock-fail-special":"true"}}
{"id":"deadline","method":"Get","request":{"key":"k"},"metadata":{"x-stock-delay-ms":"200"},"timeout_ms":50}
{"id":"monitor","method":"Monitor","request":{"pattern":"*","includeExisting":true,"maxEvents":2},"after_first":[{"id":"put2","method":"Put","request":{"key":"k2","value":""}}]}
{"id":"batch","method":"Batch","requests":[{"key":"a","value":"aGk="}]}
{"id":"trade","method":"Trade","requests":[{"orderId":"1","symbol":"S","side":"BUY","quantity":1,"priceCents":1},{"orderId":"2","symbol":"S","side":"SELL","quantity":0}]}
{"id":"bad","method":"Put","request":{"key":""}}
{"id":"inventory","method":"Inventory"}
{"id":"audit","method":"Audit"}
{"id":"ledger","method":"Ledger.Balance"}
{"id":"kvput","method":"proto.KV.Put","request":{"key":"kv","value":"aGk="}}
{"id":"kvget","method":"proto.KV.Get","request":{"key":"kv"}}
STEPS

exec 3>&-
wait $pid || true
rm -f "$t/cds.fifo" "$t/cds-server.out"
