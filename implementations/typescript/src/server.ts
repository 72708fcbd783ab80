// The stock.v1.Stock server (CONTRACT.md), which also serves the legacy
// proto.KV service over the same store: Connect for Node speaking the gRPC
// protocol over node:http2, plaintext or TLS (mtls requires client certs).
import * as http2 from "node:http2";
import { readFileSync } from "node:fs";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import {
  Code,
  ConnectError,
  decodeBinaryHeader,
  encodeBinaryHeader,
  type ConnectRouter,
  type HandlerContext,
} from "@connectrpc/connect";
import { compressionGzip, connectNodeAdapter } from "@connectrpc/connect-node";
import {
  Side,
  Stock,
  type TradeFill,
  type TradeOrder,
} from "../gen/stock_pb.js";
import {
  ErrorInfoSchema,
  file_google_rpc_error_details,
} from "../gen/google/rpc/error_details_pb.js";
import { file_google_rpc_status } from "../gen/google/rpc/status_pb.js";
import {
  Health,
  HealthCheckResponse_ServingStatus as Serving,
} from "../gen/grpc/health/v1/health_pb.js";
// kv.proto reuses stock.proto's message names: only its service is imported.
import { KV } from "../gen/kv_pb.js";
import { codeFromName, codeName } from "./codes.js";
import { reflection } from "./reflection.js";
import { badRequest, Store, validateKey, validateValue } from "./store.js";

const SPECIAL_MESSAGE =
  "\t\ntest with whitespace\r\nand Unicode BMP ☺ and non-BMP 😈\t\n";

function usage(message: string): never {
  process.stderr.write(`error: ${message}\n`);
  process.exit(2);
}

function fatal(message: string): never {
  process.stderr.write(`error: ${message}\n`);
  process.exit(1);
}

function parseArgs(argv: string[]) {
  const opts = {
    port: -1,
    host: "127.0.0.1",
    tlsMode: "none",
    certFile: "",
    keyFile: "",
    caFile: "",
  };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] =
      argv[i].startsWith("--") && argv[i].includes("=")
        ? argv[i].split(/=(.*)/s, 2)
        : [argv[i], undefined];
    const value = () => inline ?? argv[++i] ?? usage(`${flag} needs a value`);
    switch (flag) {
      case "--port":
        opts.port = Number(value());
        break;
      case "--host":
        opts.host = value();
        break;
      case "--tls-mode":
        opts.tlsMode = value();
        break;
      case "--cert-file":
        opts.certFile = value();
        break;
      case "--key-file":
        opts.keyFile = value();
        break;
      case "--ca-file":
        opts.caFile = value();
        break;
      default:
        usage(`unknown argument ${JSON.stringify(argv[i])}`);
    }
  }
  if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535)
    usage("--port N is required");
  if (!["none", "server", "mtls"].includes(opts.tlsMode))
    usage(`bad --tls-mode ${opts.tlsMode}`);
  return opts;
}

/** The stack name and version, read from the installed package at run time. */
function stackName(): string {
  try {
    const url = new URL(
      "../../node_modules/@connectrpc/connect-node/package.json",
      import.meta.url,
    );
    const pkg = JSON.parse(readFileSync(url, "utf8")) as {
      name: string;
      version: string;
    };
    return `${pkg.name} ${pkg.version}`;
  } catch {
    return "@connectrpc/connect-node";
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

interface Hooks {
  fail?: ConnectError;
  failAfter: number;
  repeatValue: number;
}

/** The call is over (cancelled by its client, deadline passed, shutdown): stop, apply nothing. */
function stopIfOver(ctx: HandlerContext): void {
  if (ctx.signal.aborted) throw ConnectError.from(ctx.signal.reason);
}

/** Applies the x-stock-* hooks in contract order; unary calls fail here at once. */
async function enter(
  ctx: HandlerContext,
  unary: boolean,
  store: Store,
): Promise<Hooks> {
  const h = ctx.requestHeader;
  // The time left as the stack gives it when the handler starts.
  const left = ctx.timeoutMs();
  const both = (key: string, value: string) => {
    ctx.responseHeader.set(key, value);
    ctx.responseTrailer.set(key, value);
  };
  const echo = h.get("x-stock-echo");
  if (echo !== null) both("x-stock-echo", echo);
  const echoBin = h.get("x-stock-echo-bin");
  if (echoBin !== null)
    both("x-stock-echo-bin", encodeBinaryHeader(decodeBinaryHeader(echoBin)));
  const echoHeader = h.get("x-stock-echo-header");
  if (echoHeader !== null)
    ctx.responseHeader.set("x-stock-echo-header", echoHeader);
  const echoTrailer = h.get("x-stock-echo-trailer");
  if (echoTrailer !== null)
    ctx.responseTrailer.set("x-stock-echo-trailer", echoTrailer);
  // x-stock-compress is applied before Connect negotiates, in the HTTP handler (main).
  if (h.get("x-stock-report-encoding") === "true") {
    const encoding = h.get("grpc-encoding");
    ctx.responseTrailer.set(
      "x-stock-request-encoding",
      encoding === null || encoding === "" ? "identity" : encoding,
    );
  }
  if (h.get("x-stock-report-deadline") === "true") {
    ctx.responseTrailer.set(
      "x-stock-deadline-ms",
      left === undefined ? "none" : String(Math.floor(left)),
    );
  }
  const number = (key: string): number | undefined => {
    const v = h.get(key);
    if (v === null) return undefined;
    if (!/^\s*\d+\s*$/.test(v))
      throw new ConnectError(
        `${key} must be a number, got ${JSON.stringify(v)}`,
        Code.InvalidArgument,
      );
    return Number(v);
  };
  const delay = number("x-stock-delay-ms");
  const failAfter = number("x-stock-fail-after") ?? 0;
  const repeatValue = Math.max(number("x-stock-repeat-value") ?? 1, 1);
  const special = h.get("x-stock-fail-special") === "true";
  const failName = h.get("x-stock-fail");
  let code: number | undefined;
  if (failName !== null) {
    code = codeFromName(failName);
    if (code === undefined || code === 0)
      throw new ConnectError(
        `x-stock-fail: unknown code ${JSON.stringify(failName)}`,
        Code.InvalidArgument,
      );
  } else if (special) {
    code = Code.Unknown;
  }
  let fail: ConnectError | undefined;
  if (code !== undefined) {
    const messageBin = h.get("x-stock-fail-message-bin");
    const message = special
      ? SPECIAL_MESSAGE
      : messageBin !== null
        ? new TextDecoder().decode(decodeBinaryHeader(messageBin))
        : (h.get("x-stock-fail-message") ?? `forced ${codeName(code)}`);
    // A forced failure carries google.rpc.ErrorInfo{FORCED, stock.v1}.
    fail = new ConnectError(message, code as Code, undefined, [
      {
        desc: ErrorInfoSchema,
        value: { reason: "FORCED", domain: "stock.v1" },
      },
    ]);
  }
  if (delay !== undefined) await sleep(delay, ctx.signal);
  stopIfOver(ctx);
  const prefix = h.get("x-stock-report-watchers");
  if (prefix !== null)
    ctx.responseTrailer.set("x-stock-watchers", String(store.watching(prefix)));
  if (unary && fail) throw fail;
  return { fail, failAfter, repeatValue };
}

/** A validated read shared by Stock.Get and KV.Get: NOT_FOUND when missing. */
function lookup(store: Store, key: string) {
  validateKey(key);
  const e = store.get(key);
  if (!e)
    throw new ConnectError(
      `key ${JSON.stringify(key)} not found`,
      Code.NotFound,
    );
  return e;
}

/** A validated write shared by Stock.Put and KV.Put (bumps the version, notifies Monitors). */
function write(store: Store, key: string, value: Uint8Array): void {
  validateKey(key);
  validateValue(value);
  store.put(key, value);
}

function stockRoutes(store: Store, stack: string) {
  return (router: ConnectRouter) => {
    // Audit is left out on purpose: Connect answers it with UNIMPLEMENTED.
    router.service(Stock, {
      async get(req, ctx) {
        const { repeatValue } = await enter(ctx, true, store);
        const e = lookup(store, req.key);
        // x-stock-repeat-value: the value that many times over (a response past 4 MiB).
        const value = new Uint8Array(e.value.length * repeatValue);
        for (let i = 0; i < repeatValue; i++)
          value.set(e.value, i * e.value.length);
        return { value, version: e.version };
      },
      async put(req, ctx) {
        await enter(ctx, true, store);
        write(store, req.key, req.value);
        return {};
      },
      async *monitor(req, ctx) {
        const hooks = await enter(ctx, false, store);
        if (req.pattern === "")
          throw badRequest("pattern", "pattern must not be empty");
        if (req.maxEvents < 0)
          throw badRequest("max_events", "max_events must not be negative");
        const watcher = store.watch(req.pattern, req.includeExisting);
        try {
          for (let sent = 0; ; sent++) {
            if (hooks.fail && sent === hooks.failAfter) throw hooks.fail;
            if (req.maxEvents > 0 && sent === req.maxEvents) return;
            yield await watcher.next(ctx.signal);
          }
        } finally {
          store.unwatch(watcher);
        }
      },
      async batch(items, ctx) {
        const hooks = await enter(ctx, false, store);
        const all = [];
        for await (const item of items) all.push(item);
        // A request stream that ended in a cancellation or deadline is no half-close.
        stopIfOver(ctx);
        if (hooks.fail) throw hooks.fail;
        return store.batch(all);
      },
      async *trade(orders: AsyncIterable<TradeOrder>, ctx) {
        const hooks = await enter(ctx, false, store);
        const positions = new Map<string, bigint>();
        const it = orders[Symbol.asyncIterator]();
        for (let sequence = 1n; ; sequence++) {
          if (hooks.fail && sequence - 1n === BigInt(hooks.failAfter))
            throw hooks.fail;
          const next = await it.next();
          if (next.done) return;
          const o = next.value;
          if (o.quantity <= 0n) {
            throw badRequest(
              "quantity",
              `order ${JSON.stringify(o.orderId)}: quantity must be > 0, got ${o.quantity}`,
            );
          }
          const position =
            (positions.get(o.symbol) ?? 0n) +
            (o.side === Side.BUY ? o.quantity : -o.quantity);
          positions.set(o.symbol, position);
          const fill: Omit<TradeFill, "$typeName" | "$unknown"> = {
            orderId: o.orderId,
            symbol: o.symbol,
            side: o.side,
            quantity: o.quantity,
            priceCents: o.priceCents,
            sequence,
            netPosition: position,
          };
          yield fill;
        }
      },
      async inventory(_req, ctx) {
        await enter(ctx, true, store);
        return { ...store.totals(), language: "typescript", stack };
      },
    });
    // proto.KV, the legacy go-plugin kvproto service, over the same store
    // (the test hooks are Stock-only).
    router.service(KV, {
      get(req) {
        return { value: lookup(store, req.key).value };
      },
      put(req) {
        write(store, req.key, req.value);
        return {};
      },
    });
    // grpc.health.v1.Health, from the standard health.proto.
    const serving = new Map([
      ["", Serving.SERVING],
      ["stock.v1.Stock", Serving.SERVING],
      ["proto.KV", Serving.SERVING],
    ]);
    router.service(Health, {
      check(req) {
        const status = serving.get(req.service);
        if (status === undefined)
          throw new ConnectError(
            `unknown service ${JSON.stringify(req.service)}`,
            Code.NotFound,
          );
        return { status };
      },
      list() {
        return {
          statuses: Object.fromEntries(
            [...serving].map(([k, status]) => [k, { status }]),
          ),
        };
      },
      async *watch(req, ctx) {
        yield { status: serving.get(req.service) ?? Serving.SERVICE_UNKNOWN };
        // Statuses never change: hold the stream open until it ends.
        if (!ctx.signal.aborted) {
          await new Promise((resolve) =>
            ctx.signal.addEventListener("abort", resolve, { once: true }),
          );
        }
      },
    });
    // Server reflection (v1 and v1alpha) of all the above, and of the rich
    // error details, so that grpcurl can show them.
    reflection(router, [file_google_rpc_status, file_google_rpc_error_details]);
  };
}

/** Any path no service serves: a trailers-only gRPC UNIMPLEMENTED (status in a HEADERS frame that ends the stream). */
function unimplemented(req: Http2ServerRequest, res: Http2ServerResponse) {
  const message = `unknown service or method ${req.url}`;
  res.stream.respond(
    {
      ":status": 200,
      "content-type": "application/grpc",
      "grpc-status": String(Code.Unimplemented),
      "grpc-message": encodeURIComponent(message),
    },
    { endStream: true },
  );
}

function main() {
  const opts = parseArgs(process.argv.slice(2));
  const read = (file: string, flag: string): Buffer => {
    if (!file) fatal(`--${flag} is required for --tls-mode ${opts.tlsMode}`);
    try {
      return readFileSync(file);
    } catch (e) {
      fatal(`failed to read --${flag} ${file}: ${(e as Error).message}`);
    }
  };
  const shutdown = new AbortController();
  const adapter = connectNodeAdapter({
    routes: stockRoutes(new Store(), stackName()),
    grpc: true,
    grpcWeb: false,
    connect: false,
    acceptCompression: [compressionGzip],
    // Every response message of a call that negotiated gzip is compressed.
    compressMinBytes: 0,
    readMaxBytes: 4 << 20,
    // No send cap (Connect's default, 4 GiB): a response may pass 4 MiB.
    shutdownSignal: shutdown.signal,
    fallback: unimplemented as never,
  });
  const handler = (req: Http2ServerRequest, res: Http2ServerResponse) => {
    // Node's own http2 client sends an IPv6 :authority without brackets
    // ("::1:PORT"), on which Connect's URL parsing would throw: bracket it.
    const authority = req.authority;
    if (
      authority &&
      !authority.startsWith("[") &&
      authority.split(":").length > 2
    ) {
      const i = authority.lastIndexOf(":");
      Object.defineProperty(req, "authority", {
        value: `[${authority.slice(0, i)}]:${authority.slice(i + 1)}`,
      });
    }
    // x-stock-compress: gzip, per-call response compression. Connect chooses a
    // call's response compression from grpc-accept-encoding before any handler
    // runs and has no per-call switch, so a call that did not ask for gzip is
    // served as if its client accepted no compression.
    if (req.headers["x-stock-compress"] !== "gzip")
      req.headers["grpc-accept-encoding"] = "identity";
    try {
      adapter(req, res);
    } catch (e) {
      // Never let one malformed request take the server down.
      process.stderr.write(`request failed: ${(e as Error).message}\n`);
      if (!res.headersSent) {
        res.stream.respond(
          {
            ":status": 200,
            "content-type": "application/grpc",
            "grpc-status": String(Code.Internal),
            "grpc-message": encodeURIComponent((e as Error).message),
          },
          { endStream: true },
        );
      }
    }
  };
  let server: http2.Http2Server | http2.Http2SecureServer;
  try {
    server =
      opts.tlsMode === "none"
        ? http2.createServer({}, handler)
        : http2.createSecureServer(
            {
              cert: read(opts.certFile, "cert-file"),
              key: read(opts.keyFile, "key-file"),
              ...(opts.tlsMode === "mtls"
                ? {
                    ca: read(opts.caFile, "ca-file"),
                    requestCert: true,
                    rejectUnauthorized: true,
                  }
                : {}),
            },
            handler,
          );
  } catch (e) {
    fatal(`invalid TLS configuration: ${(e as Error).message}`);
  }
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (s: http2.ServerHttp2Session) => {
    sessions.add(s);
    s.on("close", () => sessions.delete(s));
  });
  server.on("error", (e) =>
    fatal(`failed to bind ${opts.host}:${opts.port}: ${e.message}`),
  );
  server.listen(opts.port, opts.host, () => {
    process.stdout.write(`listening on ${opts.host}:${opts.port}\n`);
  });

  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    shutdown.abort(
      new ConnectError("server is shutting down", Code.Unavailable),
    ); // ends open streams
    server.close(() => process.exit(0));
    for (const s of sessions) s.close();
    setTimeout(() => process.exit(0), 900).unref();
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  process.stdin.on("end", stop);
  process.stdin.on("error", stop);
  process.stdin.resume();
}

main();
