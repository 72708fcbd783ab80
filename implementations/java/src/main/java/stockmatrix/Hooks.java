package stockmatrix;

import com.google.protobuf.Any;
import com.google.rpc.ErrorInfo;
import io.grpc.*;
import io.grpc.ForwardingServerCall.SimpleForwardingServerCall;
import io.grpc.ForwardingServerCallListener.SimpleForwardingServerCallListener;
import io.grpc.MethodDescriptor.MethodType;
import io.grpc.internal.GrpcUtil;
import io.grpc.protobuf.StatusProto;
import java.nio.charset.StandardCharsets;
import java.util.Set;
import java.util.concurrent.TimeUnit;

/** The contract's x-stock-* test hooks, applied to every stock.v1.Stock call by this interceptor. */
final class Hooks implements ServerInterceptor {
    static final String SPECIAL_MESSAGE =
            "\t\ntest with whitespace\r\nand Unicode BMP \u263a and non-BMP \ud83d\ude08\t\n";
    /** The hooks of the current call, for the handlers (x-stock-repeat-value, x-stock-count-prefix). */
    static final Context.Key<Asked> CURRENT = Context.key("stock-hooks");

    private static final Metadata.Key<String> ECHO = key("x-stock-echo");
    private static final Metadata.Key<byte[]> ECHO_BIN = binaryKey("x-stock-echo-bin");
    private static final Metadata.Key<String> ECHO_HEADER = key("x-stock-echo-header");
    private static final Metadata.Key<String> ECHO_TRAILER = key("x-stock-echo-trailer");

    /** What one call's metadata asks for; fail is null without x-stock-fail. */
    record Asked(
            long delayMs,
            StatusRuntimeException fail,
            long failAfter,
            int repeatValue,
            String watchersPrefix,
            String countPrefix) {}

    private final Store store;

    Hooks(Store store) {
        this.store = store;
    }

    private static Metadata.Key<String> key(String name) {
        return Metadata.Key.of(name, Metadata.ASCII_STRING_MARSHALLER);
    }

    private static Metadata.Key<byte[]> binaryKey(String name) {
        return Metadata.Key.of(name, Metadata.BINARY_BYTE_MARSHALLER);
    }

    /** The hooks in the request metadata; a bad number or code is INVALID_ARGUMENT. */
    static Asked readHooks(Metadata md) {
        boolean fail = md.containsKey(key("x-stock-fail")) || "true".equals(md.get(key("x-stock-fail-special")));
        return new Asked(
                number(md, "x-stock-delay-ms"),
                fail ? forcedStatus(md) : null,
                number(md, "x-stock-fail-after"),
                (int) Math.max(1, number(md, "x-stock-repeat-value")),
                md.get(key("x-stock-report-watchers")),
                md.get(key("x-stock-count-prefix")));
    }

    private static long number(Metadata md, String name) {
        String v = md.get(key(name));
        try {
            return v == null ? 0 : Long.parseUnsignedLong(v.trim());
        } catch (NumberFormatException e) {
            throw Status.INVALID_ARGUMENT
                    .withDescription(name + ": not a number: \"" + v + "\"")
                    .asRuntimeException();
        }
    }

    /**
     * Echoes, response compression and the report-* trailers; then the delay, a stop when the call is over, and the
     * forced failure: at once for unary calls (and after 0 messages), after the request stream for Batch, else after
     * failAfter response messages.
     */
    @Override
    public <Q, R> ServerCall.Listener<Q> interceptCall(
            ServerCall<Q, R> serverCall, Metadata headers, ServerCallHandler<Q, R> next) {
        HookedCall<Q, R> call = new HookedCall<>(serverCall);
        call.header.merge(headers, Set.of(ECHO, ECHO_BIN, ECHO_HEADER));
        call.trailer.merge(headers, Set.of(ECHO, ECHO_BIN, ECHO_TRAILER));
        if ("gzip".equals(headers.get(key("x-stock-compress")))) {
            call.setCompression("gzip");
        }
        if ("true".equals(headers.get(key("x-stock-report-encoding")))) {
            String encoding = headers.get(GrpcUtil.MESSAGE_ENCODING_KEY);
            call.trailer.put(key("x-stock-request-encoding"), encoding == null ? "identity" : encoding);
        }
        if ("true".equals(headers.get(key("x-stock-report-deadline")))) {
            Deadline deadline = Context.current().getDeadline();
            long left = deadline == null ? -1 : Math.max(0, deadline.timeRemaining(TimeUnit.MILLISECONDS));
            call.trailer.put(key("x-stock-deadline-ms"), left < 0 ? "none" : Long.toString(left));
        }
        Asked asked;
        try {
            asked = readHooks(headers);
            Thread.sleep(asked.delayMs);
        } catch (StatusRuntimeException | InterruptedException e) { // a bad hook value, or an interrupted delay
            return call.end(Status.fromThrowable(e).asRuntimeException());
        }
        Status over = Contexts.statusFromCancelled(Context.current());
        if (over != null) {
            return call.end(over.asRuntimeException());
        } else if (asked.watchersPrefix != null) {
            call.trailer.put(key("x-stock-watchers"), Long.toString(store.watchers(asked.watchersPrefix)));
        }
        MethodType type = call.getMethodDescriptor().getType();
        boolean batch = type == MethodType.CLIENT_STREAMING;
        if (asked.fail != null && (type == MethodType.UNARY || !batch && asked.failAfter == 0)) {
            return call.end(asked.fail);
        } else if (asked.fail != null && !batch) {
            call.fail = asked.fail;
            call.failAfter = asked.failAfter;
        }
        ServerCall.Listener<Q> listener =
                Contexts.interceptCall(Context.current().withValue(CURRENT, asked), call, headers, next);
        if (asked.fail == null || !batch) {
            return listener;
        }
        return new SimpleForwardingServerCallListener<>(listener) {
            @Override
            public void onHalfClose() {
                call.end(asked.fail);
            }
        };
    }

    /** The x-stock-fail status with its google.rpc.ErrorInfo (reason FORCED, domain stock.v1), via StatusProto. */
    static StatusRuntimeException forcedStatus(Metadata md) {
        String name = md.get(key("x-stock-fail"));
        Status.Code code = Status.Code.OK;
        try {
            code = name == null ? Status.Code.UNKNOWN : Status.Code.valueOf(name);
        } catch (IllegalArgumentException e) {
            // reported below
        }
        if (code == Status.Code.OK) {
            throw Status.INVALID_ARGUMENT
                    .withDescription("x-stock-fail: unknown code \"" + name + "\"")
                    .asRuntimeException();
        }
        byte[] messageBin = md.get(binaryKey("x-stock-fail-message-bin"));
        String message = md.get(key("x-stock-fail-message"));
        if ("true".equals(md.get(key("x-stock-fail-special")))) {
            message = SPECIAL_MESSAGE;
        } else if (messageBin != null) {
            message = new String(messageBin, StandardCharsets.UTF_8);
        } else if (message == null) {
            message = "forced " + code.name();
        }
        ErrorInfo info =
                ErrorInfo.newBuilder().setReason("FORCED").setDomain("stock.v1").build();
        return StatusProto.toStatusRuntimeException(com.google.rpc.Status.newBuilder()
                .setCode(code.value())
                .setMessage(message)
                .addDetails(Any.pack(info))
                .build());
    }

    /**
     * The call with the hooks' headers and trailers; after failAfter messages it ends with the forced status. Once
     * ended it sends nothing more and reports itself cancelled, so a Monitor drops out of the store at once.
     */
    private static final class HookedCall<Q, R> extends SimpleForwardingServerCall<Q, R> {
        final Metadata header = new Metadata();
        final Metadata trailer = new Metadata();
        private StatusRuntimeException fail;
        private long failAfter = -1;
        private long sent;
        private boolean closed;

        HookedCall(ServerCall<Q, R> call) {
            super(call);
        }

        /** Ends the call with the exception's status and trailers; the listener for a call that ended early. */
        ServerCall.Listener<Q> end(StatusRuntimeException e) {
            close(e.getStatus(), e.getTrailers() == null ? new Metadata() : e.getTrailers());
            return new ServerCall.Listener<>() {};
        }

        @Override
        public synchronized void sendHeaders(Metadata headers) {
            headers.merge(header);
            super.sendHeaders(headers);
        }

        @Override
        public synchronized void sendMessage(R message) {
            if (!closed) {
                super.sendMessage(message);
                if (++sent == failAfter) {
                    end(fail);
                }
            }
        }

        @Override
        public synchronized void close(Status status, Metadata trailers) {
            if (!closed) {
                closed = true;
                trailers.merge(trailer);
                super.close(status, trailers);
            }
        }

        @Override
        public synchronized boolean isCancelled() {
            return closed || super.isCancelled();
        }
    }
}
