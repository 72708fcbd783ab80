"use strict";
// stock.v1.Stock script client over @grpc/grpc-js (see ../../../CONTRACT.md).
const { constants: bufferConstants } = require("node:buffer");
const fs = require("node:fs");
const readline = require("node:readline");
const { setDefaultHighWaterMark } = require("node:stream");
const { performance } = require("node:perf_hooks");
const grpc = require("@grpc/grpc-js");
const { clientMethods, fromJson, JsonError, isBase64, decodeStatusDetails } = require("./proto");

// grpc-js's response streams are object-mode Readables that read ahead up to their highWaterMark
// (16 messages by default): make it one message, so a stream that is not read holds the server
// back by HTTP/2 flow control instead of being drained into memory.
setDefaultHighWaterMark(true, 1);

class UsageError extends Error {}

const OPTIONS = {
  "--server": "server",
  "--tls-mode": "tls_mode",
  "--ca-file": "ca_file",
  "--cert-file": "cert_file",
  "--key-file": "key_file",
  "--server-name": "server_name",
  "--keepalive-ms": "keepalive_ms",
  "--keepalive-timeout-ms": "keepalive_timeout_ms",
};
const CONNECTION_FIELDS = Object.values(OPTIONS);
/** The connection fields that are integers (ms); every other one is a string. */
const KEEPALIVE_FIELDS = ["keepalive_ms", "keepalive_timeout_ms"];
const METHODS = clientMethods();
/** The fields of a step, of a `fill` entry and of `bench` (CONTRACT.md "Script steps"); any other is a usage error. */
const STEP_FIELDS = new Set([
  "id",
  "method",
  "request",
  "requests",
  "metadata",
  "timeout_ms",
  "compression",
  "connection",
  "after_first",
  "copies",
  "read_pause_ms",
  "lane",
  "cancel_after_ms",
  "cancel_after_messages",
  "fill",
  "bench",
]);
const FILL_FIELDS = new Set(["request", "repeat", "times"]);
const BENCH_FIELDS = new Set(["duration_ms", "concurrency"]);
/** Channels by connection and request compression: a grpc.Client, or the Error that made it unusable. */
const channels = new Map();
let defaultConnection;

async function main() {
  try {
    defaultConnection = parseArgs(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`usage error: ${e.message}\n`);
    return 2;
  }
  try {
    channelFor(defaultConnection);
  } catch (e) {
    process.stderr.write(`error: ${e.message}\n`);
    return 1;
  }
  const lanes = new Map();
  try {
    for await (const line of readline.createInterface({ input: process.stdin, crlfDelay: Infinity })) {
      if (!line.trim()) continue;
      let json;
      try {
        json = JSON.parse(line);
      } catch (e) {
        throw new UsageError(`invalid JSON line ${JSON.stringify(line)}: ${e.message}`);
      }
      handToLane(lanes, parseStep(json));
    }
    await Promise.all(lanes.values());
    return 0;
  } catch (e) {
    const usage = e instanceof UsageError;
    process.stderr.write(usage ? `usage error: ${e.message}\n` : `error: ${e.stack}\n`);
    return usage ? 2 : 1;
  } finally {
    for (const channel of channels.values()) if (channel instanceof grpc.Client) channel.close();
  }
}

/**
 * Hands a step to its lane at once: a lane is a promise chain, its steps run in order, each after
 * the previous one ended, and the lanes run at the same time. Node runs all of them on one thread:
 * each output line is one whole process.stdout.write, and the channel cache needs no lock.
 */
function handToLane(lanes, step) {
  const tail = (lanes.get(step.lane) ?? Promise.resolve()).then(() => runStep(step));
  tail.catch(() => {}); // not unhandled: main awaits every lane at stdin's end, and reports it there
  lanes.set(step.lane, tail);
}

/** The options: the default connection, then the one command, `script`. */
function parseArgs(argv) {
  const connection = {};
  let i = 0;
  for (; i < argv.length && argv[i].startsWith("--"); i++) {
    const [flag, inline] = argv[i].split(/=(.*)/s);
    if (!OPTIONS[flag]) throw new UsageError(`unknown option ${flag}`);
    const value = inline ?? argv[++i];
    if (value === undefined) throw new UsageError(`${flag} needs a value`);
    const integer = KEEPALIVE_FIELDS.includes(OPTIONS[flag]);
    connection[OPTIONS[flag]] = !integer ? value : /^[0-9]+$/.test(value) ? Number(value) : value;
  }
  if (i >= argv.length) throw new UsageError("missing command (script)");
  if (argv[i] !== "script" || i + 1 < argv.length) {
    throw new UsageError(`unknown command ${argv.slice(i).join(" ")} (the client speaks script only)`);
  }
  return parseConnection(connection, "options");
}

/** A connection object (options or a step's `connection`), checked and normalized. */
function parseConnection(value, where) {
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new UsageError(`${where}: connection must be an object`);
  }
  for (const [field, v] of Object.entries(value)) {
    if (!CONNECTION_FIELDS.includes(field)) throw new UsageError(`${where}: unknown connection field ${field}`);
    if (KEEPALIVE_FIELDS.includes(field)) {
      if (v !== null && !(Number.isSafeInteger(v) && v > 0)) {
        throw new UsageError(`${where}: ${field} must be a positive integer (ms)`);
      }
    } else if (typeof v !== "string" && v !== null) throw new UsageError(`${where}: ${field} must be a string`);
  }
  if (!value.server) throw new UsageError(`${where}: a server (HOST:PORT or unix:/PATH) is required`);
  const connection = { ...value, tls_mode: value.tls_mode ?? "none" };
  if (!["none", "server", "mtls"].includes(connection.tls_mode)) {
    throw new UsageError(`${where}: bad tls_mode ${connection.tls_mode}`);
  }
  return connection;
}

/** A stdin JSON object → a step: request messages, metadata with -bin values decoded; bad = usage error. */
function parseStep(value) {
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new UsageError("a step must be a JSON object");
  }
  if (typeof value.id !== "string") throw new UsageError("step without a string id");
  const where = `step ${JSON.stringify(value.id)}`;
  refuseUnknownFields(value, STEP_FIELDS, where);
  const info = METHODS[value.method];
  if (!info) throw new UsageError(`${where}: unknown method ${JSON.stringify(value.method)}`);
  const [field, other] = info.requestStream ? ["requests", "request"] : ["request", "requests"];
  if (value[other] !== undefined) throw new UsageError(`${where}: ${value.method} takes \`${field}\``);
  const jsons = info.requestStream ? (value.requests ?? []) : [value.request ?? {}];
  if (!Array.isArray(jsons)) throw new UsageError(`${where}: requests must be an array`);
  let requests;
  try {
    requests = jsons.map((json) => fromJson(info.inputType, json));
  } catch (e) {
    throw e instanceof JsonError ? new UsageError(`${where}: ${e.message}`) : e;
  }
  fillValues(value.method, requests, value.fill ?? [], where);

  const entries = value.metadata ?? {};
  if (typeof entries !== "object" || Array.isArray(entries)) {
    throw new UsageError(`${where}: metadata must be an object`);
  }
  const metadata = new grpc.Metadata();
  for (const [key, v] of Object.entries(entries)) {
    if (typeof v !== "string") throw new UsageError(`${where}: metadata must map strings to strings`);
    const binary = key.toLowerCase().endsWith("-bin");
    if (binary && !isBase64(v)) throw new UsageError(`${where}: metadata ${key}: invalid base64`);
    try {
      metadata.add(key, binary ? Buffer.from(v, "base64") : v);
    } catch (e) {
      throw new UsageError(`${where}: metadata ${key}: ${e.message}`);
    }
  }

  for (const name of ["timeout_ms", "cancel_after_ms", "cancel_after_messages", "read_pause_ms", "copies", "lane"]) {
    const v = value[name];
    if (v != null && !(Number.isInteger(v) && v >= 0)) throw new UsageError(`${where}: bad ${name}`);
  }
  if (value.compression != null && !["gzip", "identity"].includes(value.compression)) {
    throw new UsageError(`${where}: bad compression ${JSON.stringify(value.compression)}`);
  }
  const afterFirst = value.after_first ?? [];
  if (!Array.isArray(afterFirst)) throw new UsageError(`${where}: after_first must be an array`);
  if (afterFirst.length > 0 && value.method !== "Monitor") {
    throw new UsageError(`${where}: after_first is for Monitor only, not ${value.method}`);
  }
  if (value.cancel_after_messages != null && value.method !== "Monitor") {
    throw new UsageError(`${where}: cancel_after_messages is for Monitor only, not ${value.method}`);
  }
  const bench = value.bench ?? null;
  if (bench !== null) {
    const ok = (v, min) => Number.isSafeInteger(v) && v >= min;
    if (typeof bench !== "object" || !ok(bench.duration_ms, 0) || !ok(bench.concurrency, 1)) {
      throw new UsageError(`${where}: bench must be {"duration_ms": D >= 0, "concurrency": C >= 1}`);
    }
    refuseUnknownFields(bench, BENCH_FIELDS, `${where}: bench`);
  }
  return {
    id: value.id,
    info,
    requests,
    metadata,
    timeoutMs: value.timeout_ms ?? 0,
    compression: value.compression ?? "identity",
    connection: value.connection == null ? defaultConnection : parseConnection(value.connection, where),
    afterFirst: afterFirst.map(parseStep),
    copies: value.copies ?? 1,
    readPauseMs: value.read_pause_ms ?? 0,
    cancelAfterMs: value.cancel_after_ms ?? null,
    cancelAfterMessages: value.cancel_after_messages ?? null,
    lane: value.lane ?? 0,
    bench: bench && { durationMs: bench.duration_ms, concurrency: bench.concurrency },
  };
}

/** A field of object (a step, a `fill` entry, `bench`) that is not in known is a usage error. */
function refuseUnknownFields(object, known, where) {
  const field = Object.keys(object).find((key) => !known.has(key));
  if (field !== undefined) throw new UsageError(`${where}: unknown field ${JSON.stringify(field)}`);
}

/**
 * Applies a step's `fill` entries to its parsed request messages (Put's PutRequest, Batch's
 * BatchItems): the `value` of message `request` becomes the bytes of `repeat` (base64) repeated
 * `times` times, one Buffer of their full size filled with the pattern. A bad entry is a usage error.
 */
function fillValues(method, requests, fill, where) {
  if (!Array.isArray(fill)) throw new UsageError(`${where}: fill must be an array`);
  if (fill.length > 0 && !["Put", "Batch"].includes(method)) {
    throw new UsageError(`${where}: fill is for Put and Batch only, not ${method}`);
  }
  fill.forEach((entry, i) => {
    const at = `${where}: fill[${i}]`;
    if (entry === null || typeof entry !== "object" || Array.isArray(entry)) {
      throw new UsageError(`${at} must be an object`);
    }
    refuseUnknownFields(entry, FILL_FIELDS, at);
    const { request, repeat, times } = entry;
    if (!(Number.isInteger(request) && request >= 0 && request < requests.length)) {
      throw new UsageError(`${at}: no request message ${JSON.stringify(request)} (the step has ${requests.length})`);
    }
    if (typeof repeat !== "string" || !isBase64(repeat)) {
      throw new UsageError(`${at}: repeat is not base64: ${JSON.stringify(repeat)}`);
    }
    if (!(Number.isSafeInteger(times) && times >= 0)) {
      throw new UsageError(`${at}: times must be an integer >= 0, not ${JSON.stringify(times)}`);
    }
    const unit = Buffer.from(repeat, "base64");
    const size = unit.length * times;
    if (size > bufferConstants.MAX_LENGTH) throw new UsageError(`${at}: ${size} bytes do not fit in a Buffer`);
    // proto-loader's serializer (protobufjs fromObject) takes a Buffer for a bytes field as it is.
    requests[request].value = size === 0 ? Buffer.alloc(0) : Buffer.alloc(size, unit);
  });
}

/**
 * The cached channel of a connection; its credentials are built here. grpc-js sets request
 * compression per channel only, so a connection has one more channel for the steps that compress.
 * A connection that cannot be built throws its Error, for every step that uses it.
 */
function channelFor(connection, compression = "identity") {
  const key = JSON.stringify([...CONNECTION_FIELDS.map((field) => connection[field] ?? null), compression]);
  if (!channels.has(key)) {
    try {
      const read = (field) => (connection[field] ? fs.readFileSync(connection[field]) : null);
      let credentials = grpc.credentials.createInsecure();
      if (connection.tls_mode === "server") credentials = grpc.credentials.createSsl(read("ca_file"));
      if (connection.tls_mode === "mtls") {
        credentials = grpc.credentials.createSsl(read("ca_file"), read("key_file"), read("cert_file"));
      }
      // Message size limits are grpc-js's defaults: 4 MiB received, unlimited sent.
      const options = { "grpc.default_compression_algorithm": grpc.compressionAlgorithms[compression] };
      if (connection.server_name) options["grpc.ssl_target_name_override"] = connection.server_name;
      // A Unix socket (`unix:/PATH`, `unix:///PATH`: grpc-js's own uds resolver dials it) has no
      // host: its authority, and with TLS the name verified and the SNI, is --server-name, else
      // localhost.
      if (connection.server.startsWith("unix:")) {
        const name = connection.server_name || "localhost";
        options["grpc.default_authority"] = name;
        options["grpc.ssl_target_name_override"] = name;
      }
      // Keepalive (grpc-js's own): a PING every keepalive_ms, also without calls; its timeout, else grpc-js's 20 s.
      if (connection.keepalive_ms) {
        options["grpc.keepalive_time_ms"] = connection.keepalive_ms;
        options["grpc.keepalive_permit_without_calls"] = 1;
        if (connection.keepalive_timeout_ms) options["grpc.keepalive_timeout_ms"] = connection.keepalive_timeout_ms;
      }
      channels.set(key, new grpc.Client(connection.server, credentials, options));
    } catch (e) {
      channels.set(key, new Error(`connection to ${connection.server}: ${e.message}`));
    }
  }
  const channel = channels.get(key);
  if (channel instanceof Error) throw channel;
  return channel;
}

/** Runs a step: with `copies` N > 1, N calls at once on its channel, copy k under the id ID*k. */
async function runStep(step) {
  if (step.bench) return runBench(step);
  if (step.copies <= 1) return runCall(step, step.id);
  const copies = [];
  for (let k = 0; k < step.copies; k++) copies.push(runCall(step, `${step.id}*${k}`));
  await Promise.all(copies);
}

/** One call of a step, its output lines under id. */
async function runCall(step, id) {
  const start = performance.now();
  const seen = { headers: null };
  let client;
  try {
    client = channelFor(step.connection, step.compression);
  } catch (e) {
    return emitStatus(id, { code: grpc.status.UNAVAILABLE, details: e.message }, seen, start);
  }
  const { path, requestStream, responseStream, requestSerialize: ser, responseDeserialize: de } = step.info;
  const metadata = step.metadata.clone();
  const options = step.timeoutMs > 0 ? { deadline: new Date(Date.now() + step.timeoutMs) } : {};
  let status;
  try {
    // Unary and client stream: grpc-js's callback is the call's outcome. It checks the response
    // cardinality (an OK status without a message is UNIMPLEMENTED "No message received"), which the
    // 'status' event does not: that event carries the server's status as it came, with the trailers.
    let response = null;
    let failure = null;
    const onResponse = (err, message) => {
      if (err) failure = err;
      else response = message;
    };
    let call;
    if (!requestStream && !responseStream) {
      call = client.makeUnaryRequest(path, ser, de, step.requests[0], metadata, options, onResponse);
    } else if (!responseStream) {
      call = client.makeClientStreamRequest(path, ser, de, metadata, options, onResponse);
    } else if (!requestStream) {
      call = client.makeServerStreamRequest(path, ser, de, step.requests[0], metadata, options);
    } else {
      call = client.makeBidiStreamRequest(path, ser, de, metadata, options);
    }
    const cancelTimer = step.cancelAfterMs === null ? null : setTimeout(() => call.cancel(), step.cancelAfterMs);
    const ended = new Promise((resolve) => call.on("status", resolve));
    call.on("metadata", (headers) => (seen.headers = headers));
    call.on("error", () => {}); // the status event carries it

    if (!responseStream) {
      // Unary, or a client stream (Batch): send every item, half-close, then the one response.
      if (requestStream) {
        for (const request of step.requests) call.write(request);
        call.end();
      }
      await ended;
      if (response !== null) emitMessage(id, response);
    } else {
      // A server stream (Monitor), or the lock-step bidi (Trade): one order, then one fill, ...
      const pending = [...step.requests];
      let sending = requestStream;
      const sendNext = () => {
        if (!sending) return;
        if (pending.length > 0) call.write(pending.shift());
        if (pending.length === 0) {
          sending = false;
          call.end();
        }
      };
      sendNext();
      let count = 0;
      try {
        // One message at a time: nothing more is read while the body awaits (read_pause_ms).
        for await (const message of call) {
          emitMessage(id, message);
          if (++count === 1) for (const nested of step.afterFirst) await runStep(nested);
          if (count === step.cancelAfterMessages) {
            // Cancelled as cancel_after_ms does; no more messages are read, the status event has CANCELLED.
            call.cancel();
            break;
          }
          if (step.readPauseMs > 0) await new Promise((resolve) => setTimeout(resolve, step.readPauseMs));
          sendNext();
        }
      } catch {
        // A stream that ended with an error status: the status event carries it.
      }
    }
    status = await ended;
    clearTimeout(cancelTimer);
    // The callback runs just before the 'status' event; its error (code, details, the trailers as metadata) wins.
    if (failure !== null) status = failure;
  } catch (e) {
    status = { code: grpc.status.INTERNAL, details: `client error: ${e.message}` };
  }
  emitStatus(id, status, seen, start);
}

/** The log-scale latency bucket of v whole microseconds (CONTRACT.md "Bench steps"). */
function bucket(v) {
  if (v < 32) return v;
  const n = v < 2 ** 32 ? 32 - Math.clz32(v) : 64 - Math.clz32(Math.floor(v / 2 ** 32)); // bit length
  return 16 * (n - 4) + (Math.floor(v / 2 ** (n - 5)) & 15);
}

/**
 * A bench step: C workers (async loops on the one event loop) on the step's channel, each running
 * the step's call again as soon as it ends until D ms have passed; one `bench` line at the end.
 * The calls print nothing. One thread: the shared counters need no lock.
 */
async function runBench(step) {
  const start = process.hrtime.bigint();
  const endAt = start + BigInt(step.bench.durationMs) * 1_000_000n;
  const result = { calls: 0, errors: 0, messages: 0 };
  const histogram = new Float64Array(16 * 64);
  let firstError = null;
  const fail = (status) => {
    result.errors++;
    firstError ??= { code: grpc.status[status.code] ?? "UNKNOWN", message: status.details ?? "" };
  };
  let client;
  try {
    client = channelFor(step.connection, step.compression);
  } catch (e) {
    fail({ code: grpc.status.UNAVAILABLE, details: e.message });
  }
  const { path, requestStream, responseStream, requestSerialize: ser, responseDeserialize: de } = step.info;
  const { requests, metadata, timeoutMs } = step;
  const ignore = () => {};
  // One call: resolves with null (OK) or the error status, and the messages it counts when OK.
  let once;
  if (!responseStream) {
    // Unary (one message) or Batch (every item sent, then half-close): the callback has the status.
    const count = requestStream ? requests.length : 1;
    once = (options) =>
      new Promise((resolve) => {
        const done = (err) => resolve(err ? [err, 0] : [null, count]);
        if (!requestStream) return client.makeUnaryRequest(path, ser, de, requests[0], metadata.clone(), options, done);
        const call = client.makeClientStreamRequest(path, ser, de, metadata.clone(), options, done);
        call.on("error", ignore);
        for (const request of requests) call.write(request);
        call.end();
      });
  } else {
    // Monitor read to its end, or the lock-step Trade (one order, then one fill, ...): an OK call
    // ends at its status and the end of its response stream, whichever comes last.
    once = (options) =>
      new Promise((resolve) => {
        const call = requestStream
          ? client.makeBidiStreamRequest(path, ser, de, metadata.clone(), options)
          : client.makeServerStreamRequest(path, ser, de, requests[0], metadata.clone(), options);
        let received = 0;
        let sent = 0;
        let ended = false;
        let status = null;
        const sendNext = () => {
          if (sent < requests.length) call.write(requests[sent++]);
          if (sent === requests.length) {
            sent++;
            call.end();
          }
        };
        call.on("data", () => {
          received++;
          if (requestStream) sendNext();
        });
        call.on("error", ignore); // the status event carries it
        call.on("end", () => {
          ended = true;
          if (status) resolve([null, received]);
        });
        call.on("status", (s) => {
          status = s;
          if (s.code !== grpc.status.OK) resolve([s, 0]);
          else if (ended) resolve([null, received]);
        });
        if (requestStream) sendNext();
      });
  }
  const worker = async () => {
    for (let now = process.hrtime.bigint(); now < endAt;) {
      const t0 = now;
      const [err, messages] = await once(timeoutMs > 0 ? { deadline: Date.now() + timeoutMs } : {});
      now = process.hrtime.bigint();
      if (err) {
        fail(err);
        continue;
      }
      result.calls++;
      result.messages += messages;
      histogram[bucket(Number((now - t0) / 1000n))]++;
    }
  };
  const workers = [];
  if (client) for (let i = 0; i < step.bench.concurrency; i++) workers.push(worker());
  await Promise.all(workers);
  const elapsedMs = Number(process.hrtime.bigint() - start) / 1e6;
  const buckets = [];
  histogram.forEach((count, b) => count > 0 && buckets.push([b, count]));
  const bench = { ...result, elapsed_ms: elapsedMs, histogram: buckets };
  if (firstError) bench.first_error = firstError;
  process.stdout.write(JSON.stringify({ id: step.id, bench }) + "\n");
}

function emitMessage(id, message) {
  process.stdout.write(JSON.stringify({ id, message: base64Bytes(message) }) + "\n");
}

/** A decoded message's fields with its bytes (Buffers) in base64, as the proto3 JSON mapping has them. */
function base64Bytes(value) {
  if (Buffer.isBuffer(value)) return value.toString("base64");
  if (Array.isArray(value)) return value.map(base64Bytes);
  if (value === null || typeof value !== "object") return value;
  const out = {};
  for (const [key, field] of Object.entries(value)) out[key] = base64Bytes(field);
  return out;
}

/**
 * The status line. No response_encoding: grpc-js removes grpc-encoding from the response
 * metadata (CompressionFilter.receiveMetadata) before the call's 'metadata' event and its
 * interceptors see it, and exposes it no other way.
 */
function emitStatus(id, status, seen, start) {
  const stockEntries = (metadata) => {
    const out = {};
    for (const [key, value] of Object.entries(metadata ? metadata.getMap() : {})) {
      if (key.startsWith("x-stock-")) out[key] = Buffer.isBuffer(value) ? value.toString("base64") : value;
    }
    return out;
  };
  let details = [];
  const bytes = status.code !== grpc.status.OK && status.metadata?.get("grpc-status-details-bin")[0];
  if (Buffer.isBuffer(bytes)) {
    try {
      details = decodeStatusDetails(bytes);
    } catch (e) {
      process.stderr.write(`step ${JSON.stringify(id)}: grpc-status-details-bin: ${e.message}\n`);
    }
  }
  const line = {
    id,
    // The name from grpc-js's own Status enum (a TypeScript enum, so it maps numbers to names).
    status: { code: grpc.status[status.code] ?? "UNKNOWN", message: status.details ?? "" },
    headers: stockEntries(seen.headers),
    trailers: stockEntries(status.metadata),
    elapsed_ms: performance.now() - start,
    details,
  };
  process.stdout.write(JSON.stringify(line) + "\n");
}

// The event loop empties while main still waits only when a call's promise never settled: its steps would go
// unanswered, and the exit status would say 0. Say so, and exit 1.
let mainEnded = false;
process.on("beforeExit", () => {
  if (mainEnded) return;
  process.stderr.write("error: the event loop emptied with steps unanswered: a call's promise never settled\n");
  process.exit(1);
});
// process.exit() drops stdout writes still queued on a pipe: exit once they are flushed.
main().then((code) => {
  mainEnded = true;
  process.stdout.write("", () => process.exit(code));
});
