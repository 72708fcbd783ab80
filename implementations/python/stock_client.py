"""The stock.v1.Stock script client on grpcio's synchronous API (see ../../CONTRACT.md)."""

import argparse
import base64
import binascii
import functools
import json
import os
import queue
import sys
import threading
import time
import types
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple, Optional

import grpc
from google.protobuf import json_format
from google.rpc import error_details_pb2
from grpc_status import rpc_status

import kv_pb2
import stock_pb2
from gunzip import Decoder

# method name in a step -> (path, request class, response class, kind)
METHODS = {
    "Get": ("/stock.v1.Stock/Get", stock_pb2.GetRequest, stock_pb2.GetResponse, "unary"),
    "Put": ("/stock.v1.Stock/Put", stock_pb2.PutRequest, stock_pb2.Empty, "unary"),
    "Monitor": ("/stock.v1.Stock/Monitor", stock_pb2.WatchRequest, stock_pb2.WatchEvent, "server_stream"),
    "Batch": ("/stock.v1.Stock/Batch", stock_pb2.BatchItem, stock_pb2.BatchSummary, "client_stream"),
    "Trade": ("/stock.v1.Stock/Trade", stock_pb2.TradeOrder, stock_pb2.TradeFill, "bidi"),
    "Inventory": ("/stock.v1.Stock/Inventory", stock_pb2.Empty, stock_pb2.InventoryStatus, "unary"),
    "Audit": ("/stock.v1.Stock/Audit", stock_pb2.Empty, stock_pb2.Empty, "unary"),
    "Ledger.Balance": ("/stock.v1.Ledger/Balance", stock_pb2.Empty, stock_pb2.Empty, "unary"),
    # the legacy service of kv.proto (go-plugin's kvproto)
    "proto.KV.Get": ("/proto.KV/Get", kv_pb2.GetRequest, kv_pb2.GetResponse, "unary"),
    "proto.KV.Put": ("/proto.KV/Put", kv_pb2.PutRequest, kv_pb2.Empty, "unary"),
}
# the fields a step may have (CONTRACT.md, "Script steps"); any other is a usage error
STEP_FIELDS = frozenset(
    "id method request requests metadata timeout_ms compression connection after_first copies read_pause_ms lane"
    " cancel_after_ms cancel_after_messages fill bench".split()
)
# the files each TLS mode needs
TLS_FILES = {"none": (), "server": ("ca_file",), "mtls": ("ca_file", "cert_file", "key_file")}
# The types rich error details are printed with (json_format looks an Any's @type up here).
DETAIL_TYPES = error_details_pb2.DESCRIPTOR.pool

CHANNELS = {}  # Connection -> its channel
CHANNELS_LOCK = threading.Lock()  # lanes, copies and after_first steps open channels from their threads
EMIT_LOCK = threading.Lock()  # lanes and copies print from their own threads


class UsageError(ValueError):
    """A bad step line: exit code 2."""


class Connection(NamedTuple):
    """The options of one channel: the default connection, or a step's `connection`."""

    server: str
    tls_mode: str = "none"
    ca_file: Optional[str] = None
    cert_file: Optional[str] = None
    key_file: Optional[str] = None
    server_name: Optional[str] = None
    keepalive_ms: Optional[int] = None
    keepalive_timeout_ms: Optional[int] = None


class Unreachable(grpc.RpcError):
    """The outcome of a call whose channel could not be made (an unreadable certificate file)."""

    def __init__(self, reason):
        self.reason = reason

    def code(self):
        return grpc.StatusCode.UNAVAILABLE

    def details(self):
        return self.reason

    def initial_metadata(self):
        return ()

    trailing_metadata = initial_metadata


def main():
    default = parse_args(sys.argv[1:])
    try:
        channel_for(default)
    except OSError as e:
        print(f"error: cannot open the connection to {default.server}: {e}", file=sys.stderr)
        sys.exit(1)
    lanes = {}  # lane -> (its queue of steps, None ending it; its thread)
    try:
        for line in sys.stdin.buffer:
            if not line.strip():
                continue
            try:
                step = parse_step(json.loads(line), default)
            except ValueError as e:  # also json's JSONDecodeError
                print(f"error: invalid step line {line!r}: {e}", file=sys.stderr)
                sys.exit(2)
            if step.lane not in lanes:
                steps = queue.SimpleQueue()
                lanes[step.lane] = (steps, threading.Thread(target=run_lane, args=(steps,)))
                lanes[step.lane][1].start()
            lanes[step.lane][0].put(step)
    finally:  # stdin's end (or a bad line): every lane finishes its steps
        for steps, _ in lanes.values():
            steps.put(None)
        for _, thread in lanes.values():
            thread.join()
    for channel in CHANNELS.values():
        channel.close()


def run_lane(steps):
    """One lane's thread: its steps in order, each after the previous one ended, until None."""
    for step in iter(steps.get, None):
        try:
            run_step(step)
        except Exception as e:  # a bug of this client: it never exits 0 with a step unanswered
            print(f"error: step {step.id!r} left unanswered: {e!r}", file=sys.stderr)
            sys.stderr.flush()
            os._exit(1)  # at once: the other lanes' steps are not waited for


def parse_args(argv):
    """The options: the default connection."""
    p = argparse.ArgumentParser(prog="client")
    p.add_argument("--server", required=True)
    p.add_argument("--tls-mode", choices=sorted(TLS_FILES), default="none")
    p.add_argument("--ca-file")
    p.add_argument("--cert-file")
    p.add_argument("--key-file")
    p.add_argument("--server-name")
    p.add_argument("--keepalive-ms", type=int)
    p.add_argument("--keepalive-timeout-ms", type=int)
    p.add_argument("command", choices=["script"])
    fields = vars(p.parse_args(argv))
    del fields["command"]
    return parse_connection(fields, p.error)


def parse_connection(fields, fail):
    try:
        connection = Connection(**fields)
    except TypeError as e:  # not an object, a missing server, an unknown field
        fail(f"connection: {e}")
    if connection.tls_mode not in TLS_FILES:
        fail(f"connection: unknown tls_mode {connection.tls_mode!r}")
    missing = [name for name in TLS_FILES[connection.tls_mode] if not getattr(connection, name)]
    if missing:
        fail(f"tls mode {connection.tls_mode} needs {', '.join(missing)}")
    for name in ("keepalive_ms", "keepalive_timeout_ms"):
        value = getattr(connection, name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
            fail(f"connection: {name} must be an integer > 0, got {value!r}")
    return connection


def parse_step(obj, default):
    """One JSON step (already decoded) -> the step to run; a bad step raises UsageError."""
    if not isinstance(obj, dict):
        raise UsageError("a step must be a JSON object")
    step_id = str(obj.get("id", ""))

    def fail(why):
        raise UsageError(f"step {step_id!r}: {why}")

    unknown = sorted(set(obj) - STEP_FIELDS)
    if unknown:
        fail(f"unknown field {unknown[0]!r}")

    if obj.get("method") not in METHODS:
        fail(f"unknown method {obj.get('method')!r}")
    path, request_class, response, kind = METHODS[obj["method"]]
    if obj.get("compression") not in (None, "gzip", "identity"):
        fail(f"unknown compression {obj['compression']!r} (gzip or identity)")
    for field in ("after_first", "cancel_after_messages"):
        if obj.get(field) and obj["method"] != "Monitor":
            fail(f"{field} is for Monitor steps only, not {obj['method']}")
    raw = (obj.get("requests") or []) if kind in ("client_stream", "bidi") else [obj.get("request") or {}]
    if not isinstance(raw, list) or not all(isinstance(r, dict) for r in raw):
        fail("requests must be JSON objects")
    metadata = obj.get("metadata") or {}
    if not isinstance(metadata, dict):
        fail("metadata must be an object")
    try:
        requests = [json_format.ParseDict(r, request_class()) for r in raw]
        # a -bin key's value is base64: sent as those bytes (binary metadata)
        metadata = tuple(
            (k.lower(), base64.b64decode(v, validate=True) if k.lower().endswith("-bin") else str(v))
            for k, v in metadata.items()
        )
    except (json_format.ParseError, binascii.Error, TypeError) as e:
        fail(str(e))
    fill_values(obj.get("fill"), requests, fail)
    lane = obj.get("lane") or 0
    if isinstance(lane, bool) or not isinstance(lane, int) or lane < 0:
        fail(f"lane must be an integer >= 0, got {lane!r}")
    connection = obj.get("connection")
    bench = obj.get("bench")
    if bench is not None:
        if not isinstance(bench, dict) or set(bench) != {"duration_ms", "concurrency"}:
            fail(f"bench: {bench!r} is not an object with exactly duration_ms and concurrency")
        for name, least in (("duration_ms", 0), ("concurrency", 1)):
            if isinstance(bench[name], bool) or not isinstance(bench[name], int) or bench[name] < least:
                fail(f"bench: {name} must be an integer >= {least}, got {bench[name]!r}")
    return types.SimpleNamespace(
        id=step_id,
        path=path,
        kind=kind,
        response=response,
        requests=requests,
        metadata=metadata,
        connection=default if connection is None else parse_connection(connection, fail),
        timeout_ms=obj.get("timeout_ms") or 0,
        compression=obj.get("compression") == "gzip",
        cancel_after_ms=obj.get("cancel_after_ms") or 0,
        cancel_after_messages=obj.get("cancel_after_messages") or 0,
        copies=obj.get("copies") or 1,
        read_pause_ms=obj.get("read_pause_ms") or 0,
        after_first=[parse_step(s, default) for s in obj.get("after_first") or []],
        lane=lane,
        bench=bench,
    )


def fill_values(fill, requests, fail):
    """Applies a step's `fill` entries: request message I's `value` is the bytes of `repeat` (base64)
    repeated `times` times. Only Put and Batch requests have a `value`; a bad entry calls fail."""
    if fill is None:
        return
    if not isinstance(fill, list):
        fail("fill must be a list")
    for entry in fill:
        if not isinstance(entry, dict) or set(entry) != {"request", "repeat", "times"}:
            fail(f"fill: {entry!r} is not an object with exactly request, repeat and times")
        index, repeat, times = entry["request"], entry["repeat"], entry["times"]
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(requests):
            fail(f"fill: no request message {index!r} (the step has {len(requests)})")
        if "value" not in requests[index].DESCRIPTOR.fields_by_name:
            fail(f"fill: {requests[index].DESCRIPTOR.name} has no value field (fill is for Put and Batch)")
        if isinstance(times, bool) or not isinstance(times, int) or times < 0:
            fail(f"fill: times must be an integer >= 0, got {times!r}")
        if not isinstance(repeat, str):
            fail(f"fill: repeat must be a base64 string, got {repeat!r}")
        try:
            unit = base64.b64decode(repeat, validate=True)
        except ValueError as e:  # binascii.Error, or a non-ASCII string
            fail(f"fill: repeat {repeat!r} is not base64: {e}")
        requests[index].value = unit * times  # one allocation of len(unit) * times bytes


def channel_for(connection):
    """The connection's channel, made on first use and reused; OSError for an unreadable file.

    The receive limit is grpcio's default (4 MiB); the send limit stays unset (unlimited).
    Responses are decompressed by gunzip.Decoder, which tells their encoding.
    Keepalive is C-core's: a PING every keepalive_ms, also without calls and without data in between. C-core
    closes the connection on the ping timeout (grpc.http2.ping_timeout_ms, 1 min by default), not on
    grpc.keepalive_timeout_ms alone (grpc/grpc#39239), so keepalive_timeout_ms sets both.
    A Unix socket (`unix:/PATH`, `unix:///PATH`) is C-core's own target name: it dials the socket; its
    authority (with TLS also the name verified and the SNI) is server_name, else localhost."""
    with CHANNELS_LOCK:
        if connection in CHANNELS:
            return CHANNELS[connection]
        options = [("grpc.max_receive_message_length", 4 << 20), ("grpc.per_message_decompression", 0)]
        if connection.keepalive_ms is not None:
            options += [
                ("grpc.keepalive_time_ms", connection.keepalive_ms),
                ("grpc.keepalive_permit_without_calls", 1),
                ("grpc.http2.max_pings_without_data", 0),
            ]
            if connection.keepalive_timeout_ms is not None:
                options += [
                    ("grpc.keepalive_timeout_ms", connection.keepalive_timeout_ms),
                    ("grpc.http2.ping_timeout_ms", connection.keepalive_timeout_ms),
                ]
        if connection.server.startswith("unix:"):
            options.append(("grpc.default_authority", connection.server_name or "localhost"))
        if connection.tls_mode == "none":
            channel = grpc.insecure_channel(connection.server, options=options)
        else:
            files = {}
            for name in TLS_FILES[connection.tls_mode]:
                with open(getattr(connection, name), "rb") as f:
                    files[name] = f.read()
            credentials = grpc.ssl_channel_credentials(
                root_certificates=files["ca_file"],
                private_key=files.get("key_file"),
                certificate_chain=files.get("cert_file"),
            )
            if connection.server_name:
                options.append(("grpc.ssl_target_name_override", connection.server_name))
            channel = grpc.secure_channel(connection.server, credentials, options=options)
        CHANNELS[connection] = channel
        return channel


def call_for(step, channel, decoder):
    """The step's multi-callable on the channel and its call options."""
    make = {
        "unary": channel.unary_unary,
        "server_stream": channel.unary_stream,
        "client_stream": channel.stream_unary,
        "bidi": channel.stream_stream,
    }[step.kind]
    method = make(step.path, request_serializer=lambda m: m.SerializeToString(), response_deserializer=decoder)
    options = {
        "metadata": step.metadata,
        "timeout": step.timeout_ms / 1000 if step.timeout_ms > 0 else None,
        "compression": grpc.Compression.Gzip if step.compression else None,
    }
    return method, options


def run_step(step):
    """Runs a step; with copies, that many calls at once on its channel, each on its own thread
    (the sync API blocks a thread per call; C-core queues streams past the server's limit)."""
    if step.bench is not None:
        run_bench(step)
        return
    if step.copies <= 1:
        run_call(step, step.id)
        return
    with ThreadPoolExecutor(step.copies) as pool:
        for copy in [pool.submit(run_call, step, f"{step.id}*{k}") for k in range(step.copies)]:
            copy.result()


def run_call(step, line_id):
    """One call of a step, its messages and status printed under line_id."""
    decoder = Decoder(step.response)
    timer = None
    start = time.monotonic()
    try:
        channel = channel_for(step.connection)
    except OSError as e:
        reason = f"cannot open the connection to {step.connection.server}: {e}"
        emit_status(line_id, Unreachable(reason), start, decoder.encoding)
        return

    def started(call):
        nonlocal timer
        if step.cancel_after_ms > 0:
            timer = threading.Timer(step.cancel_after_ms / 1000, call.cancel)
            timer.daemon = True
            timer.start()
        return call

    try:
        method, options = call_for(step, channel, decoder)
        if step.kind in ("unary", "client_stream"):
            response, call = one_response(step, method, options, started)
            if response is not None:  # grpcio answers None for a call that ended OK without its message
                emit_message(line_id, response)
        else:
            call = read_stream(step, method, options, started, functools.partial(emit_message, line_id))
    except grpc.RpcError as e:
        call = e  # a failed call is also a grpc.Call with its status
    finally:
        if timer is not None:
            timer.cancel()
    emit_status(line_id, call, start, decoder.encoding)


def bucket(v):
    """The latency bucket of v microseconds: v below 32, then 16 log-scale buckets per power of two."""
    n = v.bit_length()
    return v if n <= 5 else 16 * (n - 4) + ((v >> (n - 5)) & 15)


def run_bench(step):
    """A bench step: `concurrency` threads share the step's channel, each running the step's call again
    and again (printing nothing) until duration_ms have passed since the start; then one line with the
    counts, the latency histogram of the OK calls and the first error's status."""
    start = time.monotonic_ns()
    stop = start + step.bench["duration_ms"] * 1_000_000
    results = []  # per worker: (calls, errors, messages, {bucket: count}, (when, code, message) or None)
    decoder = Decoder(step.response)  # shared: only its encoding, which bench does not print, is per call
    try:
        method, options = call_for(step, channel_for(step.connection), decoder)
    except OSError as e:  # an unreadable certificate file: the call fails, once
        reason = f"cannot open the connection to {step.connection.server}: {e}"
        results.append((0, 1, 0, {}, (start, "UNAVAILABLE", reason)))

    def worker():
        calls = errors = messages = received = 0
        histogram = {}
        first_error = None

        def count(_message):
            nonlocal received
            received += 1

        while time.monotonic_ns() < stop:
            began = time.monotonic_ns()
            try:
                if step.kind == "unary":
                    method(step.requests[0], **options)
                    received = 1
                elif step.kind == "client_stream":
                    method(iter(step.requests), **options)
                    received = len(step.requests)  # Batch counts the items it sent
                else:
                    received = 0
                    read_stream(step, method, options, lambda call: call, count)
            except grpc.RpcError as e:
                errors += 1
                if first_error is None:
                    first_error = (time.monotonic_ns(), e.code().name, e.details() or "")
                continue
            b = bucket((time.monotonic_ns() - began) // 1000)
            histogram[b] = histogram.get(b, 0) + 1
            calls += 1
            messages += received
        results.append((calls, errors, messages, histogram, first_error))

    if not results:
        workers = [threading.Thread(target=worker) for _ in range(step.bench["concurrency"])]
        for thread in workers:
            thread.start()
        for thread in workers:
            thread.join()
    elapsed_ms = round((time.monotonic_ns() - start) / 1e6, 3)
    histogram = {}
    for _, _, _, counts, _ in results:
        for b, n in counts.items():
            histogram[b] = histogram.get(b, 0) + n
    bench = {
        "calls": sum(r[0] for r in results),
        "errors": sum(r[1] for r in results),
        "messages": sum(r[2] for r in results),
        "elapsed_ms": elapsed_ms,
        "histogram": sorted(histogram.items()),
    }
    errors = [r[4] for r in results if r[4] is not None]
    if errors:
        _, code, message = min(errors)
        bench["first_error"] = {"code": code, "message": message}
    emit({"id": step.id, "bench": bench})


def one_response(step, method, options, started):
    """A unary or client-stream call: (its response or None, the finished call).

    The cancellable form is future(); grpcio's stream_unary future() drops the call's compression
    (grpc/_channel.py: its send_initial_metadata gets the metadata without the compression entry), so a
    client stream runs on with_call() unless cancel_after_ms needs the call object.
    Both receive one message and the status in one core batch: a server that ends OK without the message
    gives None (the call's response), one that sends a second message keeps the status from arriving (the
    core publishes it once every message was read), so the call ends at its deadline."""
    request = step.requests[0] if step.kind == "unary" else iter(step.requests)
    if step.kind == "client_stream" and step.cancel_after_ms <= 0:
        return method.with_call(request, **options)
    call = started(method.future(request, **options))
    try:
        return call.result(), call
    except grpc.FutureCancelledError:  # cancelled by cancel_after_ms: the call's status is CANCELLED
        return None, call


def read_stream(step, method, options, started, each):
    """Starts a server-stream or bidi call and hands each message to each(message); returns the finished call.

    after_first steps run after the first message; read_pause_ms sleeps after each one (the sync
    iterator asks core for one message per next(), so flow control holds the server back).
    cancel_after_messages: once that many were handled, cancel() (as cancel_after_ms) and read no more.
    Trade is lock-step: one order, its fill, the next order; half-close after the last."""
    pending = list(step.requests) if step.kind == "bidi" else []
    orders = queue.SimpleQueue()  # the bidi request stream; None half-closes it

    def send_next():
        orders.put(pending.pop(0) if pending else None)
        if not pending:
            orders.put(None)

    if step.kind == "bidi":
        send_next()
        request = iter(orders.get, None)
    else:
        request = step.requests[0]
    call = started(method(request, **options))
    try:
        for n, message in enumerate(call):
            each(message)
            if n == 0:
                for nested in step.after_first:
                    run_step(nested)
            if n + 1 == step.cancel_after_messages:
                call.cancel()  # the call's status is now CANCELLED
                break
            if step.read_pause_ms > 0:
                time.sleep(step.read_pause_ms / 1000)
            if pending:
                send_next()
    finally:
        orders.put(None)  # the stream ended: stop the request iterator
    return call


def emit(line):
    data = json.dumps(line, ensure_ascii=False).encode("utf-8") + b"\n"
    with EMIT_LOCK:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()


def emit_message(line_id, message):
    emit({"id": line_id, "message": json_format.MessageToDict(message)})


def stock_metadata(metadata):
    """Received x-stock-* entries; -bin values, which grpcio gives as bytes, in base64."""
    return {
        k.lower(): v if isinstance(v, str) else base64.b64encode(v).decode("ascii")
        for k, v in metadata or ()
        if k.lower().startswith("x-stock-")
    }


def emit_status(line_id, call, start, encoding):
    """The status line of a finished call (or grpc.RpcError, which is also a grpc.Call)."""
    elapsed_ms = round((time.monotonic() - start) * 1000, 3)
    code = call.code()
    details = []
    if code != grpc.StatusCode.OK:
        try:
            status = rpc_status.from_call(call)  # grpcio-status: grpc-status-details-bin
        except ValueError as e:  # its code or message differ from the call's status
            print(f"step {line_id!r}: grpc-status-details-bin: {e}", file=sys.stderr)
            status = None
        for detail in status.details if status else ():
            try:
                details.append(json_format.MessageToDict(detail, descriptor_pool=DETAIL_TYPES))
            except (TypeError, json_format.Error) as e:  # an unknown @type
                print(f"step {line_id!r}: {detail.type_url}: {e}", file=sys.stderr)
    emit(
        {
            "id": line_id,
            "status": {"code": code.name, "message": call.details() or ""},
            "headers": stock_metadata(call.initial_metadata()),
            "trailers": stock_metadata(call.trailing_metadata()),
            "elapsed_ms": elapsed_ms,
            "response_encoding": encoding,
            "details": details,
        }
    )


if __name__ == "__main__":
    main()
