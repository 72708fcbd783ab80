"""The stock.v1.Stock client CLI on grpcio's synchronous API (see ../../CONTRACT.md)."""

import argparse
import base64
import binascii
import concurrent.futures
import gzip
import json
import queue
import sys
import threading
import time

import grpc
from google.protobuf import json_format
from google.rpc import error_details_pb2
from grpc_status import rpc_status

import stock_pb2

UNARY, SERVER_STREAM, CLIENT_STREAM, BIDI = range(4)

# method name in a step -> (path, request class, response class, kind)
METHODS = {
    "Get": ("/stock.v1.Stock/Get", stock_pb2.GetRequest, stock_pb2.GetResponse, UNARY),
    "Put": ("/stock.v1.Stock/Put", stock_pb2.PutRequest, stock_pb2.Empty, UNARY),
    "Monitor": (
        "/stock.v1.Stock/Monitor",
        stock_pb2.WatchRequest,
        stock_pb2.WatchEvent,
        SERVER_STREAM,
    ),
    "Batch": (
        "/stock.v1.Stock/Batch",
        stock_pb2.BatchItem,
        stock_pb2.BatchSummary,
        CLIENT_STREAM,
    ),
    "Trade": ("/stock.v1.Stock/Trade", stock_pb2.TradeOrder, stock_pb2.TradeFill, BIDI),
    "Inventory": (
        "/stock.v1.Stock/Inventory",
        stock_pb2.Empty,
        stock_pb2.InventoryStatus,
        UNARY,
    ),
    "Audit": ("/stock.v1.Stock/Audit", stock_pb2.Empty, stock_pb2.Empty, UNARY),
    "Ledger.Balance": (
        "/stock.v1.Ledger/Balance",
        stock_pb2.Empty,
        stock_pb2.Empty,
        UNARY,
    ),
}


class UsageError(Exception):
    """Exit code 2."""


class FatalError(Exception):
    """Exit code 1."""


EMIT_LOCK = threading.Lock()  # copies of a step print from their own threads


def emit(line):
    data = json.dumps(line, ensure_ascii=False).encode("utf-8") + b"\n"
    with EMIT_LOCK:
        out = sys.stdout.buffer
        out.write(data)
        out.flush()


def stock_metadata(md):
    """Received x-stock-* entries; binary (-bin) values, which grpcio gives as
    bytes, printed base64."""
    return {
        k.lower(): v if isinstance(v, str) else base64.b64encode(v).decode("ascii")
        for k, v in (md or ())
        if k.lower().startswith("x-stock-")
    }


def metadata_value(key, value):
    """A -bin key's value is base64 in the step JSON and on the command line:
    it is sent as those bytes (binary metadata)."""
    if not key.endswith("-bin"):
        return value
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error as e:
        raise ValueError(f"metadata {key}: invalid base64 {value!r}: {e}") from None


def to_json(msg):
    return json_format.MessageToDict(msg)


# The types rich error details are resolved against when printed (json_format
# looks an Any's @type up in this pool): google.rpc.BadRequest, ErrorInfo, ...
DETAIL_TYPES = error_details_pb2.DESCRIPTOR.pool


def error_details(call, line_id):
    """The details of the google.rpc.Status in grpc-status-details-bin of a
    failed call (grpcio-status), each in proto3 JSON with its @type."""
    try:
        status = rpc_status.from_call(call)
    except ValueError as e:  # code or message differ from the call's status
        print(f"step {line_id!r}: grpc-status-details-bin: {e}", file=sys.stderr)
        return []
    if status is None:
        return []
    details = []
    for detail in status.details:
        try:
            details.append(
                json_format.MessageToDict(detail, descriptor_pool=DETAIL_TYPES)
            )
        except (TypeError, json_format.Error) as e:  # an unknown @type
            print(f"step {line_id!r}: {detail.type_url}: {e}", file=sys.stderr)
    return details


def parse_message(cls, value, step_id):
    if value is None:
        value = {}
    try:
        if not isinstance(value, dict):
            raise json_format.ParseError("not a JSON object")
        return json_format.ParseDict(value, cls())
    except json_format.ParseError as e:
        raise UsageError(f"step {step_id!r}: invalid {cls.DESCRIPTOR.name}: {e}")


class Prepared:
    """A step checked and parsed before anything is sent."""

    def __init__(self, step):
        if not isinstance(step, dict):
            raise UsageError("a step must be a JSON object")
        self.id = str(step.get("id", ""))
        method = step.get("method")
        if method not in METHODS:
            raise UsageError(f"step {self.id!r}: unknown method {method!r}")
        self.path, req_cls, self.resp_cls, self.kind = METHODS[method]
        if self.kind in (CLIENT_STREAM, BIDI):
            reqs = step.get("requests") or []
            if not isinstance(reqs, list):
                raise UsageError(f"step {self.id!r}: requests must be an array")
            self.requests = [parse_message(req_cls, r, self.id) for r in reqs]
        else:
            self.requests = [parse_message(req_cls, step.get("request"), self.id)]
        md = step.get("metadata") or {}
        if not isinstance(md, dict):
            raise UsageError(f"step {self.id!r}: metadata must be an object")
        try:
            self.metadata = [
                (str(k).lower(), metadata_value(str(k).lower(), str(v)))
                for k, v in md.items()
            ]
        except ValueError as e:
            raise UsageError(f"step {self.id!r}: {e}") from None
        self.timeout_ms = step.get("timeout_ms") or 0
        self.compression = step.get("compression")
        self.cancel_after_ms = step.get("cancel_after_ms") or 0
        self.copies = step.get("copies") or 1
        self.read_pause_ms = step.get("read_pause_ms") or 0
        self.after_first = [Prepared(s) for s in step.get("after_first") or []]


class Decoder:
    """A response deserializer that also tells the responses' grpc-encoding.
    C-core never hands grpc-encoding to the application, so the channel leaves
    decompression to this (grpc.per_message_decompression off): a message that
    arrived gzip-compressed comes with gzip's magic bytes 1f 8b, which no
    protobuf message starts with (0x1f would be wire type 7). A message the
    server's stack chose to send uncompressed under grpc-encoding: gzip (C-core
    does when gzip would not shrink it) counts as identity."""

    def __init__(self, cls):
        self.cls = cls
        self.gzip = False

    def __call__(self, data):
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
            self.gzip = True
        return self.cls.FromString(data)

    def encoding(self):
        return "gzip" if self.gzip else "identity"


class Canceller:
    """cancel_after_ms: cancels a call (call.cancel()) that long after it
    started, unless it ended before."""

    def __init__(self, ms):
        self.ms = ms
        self.timer = None

    def start(self, call):
        if self.ms > 0:
            self.timer = threading.Timer(self.ms / 1000, call.cancel)
            self.timer.daemon = True
            self.timer.start()
        return call

    def stop(self):
        if self.timer is not None:
            self.timer.cancel()


class Runner:
    def __init__(self, args):
        self.args = args
        self.channel = make_channel(args)
        self.metadata = list(args.metadata)

    def multicallable(self, step, decoder):
        # A client stream runs on a stream_stream callable (the same on the
        # wire): grpcio's stream_unary future(), the one that can be
        # cancelled, drops its compression argument.
        make = {
            UNARY: self.channel.unary_unary,
            SERVER_STREAM: self.channel.unary_stream,
            CLIENT_STREAM: self.channel.stream_stream,
            BIDI: self.channel.stream_stream,
        }[step.kind]
        return make(
            step.path,
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=decoder,
        )

    def run_step(self, step):
        """Runs one step; with copies, that many calls at once on the one
        channel, each on its own thread (grpcio's sync API blocks a thread per
        call; C-core queues the streams past the server's concurrency limit),
        copy k printing its lines under the id ID*k."""
        if step.copies <= 1:
            self.run_call(step, step.id)
            return
        with concurrent.futures.ThreadPoolExecutor(step.copies) as pool:
            calls = [
                pool.submit(self.run_call, step, f"{step.id}*{k}")
                for k in range(step.copies)
            ]
            for call in calls:
                call.result()

    def run_call(self, step, line_id):
        """One call of a step, its lines under line_id."""
        timeout_ms = step.timeout_ms or self.args.timeout_ms or 0
        compression = step.compression or self.args.compression
        kwargs = {
            "metadata": tuple(self.metadata + step.metadata),
            "timeout": timeout_ms / 1000 if timeout_ms > 0 else None,
            "compression": grpc.Compression.Gzip if compression == "gzip" else None,
        }
        decoder = Decoder(step.resp_cls)
        mc = self.multicallable(step, decoder)
        canceller = Canceller(step.cancel_after_ms)
        start = time.monotonic()
        try:
            call = self.exchange(step, line_id, mc, kwargs, canceller.start)
        except grpc.RpcError as e:
            call = e  # a failed call is also a grpc.Call with its status
        finally:
            canceller.stop()
        code = call.code()
        details = call.details()
        headers = stock_metadata(call.initial_metadata())
        trailers = stock_metadata(call.trailing_metadata())
        elapsed = (time.monotonic() - start) * 1000
        rich = error_details(call, line_id) if code != grpc.StatusCode.OK else []
        emit(
            {
                "id": line_id,
                "status": {"code": code.name, "message": details or ""},
                "headers": headers,
                "trailers": trailers,
                "elapsed_ms": round(elapsed, 3),
                "response_encoding": decoder.encoding(),
                "details": rich,
            }
        )

    def print_message(self, line_id, msg):
        emit({"id": line_id, "message": to_json(msg)})

    def read_pause(self, step):
        """read_pause_ms: a slow reader. grpcio's sync iterator asks core for
        one message per next(), so nothing is read from the stream meanwhile
        and HTTP/2 flow control holds the server back."""
        if step.read_pause_ms > 0:
            time.sleep(step.read_pause_ms / 1000)

    def exchange(self, step, line_id, mc, kwargs, started):
        """Runs the call, printing its messages; returns the finished call.
        started(call) is told of the call as soon as it is started."""
        if step.kind == UNARY:
            call = started(mc.future(step.requests[0], **kwargs))
            try:
                response = call.result()
            except grpc.FutureCancelledError:
                return call  # cancelled by cancel_after_ms: status CANCELLED
            self.print_message(line_id, response)
            return call
        if step.kind in (SERVER_STREAM, CLIENT_STREAM):
            if step.kind == SERVER_STREAM:
                request = step.requests[0]
            else:
                request = iter(step.requests)
            call = started(mc(request, **kwargs))
            first = True
            for msg in call:
                self.print_message(line_id, msg)
                if first:
                    first = False
                    for nested in step.after_first:
                        self.run_step(nested)
                self.read_pause(step)
            return call
        return self.lock_step(step, line_id, mc, kwargs, started)

    def lock_step(self, step, line_id, mc, kwargs, started):
        """Sends one order, waits for its fill, prints it, sends the next."""
        outbox = queue.SimpleQueue()
        done = object()

        def orders():
            while (order := outbox.get()) is not done:
                yield order

        pending = list(step.requests)

        def send_next():
            outbox.put(pending.pop(0) if pending else done)
            if not pending:
                outbox.put(done)  # half-close right after the last order

        send_next()
        call = started(mc(orders(), **kwargs))
        try:
            for msg in call:
                self.print_message(line_id, msg)
                self.read_pause(step)
                if pending:
                    send_next()
        finally:
            outbox.put(done)  # the stream ended: stop the request iterator
        return call


def make_channel(args):
    # The receive limit is grpcio's default (4 MiB); the send limit stays
    # grpcio's default too (unlimited): the size cases send over 4 MiB.
    # Compressed responses are decompressed by Decoder, which records it.
    options = [
        ("grpc.max_receive_message_length", 4 << 20),
        ("grpc.per_message_decompression", 0),
    ]
    if args.tls_mode == "none":
        return grpc.insecure_channel(args.server, options=options)

    def read(path, flag):
        if not path:
            raise FatalError(f"--{flag} is required with --tls-mode {args.tls_mode}")
        try:
            with open(path, "rb") as f:
                return f.read()
        except OSError as e:
            raise FatalError(f"failed to read --{flag} {path}: {e}") from None

    ca = read(args.ca_file, "ca-file")
    if args.tls_mode == "mtls":
        creds = grpc.ssl_channel_credentials(
            root_certificates=ca,
            private_key=read(args.key_file, "key-file"),
            certificate_chain=read(args.cert_file, "cert-file"),
        )
    else:
        creds = grpc.ssl_channel_credentials(root_certificates=ca)
    if args.server_name:
        options.append(("grpc.ssl_target_name_override", args.server_name))
    return grpc.secure_channel(args.server, creds, options=options)


def metadata_pair(text):
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected K=V, got {text!r}")
    try:
        return key.lower(), metadata_value(key.lower(), value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def parse_args(argv):
    p = argparse.ArgumentParser(prog="client")
    p.add_argument("--server", required=True)
    p.add_argument("--tls-mode", choices=["none", "server", "mtls"], default="none")
    p.add_argument("--ca-file")
    p.add_argument("--cert-file")
    p.add_argument("--key-file")
    p.add_argument("--server-name")
    p.add_argument("--timeout-ms", type=int, default=0)
    p.add_argument("--metadata", type=metadata_pair, action="append", default=[])
    p.add_argument("--compression", choices=["gzip", "identity"])
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("get").add_argument("key")
    put = sub.add_parser("put")
    put.add_argument("key")
    put.add_argument("value")
    mon = sub.add_parser("monitor")
    mon.add_argument("pattern")
    mon.add_argument("--max-events", type=int, default=0)
    mon.add_argument("--include-existing", action="store_true")
    sub.add_parser("batch").add_argument("items", nargs="*")
    sub.add_parser("trade")
    sub.add_parser("inventory")
    sub.add_parser("script")
    return p.parse_args(argv)


def stdin_json_lines():
    out = []
    for line in sys.stdin.buffer:
        if line.strip():
            try:
                out.append(json.loads(line))
            except ValueError as e:
                raise UsageError(f"invalid JSON line {line!r}: {e}")
    return out


def b64(text):
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def command_step(args):
    """The step a single command stands for."""
    c = args.command
    if c == "get":
        return {"id": c, "method": "Get", "request": {"key": args.key}}
    if c == "put":
        return {
            "id": c,
            "method": "Put",
            "request": {"key": args.key, "value": b64(args.value)},
        }
    if c == "monitor":
        req = {
            "pattern": args.pattern,
            "maxEvents": args.max_events,
            "includeExisting": args.include_existing,
        }
        return {"id": c, "method": "Monitor", "request": req}
    if c == "batch":
        if args.items:
            reqs = []
            for item in args.items:
                key, sep, value = item.partition("=")
                if not sep:
                    raise UsageError(f"expected KEY=VALUE, got {item!r}")
                reqs.append({"key": key, "value": b64(value)})
        else:
            reqs = stdin_json_lines()
        return {"id": c, "method": "Batch", "requests": reqs}
    if c == "trade":
        return {"id": c, "method": "Trade", "requests": stdin_json_lines()}
    return {"id": c, "method": "Inventory"}


def run(args):
    if args.command == "script":
        runner = Runner(args)
        for line in sys.stdin.buffer:
            if not line.strip():
                continue
            try:
                step = json.loads(line)
            except ValueError as e:
                raise UsageError(f"invalid step line {line!r}: {e}")
            runner.run_step(Prepared(step))
    else:
        step = Prepared(command_step(args))
        runner = Runner(args)
        runner.run_step(step)
    runner.channel.close()


def main():
    args = parse_args(sys.argv[1:])
    try:
        run(args)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except FatalError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
