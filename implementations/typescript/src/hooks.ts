// The x-stock-* test hooks (CONTRACT.md), applied to every stock.v1.Stock call by a Connect interceptor.
// x-stock-compress is the one hook applied before Connect, in the server's HTTP handler: Connect negotiates the
// response compression before any interceptor runs.
import { setTimeout as sleep } from "node:timers/promises";
import { Code, ConnectError, decodeBinaryHeader, type Interceptor } from "@connectrpc/connect";
import { parseTimeout } from "@connectrpc/connect/protocol-grpc";
import { ErrorInfoSchema } from "../gen/google/rpc/error_details_pb.js";
import { Stock, type GetResponse } from "../gen/stock_pb.js";
import type { Store } from "./store.js";

const SPECIAL_MESSAGE = "\t\ntest with whitespace\r\nand Unicode BMP ☺ and non-BMP 😈\t\n";

interface Hooks {
  header: Headers; // sent as response headers
  trailer: Headers; // sent as response trailers, whatever the outcome
  delayMs: number;
  fail?: ConnectError;
  failAfter: number;
  repeatValue: number;
  watchersPrefix: string | null;
}

/** The hooks of a call's request metadata; a bad number or code name is INVALID_ARGUMENT. */
export function readHooks(h: Headers): Hooks {
  const header = new Headers();
  const trailer = new Headers();
  for (const key of ["x-stock-echo", "x-stock-echo-bin", "x-stock-echo-header", "x-stock-echo-trailer"]) {
    const value = h.get(key);
    if (value === null) continue;
    if (key !== "x-stock-echo-trailer") header.set(key, value);
    if (key !== "x-stock-echo-header") trailer.set(key, value);
  }
  if (h.get("x-stock-report-encoding") === "true") {
    const encoding = h.get("grpc-encoding");
    trailer.set("x-stock-request-encoding", encoding || "identity");
  }
  if (h.get("x-stock-report-deadline") === "true") {
    // The time left as Connect's handler reads it from grpc-timeout when the call starts, before the delay.
    const { timeoutMs } = parseTimeout(h.get("grpc-timeout"), Number.MAX_SAFE_INTEGER);
    trailer.set("x-stock-deadline-ms", timeoutMs === undefined ? "none" : String(Math.floor(timeoutMs)));
  }
  const number = (key: string): number | undefined => {
    const v = h.get(key);
    if (v !== null && !/^\s*\d+\s*$/.test(v))
      throw new ConnectError(`${key} must be a number, got ${JSON.stringify(v)}`, Code.InvalidArgument);
    return v === null ? undefined : Number(v);
  };
  try {
    return {
      header,
      trailer,
      delayMs: number("x-stock-delay-ms") ?? 0,
      fail: forcedStatus(h),
      failAfter: number("x-stock-fail-after") ?? 0,
      repeatValue: number("x-stock-repeat-value") ?? 1,
      watchersPrefix: h.get("x-stock-report-watchers"),
    };
  } catch (e) {
    // Refused for a bad hook: the echoes still go back, in the trailers.
    const err = ConnectError.from(e);
    trailer.forEach((v, k) => err.metadata.set(k, v));
    throw err;
  }
}

/**
 * The hooks on every Stock call: echoes and report-* trailers, the delay (after which a call that is over stops
 * there), then the forced failure: unary calls and N = 0 at once, Batch after reading its whole request stream,
 * Monitor and Trade after their first N response messages. x-stock-repeat-value multiplies Get's value.
 */
export function hooksInterceptor(store: Store): Interceptor {
  return (next) => async (req) => {
    if (req.service.typeName !== Stock.typeName) return next(req);
    const hooks = readHooks(req.header);
    const kind = req.method.methodKind;
    let res;
    try {
      await sleep(hooks.delayMs, undefined, { signal: req.signal }).catch(() => undefined);
      if (req.signal.aborted) throw ConnectError.from(req.signal.reason);
      if (hooks.watchersPrefix !== null)
        hooks.trailer.set("x-stock-watchers", String(store.watchers(hooks.watchersPrefix)));
      if (hooks.fail && (kind === "unary" || kind === "client_streaming" || hooks.failAfter === 0)) {
        if (req.stream && kind === "client_streaming") for await (const _ of req.message);
        if (req.signal.aborted) throw ConnectError.from(req.signal.reason);
        throw hooks.fail;
      }
      res = await next(req);
    } catch (e) {
      // Failed before any response: the trailers carry the echoes (a trailers-only response).
      const err = ConnectError.from(e);
      hooks.trailer.forEach((v, k) => err.metadata.set(k, v));
      throw err;
    }
    hooks.header.forEach((v, k) => res.header.set(k, v));
    hooks.trailer.forEach((v, k) => res.trailer.set(k, v));
    if (!res.stream && req.method === Stock.method.get && hooks.repeatValue > 1) {
      const message = res.message as GetResponse;
      message.value = Buffer.concat(Array(hooks.repeatValue).fill(message.value));
    }
    if (!res.stream || !hooks.fail) return res;
    const { fail, failAfter } = hooks;
    const messages = res.message;
    async function* failingAfter() {
      let sent = 0;
      for await (const m of messages) {
        yield m;
        if (++sent === failAfter) throw fail;
      }
    }
    return { ...res, message: failingAfter() };
  };
}

/** The x-stock-fail status (code by its canonical name in Connect's Code enum) with its google.rpc.ErrorInfo. */
export function forcedStatus(h: Headers): ConnectError | undefined {
  const name = h.get("x-stock-fail");
  const special = h.get("x-stock-fail-special") === "true";
  if (name === null && !special) return undefined;
  // Connect's enum spells CANCELLED the American way and its names in camel case: INVALID_ARGUMENT is InvalidArgument.
  // Only the canonical upper-case names: "aborted" is no code name.
  const camel = name?.toLowerCase().replace(/(?:^|_)(.)/g, (_, c: string) => c.toUpperCase());
  const canonical = name === null || (/^[A-Z_]+$/.test(name) && name !== "CANCELED");
  const code = name === null ? Code.Unknown : name === "CANCELLED" ? Code.Canceled : Code[camel as keyof typeof Code];
  if (code === undefined || !canonical)
    throw new ConnectError(`x-stock-fail: unknown code ${JSON.stringify(name)}`, Code.InvalidArgument);
  const messageBin = h.get("x-stock-fail-message-bin");
  const message = special
    ? SPECIAL_MESSAGE
    : messageBin !== null
      ? new TextDecoder().decode(decodeBinaryHeader(messageBin))
      : (h.get("x-stock-fail-message") ?? `forced ${name}`);
  const info = { desc: ErrorInfoSchema, value: { reason: "FORCED", domain: "stock.v1" } };
  return new ConnectError(message, code, undefined, [info]);
}
