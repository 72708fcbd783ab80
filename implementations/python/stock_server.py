"""The stock.v1.Stock server on grpc.aio (see ../../CONTRACT.md)."""

import argparse
import asyncio
import contextlib
import contextvars
import inspect
import os
import signal
import sys
import threading
import zlib

import grpc
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

import kv_pb2
import kv_pb2_grpc
import stock_pb2
import stock_pb2_grpc

LANGUAGE = "python"
MAX_KEY = 256
MAX_VALUE = 1 << 20
MAX_MESSAGE = 4 << 20
SPECIAL_MESSAGE = "\t\ntest with whitespace\r\nand Unicode BMP ☺ and non-BMP 😈\t\n"


# The grpc-encoding of the current call's requests, as far as seen: "gzip" once
# a request message arrived gzip-compressed (see GunzipRequests).
REQUEST_ENCODING = contextvars.ContextVar("request_encoding", default="identity")


class TooLarge(Exception):
    """A gzip-compressed request message over MAX_MESSAGE once decompressed."""


def gunzip(data):
    """Decompresses one gzip-compressed message, refusing one whose content is
    over MAX_MESSAGE: the limit core applies when it decompresses itself."""
    gz = zlib.decompressobj(zlib.MAX_WBITS | 16)
    data = gz.decompress(data, MAX_MESSAGE + 1)
    if len(data) > MAX_MESSAGE:
        raise TooLarge(
            f"Received message larger than max (over {MAX_MESSAGE} bytes"
            " once decompressed)"
        )
    if not gz.eof:
        raise ValueError("truncated gzip-compressed message")
    return data


class GunzipRequests(grpc.aio.ServerInterceptor):
    """Decompresses request messages (of every service) in the call's task,
    where the handler runs, and records it in REQUEST_ENCODING. C-core never
    hands grpc-encoding to the application, so the server turns its own
    message decompression off (grpc.per_message_decompression): a message that
    arrived gzip-compressed comes with gzip's magic bytes 1f 8b, which no
    protobuf message starts with (0x1f would be wire type 7). A message the
    client's stack chose to send uncompressed under grpc-encoding: gzip (C-core
    does when gzip would not shrink it) counts as identity.

    The handler is handed the raw messages and decodes them itself, so that a
    message over the receive limit once decompressed can end its call with
    RESOURCE_EXHAUSTED (an exception in a deserializer ends it UNKNOWN)."""

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        deserializer = handler.request_deserializer or (lambda data: data)

        def deserialize(data):
            if data[:2] == b"\x1f\x8b":
                data = gunzip(data)
                REQUEST_ENCODING.set("gzip")
            return deserializer(data)

        async def deserialize_stream(requests):
            async for data in requests:
                yield deserialize(data)

        if handler.request_streaming:
            read, name = deserialize_stream, "stream_"
        else:
            read, name = deserialize, "unary_"
        name += "stream" if handler.response_streaming else "unary"
        behavior = getattr(handler, name)

        async def too_large(context, error):
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(error))

        if inspect.isasyncgenfunction(behavior):

            async def wrapped(request, context):
                try:
                    responses = behavior(read(request), context)
                    async with contextlib.aclosing(responses):
                        async for response in responses:
                            yield response
                except TooLarge as e:
                    await too_large(context, e)

        else:

            async def wrapped(request, context):
                try:
                    return await behavior(read(request), context)
                except TooLarge as e:
                    await too_large(context, e)

        return handler._replace(request_deserializer=None, **{name: wrapped})


class Abort(Exception):
    """A call that ends with a non-OK status; detail, when given, is the one
    google.rpc message it carries in grpc-status-details-bin."""

    def __init__(self, code, message, detail=None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.detail = detail


def bad_field(field, description):
    """INVALID_ARGUMENT for a refused request, with a google.rpc.BadRequest
    naming the field."""
    violation = error_details_pb2.BadRequest.FieldViolation(
        field=field, description=description
    )
    return Abort(
        grpc.StatusCode.INVALID_ARGUMENT,
        description,
        error_details_pb2.BadRequest(field_violations=[violation]),
    )


def forced(code, message):
    """The status an x-stock-fail hook forces, with a google.rpc.ErrorInfo."""
    info = error_details_pb2.ErrorInfo(reason="FORCED", domain="stock.v1")
    return Abort(code, message, info)


def matches(pattern, key):
    if pattern.endswith("*"):
        return key.startswith(pattern[:-1])
    return key == pattern


def validate_key(key, prefix=""):
    n = len(key.encode("utf-8"))
    if n < 1 or n > MAX_KEY:
        raise bad_field("key", f"{prefix}key must be 1 to {MAX_KEY} bytes, got {n}")


def validate_value(value, prefix=""):
    n = len(value)
    if n > MAX_VALUE:
        message = f"{prefix}value must be at most {MAX_VALUE} bytes, got {n}"
        raise bad_field("value", message)


class Store:
    """Keys, versions and watchers. The server runs on one event loop thread,
    so code between two awaits is a critical section: a watch's snapshot and
    its registration happen together."""

    def __init__(self):
        self.entries = {}  # key -> (value, version)
        self.watchers = []  # (pattern, asyncio.Queue)

    def get(self, key):
        """The (value, version) of a stored key; validates the key."""
        validate_key(key)
        entry = self.entries.get(key)
        if entry is None:
            raise Abort(grpc.StatusCode.NOT_FOUND, f"key {key!r} not found")
        return entry

    def put_one(self, key, value):
        """Validates and writes one key (Stock.Put and KV.Put)."""
        validate_key(key)
        validate_value(value)
        self.put(key, value)

    def put(self, key, value):
        """Writes one key and notifies matching watchers; True when created."""
        version = self.entries.get(key, (b"", 0))[1] + 1
        self.entries[key] = (value, version)
        for pattern, queue in self.watchers:
            if matches(pattern, key):
                queue.put_nowait(
                    stock_pb2.WatchEvent(key=key, value=value, version=version)
                )
        return version == 1

    def watch(self, pattern, include_existing):
        queue = asyncio.Queue()
        existing = []
        if include_existing:
            for key in sorted(k for k in self.entries if matches(pattern, k)):
                value, version = self.entries[key]
                existing.append(
                    stock_pb2.WatchEvent(
                        key=key, value=value, version=version, existing=True
                    )
                )
        watcher = (pattern, queue)
        self.watchers.append(watcher)
        return existing, watcher

    def unwatch(self, watcher):
        try:
            self.watchers.remove(watcher)
        except ValueError:
            pass

    def open_watchers(self, prefix):
        return sum(1 for pattern, _ in self.watchers if pattern.startswith(prefix))


class Hooks:
    """The x-stock-* request metadata of one call, read when its handler starts."""

    def __init__(self, context, store):
        md = {}
        for key, value in context.invocation_metadata() or ():
            md.setdefault(key.lower(), value)  # -bin values arrive as bytes
        self.store = store
        self.echo = md.get("x-stock-echo")
        self.echo_bin = md.get("x-stock-echo-bin")
        self.echo_header = md.get("x-stock-echo-header")
        self.echo_trailer = md.get("x-stock-echo-trailer")
        self.compress = md.get("x-stock-compress") == "gzip"
        self.report_encoding = md.get("x-stock-report-encoding") == "true"
        self.watchers = md.get("x-stock-report-watchers")
        self.watcher_count = None
        self.deadline_ms = None
        if md.get("x-stock-report-deadline") == "true":
            remaining = context.time_remaining()
            self.deadline_ms = (
                "none" if remaining is None else str(int(remaining * 1000))
            )
        self.fail = None
        self.error = None
        self.delay_ms = self.fail_after = 0
        self.repeat_value = 1
        try:
            self.delay_ms = self.number(md, "x-stock-delay-ms")
            self.fail_after = self.number(md, "x-stock-fail-after")
            self.repeat_value = max(self.number(md, "x-stock-repeat-value"), 1)
            special = md.get("x-stock-fail-special") == "true"
            name = md.get("x-stock-fail")
            code = None
            if name is not None:
                code = grpc.StatusCode.__members__.get(name)
                if code is None or code == grpc.StatusCode.OK:
                    raise Abort(
                        grpc.StatusCode.INVALID_ARGUMENT,
                        f"x-stock-fail: unknown code {name!r}",
                    )
            elif special:
                code = grpc.StatusCode.UNKNOWN
            if code is not None:
                message_bin = md.get("x-stock-fail-message-bin")
                if special:
                    message = SPECIAL_MESSAGE
                elif message_bin is not None:
                    message = message_bin.decode("utf-8", errors="replace")
                else:
                    message = md.get("x-stock-fail-message", f"forced {code.name}")
                self.fail = forced(code, message)
        except Abort as e:
            self.error = e

    @staticmethod
    def number(md, key):
        value = md.get(key)
        if value is None:
            return 0
        try:
            n = int(value.strip())
        except ValueError:
            n = -1
        if n < 0:
            raise Abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"{key} must be a number, got {value!r}",
            )
        return n

    def trailers(self):
        md = []
        if self.echo is not None:
            md.append(("x-stock-echo", self.echo))
        if self.echo_bin is not None:
            md.append(("x-stock-echo-bin", self.echo_bin))
        if self.echo_trailer is not None:
            md.append(("x-stock-echo-trailer", self.echo_trailer))
        if self.report_encoding:
            md.append(("x-stock-request-encoding", REQUEST_ENCODING.get()))
        if self.deadline_ms is not None:
            md.append(("x-stock-deadline-ms", self.deadline_ms))
        if self.watcher_count is not None:
            md.append(("x-stock-watchers", str(self.watcher_count)))
        return tuple(md)

    def update_trailers(self, context):
        """Sets the trailers again, once request messages were read."""
        if self.report_encoding:
            context.set_trailing_metadata(self.trailers())

    def headers(self):
        md = []
        if self.echo is not None:
            md.append(("x-stock-echo", self.echo))
        if self.echo_bin is not None:
            md.append(("x-stock-echo-bin", self.echo_bin))
        if self.echo_header is not None:
            md.append(("x-stock-echo-header", self.echo_header))
        return tuple(md)

    async def enter(self, context, unary, headers_later=False):
        """Echo, delay, and (for unary calls, or bad hook values) fail.
        With headers_later the caller sends the headers itself (Batch, after
        reading its request stream)."""
        context.set_trailing_metadata(self.trailers())
        if self.compress:
            context.set_compression(grpc.Compression.Gzip)
        if self.delay_ms:
            await asyncio.sleep(self.delay_ms / 1000)
        if self.watchers is not None:
            self.watcher_count = self.store.open_watchers(self.watchers)
            context.set_trailing_metadata(self.trailers())
        if not headers_later:
            await self.send_headers(context, self.delay_ms > 0)
        if self.error is not None:
            raise self.error
        if unary and self.fail is not None:
            raise self.fail

    async def send_headers(self, context, check):
        """Sends the response headers; with check, also when there are none,
        and stops a call that is over. grpc.aio has no is_active(): a client's
        cancel or the deadline reaches the handler as asyncio.CancelledError
        once core reports it, and its request iterator ends alike on a
        half-close and on a cancel. Sending is a round trip through core's
        completion queue, so a cancel that already happened lands first."""
        headers = self.headers()
        if headers or self.compress or check:
            # aio applies set_compression only to initial metadata sent by
            # send_initial_metadata() or write(), not to a unary reply's.
            await context.send_initial_metadata(headers)
        if check:
            remaining = context.time_remaining()
            if remaining is not None and remaining <= 0:
                raise Abort(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline exceeded")


async def finish(context, error):
    """Ends the call with error's status. A detail travels as a google.rpc.Status
    (grpcio-status) in grpc-status-details-bin, added to the trailers already
    set: abort's trailing metadata replaces them."""
    if error.detail is None:
        await context.abort(error.code, error.message)  # raises
    status = status_pb2.Status(code=error.code.value[0], message=error.message)
    status.details.add().Pack(error.detail)
    rich = rpc_status.to_status(status)
    trailers = tuple(context.trailing_metadata() or ()) + rich.trailing_metadata
    await context.abort(rich.code, rich.details, trailers)


class StockServicer(stock_pb2_grpc.StockServicer):
    def __init__(self, store):
        self.store = store

    async def Get(self, request, context):
        try:
            hooks = Hooks(context, self.store)
            await hooks.enter(context, True)
            value, version = self.store.get(request.key)
            return stock_pb2.GetResponse(
                value=value * hooks.repeat_value, version=version
            )
        except Abort as e:
            await finish(context, e)

    async def Put(self, request, context):
        try:
            await Hooks(context, self.store).enter(context, True)
            self.store.put_one(request.key, request.value)
            return stock_pb2.Empty()
        except Abort as e:
            await finish(context, e)

    async def Monitor(self, request, context):
        watcher = None
        try:
            hooks = Hooks(context, self.store)
            await hooks.enter(context, False)
            if not request.pattern:
                raise bad_field("pattern", "pattern must not be empty")
            if request.max_events < 0:
                raise bad_field("max_events", "max_events must not be negative")
            existing, watcher = self.store.watch(
                request.pattern, request.include_existing
            )
            # However the call ends (also while a message is being written,
            # outside this generator), its task's end unregisters the watch.
            context.add_done_callback(lambda _: self.store.unwatch(watcher))
            queue = watcher[1]
            limit = request.max_events
            sent = 0
            while True:
                if hooks.fail is not None and sent == hooks.fail_after:
                    raise hooks.fail
                if limit and sent == limit:
                    return
                if sent < len(existing):
                    event = existing[sent]
                else:
                    event = await queue.get()
                yield event
                sent += 1
        except Abort as e:
            await finish(context, e)
        finally:
            if watcher is not None:
                self.store.unwatch(watcher)

    async def Batch(self, request_iterator, context):
        try:
            hooks = Hooks(context, self.store)
            await hooks.enter(context, False, headers_later=True)
            items = [item async for item in request_iterator]
            hooks.update_trailers(context)
            await hooks.send_headers(context, True)  # a cancelled stream stops here
            if hooks.fail is not None:
                raise hooks.fail
            for i, item in enumerate(items):
                validate_key(item.key, f"item {i}: ")
                validate_value(item.value, f"item {i}: ")
            summary = stock_pb2.BatchSummary()
            for item in items:
                summary.items += 1
                summary.value_bytes += len(item.value)
                if self.store.put(item.key, item.value):
                    summary.created += 1
                else:
                    summary.updated += 1
            return summary
        except Abort as e:
            await finish(context, e)

    async def Trade(self, request_iterator, context):
        try:
            hooks = Hooks(context, self.store)
            await hooks.enter(context, False)
            positions = {}
            sequence = 0
            orders = request_iterator.__aiter__()
            while True:
                if hooks.fail is not None and sequence == hooks.fail_after:
                    raise hooks.fail
                try:
                    order = await orders.__anext__()
                except StopAsyncIteration:
                    return
                hooks.update_trailers(context)
                if order.quantity <= 0:
                    raise bad_field(
                        "quantity",
                        f"order {order.order_id!r}: quantity must be > 0,"
                        f" got {order.quantity}",
                    )
                sequence += 1
                signed = (
                    order.quantity if order.side == stock_pb2.BUY else -order.quantity
                )
                position = positions.get(order.symbol, 0) + signed
                positions[order.symbol] = position
                yield stock_pb2.TradeFill(
                    order_id=order.order_id,
                    symbol=order.symbol,
                    side=order.side,
                    quantity=order.quantity,
                    price_cents=order.price_cents,
                    sequence=sequence,
                    net_position=position,
                )
        except Abort as e:
            await finish(context, e)

    async def Inventory(self, request, context):
        try:
            await Hooks(context, self.store).enter(context, True)
            entries = self.store.entries
            return stock_pb2.InventoryStatus(
                key_count=len(entries),
                total_value_bytes=sum(len(v) for v, _ in entries.values()),
                language=LANGUAGE,
                stack=f"grpcio {grpc.__version__}",
            )
        except Abort as e:
            await finish(context, e)

    # Audit is deliberately left to the generated base class (UNIMPLEMENTED).


class KVServicer(kv_pb2_grpc.KVServicer):
    """The legacy proto.KV service (kv.proto) over the Stock store; no test hooks."""

    def __init__(self, store):
        self.store = store

    async def Get(self, request, context):
        try:
            value, _ = self.store.get(request.key)
            return kv_pb2.GetResponse(value=value)
        except Abort as e:
            await finish(context, e)

    async def Put(self, request, context):
        try:
            self.store.put_one(request.key, request.value)
            return kv_pb2.Empty()
        except Abort as e:
            await finish(context, e)


def parse_args():
    p = argparse.ArgumentParser(prog="server")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--tls-mode", choices=["none", "server", "mtls"], default="none")
    p.add_argument("--cert-file")
    p.add_argument("--key-file")
    p.add_argument("--ca-file")
    return p.parse_args()


def read_file(path, flag):
    if not path:
        raise ValueError(f"--{flag} is required for this --tls-mode")
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise ValueError(f"failed to read --{flag} {path}: {e}") from None


def credentials(args):
    key = read_file(args.key_file, "key-file")
    cert = read_file(args.cert_file, "cert-file")
    if args.tls_mode == "mtls":
        ca = read_file(args.ca_file, "ca-file")
        return grpc.ssl_server_credentials(
            [(key, cert)], root_certificates=ca, require_client_auth=True
        )
    return grpc.ssl_server_credentials([(key, cert)])


def watch_stdin(loop, stop):
    """Stops the server when stdin reaches end-of-file."""
    try:
        while os.read(0, 4096):
            pass
    except OSError:
        pass
    loop.call_soon_threadsafe(stop.set)


async def serve(args):
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_health.v1._async import HealthServicer
    from grpc_reflection.v1alpha import reflection

    try:
        creds = credentials(args) if args.tls_mode != "none" else None
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1

    server = grpc.aio.server(
        interceptors=[GunzipRequests()],
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE),
            ("grpc.max_send_message_length", -1),  # never capped below 8 MiB
            ("grpc.so_reuseport", 0),
            ("grpc.per_message_decompression", 0),  # GunzipRequests does it
        ],
    )
    store = Store()
    stock_pb2_grpc.add_StockServicer_to_server(StockServicer(store), server)
    kv_pb2_grpc.add_KVServicer_to_server(KVServicer(store), server)
    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    serving = health_pb2.HealthCheckResponse.SERVING
    await health.set("", serving)
    await health.set("stock.v1.Stock", serving)
    await health.set("proto.KV", serving)
    reflection.enable_server_reflection(
        (
            stock_pb2.DESCRIPTOR.services_by_name["Stock"].full_name,
            kv_pb2.DESCRIPTOR.services_by_name["KV"].full_name,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ),
        server,
    )

    host = args.host
    address = f"[{host}]:{args.port}" if ":" in host else f"{host}:{args.port}"
    try:
        if creds is None:
            bound = server.add_insecure_port(address)
        else:
            bound = server.add_secure_port(address, creds)
        if not bound:
            raise RuntimeError("bind returned port 0")
        await server.start()
    except Exception as e:  # grpc raises RuntimeError with little detail
        print(f"error: failed to bind {address} or load TLS: {e}", file=sys.stderr)
        return 1

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    threading.Thread(target=watch_stdin, args=(loop, stop), daemon=True).start()

    sys.stdout.write(f"listening on {host}:{args.port}\n")
    sys.stdout.flush()

    await stop.wait()
    await server.stop(0.3)
    return 0


def main():
    code = asyncio.run(serve(parse_args()))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
