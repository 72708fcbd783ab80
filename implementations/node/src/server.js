"use strict";
// stock.v1.Stock server, plus the legacy proto.KV over the same store, over @grpc/grpc-js
// (see ../../../CONTRACT.md). The test hooks are a server interceptor (hooks.js).
const fs = require("node:fs");
const path = require("node:path");
const grpc = require("@grpc/grpc-js");
const { HealthImplementation, protoPath: HEALTH_PROTO_PATH } = require("grpc-health-check");
const { ReflectionService } = require("@grpc/reflection");
const { PROTO_PATH, KV_PROTO_PATH, loadDefinition, badRequest } = require("./proto");
const { stockHooks } = require("./hooks");
const { store } = require("./store");

const STACK = `grpc-js ${require("@grpc/grpc-js/package.json").version}`;

function main() {
  const opts = parseArgs(process.argv.slice(2));
  const server = serve(opts);
  const stop = () => {
    server.forceShutdown();
    process.exit(0);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  process.stdin.on("end", stop);
  process.stdin.on("error", stop);
  process.stdin.resume();
}

function parseArgs(argv) {
  const names = {
    "--port": "port",
    "--host": "host",
    "--tls-mode": "tlsMode",
    "--cert-file": "certFile",
    "--key-file": "keyFile",
    "--ca-file": "caFile",
  };
  const opts = { host: "127.0.0.1", tlsMode: "none" };
  const usage = (message) => {
    process.stderr.write(`usage error: ${message}\n`);
    process.exit(2);
  };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i].split(/=(.*)/s);
    if (!names[flag]) usage(`unknown argument ${argv[i]}`);
    const value = inline ?? argv[++i];
    if (value === undefined) usage(`${flag} needs a value`);
    opts[names[flag]] = value;
  }
  if (!/^\d+$/.test(opts.port ?? "")) usage("--port N is required");
  if (!["none", "server", "mtls"].includes(opts.tlsMode)) usage(`bad --tls-mode ${opts.tlsMode}`);
  return opts;
}

/** Credentials, Stock and proto.KV with the hooks interceptor, health, reflection; `listening on`. */
function serve(opts) {
  const die = (message) => {
    process.stderr.write(`error: ${message}\n`);
    process.exit(1);
  };
  let credentials = grpc.ServerCredentials.createInsecure();
  if (opts.tlsMode !== "none") {
    try {
      const read = (file, flag) => {
        if (!file) die(`--${flag} is required with --tls-mode ${opts.tlsMode}`);
        return fs.readFileSync(file);
      };
      const pair = { cert_chain: read(opts.certFile, "cert-file"), private_key: read(opts.keyFile, "key-file") };
      const mtls = opts.tlsMode === "mtls";
      credentials = grpc.ServerCredentials.createSsl(mtls ? read(opts.caFile, "ca-file") : null, [pair], mtls);
    } catch (e) {
      die(`cannot load the TLS certificates: ${e.message}`);
    }
  }
  // Received: at most 4 MiB. Sent: grpc-js's default, unlimited (x-stock-repeat-value goes over 4 MiB).
  const server = new grpc.Server({ "grpc.max_receive_message_length": 4 << 20, interceptors: [stockHooks] });
  const proto = grpc.loadPackageDefinition(loadDefinition([PROTO_PATH, KV_PROTO_PATH]));
  // Audit has no handler: grpc-js answers UNIMPLEMENTED. Ledger is not added.
  server.addService(proto.stock.v1.Stock.service, stock);
  server.addService(proto.proto.KV.service, kv);
  const health = { "": "SERVING", "stock.v1.Stock": "SERVING", "proto.KV": "SERVING" };
  new HealthImplementation(health).addToServer(server);
  // Reflection lists exactly what is served: Stock, KV, Health and reflection itself.
  const reflectionDir = path.join(path.dirname(require.resolve("@grpc/reflection/package.json")), "build/proto");
  const reflectionProtos = ["v1", "v1alpha"].map((v) => `${reflectionDir}/grpc/reflection/${v}/reflection.proto`);
  const served = loadDefinition([PROTO_PATH, KV_PROTO_PATH, HEALTH_PROTO_PATH, ...reflectionProtos]);
  const services = ["stock.v1.Stock", "proto.KV", "grpc.health.v1.Health"];
  services.push("grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection");
  new ReflectionService(served, { services }).addToServer(server);
  const host = opts.host.includes(":") ? `[${opts.host}]` : opts.host;
  server.bindAsync(`${host}:${opts.port}`, credentials, (err) => {
    if (err) die(`failed to bind ${opts.host}:${opts.port}: ${err.message}`);
    process.stdout.write(`listening on ${opts.host}:${opts.port}\n`);
  });
  return server;
}

/** A unary handler from fn(call) → response; a thrown status error ends the call with it. */
function unary(fn) {
  return (call, callback) => {
    try {
      callback(null, fn(call));
    } catch (e) {
      callback(e);
    }
  };
}

const stock = {
  Get: unary((call) => {
    const { value, version } = store.get(call.request.key);
    // x-stock-repeat-value (checked by the hooks): the value that many times over.
    const repeat = Number(call.metadata.get("x-stock-repeat-value")[0] ?? 1);
    return { value: repeat > 1 ? Buffer.concat(Array(repeat).fill(value)) : value, version: String(version) };
  }),

  Put: unary((call) => {
    store.put(call.request.key, call.request.value);
    return {};
  }),

  Monitor(call) {
    const { pattern = "", max_events: maxEvents = 0, include_existing: includeExisting } = call.request;
    if (pattern === "") return call.emit("error", badRequest("pattern", "pattern must not be empty"));
    if (maxEvents < 0) return call.emit("error", badRequest("max_events", "max_events must not be negative"));
    let sent = 0;
    const send = (event) => {
      if (maxEvents > 0 && sent >= maxEvents) return;
      call.write(event);
      if (++sent === maxEvents) {
        store.unwatch(send);
        call.end();
      }
    };
    call.on("cancelled", () => store.unwatch(send));
    store.watch(pattern, includeExisting, send).forEach(send);
  },

  Batch(call, callback) {
    const items = [];
    call.on("data", (item) => items.push(item));
    // A request stream that ends in a cancellation or a deadline is not a half-close: no "end".
    call.on("end", () => {
      try {
        callback(null, store.batch(items));
      } catch (e) {
        callback(e);
      }
    });
  },

  Trade(call) {
    let sequence = 0;
    let closed = false;
    const positions = new Map();
    call.on("cancelled", () => (closed = true));
    call.on("data", (order) => {
      if (closed) return;
      const quantity = BigInt(order.quantity ?? "0");
      const orderId = order.order_id ?? "";
      if (quantity <= 0n) {
        closed = true;
        const description = `order ${JSON.stringify(orderId)}: quantity must be > 0, got ${quantity}`;
        return call.emit("error", badRequest("quantity", description));
      }
      const { symbol = "", side = "SIDE_UNSPECIFIED", price_cents: priceCents = "0" } = order;
      const position = (positions.get(symbol) ?? 0n) + (side === "BUY" ? quantity : -quantity);
      positions.set(symbol, position);
      sequence++;
      const fill = { order_id: orderId, symbol, side, quantity: String(quantity), price_cents: priceCents };
      call.write({ ...fill, sequence: String(sequence), net_position: String(position) });
    });
    call.on("end", () => closed || call.end());
  },

  Inventory: unary((call) => {
    // x-stock-count-prefix: count only the keys that start with it.
    const { keyCount, totalValueBytes } = store.totals(call.metadata.get("x-stock-count-prefix")[0] ?? "");
    return { key_count: keyCount, total_value_bytes: totalValueBytes, language: "node", stack: STACK };
  }),
};

// The legacy proto.KV (kv.proto) over the same store; Stock.Put's response {} is also proto.Empty.
const kv = {
  Get: unary((call) => ({ value: store.get(call.request.key).value })),
  Put: stock.Put,
};

main();
