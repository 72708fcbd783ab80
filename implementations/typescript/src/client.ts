// The stock.v1.Stock script client (CONTRACT.md): Connect for Node's gRPC transport over node:http2, one
// HTTP/2 connection per distinct connection. Unary and client-streaming calls go through Connect's client
// (createClient), which checks that exactly one response message came; server streams and the lock-step bidi
// go through the transport's streaming path, so their response headers and trailers stay apart.
import { constants as bufferConstants } from "node:buffer";
import { readFileSync } from "node:fs";
import type { SecureClientSessionOptions } from "node:http2";
import { connect as netConnect } from "node:net";
import { createInterface } from "node:readline";
import { setTimeout as sleep } from "node:timers/promises";
import { connect as tlsConnect } from "node:tls";
import {
  create,
  createRegistry,
  fromJson,
  ScalarType,
  toJson,
  type DescField,
  type DescMessage,
  type DescMethod,
  type DescMethodStreaming,
  type JsonValue,
  type Message,
} from "@bufbuild/protobuf";
import { AnySchema } from "@bufbuild/protobuf/wkt";
import {
  Code,
  ConnectError,
  createClient,
  decodeBinaryHeader,
  encodeBinaryHeader,
  type CallOptions,
  type Transport,
} from "@connectrpc/connect";
import { compressionGzip, createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { BadRequestSchema, ErrorInfoSchema } from "../gen/google/rpc/error_details_pb.js";
import { KV } from "../gen/kv_pb.js";
import { Ledger, Stock } from "../gen/stock_pb.js";

class UsageError extends Error {}

/** A connection: the options' settings, or a step's `connection` object (same field names). */
interface Connection {
  server: string;
  tls_mode?: string;
  ca_file?: string;
  cert_file?: string;
  key_file?: string;
  server_name?: string;
  keepalive_ms?: number;
  keepalive_timeout_ms?: number;
}

interface Step {
  id: string;
  method: DescMethod;
  requests: Message[];
  metadata: [string, string][];
  timeoutMs?: number;
  gzip: boolean;
  connection?: Connection;
  afterFirst: Step[];
  copies: number;
  readPauseMs: number;
  cancelAfterMs: number;
  /** Monitor only: cancel the call once this many messages were printed (0 = never). */
  cancelAfterMessages: number;
  lane: number;
  /** A `bench` step's load (CONTRACT.md "Bench steps"): run by runBench instead of one call. */
  bench?: { durationMs: number; concurrency: number };
}

/** One connection's channel: one HTTP/2 session, with a transport that gzips requests and one that does not. */
interface Channel {
  plain: Transport;
  gzip: Transport;
}

const FIELDS = ["server", "tls_mode", "ca_file", "cert_file", "key_file", "server_name"];
const MS_FIELDS = ["keepalive_ms", "keepalive_timeout_ms"];
const TLS_MODES = ["none", "server", "mtls"];
/** The fields of a step, of a `fill` entry and of `bench` (CONTRACT.md); any other is a usage error. */
const STEP_FIELDS = [
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
];
const FILL_FIELDS = ["request", "repeat", "times"];
const BENCH_FIELDS = ["duration_ms", "concurrency"];
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}(?:==)?|[A-Za-z0-9+/]{3}=?)?$/;
/** The detail types the JSON printer resolves inside a google.protobuf.Any. */
const detailTypes = createRegistry(BadRequestSchema, ErrorInfoSchema);
const channels = new Map<string, Channel>();
/** A step's `method` → the method: Stock's by name, `Ledger.Balance`, and the legacy `proto.KV.Get`/`proto.KV.Put`. */
const METHODS = new Map<string, DescMethod>([
  ...Stock.methods.map((m): [string, DescMethod] => [m.name, m]),
  ["Ledger.Balance", Ledger.method.balance],
  ...KV.methods.map((m): [string, DescMethod] => [`${KV.typeName}.${m.name}`, m]),
]);

async function main(): Promise<number> {
  try {
    const defaultConnection = parseArgs(process.argv.slice(2));
    channelFor(defaultConnection); // an unreadable certificate of the default connection ends the client (exit 1)
    const lanes = new Map<number, Promise<void>>();
    for await (const line of createInterface({ input: process.stdin, crlfDelay: Infinity })) {
      if (line.trim()) runInLane(lanes, parseStep(line), defaultConnection);
    }
    await Promise.all(lanes.values());
    return 0;
  } catch (e) {
    process.stderr.write(`error: ${(e as Error).message}\n`);
    return e instanceof UsageError ? 2 : 1;
  }
}

/**
 * Hands a step to its lane: a promise chain that runs the lane's steps one after the other, while the other lanes
 * run at the same time. Each output line is one process.stdout.write, so lines never interleave.
 */
function runInLane(lanes: Map<number, Promise<void>>, step: Step, defaultConnection: Connection): void {
  const lane = (lanes.get(step.lane) ?? Promise.resolve()).then(() => runStep(step, defaultConnection));
  lane.catch(() => undefined); // a failure is reported by main's wait for every lane, not as an unhandled rejection
  lanes.set(step.lane, lane);
}

/** The options (the default connection), then the one command, `script`. */
function parseArgs(argv: string[]): Connection {
  const conn: Partial<Connection> = {};
  let i = 0;
  for (; i < argv.length && argv[i].startsWith("--"); i++) {
    const [flag, inline] = argv[i].includes("=") ? argv[i].split(/=(.*)/s, 2) : [argv[i], undefined];
    const field = flag.slice(2).replace(/-/g, "_") as keyof Connection; // --tls-mode is tls_mode
    if (!FIELDS.includes(field) && !MS_FIELDS.includes(field)) throw new UsageError(`unknown option ${argv[i]}`);
    const value = inline ?? argv[++i];
    if (value === undefined) throw new UsageError(`${flag} needs a value`);
    if (MS_FIELDS.includes(field) && !/^\d+$/.test(value)) throw new UsageError(`bad ${flag} ${value}`);
    Object.assign(conn, { [field]: MS_FIELDS.includes(field) ? Number(value) : value });
  }
  if (!conn.server) throw new UsageError("--server HOST:PORT is required");
  if (conn.tls_mode !== undefined && !TLS_MODES.includes(conn.tls_mode))
    throw new UsageError(`bad --tls-mode ${conn.tls_mode}`);
  if (argv.length !== i + 1 || argv[i] !== "script")
    throw new UsageError(`expected the command \`script\`, got ${JSON.stringify(argv.slice(i).join(" "))}`);
  return conn as Connection;
}

/** One step (a stdin line, or an object of `after_first`): requests checked and metadata decoded up front. */
function parseStep(line: unknown): Step {
  let s: Record<string, unknown>;
  try {
    s = (typeof line === "string" ? JSON.parse(line) : line) as Record<string, unknown>;
  } catch (e) {
    throw new UsageError(`invalid step line ${JSON.stringify(line)}: ${(e as Error).message}`);
  }
  const bad = (why: string) => new UsageError(`invalid step ${JSON.stringify(line)}: ${why}`);
  if (typeof s !== "object" || s === null || typeof s.id !== "string" || typeof s.method !== "string")
    throw bad('needs string "id" and "method"');
  checkFields(s, STEP_FIELDS, "", bad);
  const method = METHODS.get(s.method);
  if (!method) throw bad(`unknown method ${JSON.stringify(s.method)}`);
  const streamingIn = method.methodKind === "client_streaming" || method.methodKind === "bidi_streaming";
  if (streamingIn ? s.request !== undefined : s.requests !== undefined)
    throw bad(`${s.method} takes ${streamingIn ? "`requests`" : "`request`"}`);
  const jsons = streamingIn ? (s.requests ?? []) : [s.request ?? {}];
  if (!Array.isArray(jsons) || !Array.isArray(s.after_first ?? []))
    throw bad("`requests` and `after_first` are arrays");
  if (s.compression !== undefined && s.compression !== "gzip" && s.compression !== "identity")
    throw bad(`bad compression ${JSON.stringify(s.compression)}`);
  if ((s.after_first as unknown[] | undefined)?.length && s.method !== "Monitor")
    throw bad(`after_first is for Monitor only, not ${s.method}`);
  if (s.cancel_after_messages !== undefined && s.method !== "Monitor")
    throw bad(`cancel_after_messages is for Monitor only, not ${s.method}`);
  const number = (field: string): number => {
    if (s[field] !== undefined && typeof s[field] !== "number") throw bad(`${field} must be a number`);
    return (s[field] as number | undefined) ?? 0;
  };
  const lane = number("lane");
  if (!Number.isInteger(lane) || lane < 0) throw bad("lane must be an integer >= 0");
  const metadata = Object.entries((s.metadata ?? {}) as Record<string, unknown>).map(([k, v]): [string, string] => {
    if (typeof v !== "string") throw bad(`metadata ${k} must be a string`);
    if (!k.toLowerCase().endsWith("-bin")) return [k, v];
    if (!BASE64.test(v)) throw bad(`metadata ${k}: not base64: ${JSON.stringify(v)}`);
    return [k, encodeBinaryHeader(decodeBinaryHeader(v))];
  });
  const conn = s.connection as Connection | undefined;
  if (conn !== undefined && (typeof conn !== "object" || conn === null || typeof conn.server !== "string"))
    throw bad('connection needs a string "server"');
  if (conn?.tls_mode !== undefined && !TLS_MODES.includes(conn.tls_mode)) throw bad(`bad tls_mode ${conn.tls_mode}`);
  for (const [field, value] of Object.entries(conn ?? {})) {
    if (!FIELDS.includes(field) && !MS_FIELDS.includes(field)) throw bad(`unknown connection field ${field}`);
    if (MS_FIELDS.includes(field) && !(Number.isInteger(value) && value >= 0))
      throw bad(`connection ${field} must be an integer >= 0`);
  }
  const requests = jsons.map((j: JsonValue) => {
    try {
      return messageFromJson(method.input as DescMessage, j);
    } catch (e) {
      throw bad((e as Error).message);
    }
  });
  fillValues(method, requests, s.fill ?? [], bad);
  let bench: Step["bench"];
  if (s.bench !== undefined) {
    const b = s.bench as Record<string, unknown>;
    if (typeof b !== "object" || b === null || Array.isArray(b)) throw bad("bench must be an object");
    checkFields(b, BENCH_FIELDS, "bench: ", bad);
    const { duration_ms: durationMs, concurrency } = b;
    if (!(Number.isSafeInteger(durationMs) && (durationMs as number) >= 0))
      throw bad("bench.duration_ms must be an integer >= 0");
    if (!(Number.isSafeInteger(concurrency) && (concurrency as number) >= 1))
      throw bad("bench.concurrency must be an integer >= 1");
    bench = { durationMs: durationMs as number, concurrency: concurrency as number };
  }
  return {
    id: s.id,
    method,
    requests,
    metadata,
    timeoutMs: number("timeout_ms") || undefined,
    gzip: s.compression === "gzip",
    connection: conn,
    afterFirst: ((s.after_first ?? []) as unknown[]).map(parseStep),
    copies: number("copies") || 1,
    readPauseMs: number("read_pause_ms"),
    cancelAfterMs: number("cancel_after_ms"),
    cancelAfterMessages: number("cancel_after_messages"),
    lane,
    bench,
  };
}

/** A field of `obj` that is not one of `known` is a usage error (`bad`), named after `where`. */
function checkFields(obj: object, known: string[], where: string, bad: (why: string) => UsageError): void {
  const field = Object.keys(obj).find((k) => !known.includes(k));
  if (field !== undefined) throw bad(`${where}unknown field ${JSON.stringify(field)}`);
}

/** Standard base64 without its padding: the alphabet only, and not one character past a whole group of 4. */
const PLAIN_BASE64 = /[^A-Za-z0-9+/]/;

/**
 * fromJson of a request, its own bytes fields (a value) in plain standard base64 decoded by Buffer: the same bytes as
 * protobuf-es's decoder, which loops over a 1 MiB value in JavaScript. Any other value (URL-safe, white space, inner
 * padding, not a string) is left to fromJson, which also reads every other field and reports every error.
 */
function messageFromJson(desc: DescMessage, json: JsonValue): Message {
  if (typeof json !== "object" || json === null || Array.isArray(json)) return fromJson(desc, json);
  let rest: Record<string, JsonValue> | undefined;
  const values: [DescField, Uint8Array][] = [];
  for (const f of desc.fields) {
    if (f.fieldKind !== "scalar" || f.scalar !== ScalarType.BYTES || f.oneof) continue;
    for (const key of new Set([f.jsonName, f.name])) {
      const v = Object.hasOwn(json, key) ? json[key] : undefined;
      if (typeof v !== "string" || v === "") continue;
      const body = v.replace(/={1,2}$/, "");
      if (body.length % 4 === 1 || (body.length < v.length && v.length % 4 !== 0) || PLAIN_BASE64.test(body)) continue;
      const bytes = Buffer.from(body, "base64");
      values.push([f, new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength)]);
      rest ??= { ...json };
      rest[key] = "";
    }
  }
  const msg = fromJson(desc, rest ?? json);
  for (const [f, v] of values) (msg as unknown as Record<string, unknown>)[f.localName] = v;
  return msg;
}

/**
 * Applies a step's `fill` entries to its parsed request messages (Put's PutRequest, Batch's BatchItems): the `value`
 * of message `request` becomes the bytes of `repeat` (base64) repeated `times` times, one buffer of the full size
 * filled with the pattern. A bad entry is a usage error (`bad`).
 */
function fillValues(method: DescMethod, requests: Message[], fill: unknown, bad: (why: string) => UsageError): void {
  if (!Array.isArray(fill)) throw bad("`fill` is an array");
  if (fill.length > 0 && (method.parent.typeName !== Stock.typeName || !["Put", "Batch"].includes(method.name)))
    throw bad(`fill is for Put and Batch (stock.v1.Stock) only, not ${method.parent.typeName}.${method.name}`);
  fill.forEach((entry: unknown, i) => {
    if (typeof entry !== "object" || entry === null || Array.isArray(entry)) throw bad(`fill[${i}] must be an object`);
    checkFields(entry, FILL_FIELDS, `fill[${i}]: `, bad);
    const { request, repeat, times } = entry as Record<string, unknown>;
    if (!(Number.isInteger(request) && (request as number) >= 0 && (request as number) < requests.length))
      throw bad(`fill[${i}]: no request message ${JSON.stringify(request)} (the step has ${requests.length})`);
    if (typeof repeat !== "string" || !BASE64.test(repeat))
      throw bad(`fill[${i}]: repeat is not base64: ${JSON.stringify(repeat)}`);
    if (!(Number.isSafeInteger(times) && (times as number) >= 0))
      throw bad(`fill[${i}]: times must be an integer >= 0, not ${JSON.stringify(times)}`);
    const unit = Buffer.from(repeat, "base64");
    const size = unit.length * (times as number);
    if (size > bufferConstants.MAX_LENGTH) throw bad(`fill[${i}]: ${size} bytes do not fit in a Buffer`);
    // PutRequest and BatchItem: `value` is a bytes field, a Uint8Array (a Buffer is one).
    (requests[request as number] as Message & { value: Uint8Array }).value =
      size === 0 ? new Uint8Array(0) : Buffer.alloc(size, unit);
  });
}

/** The socket path of a Unix socket target (`unix:/PATH`, `unix:///PATH`, gRPC's name syntax), else undefined. */
function unixSocketPath(server: string): string | undefined {
  if (!server.startsWith("unix:")) return undefined;
  const rest = server.slice("unix:".length);
  return rest.startsWith("//") ? rest.slice(2) : rest;
}

/**
 * The cached channel of a connection (equal settings share one), opened on first use; an unreadable certificate
 * file is UNAVAILABLE with the reason. Node's http2 client writes an IPv6 literal into :authority without brackets,
 * so without TLS `servername` (which only sets that authority) brackets it. A Unix socket target is dialled by
 * node:http2's `createConnection` (net.connect, or tls.connect offering h2 by ALPN, on the socket path); the
 * authority in baseUrl, and with TLS the name verified and sent as SNI, is `server_name`, else localhost. Safe for
 * the lanes: JavaScript runs one of them at a time, and this look-up and insertion is one synchronous call.
 */
function channelFor(conn: Connection): Channel {
  const tlsMode = conn.tls_mode ?? "none";
  const key = JSON.stringify([
    conn.server,
    tlsMode,
    conn.ca_file,
    conn.cert_file,
    conn.key_file,
    conn.server_name,
    conn.keepalive_ms,
    conn.keepalive_timeout_ms,
  ]);
  const cached = channels.get(key);
  if (cached) return cached;
  const read = (file: string | undefined) => {
    try {
      return file === undefined ? undefined : readFileSync(file);
    } catch (e) {
      throw new ConnectError(`cannot read ${file}: ${(e as Error).message}`, Code.Unavailable);
    }
  };
  const scheme = tlsMode === "none" ? "http" : "https";
  const credentials = () => ({
    ca: read(conn.ca_file),
    ...(tlsMode === "mtls" ? { cert: read(conn.cert_file), key: read(conn.key_file) } : {}),
  });
  const socketPath = unixSocketPath(conn.server);
  let baseUrl: string;
  let nodeOptions: SecureClientSessionOptions;
  if (socketPath !== undefined) {
    const name = conn.server_name ?? "localhost";
    baseUrl = `${scheme}://${name.includes(":") && !name.startsWith("[") ? `[${name}]` : name}`;
    if (tlsMode === "none") {
      nodeOptions = { createConnection: () => netConnect(socketPath) };
    } else {
      const tlsOptions = { path: socketPath, servername: name, ALPNProtocols: ["h2"], ...credentials() };
      nodeOptions = { createConnection: () => tlsConnect(tlsOptions) };
    }
  } else {
    baseUrl = `${scheme}://${conn.server}`;
    const host = new URL(baseUrl).hostname;
    nodeOptions =
      tlsMode === "none"
        ? { servername: host.startsWith("[") ? host : undefined }
        : { servername: conn.server_name, ...credentials() };
  }
  // Connect's keepalive (its default without keepalive_ms: no PINGs); the session manager owns the connection.
  const keepalive =
    conn.keepalive_ms === undefined
      ? {}
      : { pingIntervalMs: conn.keepalive_ms, pingTimeoutMs: conn.keepalive_timeout_ms, pingIdleConnection: true };
  const common = {
    baseUrl,
    httpVersion: "2" as const,
    sessionManager: new Http2SessionManager(baseUrl, keepalive, nodeOptions),
    acceptCompression: [compressionGzip],
    // gRPC's usual 4 MiB receive limit (Connect's default is 4 GiB): a larger response ends RESOURCE_EXHAUSTED.
    readMaxBytes: 4 << 20,
  };
  const channel = {
    plain: createGrpcTransport(common),
    gzip: createGrpcTransport({ ...common, sendCompression: compressionGzip, compressMinBytes: 0 }),
  };
  channels.set(key, channel);
  return channel;
}

/** A step, or with `copies` that many calls at once on its channel (node:http2 queues streams past the limit). */
async function runStep(step: Step, defaultConnection: Connection): Promise<void> {
  if (step.bench) return runBench(step, step.bench, defaultConnection);
  if (step.copies === 1) return runCall(step, step.id, defaultConnection);
  const copies = Array.from({ length: step.copies }, (_, k) => runCall(step, `${step.id}*${k}`, defaultConnection));
  await Promise.all(copies);
}

/** A one-message method (unary, client stream) as Connect's client (createClient) makes it. */
type SingleFn = (input: Message | AsyncIterable<Message>, options: CallOptions) => Promise<Message>;

/**
 * The method of Connect's client for a unary or client-streaming method: createClient's unary function (the
 * transport's unary call, which refuses a response without a message or with two, UNIMPLEMENTED) or its
 * client-streaming function (the same check over the response stream). Its onHeader and onTrailer options are
 * called on success only; a failed call's ConnectError holds the metadata Connect gives it.
 */
function singleFn(transport: Transport, method: DescMethod): SingleFn {
  const client = createClient(method.parent, transport) as unknown as Record<string, SingleFn>;
  return client[method.localName];
}

/** One call of a step, its lines printed under `id`. */
async function runCall(step: Step, id: string, defaultConnection: Connection): Promise<void> {
  const { method, requests } = step;
  const lockStep = method.methodKind === "bidi_streaming";
  // Lock-step Trade sends one order now and each next one after a fill; the others send everything at once.
  const pending = [...requests];
  const outbox = new Outbox();
  for (const m of pending.splice(0, lockStep ? 1 : pending.length)) outbox.send(m);
  if (pending.length === 0) outbox.close();
  const cancel = new AbortController();
  const cancelTimer = step.cancelAfterMs > 0 ? setTimeout(() => cancel.abort(), step.cancelAfterMs) : undefined;
  const start = performance.now();
  // The response headers and trailers as Connect hands them over (none for a call that failed before them).
  let received: { header?: Headers; trailer?: Headers } = {};
  let error: ConnectError | undefined;
  try {
    const channel = channelFor(step.connection ?? defaultConnection);
    const transport = step.gzip ? channel.gzip : channel.plain;
    const header = new Headers(step.metadata);
    if (method.methodKind === "unary" || method.methodKind === "client_streaming") {
      // Unary, or a client stream (Batch, every item sent then half-closed): Connect's client, whose one message
      // comes only with an OK status.
      const options: CallOptions = {
        signal: cancel.signal,
        timeoutMs: step.timeoutMs,
        headers: header,
        onHeader: (h) => (received.header = h),
        onTrailer: (t) => (received.trailer = t),
      };
      const reply = await singleFn(transport, method)(method.methodKind === "unary" ? requests[0] : outbox, options);
      emitMessage(id, method, reply);
    } else {
      // A server stream (Monitor), or the lock-step bidi (Trade): the transport's stream, read one message at a time.
      const response = await transport.stream(
        method as DescMethodStreaming,
        cancel.signal,
        step.timeoutMs,
        header,
        outbox,
      );
      received = response;
      let count = 0;
      for await (const msg of response.message) {
        emitMessage(id, method, msg);
        if (++count === 1) for (const nested of step.afterFirst) await runStep(nested, defaultConnection);
        if (count === step.cancelAfterMessages) {
          // Cancelled as cancel_after_ms does, and nothing more is read (Connect may hold a message already split off
          // the body): the call's error is the abort reason, as Connect makes it (ConnectError.from: CANCELLED).
          cancel.abort();
          throw cancel.signal.reason;
        }
        // A slow reader: the stream is not pulled meanwhile, so node:http2 withholds its WINDOW_UPDATEs.
        if (step.readPauseMs > 0) await sleep(step.readPauseMs);
        if (lockStep) {
          const next = pending.shift();
          if (next) outbox.send(next);
          else outbox.close();
        }
      }
    }
  } catch (e) {
    if (e instanceof UsageError) throw e;
    error = callError(e);
  } finally {
    clearTimeout(cancelTimer);
    outbox.close();
  }
  emitStatus(id, start, step.timeoutMs, received, error);
}

/**
 * The log-scale latency bucket of `v` whole microseconds (CONTRACT.md "Bench steps"): `v` below 32, else 16 buckets
 * per power of two, `16 * (n - 4) + ((v >> (n - 5)) & 15)` with `n` the bit length of `v` (in float arithmetic: JS
 * shifts are 32-bit).
 */
function bucket(v: number): number {
  if (v < 32) return v;
  const n = v >= 2 ** 32 ? 64 - Math.clz32(v / 2 ** 32) : 32 - Math.clz32(v);
  return 16 * (n - 4) + (Math.floor(v / 2 ** (n - 5)) & 15);
}

/**
 * A `bench` step (CONTRACT.md "Bench steps"): `concurrency` workers, each a promise loop that runs the step's call on
 * the step's one channel, with the parsed requests and metadata built once, again and again until `duration_ms` have
 * passed, printing nothing per call; then one line with the counts and the latency histogram. Each worker keeps its
 * own counts, merged at the end (JavaScript runs one worker at a time, so the first error is simply the first set).
 */
async function runBench(step: Step, load: { durationMs: number; concurrency: number }, defaultConnection: Connection) {
  const { method, requests, timeoutMs } = step;
  const start = process.hrtime.bigint();
  const end = start + BigInt(load.durationMs) * 1_000_000n;
  const header = new Headers(step.metadata); // Connect copies it into each call's own request headers
  let firstError: { code: string; message: string } | undefined;
  const failed = (e: unknown, t0: bigint) => {
    const error = callError(e);
    firstError = {
      code: codeName(error.code, Number(process.hrtime.bigint() - t0) / 1e6, timeoutMs),
      message: error.rawMessage,
    };
  };
  let call: (() => Promise<number>) | undefined; // one call: the messages it counts, or a throw when not OK
  try {
    const channel = channelFor(step.connection ?? defaultConnection);
    const transport = step.gzip ? channel.gzip : channel.plain;
    const lockStep = method.methodKind === "bidi_streaming";
    // Unary, or Batch (every item, then half-close): Connect's client, as for one call (runCall).
    const single = singleFn(transport, method);
    const options: CallOptions = { timeoutMs, headers: header };
    const unary = async () => {
      await single(requests[0], options);
      return 1;
    };
    const clientStream = async () => {
      const outbox = new Outbox();
      for (const request of requests) outbox.send(request);
      outbox.close();
      await single(outbox, options);
      return requests.length;
    };
    const stream = async () => {
      // Lock-step Trade sends one order now and each next one after a fill; Monitor sends its one request.
      const outbox = new Outbox();
      let sent = lockStep ? Math.min(1, requests.length) : requests.length;
      for (let i = 0; i < sent; i++) outbox.send(requests[i]);
      if (sent === requests.length) outbox.close();
      let received = 0;
      try {
        const response = await transport.stream(method as DescMethodStreaming, undefined, timeoutMs, header, outbox);
        for await (const _ of response.message) {
          received++;
          if (lockStep) {
            if (sent < requests.length) outbox.send(requests[sent++]);
            else outbox.close();
          }
        }
      } finally {
        outbox.close();
      }
      return received;
    };
    call = { unary, client_streaming: clientStream, server_streaming: stream, bidi_streaming: stream }[
      method.methodKind
    ];
  } catch (e) {
    failed(e, start); // no channel (an unreadable certificate): the step's one call, failed
  }
  const worker = async (call: () => Promise<number>) => {
    const counts = { calls: 0, errors: 0, messages: 0, histogram: new Map<number, number>() };
    for (let now = process.hrtime.bigint(); now < end;) {
      const t0 = now;
      try {
        const messages = await call();
        now = process.hrtime.bigint();
        const b = bucket(Number((now - t0) / 1000n));
        counts.histogram.set(b, (counts.histogram.get(b) ?? 0) + 1);
        counts.calls++;
        counts.messages += messages;
      } catch (e) {
        if (firstError === undefined) failed(e, t0);
        now = process.hrtime.bigint();
        counts.errors++;
      }
    }
    return counts;
  };
  const workers = call
    ? await Promise.all(Array.from({ length: load.concurrency }, () => worker(call)))
    : [{ calls: 0, errors: 1, messages: 0, histogram: new Map<number, number>() }];
  const elapsedMs = Number(process.hrtime.bigint() - start) / 1e6;
  const histogram = new Map<number, number>();
  for (const w of workers) for (const [b, n] of w.histogram) histogram.set(b, (histogram.get(b) ?? 0) + n);
  const sum = (field: "calls" | "errors" | "messages") => workers.reduce((total, w) => total + w[field], 0);
  const line = {
    id: step.id,
    bench: {
      calls: sum("calls"),
      errors: sum("errors"),
      messages: sum("messages"),
      elapsed_ms: elapsedMs,
      histogram: [...histogram].sort(([a], [b]) => a - b),
      ...(firstError ? { first_error: firstError } : {}),
    },
  };
  process.stdout.write(JSON.stringify(line) + "\n");
}

/**
 * A failed call's error. Connect reports a refused TCP dial (ECONNREFUSED) UNAVAILABLE, but any other failed
 * connect(2), such as a Unix socket path with nothing there (ENOENT), INTERNAL: a dial that failed is UNAVAILABLE.
 */
function callError(e: unknown): ConnectError {
  const error = ConnectError.from(e);
  const cause = error.cause as NodeJS.ErrnoException | undefined;
  if (error.code !== Code.Internal || cause?.syscall !== "connect") return error;
  return new ConnectError(error.rawMessage, Code.Unavailable, error.metadata, undefined, cause);
}

/** InvalidArgument → INVALID_ARGUMENT. */
const snakeCase = (name: string) => name.replace(/\B([A-Z])/g, "_$1").toUpperCase();

/** A status code's name; like grpc-go's client, a stream reset (CANCELLED) past the deadline is DEADLINE_EXCEEDED. */
function codeName(code: Code | 0, elapsedMs: number, timeoutMs: number | undefined): string {
  if (code === Code.Canceled && timeoutMs !== undefined && elapsedMs >= timeoutMs) code = Code.DeadlineExceeded;
  // Connect's Code enum has no OK, spells its names in camel case, and CANCELLED the American way.
  return code === 0 ? "OK" : code === Code.Canceled ? "CANCELLED" : snakeCase(Code[code]);
}

function emitMessage(id: string, method: DescMethod, msg: Message): void {
  process.stdout.write(JSON.stringify({ id, message: messageJson(method.output as DescMessage, msg) }) + "\n");
}

const STAND_IN = new Uint8Array(1);

/**
 * toJson of a message, its own non-empty bytes fields (a value) base64-encoded by Buffer: the same standard, padded
 * base64 as protobuf-es's, whose character-at-a-time string building makes a 1 MiB value a costly garbage chain. A
 * one-byte stand-in, put back at once, keeps each such field in toJson's output at its place.
 */
function messageJson(desc: DescMessage, msg: Message): JsonValue {
  const fields = msg as unknown as Record<string, unknown>;
  const values: [DescField, Uint8Array][] = [];
  for (const f of desc.fields) {
    const v = fields[f.localName];
    if (
      f.fieldKind === "scalar" &&
      f.scalar === ScalarType.BYTES &&
      !f.oneof &&
      v instanceof Uint8Array &&
      v.length > 0
    )
      values.push([f, v]);
  }
  if (values.length === 0) return toJson(desc, msg);
  let json: Record<string, JsonValue>;
  try {
    for (const [f] of values) fields[f.localName] = STAND_IN;
    json = toJson(desc, msg) as Record<string, JsonValue>;
  } finally {
    for (const [f, v] of values) fields[f.localName] = v;
  }
  for (const [f, v] of values) json[f.jsonName] = Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString("base64");
  return json;
}

/** The status line: code name from Connect's Code enum, x-stock- metadata, encoding and rich error details. */
function emitStatus(
  id: string,
  start: number,
  timeoutMs: number | undefined,
  received: { header?: Headers; trailer?: Headers },
  error: ConnectError | undefined,
): void {
  const elapsed = performance.now() - start;
  const name = codeName(error?.code ?? 0, elapsed, timeoutMs);
  // A -bin value in standard base64. A key that came more than once (a failed call's merged headers and trailers)
  // holds the values joined with ", " (the Headers API), which does not decode: it is printed as it came.
  const binary = (v: string) => {
    try {
      return Buffer.from(decodeBinaryHeader(v)).toString("base64");
    } catch {
      return v;
    }
  };
  const stockMetadata = (h: Headers | undefined) => {
    const out: Record<string, string> = {};
    h?.forEach((v, k) => {
      if (k.startsWith("x-stock-")) out[k] = k.endsWith("-bin") ? binary(v) : v;
    });
    return out;
  };
  const details: JsonValue[] = [];
  for (const d of error?.details ?? []) {
    if (!("type" in d)) continue; // outgoing details: never on a received error
    const any = create(AnySchema, { typeUrl: `type.googleapis.com/${d.type}`, value: d.value });
    try {
      details.push(toJson(AnySchema, any, { registry: detailTypes }));
    } catch {
      details.push({ "@type": any.typeUrl }); // a detail type this client does not know
    }
  }
  // A stream keeps its trailers apart. A failed call with none (a trailers-only response, or a failed unary or client
  // stream, whose trailers Connect's client hands over only on success) has them in its error's metadata; for a
  // status that came in trailers after headers, Connect adds the response headers to them (validateTrailer).
  const trailers = received.trailer ?? error?.metadata;
  // The grpc-encoding of the response headers, by which Connect picked the decompressor.
  const encoding = received.header?.get("grpc-encoding")?.toLowerCase();
  const line = {
    id,
    status: { code: name, message: error ? error.rawMessage : "" },
    headers: stockMetadata(received.header),
    trailers: stockMetadata(trailers),
    elapsed_ms: elapsed,
    response_encoding: encoding || "identity",
    details,
  };
  process.stdout.write(JSON.stringify(line) + "\n");
}

/** A request stream the caller feeds one message at a time, then closes. */
class Outbox implements AsyncIterable<Message> {
  private queue: Message[] = [];
  private closed = false;
  private wake: (() => void) | undefined;

  send(m: Message): void {
    this.queue.push(m);
    this.wake?.();
  }

  close(): void {
    this.closed = true;
    this.wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Message> {
    for (;;) {
      if (this.queue.length > 0) yield this.queue.shift()!;
      else if (this.closed) return;
      else await new Promise<void>((r) => (this.wake = r));
      this.wake = undefined;
    }
  }
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
