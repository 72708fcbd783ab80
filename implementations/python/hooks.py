"""The test hooks (x-stock-* request metadata) as a grpc.aio server interceptor (see ../../CONTRACT.md)."""

import asyncio
import contextlib
import contextvars
import inspect
import types

import grpc
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from gunzip import REQUEST_ENCODING
from store import Refused

SPECIAL_MESSAGE = "\t\ntest with whitespace\r\nand Unicode BMP ☺ and non-BMP 😈\t\n"
HOOKED = ("/stock.v1.Stock/", "/proto.KV/")  # the hooks are optional for proto.KV: it gets them too

CURRENT = contextvars.ContextVar("hooks")  # the running call's hooks (Get: repeat_value, Inventory: count_prefix)


def read_hooks(context):
    """The call's hooks (-bin values arrive as bytes); a bad value (not a number, an unknown code) fails at once."""
    md = {}
    for key, value in context.invocation_metadata() or ():
        md.setdefault(key.lower(), value)
    deadline_ms = None
    if md.get("x-stock-report-deadline") == "true":
        remaining = context.time_remaining()
        deadline_ms = "none" if remaining is None else str(int(remaining * 1000))

    def echoes(*keys):
        return tuple((key, md[key]) for key in keys if key in md)

    hooks = types.SimpleNamespace(
        headers=echoes("x-stock-echo", "x-stock-echo-bin", "x-stock-echo-header"),
        echo_trailers=echoes("x-stock-echo", "x-stock-echo-bin", "x-stock-echo-trailer"),
        compress=md.get("x-stock-compress") == "gzip",
        report_encoding=md.get("x-stock-report-encoding") == "true",
        report_watchers=md.get("x-stock-report-watchers"),
        count_prefix=md.get("x-stock-count-prefix"),  # Inventory counts only these keys
        deadline_ms=deadline_ms,  # the x-stock-deadline-ms trailer, when asked for
        watchers=None,  # the x-stock-watchers trailer, counted after the delay
        delay_ms=0,
        repeat_value=1,
        fail=None,
        fail_after=0,
    )

    def number(key):
        value = md.get(key, "0").strip()
        if not value.isdecimal():
            raise Refused(grpc.StatusCode.INVALID_ARGUMENT, f"{key} must be a number, got {value!r}")
        return int(value)

    try:
        hooks.delay_ms = number("x-stock-delay-ms")
        hooks.fail_after = number("x-stock-fail-after")
        hooks.repeat_value = max(number("x-stock-repeat-value"), 1)
        hooks.fail = forced_status(md)
    except Refused as e:
        hooks.fail, hooks.fail_after = e, 0
    return hooks


class StockHooks(grpc.aio.ServerInterceptor):
    """Applies the hooks to every Stock (and proto.KV) call: echo, delay, report-* trailers, fail (unary at once,
    Batch after its request stream, Monitor and Trade after fail_after responses); ends a call whose handler
    raised Refused with its status. Audit, the generated servicer's synchronous default, is left alone."""

    def __init__(self, store):
        self.store = store

    async def intercept_service(self, continuation, handler_call_details):
        return self.wrap(await continuation(handler_call_details), handler_call_details.method)

    def wrap(self, handler, method):
        """The method's handler with the hooks applied (for a server that takes no interceptors, see
        stock_server.Intercepted)."""
        if handler is None or not method.startswith(HOOKED):
            return handler
        streaming = {False: "unary", True: "stream"}
        kind = f"{streaming[handler.request_streaming]}_{streaming[handler.response_streaming]}"
        behavior = getattr(handler, kind)
        if not (inspect.iscoroutinefunction(behavior) or inspect.isasyncgenfunction(behavior)):
            return handler

        async def unary_response(request, context):
            hooks = await self.enter(context)
            try:
                if handler.request_streaming:  # Batch: the whole stream first; a cancelled one stops at the headers
                    request = replay([item async for item in request])
                await send_headers(context, hooks, handler.request_streaming)
                if hooks.fail is not None:
                    raise hooks.fail
                response = await behavior(request, context)
                context.set_trailing_metadata(trailers(hooks))
                return response
            except Refused as e:
                await finish(context, hooks, e)

        async def stream_response(request, context):
            hooks = await self.enter(context)
            try:
                await send_headers(context, hooks)
                async with contextlib.aclosing(behavior(request, context)) as responses:
                    sent = 0
                    while hooks.fail is None or sent < hooks.fail_after:
                        response = await anext(responses, None)
                        if response is None:
                            context.set_trailing_metadata(trailers(hooks))
                            return
                        yield response
                        sent += 1
                    raise hooks.fail
            except Refused as e:
                await finish(context, hooks, e)

        return handler._replace(**{kind: stream_response if handler.response_streaming else unary_response})

    async def enter(self, context):
        """Reads the hooks; sets the echo trailers (updated when the call ends) and the compression; delays."""
        hooks = read_hooks(context)
        CURRENT.set(hooks)
        context.set_trailing_metadata(trailers(hooks))
        if hooks.compress:
            context.set_compression(grpc.Compression.Gzip)
        if hooks.delay_ms:
            await asyncio.sleep(hooks.delay_ms / 1000)
        if hooks.report_watchers is not None:
            hooks.watchers = self.store.watchers(hooks.report_watchers)
        return hooks


def forced_status(md):
    """The status x-stock-fail forces (None without it), with its google.rpc.ErrorInfo."""
    name = md.get("x-stock-fail")
    special = md.get("x-stock-fail-special") == "true"
    if name is None and not special:
        return None
    code = grpc.StatusCode.__members__.get(name or "UNKNOWN")  # the stack's own code enum
    if code in (None, grpc.StatusCode.OK):
        raise Refused(grpc.StatusCode.INVALID_ARGUMENT, f"x-stock-fail: unknown code {name!r}")
    if special:
        message = SPECIAL_MESSAGE
    elif "x-stock-fail-message-bin" in md:
        message = md["x-stock-fail-message-bin"].decode("utf-8", errors="replace")
    else:
        message = md.get("x-stock-fail-message", f"forced {code.name}")
    return Refused(code, message, error_details_pb2.ErrorInfo(reason="FORCED", domain="stock.v1"))


async def send_headers(context, hooks, force=False):
    """Sends the response headers; after a delay (or with force) also when there are none, and stops a call
    that is over. grpc.aio has no is_active(): a cancel reaches the handler as asyncio.CancelledError, and a
    request stream ends alike on a half-close and a cancel; sending is a round trip through core, so a cancel
    that already happened lands first. (aio compresses only headers sent by send_initial_metadata or write.)"""
    check = force or hooks.delay_ms > 0
    if hooks.headers or hooks.compress or check:
        await context.send_initial_metadata(hooks.headers)
    remaining = context.time_remaining()
    if check and remaining is not None and remaining <= 0:
        raise Refused(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline exceeded")


def trailers(hooks):
    """The trailers, as far as known now (the request encoding once the requests were read)."""
    reports = [("x-stock-request-encoding", REQUEST_ENCODING.get() if hooks.report_encoding else None)]
    reports.append(("x-stock-deadline-ms", hooks.deadline_ms))
    reports.append(("x-stock-watchers", None if hooks.watchers is None else str(hooks.watchers)))
    return hooks.echo_trailers + tuple((key, value) for key, value in reports if value is not None)


async def replay(items):
    for item in items:
        yield item


async def finish(context, hooks, error):
    """Ends the call with error's status and the hooks' trailers; a detail travels as a
    google.rpc.Status (grpcio-status) in grpc-status-details-bin."""
    metadata = trailers(hooks)
    if error.detail is not None:
        status = status_pb2.Status(code=error.code.value[0], message=error.message)
        status.details.add().Pack(error.detail)
        metadata += rpc_status.to_status(status).trailing_metadata
    await context.abort(error.code, error.message, metadata)
