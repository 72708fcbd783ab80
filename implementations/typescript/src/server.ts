// The stock.v1.Stock server (CONTRACT.md), which also serves the legacy proto.KV service over the same store:
// Connect for Node speaking the gRPC protocol over node:http2, plaintext or TLS (mtls requires client certificates).
import * as http2 from "node:http2";
import { readFileSync } from "node:fs";
import { Code, ConnectError, type ConnectRouter, type ServiceImpl } from "@connectrpc/connect";
import { compressionGzip, connectNodeAdapter } from "@connectrpc/connect-node";
import { Side, Stock } from "../gen/stock_pb.js";
import { file_google_rpc_error_details } from "../gen/google/rpc/error_details_pb.js";
import { file_google_rpc_status } from "../gen/google/rpc/status_pb.js";
import { Health, HealthCheckResponse_ServingStatus as Serving } from "../gen/grpc/health/v1/health_pb.js";
import { KV } from "../gen/kv_pb.js"; // kv.proto reuses stock.proto's message names: only its service is imported
import { hooksInterceptor } from "./hooks.js";
import { reflection } from "./reflection.js";
import { badRequest, Store } from "./store.js";

type Options = ReturnType<typeof parseArgs>;

const store = new Store();

function main(): void {
  const stop = serve(parseArgs(process.argv.slice(2)));
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  process.stdin.on("end", stop);
  process.stdin.on("error", stop);
  process.stdin.resume();
}

function die(message: string, exitCode = 1): never {
  process.stderr.write(`error: ${message}\n`);
  process.exit(exitCode);
}

function parseArgs(argv: string[]) {
  const opts = { port: -1, host: "127.0.0.1", tlsMode: "none", certFile: "", keyFile: "", caFile: "" };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i].includes("=") ? argv[i].split(/=(.*)/s, 2) : [argv[i], undefined];
    // --tls-mode sets tlsMode
    const field = flag.slice(2).replace(/-(.)/g, (_, c: string) => c.toUpperCase()) as keyof typeof opts;
    if (!flag.startsWith("--") || !Object.hasOwn(opts, field)) die(`unknown argument ${JSON.stringify(argv[i])}`, 2);
    const value = inline ?? argv[++i] ?? die(`${flag} needs a value`, 2);
    if (field === "port") opts.port = /^\d+$/.test(value) ? Number(value) : -1;
    else opts[field] = value;
  }
  if (opts.port < 0 || opts.port > 65535) die("--port N is required", 2);
  if (!["none", "server", "mtls"].includes(opts.tlsMode)) die(`bad --tls-mode ${opts.tlsMode}`, 2);
  return opts;
}

/** Serves until the returned stop function is called (it ends open streams and exits). */
function serve(opts: Options): () => void {
  const serving = new Map(["", "stock.v1.Stock", "proto.KV"].map((name) => [name, Serving.SERVING]));
  const routes = (router: ConnectRouter) => {
    router.service(Stock, stock); // Audit is left out: Connect answers it UNIMPLEMENTED
    router.service(KV, kv);
    router.service(Health, {
      check(req) {
        const status = serving.get(req.service);
        if (status === undefined) throw new ConnectError(`unknown service ${req.service}`, Code.NotFound);
        return { status };
      },
      list() {
        return { statuses: Object.fromEntries([...serving].map(([k, status]) => [k, { status }])) };
      },
      async *watch(req, ctx) {
        yield { status: serving.get(req.service) ?? Serving.SERVICE_UNKNOWN };
        // Statuses never change: hold the stream open until it ends.
        if (!ctx.signal.aborted) await new Promise((resolve) => ctx.signal.addEventListener("abort", resolve));
      },
    });
    // Server reflection (v1 and v1alpha) of all the above and of the rich error details, for grpcurl.
    reflection(router, [file_google_rpc_status, file_google_rpc_error_details]);
  };
  const shutdown = new AbortController();
  const adapter = connectNodeAdapter({
    routes,
    interceptors: [hooksInterceptor(store)],
    grpc: true,
    grpcWeb: false,
    connect: false,
    acceptCompression: [compressionGzip],
    compressMinBytes: 0, // every response message of a call that negotiated gzip is compressed
    readMaxBytes: 4 << 20, // no send cap (Connect's default, 4 GiB): a response may pass 4 MiB
    shutdownSignal: shutdown.signal,
  });
  const handler = (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => {
    // Node's own http2 client sends an IPv6 :authority without brackets ("::1:PORT"), which Connect cannot parse.
    const authority = req.authority;
    if (authority && !authority.startsWith("[") && authority.split(":").length > 2) {
      const i = authority.lastIndexOf(":");
      Object.defineProperty(req, "authority", { value: `[${authority.slice(0, i)}]:${authority.slice(i + 1)}` });
    }
    // x-stock-compress: gzip (per-call response compression). Connect picks a call's response compression from
    // grpc-accept-encoding before any interceptor runs, so a call that did not ask for gzip accepts none.
    if (req.headers["x-stock-compress"] !== "gzip") req.headers["grpc-accept-encoding"] = "identity";
    adapter(req, res);
  };
  let server: http2.Http2Server | http2.Http2SecureServer;
  try {
    const tls = opts.tlsMode !== "none" && {
      cert: readFileSync(opts.certFile),
      key: readFileSync(opts.keyFile),
      // mtls: requires a client certificate that verifies against the CA (rejectUnauthorized is on by default).
      ...(opts.tlsMode === "mtls" ? { ca: readFileSync(opts.caFile), requestCert: true } : {}),
    };
    const settings = { settings: { maxHeaderListSize: 16 << 10 } }; // the contract's header-list limit
    server = tls ? http2.createSecureServer({ ...tls, ...settings }, handler) : http2.createServer(settings, handler);
  } catch (e) {
    die(`cannot load the certificates: ${(e as Error).message}`); // names the file that is missing
  }
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (s: http2.ServerHttp2Session) => {
    sessions.add(s);
    s.on("close", () => sessions.delete(s));
  });
  server.on("error", (e) => die(`failed to bind ${opts.host}:${opts.port}: ${e.message}`));
  server.listen(opts.port, opts.host, () => process.stdout.write(`listening on ${opts.host}:${opts.port}\n`));
  return () => {
    shutdown.abort(new ConnectError("server is shutting down", Code.Unavailable)); // ends open streams
    server.close(() => process.exit(0));
    for (const s of sessions) s.close();
    setTimeout(() => process.exit(0), 900).unref();
  };
}

// The hooks (delay, forced failures, echoes) are applied around these methods by hooksInterceptor.
const stock: Partial<ServiceImpl<typeof Stock>> = {
  get(req) {
    return store.get(req.key);
  },

  put(req) {
    store.put(req.key, req.value);
    return {};
  },

  async *monitor(req, ctx) {
    if (req.pattern === "") throw badRequest("pattern", "pattern must not be empty");
    if (req.maxEvents < 0) throw badRequest("max_events", "max_events must not be negative");
    const watcher = store.watch(req.pattern, req.includeExisting);
    try {
      for (let sent = 0; req.maxEvents === 0 || sent < req.maxEvents; sent++) yield await watcher.next(ctx.signal);
    } finally {
      store.unwatch(watcher); // however the stream ends
    }
  },

  async batch(items, ctx) {
    const all = [];
    for await (const item of items) all.push(item);
    // A request stream that ended in a cancellation or deadline is no half-close: nothing is applied.
    ctx.signal.throwIfAborted();
    return store.batch(all);
  },

  async *trade(orders) {
    const positions = new Map<string, bigint>();
    let sequence = 0n;
    for await (const o of orders) {
      if (o.quantity <= 0n)
        throw badRequest("quantity", `order ${JSON.stringify(o.orderId)}: quantity must be > 0, got ${o.quantity}`);
      const netPosition = (positions.get(o.symbol) ?? 0n) + (o.side === Side.BUY ? o.quantity : -o.quantity);
      positions.set(o.symbol, netPosition);
      const { orderId, symbol, side, quantity, priceCents } = o;
      yield { orderId, symbol, side, quantity, priceCents, sequence: ++sequence, netPosition };
    }
  },

  inventory(_req, ctx) {
    const pkg = new URL("../../node_modules/@connectrpc/connect-node/package.json", import.meta.url);
    const { name, version } = JSON.parse(readFileSync(pkg, "utf8")) as { name: string; version: string };
    const totals = store.totals(ctx.requestHeader.get("x-stock-count-prefix") ?? ""); // x-stock-count-prefix: PREFIX
    return { ...totals, language: "typescript", stack: `${name} ${version}` };
  },
};

// proto.KV, the legacy go-plugin kvproto service, over the same store (the hooks are Stock-only).
const kv: Partial<ServiceImpl<typeof KV>> = {
  get(req) {
    return { value: store.get(req.key).value };
  },

  put(req) {
    store.put(req.key, req.value);
    return {};
  },
};

main();
