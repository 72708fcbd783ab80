"use strict";
// stock.v1.Stock client CLI over @grpc/grpc-js (see ../../../CONTRACT.md).
const fs = require("node:fs");
const readline = require("node:readline");
const { setDefaultHighWaterMark } = require("node:stream");
const { performance } = require("node:perf_hooks");
const grpc = require("@grpc/grpc-js");
const {
  loadDefinition,
  reflectionRoot,
  codeName,
  fromJson,
  JsonError,
  isBase64,
  decodeStatusDetails,
} = require("./proto");

// grpc-js's response streams are object-mode Readables that read ahead up to
// their highWaterMark (16 messages by default): make it one message, so a
// stream that is not read holds the server back by flow control.
setDefaultHighWaterMark(true, 1);

class UsageError extends Error {}

function print(line) {
  process.stdout.write(JSON.stringify(line) + "\n");
}

// ---- arguments ----

const GLOBAL_FLAGS = {
  "--server": "server",
  "--tls-mode": "tlsMode",
  "--ca-file": "caFile",
  "--cert-file": "certFile",
  "--key-file": "keyFile",
  "--server-name": "serverName",
  "--timeout-ms": "timeoutMs",
  "--metadata": "metadata",
  "--compression": "compression",
};

function parseArgs(argv) {
  const opts = { tlsMode: "none", metadata: [] };
  let i = 0;
  for (; i < argv.length && argv[i].startsWith("--"); i++) {
    let [flag, value] = argv[i].split(/=(.*)/s);
    const name = GLOBAL_FLAGS[flag];
    if (!name) throw new UsageError(`unknown option ${flag}`);
    if (value === undefined) {
      if (i + 1 >= argv.length) throw new UsageError(`${flag} needs a value`);
      value = argv[++i];
    }
    if (name === "metadata") {
      const eq = value.indexOf("=");
      if (eq < 1) throw new UsageError(`--metadata expects K=V, got ${JSON.stringify(value)}`);
      opts.metadata.push([value.slice(0, eq), value.slice(eq + 1)]);
    } else {
      opts[name] = value;
    }
  }
  if (!opts.server) throw new UsageError("--server HOST:PORT is required");
  if (!["none", "server", "mtls"].includes(opts.tlsMode))
    throw new UsageError(`bad --tls-mode ${opts.tlsMode}`);
  if (opts.compression !== undefined && !["gzip", "identity"].includes(opts.compression)) {
    throw new UsageError(`bad --compression ${opts.compression}`);
  }
  if (opts.timeoutMs !== undefined) {
    if (!/^\d+$/.test(opts.timeoutMs)) throw new UsageError(`bad --timeout-ms ${opts.timeoutMs}`);
    opts.timeoutMs = Number(opts.timeoutMs);
  }
  if (i >= argv.length) throw new UsageError("missing command");
  opts.command = argv[i];
  opts.args = argv.slice(i + 1);
  return opts;
}

/** The step a single command stands for (null for `script`). */
async function commandStep(command, args) {
  const b64 = (s) => Buffer.from(s, "utf8").toString("base64");
  const exact = (n) => {
    if (args.length !== n) throw new UsageError(`${command} takes ${n} argument(s)`);
  };
  switch (command) {
    case "get":
      exact(1);
      return { id: "get", method: "Get", request: { key: args[0] } };
    case "put":
      exact(2);
      return { id: "put", method: "Put", request: { key: args[0], value: b64(args[1]) } };
    case "monitor": {
      const request = { maxEvents: 0, includeExisting: false };
      for (let i = 0; i < args.length; i++) {
        const [flag, inline] = args[i].split(/=(.*)/s);
        if (flag === "--max-events") {
          const v = inline ?? args[++i];
          if (v === undefined || !/^-?\d+$/.test(v)) throw new UsageError("--max-events needs a number");
          request.maxEvents = Number(v);
        } else if (args[i] === "--include-existing") {
          request.includeExisting = true;
        } else if (!args[i].startsWith("--") && request.pattern === undefined) {
          request.pattern = args[i];
        } else {
          throw new UsageError(`monitor: unexpected argument ${args[i]}`);
        }
      }
      if (request.pattern === undefined) throw new UsageError("monitor needs a PATTERN");
      return { id: "monitor", method: "Monitor", request };
    }
    case "batch": {
      let requests;
      if (args.length === 0) {
        requests = await stdinJsonLines();
      } else {
        requests = args.map((a) => {
          const eq = a.indexOf("=");
          if (eq < 0) throw new UsageError(`batch expects KEY=VALUE, got ${JSON.stringify(a)}`);
          return { key: a.slice(0, eq), value: b64(a.slice(eq + 1)) };
        });
      }
      return { id: "batch", method: "Batch", requests };
    }
    case "trade":
      exact(0);
      return { id: "trade", method: "Trade", requests: await stdinJsonLines() };
    case "inventory":
      exact(0);
      return { id: "inventory", method: "Inventory" };
    case "script":
      exact(0);
      return null;
    default:
      throw new UsageError(`unknown command ${command}`);
  }
}

function parseJsonLine(line) {
  try {
    return JSON.parse(line);
  } catch (e) {
    throw new UsageError(`invalid JSON line ${JSON.stringify(line)}: ${e.message}`);
  }
}

async function stdinJsonLines() {
  const out = [];
  for await (const line of readline.createInterface({ input: process.stdin, crlfDelay: Infinity })) {
    if (line.trim()) out.push(parseJsonLine(line));
  }
  return out;
}

// ---- channel and methods ----

function readFile(file, flag) {
  if (!file) throw new Error(`--${flag} is required with this --tls-mode`);
  try {
    return fs.readFileSync(file);
  } catch (e) {
    throw new Error(`cannot read --${flag} ${file}: ${e.message}`);
  }
}

class Channels {
  constructor(opts) {
    this.opts = opts;
    if (opts.tlsMode === "none") {
      this.creds = grpc.credentials.createInsecure();
    } else {
      const ca = readFile(opts.caFile, "ca-file");
      const mtls = opts.tlsMode === "mtls";
      const key = mtls ? readFile(opts.keyFile, "key-file") : null;
      const cert = mtls ? readFile(opts.certFile, "cert-file") : null;
      this.creds = grpc.credentials.createSsl(ca, key, cert);
    }
    this.clients = new Map();
    this.get(opts.compression ?? "identity");
  }

  /**
   * The client for a compression. grpc-js sets request compression per
   * channel only, so a step whose compression differs from --compression
   * gets a second channel.
   */
  get(compression) {
    if (!this.clients.has(compression)) {
      // Message size limits are grpc-js's defaults: 4 MiB received,
      // unlimited sent (the size cases send over 4 MiB on purpose).
      const options = {
        "grpc.default_compression_algorithm":
          compression === "gzip" ? grpc.compressionAlgorithms.gzip : grpc.compressionAlgorithms.identity,
      };
      if (this.opts.serverName) options["grpc.ssl_target_name_override"] = this.opts.serverName;
      this.clients.set(compression, new grpc.Client(this.opts.server, this.creds, options));
    }
    return this.clients.get(compression);
  }

  close() {
    for (const c of this.clients.values()) c.close();
  }
}

function methodTable() {
  const definition = loadDefinition(String);
  const root = reflectionRoot();
  const table = {};
  for (const [service, prefix] of [
    ["stock.v1.Stock", ""],
    ["stock.v1.Ledger", "Ledger."],
  ]) {
    const svc = root.lookupService(service);
    for (const [name, def] of Object.entries(definition[service])) {
      table[prefix + name] = { ...def, inputType: svc.methods[name].resolvedRequestType };
    }
  }
  return table;
}

// ---- running steps ----

/** The x-stock-* entries of received metadata; -bin values in base64. */
function stockMetadata(md) {
  const out = {};
  if (!md) return out;
  for (const [k, v] of Object.entries(md.getMap())) {
    if (!k.startsWith("x-stock-")) continue;
    if (typeof v === "string") out[k] = v;
    else if (Buffer.isBuffer(v)) out[k] = v.toString("base64");
  }
  return out;
}

/**
 * The rich error details of a failed call: the google.rpc.Status in its
 * grpc-status-details-bin trailer, each detail in proto3 JSON with @type.
 */
function richDetails(id, status) {
  const bytes =
    status.code !== grpc.status.OK && status.metadata && status.metadata.get("grpc-status-details-bin")[0];
  if (!Buffer.isBuffer(bytes)) return [];
  try {
    return decodeStatusDetails(bytes);
  } catch (e) {
    process.stderr.write(`step ${JSON.stringify(id)}: grpc-status-details-bin: ${e.message}\n`);
    return [];
  }
}

/** Adds a request metadata entry; a -bin key's value is base64 and sent as its bytes. */
function addMetadata(md, key, value) {
  if (!key.toLowerCase().endsWith("-bin")) return md.add(key, value);
  if (!isBase64(value)) throw new UsageError(`metadata ${key}: invalid base64 ${JSON.stringify(value)}`);
  md.add(key, Buffer.from(value, "base64"));
}

/**
 * A response stream read one message at a time, in paused mode: grpc-js asks
 * its transport for the next message only when the stream is read (and
 * pauses the HTTP/2 stream meanwhile), so an unread stream is held back by
 * HTTP/2 flow control, not drained into memory.
 */
class Inbox {
  constructor(stream) {
    this.stream = stream;
    this.ended = false;
    this.waiter = null;
    stream.on("readable", () => this.wake());
    stream.on("end", () => {
      this.ended = true;
      this.wake();
    });
  }
  wake() {
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = null;
      w();
    }
  }
  async next() {
    for (;;) {
      const message = this.stream.read();
      if (message !== null) return { message };
      if (this.ended) return { end: true };
      await new Promise((r) => (this.waiter = r));
    }
  }
}

class Runner {
  constructor(opts) {
    this.opts = opts;
    this.methods = methodTable();
    this.channels = new Channels(opts);
  }

  /** Checks a step (and its after_first steps) before anything is sent. */
  prepare(step) {
    if (step === null || typeof step !== "object" || Array.isArray(step))
      throw new UsageError("a step must be a JSON object");
    const id = step.id;
    if (typeof id !== "string") throw new UsageError("step without a string id");
    const info = this.methods[step.method];
    if (!info)
      throw new UsageError(`step ${JSON.stringify(id)}: unknown method ${JSON.stringify(step.method)}`);
    let jsons;
    try {
      if (info.requestStream) {
        if (step.request !== undefined)
          throw new UsageError(`step ${JSON.stringify(id)}: ${step.method} takes \`requests\``);
        if (step.requests !== undefined && !Array.isArray(step.requests))
          throw new UsageError(`step ${JSON.stringify(id)}: requests must be an array`);
        jsons = step.requests ?? [];
      } else {
        if (step.requests !== undefined)
          throw new UsageError(`step ${JSON.stringify(id)}: ${step.method} takes \`request\``);
        jsons = [step.request ?? {}];
      }
      const requests = jsons.map((j) => fromJson(info.inputType, j));
      const metadata = step.metadata ?? {};
      if (
        typeof metadata !== "object" ||
        Array.isArray(metadata) ||
        Object.values(metadata).some((v) => typeof v !== "string")
      ) {
        throw new UsageError(`step ${JSON.stringify(id)}: metadata must map strings to strings`);
      }
      if (
        step.timeout_ms !== undefined &&
        step.timeout_ms !== null &&
        !(Number.isInteger(step.timeout_ms) && step.timeout_ms >= 0)
      ) {
        throw new UsageError(`step ${JSON.stringify(id)}: bad timeout_ms`);
      }
      for (const field of ["cancel_after_ms", "read_pause_ms", "copies"]) {
        const v = step[field];
        if (v !== undefined && v !== null && !(Number.isInteger(v) && v >= 0))
          throw new UsageError(`step ${JSON.stringify(id)}: bad ${field}`);
      }
      const after = step.after_first ?? [];
      if (!Array.isArray(after))
        throw new UsageError(`step ${JSON.stringify(id)}: after_first must be an array`);
      after.forEach((s) => this.prepare(s));
      return { info, requests, metadata, after };
    } catch (e) {
      if (e instanceof JsonError) throw new UsageError(`step ${JSON.stringify(id)}: ${e.message}`);
      throw e;
    }
  }

  /**
   * Runs one step (and its after_first steps), printing every line; with
   * `copies` N > 1, N calls at once on the channel, copy k under the id ID*k.
   */
  async runStep(step) {
    const prepared = this.prepare(step);
    if (!(step.copies > 1)) return this.runCall(step, step.id, prepared);
    const copies = [];
    for (let k = 0; k < step.copies; k++) copies.push(this.runCall(step, `${step.id}*${k}`, prepared));
    await Promise.all(copies);
  }

  /** One call of a step, its lines under id. */
  async runCall(step, id, { info, requests, metadata, after }) {
    const md = new grpc.Metadata();
    const timeout = step.timeout_ms || this.opts.timeoutMs || 0;
    const options = timeout > 0 ? { deadline: new Date(Date.now() + timeout) } : {};
    const client = this.channels.get(step.compression ?? this.opts.compression ?? "identity");
    const seen = { headers: {}, trailers: {} };
    const start = performance.now();
    let status;
    try {
      for (const [k, v] of this.opts.metadata) addMetadata(md, k, v);
      for (const [k, v] of Object.entries(metadata)) addMetadata(md, k, v);
      status = await this.call(client, step, id, info, requests, md, options, after, seen);
    } catch (e) {
      if (e instanceof UsageError) throw e;
      status = { code: grpc.status.INTERNAL, details: `client error: ${e.message}` };
    }
    // No response_encoding: grpc-js removes grpc-encoding from the response
    // metadata (CompressionFilter.receiveMetadata) before the call's
    // 'metadata' event and interceptors see it, and exposes no other way.
    print({
      id,
      status: { code: codeName(status.code), message: status.details ?? "" },
      headers: seen.headers,
      trailers: seen.trailers,
      elapsed_ms: performance.now() - start,
      details: richDetails(id, status),
    });
  }

  async call(client, step, id, info, requests, md, options, after, seen) {
    const ser = info.requestSerialize;
    const de = info.responseDeserialize;
    let call;
    let message = null;
    const statusPromise = new Promise((resolve) => {
      const onDone = (err, response) => {
        if (!err) message = response;
      };
      if (!info.requestStream && !info.responseStream) {
        call = client.makeUnaryRequest(info.path, ser, de, requests[0], md, options, onDone);
      } else if (info.requestStream && !info.responseStream) {
        call = client.makeClientStreamRequest(info.path, ser, de, md, options, onDone);
      } else if (!info.requestStream) {
        call = client.makeServerStreamRequest(info.path, ser, de, requests[0], md, options);
      } else {
        call = client.makeBidiStreamRequest(info.path, ser, de, md, options);
      }
      // cancel_after_ms: the client cancels the call (call.cancel()) unless it ended before.
      const cancelTimer =
        step.cancel_after_ms != null ? setTimeout(() => call.cancel(), step.cancel_after_ms) : null;
      call.on("metadata", (m) => (seen.headers = stockMetadata(m)));
      call.on("status", (s) => {
        clearTimeout(cancelTimer);
        seen.trailers = stockMetadata(s.metadata);
        resolve(s);
      });
      call.on("error", () => {}); // the status event carries it
    });

    if (!info.responseStream) {
      if (info.requestStream) {
        for (const r of requests) call.write(r);
        call.end();
      }
      const status = await statusPromise;
      if (message !== null) print({ id, message });
      return status;
    }

    const inbox = new Inbox(call);
    const lockStep = info.requestStream;
    const pending = requests.slice();
    let sending = lockStep;
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
    for (;;) {
      const item = await inbox.next();
      if (item.end) break;
      count++;
      print({ id, message: item.message });
      if (count === 1) {
        for (const nested of after) await this.runStep(nested);
      }
      // read_pause_ms: a slow reader; nothing is read from the stream meanwhile.
      if (step.read_pause_ms > 0) await new Promise((r) => setTimeout(r, step.read_pause_ms));
      sendNext();
    }
    sending = false;
    return statusPromise;
  }

  async script() {
    for await (const line of readline.createInterface({ input: process.stdin, crlfDelay: Infinity })) {
      if (!line.trim()) continue;
      await this.runStep(parseJsonLine(line));
    }
  }
}

async function main() {
  let opts;
  let step;
  try {
    opts = parseArgs(process.argv.slice(2));
    step = await commandStep(opts.command, opts.args);
  } catch (e) {
    process.stderr.write(`usage error: ${e.message}\n`);
    return 2;
  }
  let runner;
  try {
    runner = new Runner(opts);
  } catch (e) {
    process.stderr.write(`error: ${e.message}\n`);
    return 1;
  }
  try {
    if (step) await runner.runStep(step);
    else await runner.script();
    return 0;
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`usage error: ${e.message}\n`);
      return 2;
    }
    process.stderr.write(`error: ${e.stack}\n`);
    return 1;
  } finally {
    runner.channels.close();
  }
}

main().then((code) => {
  process.stdout.write("", () => process.exit(code));
});
