"""The stock.v1.Stock server on grpc.aio (see ../../CONTRACT.md)."""

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import threading
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

import hooks
import kv_pb2
import kv_pb2_grpc
import stock_pb2
import stock_pb2_grpc
from gunzip import MAX_MESSAGE, GunzipRequests
from store import Store, bad_field


def main():
    code = asyncio.run(serve(parse_args()))
    sys.stdout.flush()
    os._exit(code)  # without waiting for grpc's threads


def parse_args():
    p = argparse.ArgumentParser(prog="server")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--tls-mode", choices=["none", "server", "mtls"], default="none")
    p.add_argument("--cert-file")
    p.add_argument("--key-file")
    p.add_argument("--ca-file")
    return p.parse_args()


async def serve(args):
    """Serves until SIGTERM, SIGINT or the end of stdin; the exit code."""
    store = Store()
    server = grpc.aio.server(interceptors=interceptors(store), options=OPTIONS)
    add_services(server, store, "python", f"grpcio {grpc.__version__}")
    health_servicer = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for service in ("", *SERVICES):
        await health_servicer.set(service, health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection((*SERVICES, health.SERVICE_NAME, reflection.SERVICE_NAME), server)

    address = f"[{args.host}]:{args.port}" if ":" in args.host else f"{args.host}:{args.port}"
    try:
        if args.tls_mode == "none":
            server.add_insecure_port(address)
        else:
            mtls = args.tls_mode == "mtls"
            pair = (Path(args.key_file).read_bytes(), Path(args.cert_file).read_bytes())
            ca = Path(args.ca_file).read_bytes() if mtls else None
            credentials = grpc.ssl_server_credentials([pair], root_certificates=ca, require_client_auth=mtls)
            server.add_secure_port(address, credentials)
        await server.start()
    except Exception as e:  # grpc raises RuntimeError with little detail; OSError: a file; TypeError: no file given
        print(f"error: failed to bind {address} or load TLS: {e}", file=sys.stderr)
        return 1

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    threading.Thread(target=watch_stdin, args=(loop, stop), daemon=True).start()
    print(f"listening on {args.host}:{args.port}", flush=True)
    await stop.wait()
    await server.stop(0.3)
    return 0


# receive up to 4 MiB, send without a cap; GunzipRequests decompresses, not core
OPTIONS = [("grpc.max_receive_message_length", MAX_MESSAGE), ("grpc.max_send_message_length", -1)]
OPTIONS += [("grpc.so_reuseport", 0), ("grpc.per_message_decompression", 0)]
# the contract's header-list limit, soft and hard (else core refuses only some requests past it)
OPTIONS += [("grpc.max_metadata_size", 16 << 10), ("grpc.absolute_max_metadata_size", 16 << 10)]

SERVICES = ("stock.v1.Stock", "proto.KV")  # served over one store, both SERVING in health


def interceptors(store):
    """The server interceptors the services need: decompression (outermost), then the test hooks."""
    return [GunzipRequests(), hooks.StockHooks(store)]


def add_services(server, store, language, stack):
    """Registers Stock (Inventory answers language and stack) and proto.KV over store on server, a grpc.aio
    server made with interceptors(store) and OPTIONS, or an Intercepted one. Health and reflection are the
    caller's."""
    stock_pb2_grpc.add_StockServicer_to_server(Stock(store, language, stack), server)
    kv_pb2_grpc.add_KVServicer_to_server(KV(store), server)


class Intercepted:
    """A grpc.aio server made elsewhere, without our interceptors, seen through them: the method handlers the
    generated add_*_to_server functions register are wrapped by each interceptor's wrap() (first = outermost)."""

    def __init__(self, server, interceptors):
        self.server, self.interceptors = server, interceptors

    def wrap(self, handler, method):
        for interceptor in reversed(self.interceptors):
            handler = interceptor.wrap(handler, method)
        return handler

    def add_registered_method_handlers(self, service, handlers):
        wrapped = {name: self.wrap(handler, f"/{service}/{name}") for name, handler in handlers.items()}
        self.server.add_registered_method_handlers(service, wrapped)

    def add_generic_rpc_handlers(self, generic_handlers):
        self.server.add_generic_rpc_handlers([_Wrapped(self, handler) for handler in generic_handlers])


class _Wrapped(grpc.GenericRpcHandler):
    def __init__(self, intercepted, handler):
        self.intercepted, self.handler = intercepted, handler

    def service(self, handler_call_details):
        return self.intercepted.wrap(self.handler.service(handler_call_details), handler_call_details.method)


def watch_stdin(loop, stop):
    """Stops the server when stdin reaches end-of-file."""
    with contextlib.suppress(OSError):
        while os.read(0, 4096):
            pass
    loop.call_soon_threadsafe(stop.set)


class Stock(stock_pb2_grpc.StockServicer):
    """The Stock methods; hooks.StockHooks applies the hooks around them and turns Refused into a status.
    Audit is left to the generated base class (UNIMPLEMENTED)."""

    def __init__(self, store, language, stack):
        self.store, self.language, self.stack = store, language, stack

    async def Get(self, request, context):
        value, version = self.store.get(request.key)
        return stock_pb2.GetResponse(value=value * hooks.CURRENT.get().repeat_value, version=version)

    async def Put(self, request, context):
        self.store.put(request.key, request.value)
        return stock_pb2.Empty()

    async def Monitor(self, request, context):
        if not request.pattern:
            raise bad_field("pattern", "pattern must not be empty")
        if request.max_events < 0:
            raise bad_field("max_events", "max_events must not be negative")
        existing, watch = self.store.watch(request.pattern, request.include_existing)
        # However the call ends (even while writing, outside this generator), its end unregisters the watch.
        context.add_done_callback(lambda _: self.store.unwatch(watch))
        try:
            limit = request.max_events or float("inf")
            sent = 0
            while sent < limit:
                yield existing[sent] if sent < len(existing) else await watch[1].get()
                sent += 1
        finally:
            self.store.unwatch(watch)

    async def Batch(self, request_iterator, context):
        return self.store.batch([item async for item in request_iterator])

    async def Trade(self, request_iterator, context):
        positions = {}
        sequence = 0
        async for order in request_iterator:
            if order.quantity <= 0:
                message = f"order {order.order_id!r}: quantity must be > 0, got {order.quantity}"
                raise bad_field("quantity", message)
            sequence += 1
            signed = order.quantity if order.side == stock_pb2.BUY else -order.quantity
            positions[order.symbol] = positions.get(order.symbol, 0) + signed
            yield stock_pb2.TradeFill(
                order_id=order.order_id,
                symbol=order.symbol,
                side=order.side,
                quantity=order.quantity,
                price_cents=order.price_cents,
                sequence=sequence,
                net_position=positions[order.symbol],
            )

    async def Inventory(self, request, context):
        keys, size = self.store.totals(hooks.CURRENT.get().count_prefix)
        return stock_pb2.InventoryStatus(
            key_count=keys, total_value_bytes=size, language=self.language, stack=self.stack
        )


class KV(kv_pb2_grpc.KVServicer):
    """The legacy proto.KV service (kv.proto) over the Stock store."""

    def __init__(self, store):
        self.store = store

    async def Get(self, request, context):
        return kv_pb2.GetResponse(value=self.store.get(request.key)[0])

    async def Put(self, request, context):
        self.store.put(request.key, request.value)
        return kv_pb2.Empty()


if __name__ == "__main__":
    main()
