"use strict";
// The x-stock-* test hooks (see ../../../CONTRACT.md, "Test hooks"), applied to every stock.v1.Stock
// call by a grpc-js server interceptor. x-stock-compress is not applied: grpc-js servers cannot
// compress responses (BaseServerInterceptingCall.serializeMessage always writes compressed-flag 0).
const grpc = require("@grpc/grpc-js");
const { statusError } = require("./proto");
const { store } = require("./store");

const SPECIAL_MESSAGE = "\t\ntest with whitespace\r\nand Unicode BMP ☺ and non-BMP 😈\t\n";

/**
 * Request metadata → hooks: the headers and trailers to send, the delay, the forced failure and
 * after how many response messages it comes. A bad value is INVALID_ARGUMENT, at once.
 * `deadline` and `encoding` are what the stack tells when the call starts (before the delay).
 */
function readHooks(metadata, deadline, encoding) {
  const text = (key) => metadata.get(key).find((value) => typeof value === "string");
  const bytes = (key) => metadata.get(key).find((value) => Buffer.isBuffer(value));
  const headers = new grpc.Metadata();
  const trailers = new grpc.Metadata();
  const echo = { "x-stock-echo": text("x-stock-echo"), "x-stock-echo-bin": bytes("x-stock-echo-bin") };
  for (const [key, value] of Object.entries(echo)) {
    if (value === undefined) continue;
    headers.set(key, value);
    trailers.set(key, value);
  }
  const echoHeader = text("x-stock-echo-header");
  if (echoHeader !== undefined) headers.set("x-stock-echo-header", echoHeader);
  const echoTrailer = text("x-stock-echo-trailer");
  if (echoTrailer !== undefined) trailers.set("x-stock-echo-trailer", echoTrailer);
  if (text("x-stock-report-encoding") === "true") {
    trailers.set("x-stock-request-encoding", encoding === "gzip" ? "gzip" : "identity");
  }
  if (text("x-stock-report-deadline") === "true") {
    const left = Number.isFinite(deadline) ? String(Math.max(0, Math.floor(deadline - Date.now()))) : "none";
    trailers.set("x-stock-deadline-ms", left);
  }
  const hooks = { headers, trailers, delay: 0, fail: null, failAfter: 0 };
  hooks.watchersPrefix = text("x-stock-report-watchers");
  const number = (key) => {
    const value = text(key)?.trim() ?? "0";
    if (!/^\d+$/.test(value)) {
      throw statusError(grpc.status.INVALID_ARGUMENT, `${key} must be a number, got ${JSON.stringify(value)}`);
    }
    return Number(value);
  };
  try {
    hooks.delay = number("x-stock-delay-ms");
    hooks.failAfter = number("x-stock-fail-after");
    number("x-stock-repeat-value"); // used by Get
    hooks.fail = forcedStatus(text, bytes);
  } catch (e) {
    Object.assign(hooks, { delay: 0, fail: e, failAfter: 0 });
  }
  return hooks;
}

/**
 * The server interceptor: for every stock.v1.Stock call, reads the hooks, sleeps the delay, stops
 * there when the call is over, sends the echo headers, adds the trailers to whatever status ends
 * the call, and forces the x-stock-fail status: at once (unary, or N = 0 for the response streams),
 * after the first N response messages (Monitor, Trade), or after the whole request stream (Batch).
 */
function stockHooks(method, call) {
  if (!method.path.startsWith("/stock.v1.Stock/")) return call;
  // grpc-js removes grpc-encoding from the metadata that interceptors and handlers see; the base
  // call keeps it (incomingEncoding), and it is `call` here: this is the server's only interceptor.
  const encoding = call.incomingEncoding;
  const clientStream = method.requestStream && !method.responseStream;
  let hooks;
  let cancelled = false;
  let ended = false;
  let sent = 0;
  const intercepted = new grpc.ServerInterceptingCall(call, {
    start: (next) =>
      next({
        onReceiveMetadata: async (metadata, pass) => {
          hooks = readHooks(metadata, call.getDeadline(), encoding);
          if (hooks.delay > 0) await new Promise((resolve) => setTimeout(resolve, hooks.delay));
          // A call that its client cancelled, or whose deadline passed, is over: nothing is applied.
          if (cancelled) return;
          if (hooks.watchersPrefix !== undefined) {
            hooks.trailers.set("x-stock-watchers", String(store.watchers(hooks.watchersPrefix)));
          }
          if (Object.keys(hooks.headers.getMap()).length > 0) intercepted.sendMetadata(hooks.headers);
          const failNow = !method.responseStream ? !clientStream : hooks.failAfter === 0;
          if (hooks.fail && failNow) intercepted.sendStatus(hooks.fail);
          else pass(metadata);
        },
        onReceiveHalfClose: (next) => {
          if (hooks.fail && clientStream) intercepted.sendStatus(hooks.fail);
          else next();
        },
        onCancel: () => (cancelled = true),
      }),
    sendMessage: (message, next) => {
      if (ended) return; // the call ended (a forced failure): its handler's later messages are dropped
      next(message);
      if (hooks.fail && ++sent === hooks.failAfter) intercepted.sendStatus(hooks.fail);
    },
    sendStatus: (status, next) => {
      if (ended) return;
      ended = true;
      const metadata = status.metadata?.clone() ?? new grpc.Metadata();
      if (hooks) metadata.merge(hooks.trailers);
      next({ ...status, metadata });
    },
  });
  return intercepted;
}

/** The x-stock-fail status (null when none is asked for), with its google.rpc.ErrorInfo. */
function forcedStatus(text, bytes) {
  const name = text("x-stock-fail");
  const special = text("x-stock-fail-special") === "true";
  if (name === undefined && !special) return null;
  const code = name === undefined ? grpc.status.UNKNOWN : grpc.status[name];
  if (typeof code !== "number" || code === grpc.status.OK) {
    throw statusError(grpc.status.INVALID_ARGUMENT, `x-stock-fail: unknown code ${JSON.stringify(name)}`);
  }
  const messageBin = bytes("x-stock-fail-message-bin");
  let message = messageBin?.toString("utf8") ?? text("x-stock-fail-message") ?? `forced ${name ?? "UNKNOWN"}`;
  if (special) message = SPECIAL_MESSAGE;
  return statusError(code, message, ["google.rpc.ErrorInfo", { reason: "FORCED", domain: "stock.v1" }]);
}

module.exports = { stockHooks };
