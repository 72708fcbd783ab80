"""What grpcio lacks: telling the grpc-encoding of received messages (see ../../CONTRACT.md).

C-core never hands grpc-encoding to the application, so both ends turn its message
decompression off (grpc.per_message_decompression) and decompress here: a message that
arrived gzip-compressed starts with gzip's magic bytes 1f 8b, which no protobuf message
starts with (0x1f would be wire type 7). A message a stack chose to send uncompressed
under grpc-encoding: gzip (C-core does when gzip would not shrink it) counts as identity.
"""

import contextlib
import contextvars
import inspect
import zlib

import grpc

MAX_MESSAGE = 4 << 20
GZIP_MAGIC = b"\x1f\x8b"

# The server's current call: "gzip" once one of its request messages arrived compressed.
REQUEST_ENCODING = contextvars.ContextVar("request_encoding", default="identity")


class TooLarge(Exception):
    """A gzip-compressed message over MAX_MESSAGE once decompressed."""


def gunzip(data):
    """Decompresses one message, refusing one over MAX_MESSAGE (core's limit when it decompresses)."""
    gz = zlib.decompressobj(zlib.MAX_WBITS | 16)
    data = gz.decompress(data, MAX_MESSAGE + 1)
    if len(data) > MAX_MESSAGE:
        raise TooLarge(f"Received message larger than max (over {MAX_MESSAGE} bytes once decompressed)")
    if not gz.eof:
        raise ValueError("truncated gzip-compressed message")
    return data


class Decoder:
    """The client's response deserializer for one call; remembers whether a response was gzip."""

    def __init__(self, cls):
        self.cls = cls
        self.encoding = "identity"

    def __call__(self, data):
        if data[:2] == GZIP_MAGIC:
            data = gunzip(data)
            self.encoding = "gzip"
        return self.cls.FromString(data)


class GunzipRequests(grpc.aio.ServerInterceptor):
    """Decompresses request messages in the call's task (where REQUEST_ENCODING is read).

    The handler decodes the raw messages itself, so that one over the limit once decompressed
    ends its call with RESOURCE_EXHAUSTED (an exception in a deserializer ends it UNKNOWN)."""

    async def intercept_service(self, continuation, handler_call_details):
        return self.wrap(await continuation(handler_call_details), handler_call_details.method)

    def wrap(self, handler, method):
        """The method's handler decoding its own requests (see stock_server.Intercepted)."""
        if handler is None:
            return None
        deserializer = handler.request_deserializer or (lambda data: data)

        def read(data):
            if data[:2] == GZIP_MAGIC:
                data = gunzip(data)
                REQUEST_ENCODING.set("gzip")
            return deserializer(data)

        async def read_stream(requests):
            async for data in requests:
                yield read(data)

        kind = ("stream_" if handler.request_streaming else "unary_") + (
            "stream" if handler.response_streaming else "unary"
        )
        behavior = getattr(handler, kind)
        decode = read_stream if handler.request_streaming else read

        if inspect.isasyncgenfunction(behavior):

            async def wrapped(request, context):
                try:
                    async with contextlib.aclosing(behavior(decode(request), context)) as responses:
                        async for response in responses:
                            yield response
                except TooLarge as e:
                    await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(e))

        else:

            async def wrapped(request, context):
                try:
                    return await behavior(decode(request), context)
                except TooLarge as e:
                    await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(e))

        return handler._replace(request_deserializer=None, **{kind: wrapped})
