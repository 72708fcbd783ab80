// The stock.v1.Stock client CLI (CONTRACT.md): Connect for Node's gRPC
// transport over one HTTP/2 connection. Every call goes through the
// transport's streaming path so response headers and trailers stay apart.
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { setTimeout as sleep } from "node:timers/promises";
import {
  create,
  createRegistry,
  fromJson,
  toJson,
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
  decodeBinaryHeader,
  encodeBinaryHeader,
  type Transport,
} from "@connectrpc/connect";
import {
  compressionGzip,
  createGrpcTransport,
  Http2SessionManager,
} from "@connectrpc/connect-node";
import {
  BadRequestSchema,
  ErrorInfoSchema,
} from "../gen/google/rpc/error_details_pb.js";
import { Ledger, Stock } from "../gen/stock_pb.js";
import { codeName } from "./codes.js";

class UsageError extends Error {}

interface Args {
  server: string;
  tlsMode: string;
  caFile?: string;
  certFile?: string;
  keyFile?: string;
  serverName?: string;
  timeoutMs: number;
  metadata: [string, string][];
  compression?: string;
  command: string[];
}

interface Step {
  id: string;
  method: string;
  request?: JsonValue;
  requests?: JsonValue[];
  metadata?: Record<string, string>;
  timeout_ms?: number;
  compression?: string;
  after_first?: Step[];
  copies?: number;
  read_pause_ms?: number;
  cancel_after_ms?: number;
}

function parseArgs(argv: string[]): Args {
  const args: Args = {
    server: "",
    tlsMode: "none",
    timeoutMs: 0,
    metadata: [],
    command: [],
  };
  let i = 0;
  for (; i < argv.length && argv[i].startsWith("--"); i++) {
    const [flag, inline] = argv[i].includes("=")
      ? argv[i].split(/=(.*)/s, 2)
      : [argv[i], undefined];
    const value = (): string => {
      const v = inline ?? argv[++i];
      if (v === undefined) throw new UsageError(`${flag} needs a value`);
      return v;
    };
    switch (flag) {
      case "--server":
        args.server = value();
        break;
      case "--tls-mode":
        args.tlsMode = value();
        if (!["none", "server", "mtls"].includes(args.tlsMode))
          throw new UsageError(`bad --tls-mode ${args.tlsMode}`);
        break;
      case "--ca-file":
        args.caFile = value();
        break;
      case "--cert-file":
        args.certFile = value();
        break;
      case "--key-file":
        args.keyFile = value();
        break;
      case "--server-name":
        args.serverName = value();
        break;
      case "--timeout-ms": {
        const v = value();
        if (!/^\d+$/.test(v)) throw new UsageError(`bad --timeout-ms ${v}`);
        args.timeoutMs = Number(v);
        break;
      }
      case "--metadata": {
        const v = value();
        const eq = v.indexOf("=");
        if (eq < 0)
          throw new UsageError(
            `--metadata expects K=V, got ${JSON.stringify(v)}`,
          );
        args.metadata.push([v.slice(0, eq), v.slice(eq + 1)]);
        break;
      }
      case "--compression":
        args.compression = value();
        if (!["gzip", "identity"].includes(args.compression))
          throw new UsageError(`bad --compression ${args.compression}`);
        break;
      default:
        throw new UsageError(`unknown option ${argv[i]}`);
    }
  }
  if (!args.server) throw new UsageError("--server HOST:PORT is required");
  args.command = argv.slice(i);
  if (args.command.length === 0) throw new UsageError("missing command");
  return args;
}

/** Method names of script steps, to their descriptors. */
function methodOf(name: string): DescMethod | undefined {
  if (name === "Ledger.Balance") return Ledger.method.balance;
  return Stock.methods.find((m) => m.name === name);
}

/** The detail types the JSON printer resolves inside a google.protobuf.Any. */
const detailTypes = createRegistry(BadRequestSchema, ErrorInfoSchema);

/**
 * The rich error details Connect decoded from grpc-status-details-bin (the
 * google.rpc.Status's Any list), each printed as proto3 JSON with its @type.
 */
function errorDetails(err: ConnectError): JsonValue[] {
  const out: JsonValue[] = [];
  for (const d of err.details) {
    if (!("type" in d)) continue; // outgoing details: never on a received error
    const any = create(AnySchema, {
      typeUrl: `type.googleapis.com/${d.type}`,
      value: d.value,
    });
    try {
      out.push(toJson(AnySchema, any, { registry: detailTypes }));
    } catch (e) {
      process.stderr.write(
        `cannot print error detail ${d.type}: ${(e as Error).message}\n`,
      );
    }
  }
  return out;
}

function emit(line: object): void {
  process.stdout.write(JSON.stringify(line) + "\n");
}

/** The received x-stock-* entries; a -bin entry's bytes in standard base64. */
function stockMetadata(h: Headers | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  h?.forEach((v, k) => {
    if (k.startsWith("x-stock-"))
      out[k] = k.endsWith("-bin")
        ? Buffer.from(decodeBinaryHeader(v)).toString("base64")
        : v;
  });
  return out;
}

/** A request metadata value: a -bin key's base64 is decoded and sent as binary metadata. */
function metadataValue(key: string, value: string): string {
  if (!key.toLowerCase().endsWith("-bin")) return value;
  if (
    !/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}(?:==)?|[A-Za-z0-9+/]{3}=?)?$/.test(
      value,
    )
  )
    throw new UsageError(`${key}: not base64: ${JSON.stringify(value)}`);
  return encodeBinaryHeader(decodeBinaryHeader(value));
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

interface Prepared {
  method: DescMethod;
  requests: Message[];
}

/** Checks a step's method and requests (and its after_first steps) before anything is sent. */
function prepare(step: Step): Prepared {
  const method = methodOf(step.method);
  if (!method)
    throw new UsageError(
      `step ${JSON.stringify(step.id)}: unknown method ${JSON.stringify(step.method)}`,
    );
  const streamingIn =
    method.methodKind === "client_streaming" ||
    method.methodKind === "bidi_streaming";
  let jsons: JsonValue[];
  if (streamingIn) {
    if (
      step.request !== undefined ||
      (step.requests !== undefined && !Array.isArray(step.requests))
    ) {
      throw new UsageError(
        `step ${JSON.stringify(step.id)}: ${step.method} takes an array \`requests\``,
      );
    }
    jsons = step.requests ?? [];
  } else {
    if (step.requests !== undefined)
      throw new UsageError(
        `step ${JSON.stringify(step.id)}: ${step.method} takes \`request\``,
      );
    jsons = [step.request ?? {}];
  }
  const requests = jsons.map((j) => {
    try {
      return fromJson(method.input as DescMessage, j);
    } catch (e) {
      throw new UsageError(
        `step ${JSON.stringify(step.id)}: ${(e as Error).message}`,
      );
    }
  });
  for (const nested of step.after_first ?? []) prepare(nested);
  return { method, requests };
}

function parseStep(line: string): Step {
  let step: unknown;
  try {
    step = JSON.parse(line);
  } catch (e) {
    throw new UsageError(
      `invalid step line ${JSON.stringify(line)}: ${(e as Error).message}`,
    );
  }
  const s = step as Step;
  if (
    typeof s !== "object" ||
    s === null ||
    typeof s.id !== "string" ||
    typeof s.method !== "string"
  ) {
    throw new UsageError(
      `invalid step line ${JSON.stringify(line)}: needs string "id" and "method"`,
    );
  }
  return s;
}

/**
 * Node's http2 client writes an IPv6 literal into :authority without brackets
 * ("::1:PORT"), which servers reject; without TLS, `servername` only sets that
 * authority, so bracket it there.
 */
function plainIpv6Authority(server: string): { servername?: string } {
  const host = new URL(`http://${server}`).hostname;
  return host.startsWith("[") ? { servername: host } : {};
}

class Runner {
  private plain: Transport;
  private gzip: Transport;

  constructor(private args: Args) {
    const tls = args.tlsMode !== "none";
    const baseUrl = `${tls ? "https" : "http"}://${args.server}`;
    const readFile = (file: string | undefined, flag: string): Buffer => {
      if (!file)
        throw new Error(
          `--${flag} is required with --tls-mode ${args.tlsMode}`,
        );
      try {
        return readFileSync(file);
      } catch (e) {
        throw new Error(
          `failed to read --${flag} ${file}: ${(e as Error).message}`,
        );
      }
    };
    const nodeOptions = tls
      ? {
          ca: readFile(args.caFile, "ca-file"),
          ...(args.serverName ? { servername: args.serverName } : {}),
          ...(args.tlsMode === "mtls"
            ? {
                cert: readFile(args.certFile, "cert-file"),
                key: readFile(args.keyFile, "key-file"),
              }
            : {}),
        }
      : plainIpv6Authority(args.server);
    // One HTTP/2 connection for every call, with or without gzip.
    const sessionManager = new Http2SessionManager(baseUrl, {}, nodeOptions);
    const common = {
      baseUrl,
      httpVersion: "2" as const,
      sessionManager,
      acceptCompression: [compressionGzip],
      // gRPC's usual 4 MiB receive limit (Connect's default is 4 GiB): a
      // larger response message ends its call RESOURCE_EXHAUSTED.
      readMaxBytes: 4 << 20,
    };
    this.plain = createGrpcTransport(common);
    this.gzip = createGrpcTransport({
      ...common,
      sendCompression: compressionGzip,
      compressMinBytes: 0,
    });
  }

  /**
   * Runs one step (and its after_first steps), printing every line; with
   * `copies`, that many calls at once on the one HTTP/2 connection (past the
   * server's MAX_CONCURRENT_STREAMS node:http2's nghttp2 holds the streams back).
   */
  async runStep(step: Step): Promise<void> {
    const prepared = prepare(step);
    const copies = step.copies ?? 1;
    if (copies > 1) {
      await Promise.all(
        Array.from({ length: copies }, (_, k) =>
          this.runCall(step, `${step.id}*${k}`, prepared),
        ),
      );
    } else {
      await this.runCall(step, step.id, prepared);
    }
  }

  /** One call of a step, its lines under `id`. */
  private async runCall(
    step: Step,
    id: string,
    { method, requests }: Prepared,
  ): Promise<void> {
    const header = new Headers();
    try {
      for (const [k, v] of [
        ...this.args.metadata,
        ...Object.entries(step.metadata ?? {}),
      ])
        header.append(k, metadataValue(k, v));
    } catch (e) {
      throw new UsageError(
        `step ${JSON.stringify(step.id)}: bad metadata: ${(e as Error).message}`,
      );
    }
    const timeoutMs =
      step.timeout_ms && step.timeout_ms > 0
        ? step.timeout_ms
        : this.args.timeoutMs || undefined;
    const transport =
      (step.compression ?? this.args.compression) === "gzip"
        ? this.gzip
        : this.plain;
    const lockStep = method.methodKind === "bidi_streaming";
    const outbox = new Outbox();
    const pending = [...requests];
    // Lock-step sends one order now and each next one after a fill; the rest send everything.
    for (const m of lockStep ? pending.splice(0, 1) : pending.splice(0))
      outbox.send(m);
    if (pending.length === 0) outbox.close();

    // cancel_after_ms: the call is cancelled through its AbortSignal.
    const cancel = new AbortController();
    const start = performance.now();
    const cancelTimer =
      step.cancel_after_ms !== undefined && step.cancel_after_ms > 0
        ? setTimeout(() => cancel.abort(), step.cancel_after_ms)
        : undefined;
    let headers: Record<string, string> = {};
    let trailers: Record<string, string> = {};
    let status = { code: "OK", message: "" };
    let details: JsonValue[] = [];
    let response: Awaited<ReturnType<Transport["stream"]>> | undefined;
    try {
      response = await transport.stream(
        method as DescMethodStreaming,
        cancel.signal,
        timeoutMs,
        header,
        outbox,
      );
      headers = stockMetadata(response.header);
      let count = 0;
      for await (const msg of response.message) {
        emit({
          id,
          message: toJson(method.output as DescMessage, msg),
        });
        if (++count === 1) {
          for (const nested of step.after_first ?? [])
            await this.runStep(nested);
        }
        // A slow reader: the stream is not pulled meanwhile, so node:http2
        // stops reading it and withholds the stream's WINDOW_UPDATEs.
        if (step.read_pause_ms && step.read_pause_ms > 0)
          await sleep(step.read_pause_ms);
        if (lockStep) {
          const next = pending.shift();
          if (next) outbox.send(next);
          else outbox.close();
        }
      }
      trailers = stockMetadata(response.trailer);
    } catch (e) {
      if (e instanceof UsageError) throw e;
      const err = ConnectError.from(e);
      // Like grpc-go's client: a stream reset (CANCELLED) once the deadline has passed is DEADLINE_EXCEEDED.
      const late =
        timeoutMs !== undefined && performance.now() - start >= timeoutMs;
      const code =
        err.code === Code.Canceled && late ? Code.DeadlineExceeded : err.code;
      status = { code: codeName(code), message: err.rawMessage };
      details = errorDetails(err);
      // Without a response the error came in a trailers-only response: its metadata are the trailers.
      trailers = stockMetadata(response ? response.trailer : err.metadata);
    } finally {
      clearTimeout(cancelTimer);
      outbox.close();
    }
    // The grpc-encoding of the response headers, by which Connect picked the decompressor.
    const encoding = response?.header.get("grpc-encoding");
    emit({
      id,
      status,
      headers,
      trailers,
      elapsed_ms: performance.now() - start,
      response_encoding: encoding ? encoding.toLowerCase() : "identity",
      details,
    });
  }
}

async function stdinLines(): Promise<string[]> {
  const lines: string[] = [];
  for await (const line of createInterface({
    input: process.stdin,
    crlfDelay: Infinity,
  })) {
    if (line.trim()) lines.push(line);
  }
  return lines;
}

function jsonLine(line: string): JsonValue {
  try {
    return JSON.parse(line) as JsonValue;
  } catch (e) {
    throw new UsageError(
      `invalid JSON line ${JSON.stringify(line)}: ${(e as Error).message}`,
    );
  }
}

/** The step a single command stands for. */
async function commandStep(command: string[]): Promise<Step | undefined> {
  const [name, ...rest] = command;
  const b64 = (s: string) => Buffer.from(s, "utf8").toString("base64");
  const want = (n: number) => {
    if (rest.length !== n)
      throw new UsageError(`${name} takes ${n} argument(s)`);
  };
  switch (name) {
    case "get":
      want(1);
      return { id: "get", method: "Get", request: { key: rest[0] } };
    case "put":
      want(2);
      return {
        id: "put",
        method: "Put",
        request: { key: rest[0], value: b64(rest[1]) },
      };
    case "monitor": {
      let pattern: string | undefined;
      let maxEvents = 0;
      let includeExisting = false;
      for (let i = 0; i < rest.length; i++) {
        const a = rest[i];
        if (a === "--include-existing") includeExisting = true;
        else if (a === "--max-events" || a.startsWith("--max-events=")) {
          const v = a.includes("=") ? a.slice(a.indexOf("=") + 1) : rest[++i];
          if (v === undefined || !/^-?\d+$/.test(v))
            throw new UsageError(`bad --max-events ${v}`);
          maxEvents = Number(v);
        } else if (a.startsWith("--") || pattern !== undefined)
          throw new UsageError(`unexpected monitor argument ${a}`);
        else pattern = a;
      }
      if (pattern === undefined) throw new UsageError("monitor needs PATTERN");
      return {
        id: "monitor",
        method: "Monitor",
        request: { pattern, maxEvents, includeExisting },
      };
    }
    case "batch": {
      const requests =
        rest.length === 0
          ? (await stdinLines()).map(jsonLine)
          : rest.map((item) => {
              const eq = item.indexOf("=");
              if (eq < 0)
                throw new UsageError(
                  `batch expects KEY=VALUE, got ${JSON.stringify(item)}`,
                );
              return { key: item.slice(0, eq), value: b64(item.slice(eq + 1)) };
            });
      return { id: "batch", method: "Batch", requests };
    }
    case "trade":
      want(0);
      return {
        id: "trade",
        method: "Trade",
        requests: (await stdinLines()).map(jsonLine),
      };
    case "inventory":
      want(0);
      return { id: "inventory", method: "Inventory" };
    case "script":
      want(0);
      return undefined;
    default:
      throw new UsageError(`unknown command ${JSON.stringify(name)}`);
  }
}

async function main(): Promise<number> {
  let args: Args;
  let step: Step | undefined;
  try {
    args = parseArgs(process.argv.slice(2));
    step = await commandStep(args.command);
  } catch (e) {
    process.stderr.write(`error: ${(e as Error).message}\n`);
    return e instanceof UsageError ? 2 : 1;
  }
  let runner: Runner;
  try {
    runner = new Runner(args);
  } catch (e) {
    process.stderr.write(`error: ${(e as Error).message}\n`);
    return 1;
  }
  try {
    if (step) {
      await runner.runStep(step);
    } else {
      for await (const line of createInterface({
        input: process.stdin,
        crlfDelay: Infinity,
      })) {
        if (line.trim()) await runner.runStep(parseStep(line));
      }
    }
  } catch (e) {
    process.stderr.write(`error: ${(e as Error).message}\n`);
    return e instanceof UsageError ? 2 : 1;
  }
  return 0;
}

// process.exit() drops stdout writes still queued on a pipe: exit once they are flushed.
main().then((code) => process.stdout.write("", () => process.exit(code)));
