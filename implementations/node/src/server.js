"use strict";
// stock.v1.Stock server, plus the legacy proto.KV over the same store, over
// @grpc/grpc-js (see ../../../CONTRACT.md).
const fs = require("node:fs");
const path = require("node:path");
const grpc = require("@grpc/grpc-js");
const { HealthImplementation, protoPath: HEALTH_PROTO_PATH } = require("grpc-health-check");
const { ReflectionService } = require("@grpc/reflection");
const { PROTO_PATH, KV_PROTO_PATH, loadDefinition, codeFromName, encodeStatusDetails } = require("./proto");

const MAX_KEY = 256;
const MAX_VALUE = 1 << 20;
const MAX_MESSAGE = 4 << 20;
const SPECIAL_MESSAGE = "\t\ntest with whitespace\r\nand Unicode BMP ☺ and non-BMP 😈\t\n";
const STACK = `grpc-js ${require("@grpc/grpc-js/package.json").version}`;

function die(message) {
  process.stderr.write(`error: ${message}\n`);
  process.exit(1);
}

function parseArgs(argv) {
  const opts = { host: "127.0.0.1", tlsMode: "none" };
  const names = {
    "--port": "port",
    "--host": "host",
    "--tls-mode": "tlsMode",
    "--cert-file": "certFile",
    "--key-file": "keyFile",
    "--ca-file": "caFile",
  };
  const usage = (m) => {
    process.stderr.write(`usage error: ${m}\n`);
    process.exit(2);
  };
  for (let i = 0; i < argv.length; i++) {
    let [flag, value] = argv[i].split(/=(.*)/s);
    if (!names[flag]) usage(`unknown argument ${argv[i]}`);
    if (value === undefined) {
      if (i + 1 >= argv.length) usage(`${flag} needs a value`);
      value = argv[++i];
    }
    opts[names[flag]] = value;
  }
  if (opts.port === undefined || !/^\d+$/.test(opts.port)) usage("--port N is required");
  if (!["none", "server", "mtls"].includes(opts.tlsMode)) usage(`bad --tls-mode ${opts.tlsMode}`);
  return opts;
}

function credentials(opts) {
  if (opts.tlsMode === "none") return grpc.ServerCredentials.createInsecure();
  const read = (file, flag) => {
    if (!file) die(`--${flag} is required for --tls-mode ${opts.tlsMode}`);
    try {
      return fs.readFileSync(file);
    } catch (e) {
      return die(`cannot read --${flag} ${file}: ${e.message}`);
    }
  };
  const pair = { cert_chain: read(opts.certFile, "cert-file"), private_key: read(opts.keyFile, "key-file") };
  const mtls = opts.tlsMode === "mtls";
  const ca = mtls ? read(opts.caFile, "ca-file") : null;
  try {
    return grpc.ServerCredentials.createSsl(ca, [pair], mtls);
  } catch (e) {
    return die(`invalid TLS configuration: ${e.message}`);
  }
}

// ---- the store: keys, versions and watchers (single-threaded, so every
// synchronous block is a critical section) ----

const store = new Map(); // key -> { value: Buffer, version: number }
const watchers = new Set(); // { pattern, push(event) }

function matches(pattern, key) {
  return pattern.endsWith("*") ? key.startsWith(pattern.slice(0, -1)) : pattern === key;
}

function storePut(key, value) {
  const old = store.get(key);
  const entry = { value, version: old ? old.version + 1 : 1 };
  store.set(key, entry);
  for (const w of watchers) {
    if (matches(w.pattern, key)) w.push({ key, value, version: String(entry.version), existing: false });
  }
  return !old;
}

/** The entry of a valid, stored key; else INVALID_ARGUMENT or NOT_FOUND. */
function storeGet(key) {
  validateKey(key);
  const entry = store.get(key);
  if (!entry) throw new RpcError(grpc.status.NOT_FOUND, `key ${JSON.stringify(key)} not found`);
  return entry;
}

function compareBytes(a, b) {
  return Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));
}

/**
 * A call's error status; `rich` are the google.rpc.Status details sent with
 * it in grpc-status-details-bin, as [type name, fields] pairs.
 */
class RpcError extends Error {
  constructor(code, details, rich = []) {
    super(details);
    this.code = code;
    this.details = details;
    this.rich = rich;
  }
}

/** INVALID_ARGUMENT for a refused request, with a google.rpc.BadRequest naming the field. */
function badField(field, description) {
  return new RpcError(grpc.status.INVALID_ARGUMENT, description, [
    ["google.rpc.BadRequest", { fieldViolations: [{ field, description }] }],
  ]);
}

/** The status x-stock-fail forces, with a google.rpc.ErrorInfo. */
function forced(code, message) {
  return new RpcError(code, message, [["google.rpc.ErrorInfo", { reason: "FORCED", domain: "stock.v1" }]]);
}

function validateKey(key) {
  const n = Buffer.byteLength(key, "utf8");
  if (n < 1 || n > MAX_KEY) throw badField("key", `key must be 1 to ${MAX_KEY} bytes, got ${n}`);
}

function validateValue(value) {
  if (value.length > MAX_VALUE) {
    throw badField("value", `value must be at most ${MAX_VALUE} bytes, got ${value.length}`);
  }
}

const bytesOf = (b) => (b ? Buffer.from(b) : Buffer.alloc(0));

// ---- test hooks ----

/**
 * The grpc-encoding each request arrived with, by its request metadata.
 * grpc-js removes grpc-encoding from the metadata handlers and interceptors
 * see; it keeps it only on its base server call (`incomingEncoding`, which
 * selects the decompressor), the call a server interceptor wraps.
 */
const requestEncodings = new WeakMap();

/** Server interceptor: records the base call's grpc-encoding for its handler. */
function recordRequestEncoding(method, call) {
  const encoding = call.incomingEncoding;
  return new grpc.ServerInterceptingCall(call, {
    start: (next) =>
      next({
        onReceiveMetadata: (metadata, pass) => {
          if (typeof encoding === "string") requestEncodings.set(metadata, encoding);
          pass(metadata);
        },
      }),
  });
}

/** The store's open Monitor streams whose pattern starts with prefix. */
function countWatchers(prefix) {
  let n = 0;
  for (const w of watchers) if (w.pattern.startsWith(prefix)) n++;
  return n;
}

/**
 * x-stock-compress is not applied: grpc-js servers cannot compress responses
 * (BaseServerInterceptingCall.serializeMessage always writes the compressed
 * flag 0 and the response headers say grpc-encoding: identity).
 *
 * Applies the x-stock-* hooks up to the fail decision: reads them, sleeps
 * the delay, sends the echo headers. Returns { fail, failAfter, trailers },
 * or null when the call is over (cancelled, deadline passed) after the
 * delay: then nothing is applied.
 */
async function enter(call) {
  const md = call.metadata;
  const text = (k) => {
    const v = md.get(k)[0];
    return typeof v === "string" ? v : undefined;
  };
  const bytes = (k) => {
    const v = md.get(k)[0];
    return Buffer.isBuffer(v) ? v : undefined;
  };
  const headers = new grpc.Metadata();
  const trailers = new grpc.Metadata();
  for (const k of ["x-stock-echo", "x-stock-echo-bin"]) {
    const v = k.endsWith("-bin") ? bytes(k) : text(k);
    if (v !== undefined) {
      headers.set(k, v);
      trailers.set(k, v);
    }
  }
  const echoHeader = text("x-stock-echo-header");
  if (echoHeader !== undefined) headers.set("x-stock-echo-header", echoHeader);
  const echoTrailer = text("x-stock-echo-trailer");
  if (echoTrailer !== undefined) trailers.set("x-stock-echo-trailer", echoTrailer);
  if (text("x-stock-report-encoding") === "true") {
    const encoding = requestEncodings.get(md);
    // Left out when grpc-js did not tell (never guessed).
    if (encoding !== undefined)
      trailers.set("x-stock-request-encoding", encoding === "" ? "identity" : encoding);
  }
  if (text("x-stock-report-deadline") === "true") {
    const deadline = call.getDeadline();
    const at = deadline instanceof Date ? deadline.getTime() : deadline;
    const left = Number.isFinite(at) ? String(Math.max(0, Math.floor(at - Date.now()))) : "none";
    trailers.set("x-stock-deadline-ms", left);
  }
  const number = (k) => {
    const v = text(k);
    if (v === undefined) return 0;
    if (!/^\d+$/.test(v.trim()))
      throw new RpcError(grpc.status.INVALID_ARGUMENT, `${k} must be a number, got ${JSON.stringify(v)}`);
    return Number(v.trim());
  };
  const special = text("x-stock-fail-special") === "true";
  let fail = null;
  let delay = 0;
  let failAfter = 0;
  let repeatValue = 1;
  try {
    const name = text("x-stock-fail");
    let code;
    if (name !== undefined) {
      code = codeFromName(name);
      if (code === undefined || code === grpc.status.OK) {
        throw new RpcError(
          grpc.status.INVALID_ARGUMENT,
          `x-stock-fail: unknown code ${JSON.stringify(name)}`,
        );
      }
    } else if (special) {
      code = grpc.status.UNKNOWN;
    }
    if (code !== undefined) {
      const messageBin = bytes("x-stock-fail-message-bin");
      const message = special
        ? SPECIAL_MESSAGE
        : messageBin !== undefined
          ? messageBin.toString("utf8")
          : (text("x-stock-fail-message") ?? `forced ${name ?? "UNKNOWN"}`);
      fail = forced(code, message);
    }
    delay = number("x-stock-delay-ms");
    failAfter = number("x-stock-fail-after");
    repeatValue = Math.max(1, number("x-stock-repeat-value"));
  } catch (e) {
    fail = e;
    failAfter = 0;
  }
  if (delay > 0) await new Promise((r) => setTimeout(r, delay));
  // A call that its client cancelled, or whose deadline passed, is over.
  if (call.cancelled) return null;
  const prefix = text("x-stock-report-watchers");
  if (prefix !== undefined) trailers.set("x-stock-watchers", String(countWatchers(prefix)));
  if (Object.keys(headers.getMap()).length > 0) call.sendMetadata(headers);
  return { fail, failAfter, repeatValue, trailers };
}

function toStatus(e, trailers) {
  if (e instanceof RpcError) {
    let metadata = trailers;
    if (e.rich.length > 0) {
      metadata = trailers ? trailers.clone() : new grpc.Metadata();
      metadata.set("grpc-status-details-bin", encodeStatusDetails(e.code, e.details, e.rich));
    }
    return { code: e.code, details: e.details, metadata };
  }
  process.stderr.write(`internal error: ${e && e.stack}\n`);
  return { code: grpc.status.INTERNAL, details: String(e && e.message), metadata: trailers };
}

/** A unary handler: hooks, then fn(request, hooks) -> response. */
function unary(fn) {
  return async (call, callback) => {
    let trailers;
    try {
      const hooks = await enter(call);
      if (!hooks) return;
      trailers = hooks.trailers;
      if (hooks.fail) throw hooks.fail;
      const response = fn(call.request, hooks);
      callback(null, response, trailers);
    } catch (e) {
      callback(toStatus(e, trailers));
    }
  };
}

// ---- the service ----

const stock = {
  Get: unary((req, hooks) => {
    const entry = storeGet(req.key ?? "");
    // x-stock-repeat-value: the value that many times over.
    const value =
      hooks.repeatValue > 1 ? Buffer.concat(Array(hooks.repeatValue).fill(entry.value)) : entry.value;
    return { value, version: String(entry.version) };
  }),

  Put: unary((req) => {
    const key = req.key ?? "";
    const value = bytesOf(req.value);
    validateKey(key);
    validateValue(value);
    storePut(key, value);
    return {};
  }),

  Inventory: unary(() => {
    let total = 0;
    for (const e of store.values()) total += e.value.length;
    return {
      key_count: String(store.size),
      total_value_bytes: String(total),
      language: "node",
      stack: STACK,
    };
  }),

  async Monitor(call) {
    const hooks = await enter(call).catch((e) => ({ fail: e, failAfter: 0 }));
    if (!hooks) return;
    const { fail, failAfter, trailers } = hooks;
    const finish = (e) => {
      if (!watcher.closed) {
        watcher.closed = true;
        watchers.delete(watcher);
        if (e) call.emit("error", toStatus(e, trailers));
        else call.end(trailers);
      }
    };
    const watcher = { closed: false, sent: 0, pattern: "", push: null };
    if (fail && failAfter === 0) return finish(fail);
    const req = call.request;
    const pattern = req.pattern ?? "";
    const maxEvents = req.max_events ?? 0;
    if (pattern === "") return finish(badField("pattern", "pattern must not be empty"));
    if (maxEvents < 0) return finish(badField("max_events", "max_events must not be negative"));
    watcher.pattern = pattern;
    watcher.push = (event) => {
      if (watcher.closed) return;
      call.write(event);
      watcher.sent++;
      if (fail && watcher.sent === failAfter) finish(fail);
      else if (maxEvents > 0 && watcher.sent === maxEvents) finish(null);
    };
    call.on("cancelled", () => {
      watcher.closed = true;
      watchers.delete(watcher);
    });
    // Snapshot and registration in one synchronous block.
    const existing = [];
    if (req.include_existing) {
      for (const [key, e] of store) {
        if (matches(pattern, key))
          existing.push({ key, value: e.value, version: String(e.version), existing: true });
      }
      existing.sort((a, b) => compareBytes(a.key, b.key));
    }
    watchers.add(watcher);
    for (const event of existing) watcher.push(event);
  },

  async Batch(call, callback) {
    let trailers;
    const items = [];
    let ended = false;
    let streamError = null;
    const done = new Promise((resolve) => {
      call.on("data", (item) => items.push(item));
      call.on("end", () => {
        ended = true;
        resolve();
      });
      call.on("error", (e) => {
        streamError = e;
        resolve();
      });
      // A request stream that ends in a cancellation or a deadline is not a
      // half-close: nothing is applied.
      call.on("cancelled", resolve);
    });
    try {
      const hooks = await enter(call);
      if (!hooks) return;
      trailers = hooks.trailers;
      await done;
      if (streamError || !ended || call.cancelled) return;
      if (hooks.fail) throw hooks.fail;
      items.forEach((item, i) => {
        try {
          validateKey(item.key ?? "");
          validateValue(bytesOf(item.value));
        } catch (e) {
          throw new RpcError(e.code, `item ${i}: ${e.details}`, e.rich);
        }
      });
      const summary = { items: 0, value_bytes: 0, created: 0, updated: 0 };
      for (const item of items) {
        const value = bytesOf(item.value);
        summary.items++;
        summary.value_bytes += value.length;
        if (storePut(item.key, value)) summary.created++;
        else summary.updated++;
      }
      summary.value_bytes = String(summary.value_bytes);
      callback(null, summary, trailers);
    } catch (e) {
      callback(toStatus(e, trailers));
    }
  },

  async Trade(call) {
    let trailers;
    let closed = false;
    const finish = (e) => {
      if (closed) return;
      closed = true;
      if (e) call.emit("error", toStatus(e, trailers));
      else call.end(trailers);
    };
    call.on("error", () => {
      closed = true;
    });
    call.on("cancelled", () => {
      closed = true;
    });
    // Orders arriving before the hooks are done wait in the stream (paused).
    call.pause();
    let hooks;
    try {
      hooks = await enter(call);
      if (!hooks) return;
      trailers = hooks.trailers;
    } catch (e) {
      return finish(e);
    }
    const { fail, failAfter } = hooks;
    if (fail && failAfter === 0) return finish(fail);
    let sequence = 0n;
    const positions = new Map();
    call.on("data", (order) => {
      if (closed) return;
      const quantity = BigInt(order.quantity ?? "0");
      const orderId = order.order_id ?? "";
      if (quantity <= 0n) {
        return finish(
          badField("quantity", `order ${JSON.stringify(orderId)}: quantity must be > 0, got ${quantity}`),
        );
      }
      sequence++;
      const side = order.side ?? "SIDE_UNSPECIFIED";
      const symbol = order.symbol ?? "";
      const position = (positions.get(symbol) ?? 0n) + (side === "BUY" ? quantity : -quantity);
      positions.set(symbol, position);
      call.write({
        order_id: orderId,
        symbol,
        side,
        quantity: quantity.toString(),
        price_cents: order.price_cents ?? "0",
        sequence: sequence.toString(),
        net_position: position.toString(),
      });
      if (fail && sequence === BigInt(failAfter)) finish(fail);
    });
    call.on("end", () => finish(null));
    call.resume();
  },
};

// The legacy proto.KV (kv.proto): the same store and code paths as Stock.
// Stock.Put's response {} is also proto.Empty.
const kv = {
  Get: unary((req) => ({ value: storeGet(req.key ?? "").value })),
  Put: stock.Put,
};

function main() {
  const opts = parseArgs(process.argv.slice(2));
  const creds = credentials(opts);
  const definition = loadDefinition(Buffer, [PROTO_PATH, KV_PROTO_PATH]);
  const proto = grpc.loadPackageDefinition(definition);
  const server = new grpc.Server({
    // Received: 4 MiB. Sent: grpc-js's default, unlimited (never capped
    // below 8 MiB; x-stock-repeat-value makes responses over 4 MiB).
    "grpc.max_receive_message_length": MAX_MESSAGE,
    interceptors: [recordRequestEncoding],
  });
  // Audit has no handler: grpc-js answers UNIMPLEMENTED. Ledger is not added.
  server.addService(proto.stock.v1.Stock.service, stock);
  server.addService(proto.proto.KV.service, kv);
  const health = { "": "SERVING", "stock.v1.Stock": "SERVING", "proto.KV": "SERVING" };
  new HealthImplementation(health).addToServer(server);
  // Reflection lists exactly what is served: Stock, KV, Health and itself.
  const reflectionDir = path.join(path.dirname(require.resolve("@grpc/reflection/package.json")), "build", "proto");
  const reflectionProtos = ["v1", "v1alpha"].map((v) => path.join(reflectionDir, "grpc", "reflection", v, "reflection.proto"));
  const served = loadDefinition(Buffer, [PROTO_PATH, KV_PROTO_PATH, HEALTH_PROTO_PATH, ...reflectionProtos]);
  new ReflectionService(served, {
    services: [
      "stock.v1.Stock",
      "proto.KV",
      "grpc.health.v1.Health",
      "grpc.reflection.v1.ServerReflection",
      "grpc.reflection.v1alpha.ServerReflection",
    ],
  }).addToServer(server);

  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    server.forceShutdown();
    process.exit(0);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  process.stdin.on("end", stop);
  process.stdin.on("error", stop);
  process.stdin.resume();

  const host = opts.host.includes(":") ? `[${opts.host}]` : opts.host;
  server.bindAsync(`${host}:${opts.port}`, creds, (err) => {
    if (err) die(`failed to bind ${opts.host}:${opts.port}: ${err.message}`);
    process.stdout.write(`listening on ${opts.host}:${opts.port}\n`);
  });
}

main();
