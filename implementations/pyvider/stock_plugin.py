"""stock.v1.Stock and proto.KV (../python's servicers, store and hooks) served as a plugin by pyvider-rpcplugin's
own RPCPluginServer, started the way a host starts a pyvider provider: magic cookie, transports, automatic mTLS
and the go-plugin handshake line are the library's (see README.md and ../../CONTRACT.md)."""

import asyncio
import contextlib
import os
import signal
import sys
import threading
import traceback
from importlib.metadata import version

import grpc
from grpc_health.v1 import health
from grpc_reflection.v1alpha import reflection
from pyvider.rpcplugin import RPCPluginProtocol, RPCPluginServer

import stock_pb2
import stock_server
from store import Store

# What pyvider providers configure (and Terraform sends): the key and value of go-plugin's magic cookie.
MAGIC_COOKIE_KEY = "TF_PLUGIN_MAGIC_COOKIE"
MAGIC_COOKIE_VALUE = "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2"

STACK = f"pyvider-rpcplugin {version('pyvider-rpcplugin')} + grpcio {grpc.__version__} (grpc.aio)"


class StockProtocol(RPCPluginProtocol):
    """The library's protocol abstraction: add_to_server is its extension point on the grpc.aio server it
    creates (it takes neither interceptors nor options), so the hooks wrap the method handlers there."""

    protocol_version = 1  # the application protocol version of the handshake (go-plugin's KV example: 1)
    service_name = "stock.v1.Stock"  # the library's health answers SERVING for it, "" and "plugin"

    async def get_grpc_descriptors(self):
        return stock_pb2.DESCRIPTOR, self.service_name

    async def add_to_server(self, server, handler):
        intercepted = stock_server.Intercepted(server, stock_server.interceptors(handler))
        stock_server.add_services(intercepted, handler, "pyvider", STACK)
        # the library registers grpc.health.v1.Health (its own servicer) after this
        reflection.enable_server_reflection(
            (*stock_server.SERVICES, health.SERVICE_NAME, reflection.SERVICE_NAME), server
        )


def config():
    """The library settings a pyvider provider passes (the magic cookie), plus the contract's process rules."""
    settings = {
        "PLUGIN_MAGIC_COOKIE_KEY": MAGIC_COOKIE_KEY,
        "PLUGIN_MAGIC_COOKIE_VALUE": MAGIC_COOKIE_VALUE,
        # go-plugin (and the library by default) ignores SIGINT; the contract's servers stop on it
        "PLUGIN_IGNORE_SIGINT": False,
    }
    # Automatic mTLS is the library's own: with PLUGIN_CLIENT_CERT alone it serves TLS but does not verify the
    # client's certificate (server/network.py, _client_ca_bundle); that is what a provider does, so it stays.
    return settings


def watch_stdin():
    """Stops the server when stdin reaches end-of-file: through the library's own SIGTERM handling."""
    with contextlib.suppress(OSError):
        while os.read(0, 4096):
            pass
    os.kill(os.getpid(), signal.SIGTERM)


async def serve():
    server = RPCPluginServer(protocol=StockProtocol(), handler=Store(), config=config())
    threading.Thread(target=watch_stdin, daemon=True).start()
    await server.serve()  # ends the process itself: sys.exit(0) once stopped, 1 on a startup fault


def main():
    code = 1
    try:
        asyncio.run(serve())
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    except Exception:
        traceback.print_exc()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # without waiting for grpc's threads


if __name__ == "__main__":
    main()
