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
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.ScheduledThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

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
    /** A call still running this long before its deadline ends with DEADLINE_EXCEEDED (grpc-java would reset it). */
    private static final long DEADLINE_LEAD_NANOS = TimeUnit.MILLISECONDS.toNanos(50);
    /** Ends the calls that reach their deadline minus the lead; a call that ends first takes its task out. */
    private static final ScheduledExecutorService TIMER = deadlineTimer();

    /** The deadline of a call whose grpc-timeout {@link DeadlineTracer} took from the stack. */
    private static final Context.Key<Deadline> CALL_DEADLINE = Context.key("stock-deadline");

    /**
     * grpc-java resets a stream whose Context reaches its deadline (RST_STREAM CANCEL, no trailers: grpc-js and
     * C-core clients may then see CANCELLED), and that reset wins over the call's DEADLINE_EXCEEDED whenever the
     * process is stalled past the lead (a loaded machine, a GC pause). So the stack never sees a call's grpc-timeout:
     * taken from the headers before it makes the call's Context, it becomes that Context's CALL_DEADLINE, and the
     * interceptor gives the deadline to the handlers' Context, below the stack's: only the hooks end a call at its
     * deadline, with trailers, however late.
     */
    static final class DeadlineTracer extends ServerStreamTracer.Factory {
        private static final ServerStreamTracer NONE = new ServerStreamTracer() {};

        @Override
        public ServerStreamTracer newServerStreamTracer(String fullMethodName, Metadata headers) {
            Long nanos = headers.get(GrpcUtil.TIMEOUT_KEY);
            if (nanos == null) {
                return NONE;
            }
            headers.discardAll(GrpcUtil.TIMEOUT_KEY);
            Deadline deadline = Deadline.after(nanos, TimeUnit.NANOSECONDS);
            return new ServerStreamTracer() {
                @Override
                public Context filterContext(Context context) {
                    return context.withValue(CALL_DEADLINE, deadline);
                }
            };
        }
    }

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

    private static ScheduledExecutorService deadlineTimer() {
        ScheduledThreadPoolExecutor timer = new ScheduledThreadPoolExecutor(1, r -> {
            Thread t = new Thread(r, "stock-deadline");
            t.setDaemon(true);
            return t;
        });
        timer.setRemoveOnCancelPolicy(true);
        return timer;
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
     * failAfter response messages. A call with a deadline ends with DEADLINE_EXCEEDED 50 ms before it (trailers, not
     * grpc-java's reset; see DeadlineTracer); its handlers run in a context with that deadline, cancelled then.
     */
    @Override
    public <Q, R> ServerCall.Listener<Q> interceptCall(
            ServerCall<Q, R> serverCall, Metadata headers, ServerCallHandler<Q, R> next) {
        Deadline deadline = CALL_DEADLINE.get();
        Context context =
                deadline == null ? Context.current() : Context.current().withDeadline(deadline, TIMER);
        HookedCall<Q, R> call = new HookedCall<>(serverCall, context);
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
            long left = deadline == null ? -1 : Math.max(0, deadline.timeRemaining(TimeUnit.MILLISECONDS));
            call.trailer.put(key("x-stock-deadline-ms"), left < 0 ? "none" : Long.toString(left));
        }
        if (deadline != null) {
            call.expireAt(deadline);
        }
        Asked asked;
        try {
            asked = readHooks(headers);
            delay(context, asked.delayMs);
        } catch (StatusRuntimeException | InterruptedException e) { // a bad hook value, or an interrupted delay
            return call.end(Status.fromThrowable(e).asRuntimeException());
        }
        Status over = Contexts.statusFromCancelled(context);
        if (over != null) {
            return call.end(over.asRuntimeException());
        } else if (asked.watchersPrefix != null) {
            String count = Long.toString(store.watchers(asked.watchersPrefix));
            synchronized (call) {
                call.trailer.put(key("x-stock-watchers"), count);
            }
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
                Contexts.interceptCall(context.withValue(CURRENT, asked), call, headers, next);
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

    /** Sleeps the x-stock-delay-ms, or less when the call's context is cancelled first (the call is over). */
    private static void delay(Context context, long ms) throws InterruptedException {
        if (ms <= 0) {
            return;
        }
        CountDownLatch over = new CountDownLatch(1);
        Context.CancellationListener wake = c -> over.countDown();
        context.addListener(wake, Runnable::run);
        try {
            over.await(ms, TimeUnit.MILLISECONDS);
        } finally {
            context.removeListener(wake);
        }
    }

    /**
     * The call with the hooks' headers and trailers; after failAfter messages it ends with the forced status, and 50
     * ms before its deadline with DEADLINE_EXCEEDED. Once ended it sends nothing more and reports itself cancelled, so
     * a Monitor drops out of the store at once. Sending and closing are serialized (a ServerCall is not thread-safe).
     */
    private static final class HookedCall<Q, R> extends SimpleForwardingServerCall<Q, R> {
        final Metadata header = new Metadata();
        final Metadata trailer = new Metadata();
        private final Context context;
        private StatusRuntimeException fail;
        private long failAfter = -1;
        private long sent;
        private boolean closed;
        private ScheduledFuture<?> expiry;

        HookedCall(ServerCall<Q, R> call, Context context) {
            super(call);
            this.context = context;
        }

        /** Schedules the end at the deadline minus the lead; a close before then cancels it. */
        synchronized void expireAt(Deadline deadline) {
            if (!closed) {
                long left = deadline.timeRemaining(TimeUnit.NANOSECONDS) - DEADLINE_LEAD_NANOS;
                expiry = TIMER.schedule(this::expire, Math.max(0, left), TimeUnit.NANOSECONDS);
            }
        }

        /**
         * Ends a call still running with DEADLINE_EXCEEDED in trailers, then cancels its handlers' context (outside
         * the lock: a Monitor's unwatch takes the store's lock, whose sinks take this one).
         */
        private void expire() {
            if (!isCancelled()) {
                end(Status.DEADLINE_EXCEEDED
                        .withDescription("deadline exceeded")
                        .asRuntimeException());
            }
            if (context instanceof Context.CancellableContext c) {
                c.cancel(new TimeoutException("deadline exceeded"));
            }
        }

        /** Ends the call with the exception's status and trailers; the listener for a call that ended early. */
        ServerCall.Listener<Q> end(StatusRuntimeException e) {
            close(e.getStatus(), e.getTrailers() == null ? new Metadata() : e.getTrailers());
            return new ServerCall.Listener<>() {};
        }

        @Override
        public synchronized void sendHeaders(Metadata headers) {
            if (!closed) {
                headers.merge(header);
                super.sendHeaders(headers);
            }
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
                if (expiry != null) {
                    expiry.cancel(false);
                }
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
