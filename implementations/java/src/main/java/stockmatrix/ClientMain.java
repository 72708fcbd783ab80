package stockmatrix;

import com.google.common.util.concurrent.MoreExecutors;
import com.google.gson.*;
import com.google.gson.reflect.TypeToken;
import com.google.gson.stream.JsonReader;
import com.google.gson.stream.JsonWriter;
import com.google.protobuf.Descriptors.FieldDescriptor;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.Message;
import com.google.protobuf.TypeRegistry;
import com.google.protobuf.UnsafeByteOperations;
import com.google.protobuf.util.JsonFormat;
import com.google.rpc.ErrorDetailsProto;
import io.grpc.*;
import io.grpc.MethodDescriptor.MethodType;
import io.grpc.MethodDescriptor.PrototypeMarshaller;
import io.grpc.internal.GrpcUtil;
import io.grpc.netty.shaded.io.grpc.netty.GrpcSslContexts;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.grpc.netty.shaded.io.grpc.netty.NettySslContextChannelCredentials;
import io.grpc.netty.shaded.io.netty.channel.ChannelOption;
import io.grpc.netty.shaded.io.netty.channel.EventLoopGroup;
import io.grpc.netty.shaded.io.netty.channel.epoll.Epoll;
import io.grpc.netty.shaded.io.netty.channel.epoll.EpollDomainSocketChannel;
import io.grpc.netty.shaded.io.netty.channel.epoll.EpollEventLoopGroup;
import io.grpc.netty.shaded.io.netty.channel.unix.DomainSocketAddress;
import io.grpc.netty.shaded.io.netty.handler.ssl.SslContextBuilder;
import io.grpc.netty.shaded.io.netty.handler.ssl.SslProvider;
import io.grpc.protobuf.StatusProto;
import io.grpc.stub.ClientCalls;
import io.grpc.stub.MetadataUtils;
import io.grpc.stub.StreamObserver;
import java.io.*;
import java.nio.charset.StandardCharsets;
import java.util.*;
import java.util.concurrent.*;
import java.util.concurrent.atomic.AtomicReference;
import proto.KVGrpc;
import stock.v1.LedgerGrpc;
import stock.v1.StockGrpc;

/** The contract's client: {@code client --server HOST:PORT [TLS options] script}, steps on stdin. */
public final class ClientMain {
    /**
     * Stdout, unbuffered: {@link #println} writes each line whole (under its lock: copies and lanes never interleave)
     * with one write, so it is flushed as it is printed.
     */
    private static final FileOutputStream OUT = new FileOutputStream(FileDescriptor.out);
    /** Reads steps: record components in lowerCamelCase are the JSON's snake_case fields. */
    private static final Gson GSON = new GsonBuilder()
            .setFieldNamingPolicy(FieldNamingPolicy.LOWER_CASE_WITH_UNDERSCORES)
            .create();
    /** The fields each object of a step line may have (as the contract's step table has them), by its record. */
    private static final Map<Class<?>, Fields> FIELDS = Map.of(
            StepJson.class,
            new Fields(
                    "step",
                    Set.of(
                            "id",
                            "method",
                            "request",
                            "requests",
                            "metadata",
                            "timeout_ms",
                            "compression",
                            "connection",
                            "after_first",
                            "copies",
                            "read_pause_ms",
                            "lane",
                            "cancel_after_ms",
                            "cancel_after_messages",
                            "fill",
                            "bench")),
            Connection.class,
            new Fields(
                    "connection",
                    Set.of(
                            "server",
                            "tls_mode",
                            "ca_file",
                            "cert_file",
                            "key_file",
                            "server_name",
                            "keepalive_ms",
                            "keepalive_timeout_ms")),
            Fill.class,
            new Fields("fill", Set.of("request", "repeat", "times")),
            Bench.class,
            new Fields("bench", Set.of("duration_ms", "concurrency")));
    /**
     * Reads a step with GSON, after refusing the fields its objects (the step, its connection, its after_first steps,
     * fill entries and bench) do not have: Gson itself ignores them.
     */
    private static final Gson STEP_GSON = GSON.newBuilder()
            .registerTypeAdapterFactory(new TypeAdapterFactory() {
                @Override
                public <T> TypeAdapter<T> create(Gson gson, TypeToken<T> type) {
                    Fields fields = FIELDS.get(type.getRawType());
                    if (fields == null) {
                        return null;
                    }
                    TypeAdapter<T> record = gson.getDelegateAdapter(this, type);
                    TypeAdapter<JsonElement> tree = gson.getAdapter(JsonElement.class);
                    return new TypeAdapter<>() {
                        @Override
                        public T read(JsonReader in) throws IOException {
                            JsonElement json = tree.read(in);
                            for (String field :
                                    json.isJsonObject() ? json.getAsJsonObject().keySet() : Set.<String>of()) {
                                if (!fields.names().contains(field)) {
                                    throw new JsonParseException("unknown " + fields.object() + " field " + field);
                                }
                            }
                            return record.fromJson(json.toString()); // from text: 1.5 is not a Long
                        }

                        @Override
                        public void write(JsonWriter out, T value) throws IOException {
                            record.write(out, value);
                        }
                    };
                }
            })
            .create();

    private static final JsonFormat.Printer PRINTER = JsonFormat.printer()
            .omittingInsignificantWhitespace()
            .usingTypeRegistry(TypeRegistry.newBuilder()
                    .add(ErrorDetailsProto.getDescriptor().getMessageTypes())
                    .build());
    private static final ScheduledExecutorService TIMER = Executors.newSingleThreadScheduledExecutor();
    /**
     * Runs the copies of a step, each on a thread of its own (an unbounded pool: every copy starts at once); threads
     * are reused by the next step's copies instead of started for each one.
     */
    private static final ExecutorService COPIES = Executors.newCachedThreadPool();

    private static final Map<String, MethodDescriptor<?, ?>> METHODS = Map.of(
            "Get",
            StockGrpc.getGetMethod(),
            "Put",
            StockGrpc.getPutMethod(),
            "Monitor",
            StockGrpc.getMonitorMethod(),
            "Batch",
            StockGrpc.getBatchMethod(),
            "Trade",
            StockGrpc.getTradeMethod(),
            "Inventory",
            StockGrpc.getInventoryMethod(),
            "Audit",
            StockGrpc.getAuditMethod(),
            "Ledger.Balance",
            LedgerGrpc.getBalanceMethod(),
            "proto.KV.Get",
            KVGrpc.getGetMethod(),
            "proto.KV.Put",
            KVGrpc.getPutMethod());
    private static final Set<String> OPTIONS = Set.of(
            "--server",
            "--tls-mode",
            "--ca-file",
            "--cert-file",
            "--key-file",
            "--server-name",
            "--keepalive-ms",
            "--keepalive-timeout-ms");
    private static final String USAGE =
            "usage: client --server HOST:PORT|unix:/PATH [--tls-mode none|server|mtls] [--ca-file F]"
                    + " [--cert-file F --key-file F] [--server-name NAME] [--keepalive-ms N [--keepalive-timeout-ms N]] script";

    /** The name of a step line's object in error messages, and the fields it may have. */
    record Fields(String object, Set<String> names) {}

    /** A usage error: the process exits 2. */
    static final class UsageError extends Exception {
        UsageError(String message) {
            super(message);
        }
    }

    /** Where a call goes: the options (the default connection) or a step's own; equal ones share a channel. */
    record Connection(
            String server,
            String tlsMode,
            String caFile,
            String certFile,
            String keyFile,
            String serverName,
            Long keepaliveMs,
            Long keepaliveTimeoutMs) {
        Connection {
            tlsMode = Objects.requireNonNullElse(tlsMode, "none");
            if (server == null || !List.of("none", "server", "mtls").contains(tlsMode)) {
                throw new IllegalArgumentException("a connection needs a server and a tls mode none, server or mtls");
            } else if ((keepaliveMs != null && keepaliveMs <= 0)
                    || (keepaliveTimeoutMs != null && keepaliveTimeoutMs <= 0)) {
                throw new IllegalArgumentException("keepalive times must be positive numbers of ms");
            }
        }
    }

    /** One script step as its JSON line has it. */
    record StepJson(
            String id,
            String method,
            JsonElement request,
            List<JsonElement> requests,
            Map<String, String> metadata,
            long timeoutMs,
            String compression,
            Connection connection,
            List<StepJson> afterFirst,
            int copies,
            long readPauseMs,
            int lane,
            long cancelAfterMs,
            int cancelAfterMessages,
            List<Fill> fill,
            Bench bench) {}

    /** A {@code bench} object: the step's call under load, {@code concurrency} calls at once for {@code duration_ms}. */
    record Bench(Long durationMs, Integer concurrency) {}

    /** A {@code fill} entry: request message {@code request}'s value is {@code repeat} (base64) {@code times} times. */
    record Fill(Integer request, String repeat, Long times) {}

    /** A checked step: its method, request messages and metadata, ready to send. */
    record Step(
            StepJson json,
            MethodDescriptor<Message, Message> method,
            List<Message> requests,
            Metadata metadata,
            List<Step> afterFirst) {}

    private final Connection defaultConnection;
    private final Map<Connection, ManagedChannel> channels = new HashMap<>();
    /** TLS credentials by (mode, CA, certificate, key), shared by the channels that use the same files. */
    private final Map<List<String>, ChannelCredentials> tlsByFiles = new HashMap<>();
    /** Each lane's worker, by lane number: one thread that runs the lane's steps in order. */
    private final Map<Integer, ExecutorService> lanes = new HashMap<>();

    private ClientMain(Connection defaultConnection) throws IOException {
        this.defaultConnection = defaultConnection;
        try {
            channelFor(defaultConnection);
        } catch (UnsupportedOperationException e) {
            // no Unix socket transport: each call on the default connection fails UNAVAILABLE (runCall)
        }
    }

    public static void main(String[] args) {
        int code = 0;
        try {
            ClientMain client = new ClientMain(parseArgs(args));
            BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
            List<Future<?>> steps = new ArrayList<>();
            for (String line; (line = in.readLine()) != null; ) {
                if (!line.isBlank()) {
                    Step step = parseStep(line);
                    steps.add(client.lane(step.json.lane()).submit(() -> {
                        client.runStep(step);
                        return null;
                    }));
                }
            }
            for (Future<?> step : steps) {
                step.get(); // every lane finished; a step that threw ends the client with 1
            }
        } catch (UsageError e) {
            System.err.println("error: " + e.getMessage());
            code = 2;
        } catch (Exception e) {
            System.err.println("error: " + e);
            code = 1;
        }
        System.exit(code);
    }

    /** The lane's worker, started with the lane's first step: its steps run in order, other lanes at the same time. */
    private ExecutorService lane(int n) {
        return lanes.computeIfAbsent(n, k -> Executors.newSingleThreadExecutor());
    }

    /** The options (the default connection), then the command {@code script}. */
    private static Connection parseArgs(String[] args) throws UsageError {
        Map<String, String> opts = new HashMap<>();
        int i = 0;
        for (; i + 1 < args.length && args[i].startsWith("--"); i += 2) {
            if (!OPTIONS.contains(args[i])) {
                throw new UsageError("unknown option " + args[i] + "\n" + USAGE);
            }
            opts.put(args[i], args[i + 1]);
        }
        if (i != args.length - 1 || !args[i].equals("script") || !opts.containsKey("--server")) {
            throw new UsageError("expected --server HOST:PORT or unix:/PATH and the command script\n" + USAGE);
        }
        try {
            return new Connection(
                    opts.get("--server"),
                    opts.get("--tls-mode"),
                    opts.get("--ca-file"),
                    opts.get("--cert-file"),
                    opts.get("--key-file"),
                    opts.get("--server-name"),
                    opts.containsKey("--keepalive-ms") ? Long.valueOf(opts.get("--keepalive-ms")) : null,
                    opts.containsKey("--keepalive-timeout-ms")
                            ? Long.valueOf(opts.get("--keepalive-timeout-ms"))
                            : null);
        } catch (IllegalArgumentException e) { // NumberFormatException too
            throw new UsageError(e.getMessage() + "\n" + USAGE);
        }
    }

    /** One stdin line as a step: request messages parsed, metadata with -bin values decoded. */
    private static Step parseStep(String line) throws UsageError {
        try {
            return parseStep(Objects.requireNonNull(STEP_GSON.fromJson(line, StepJson.class), "empty step"));
        } catch (InvalidProtocolBufferException | RuntimeException e) {
            throw new UsageError("invalid step " + line + ": " + e.getMessage());
        }
    }

    @SuppressWarnings("unchecked")
    private static Step parseStep(StepJson json) throws UsageError, InvalidProtocolBufferException {
        var method = (MethodDescriptor<Message, Message>) METHODS.get(json.method());
        if (json.lane() < 0) {
            throw new UsageError("step \"" + json.id() + "\": lane must be >= 0, got " + json.lane());
        } else if (method == null) {
            throw new UsageError("step \"" + json.id() + "\": unknown method \"" + json.method() + "\"");
        } else if (json.compression() != null
                && !json.compression().equals("gzip")
                && !json.compression().equals("identity")) {
            throw new UsageError("step \"" + json.id() + "\": compression must be gzip or identity, got \""
                    + json.compression() + "\"");
        } else if (json.afterFirst() != null
                && !json.afterFirst().isEmpty()
                && !json.method().equals("Monitor")) {
            throw new UsageError("step \"" + json.id() + "\": after_first is for Monitor only, not " + json.method());
        } else if (json.cancelAfterMessages() > 0 && !json.method().equals("Monitor")) {
            throw new UsageError(
                    "step \"" + json.id() + "\": cancel_after_messages is for Monitor only, not " + json.method());
        } else if (json.bench() != null
                && (json.bench().durationMs() == null
                        || json.bench().durationMs() < 0
                        || json.bench().concurrency() == null
                        || json.bench().concurrency() < 1)) {
            throw new UsageError("step \"" + json.id() + "\": bench needs duration_ms >= 0 and concurrency >= 1");
        }
        Message prototype = (Message) ((PrototypeMarshaller<?>) method.getRequestMarshaller()).getMessagePrototype();
        List<Message> requests = new ArrayList<>();
        for (JsonElement request : method.getType().clientSendsOneMessage()
                ? Collections.singletonList(json.request())
                : Objects.requireNonNullElse(json.requests(), List.<JsonElement>of())) {
            Message.Builder builder = prototype.newBuilderForType();
            if (request != null && !request.isJsonNull()) {
                JsonFormat.parser().merge(request.toString(), builder);
            }
            requests.add(builder.build());
        }
        fillValues(json, requests);
        Metadata metadata = new Metadata();
        for (Map.Entry<String, String> e : Objects.requireNonNullElse(json.metadata(), Map.<String, String>of())
                .entrySet()) {
            if (e.getKey().endsWith(Metadata.BINARY_HEADER_SUFFIX)) {
                metadata.put(
                        Metadata.Key.of(e.getKey(), Metadata.BINARY_BYTE_MARSHALLER),
                        Base64.getDecoder().decode(e.getValue()));
            } else {
                metadata.put(Metadata.Key.of(e.getKey(), Metadata.ASCII_STRING_MARSHALLER), e.getValue());
            }
        }
        List<Step> afterFirst = new ArrayList<>();
        for (StepJson nested : Objects.requireNonNullElse(json.afterFirst(), List.<StepJson>of())) {
            afterFirst.add(parseStep(nested));
        }
        return new Step(json, method, requests, metadata, afterFirst);
    }

    /** Applies the step's {@code fill} entries: sets the {@code value} bytes of the request messages they name. */
    private static void fillValues(StepJson json, List<Message> requests) throws UsageError {
        List<Fill> fills = Objects.requireNonNullElse(json.fill(), List.<Fill>of());
        if (!fills.isEmpty() && !json.method().equals("Put") && !json.method().equals("Batch")) {
            throw new UsageError("step \"" + json.id() + "\": fill is for Put and Batch only, not " + json.method());
        }
        for (int k = 0; k < fills.size(); k++) {
            Fill fill = fills.get(k);
            String where = "step \"" + json.id() + "\": fill entry " + k + ": ";
            if (fill == null || fill.request() == null || fill.repeat() == null || fill.times() == null) {
                throw new UsageError(where + "needs request, repeat and times");
            } else if (fill.request() < 0 || fill.request() >= requests.size()) {
                throw new UsageError(
                        where + "no request message " + fill.request() + " (the step has " + requests.size() + ")");
            } else if (fill.times() < 0) {
                throw new UsageError(where + "times must be >= 0, got " + fill.times());
            }
            byte[] unit;
            try {
                unit = Base64.getDecoder().decode(fill.repeat());
            } catch (IllegalArgumentException e) {
                throw new UsageError(where + "repeat is not base64: " + e.getMessage());
            }
            if (unit.length > 0 && fill.times() > (Integer.MAX_VALUE - 8) / unit.length) {
                throw new UsageError(
                        where + unit.length + " x " + fill.times() + " bytes is over Java's 2 GiB array limit");
            }
            // One allocation, filled by doubling copies of what is there so far.
            byte[] value = new byte[(int) (unit.length * fill.times())];
            if (value.length > 0) {
                System.arraycopy(unit, 0, value, 0, unit.length);
            }
            for (int done = unit.length, n; done < value.length; done += n) {
                n = Math.min(done, value.length - done);
                System.arraycopy(value, 0, value, done, n);
            }
            Message request = requests.get(fill.request());
            FieldDescriptor field = request.getDescriptorForType().findFieldByName("value");
            requests.set(
                    fill.request(),
                    request.toBuilder()
                            .setField(field, UnsafeByteOperations.unsafeWrap(value))
                            .build());
        }
    }

    /** The connection's channel, made (with its credentials) when first asked for and reused after, by every lane. */
    private synchronized ManagedChannel channelFor(Connection c) throws IOException {
        ManagedChannel channel = channels.get(c);
        if (channel == null) {
            ChannelCredentials credentials = InsecureChannelCredentials.create();
            if (!c.tlsMode().equals("none")) {
                List<String> files = Arrays.asList(c.tlsMode(), c.caFile(), c.certFile(), c.keyFile());
                credentials = tlsByFiles.get(files);
                if (credentials == null) {
                    credentials = tlsCredentials(c);
                    tlsByFiles.put(files, credentials);
                }
            }
            NettyChannelBuilder builder;
            String socket = unixSocketPath(c.server());
            if (socket == null) {
                builder = NettyChannelBuilder.forTarget(c.server(), credentials);
                if (c.serverName() != null) {
                    builder.overrideAuthority(c.serverName());
                }
            } else { // Netty's epoll transport dials the Unix socket; the authority (TLS name, SNI) is not in it
                builder = NettyChannelBuilder.forAddress(new DomainSocketAddress(socket), credentials)
                        .channelType(EpollDomainSocketChannel.class)
                        .eventLoopGroup(unixEventLoops())
                        .withOption(ChannelOption.SO_KEEPALIVE, null) // a TCP option: unset, not warned about
                        .overrideAuthority(Objects.requireNonNullElse(c.serverName(), "localhost"));
            }
            if (c.keepaliveMs() != null) { // grpc-java raises a time under 10 s to 10 s
                builder.keepAliveTime(c.keepaliveMs(), TimeUnit.MILLISECONDS).keepAliveWithoutCalls(true);
                if (c.keepaliveTimeoutMs() != null) {
                    builder.keepAliveTimeout(c.keepaliveTimeoutMs(), TimeUnit.MILLISECONDS);
                }
            }
            channel = builder.build();
            channel.getState(true); // connect now, while the step is prepared (calls never wait for it)
            channels.put(c, channel);
        }
        return channel;
    }

    /**
     * TLS credentials over one SslContext, for every channel with the same files (a context per channel would read
     * and parse the PEM files, and set up its native context, each time).
     */
    private static ChannelCredentials tlsCredentials(Connection c) throws IOException {
        File ca = new File(Objects.requireNonNull(c.caFile(), "TLS needs a CA file"));
        boolean mtls = c.tlsMode().equals("mtls");
        File cert = mtls ? new File(Objects.requireNonNull(c.certFile(), "mtls needs a certificate file")) : null;
        File key = mtls ? new File(Objects.requireNonNull(c.keyFile(), "mtls needs a key file")) : null;
        SslContextBuilder ssl = ServerMain.holdsP521(ca, cert) // the JDK's provider: BoringSSL has no P-521
                ? GrpcSslContexts.configure(SslContextBuilder.forClient(), SslProvider.JDK)
                : GrpcSslContexts.forClient();
        ssl.trustManager(ca);
        if (mtls) {
            ssl.keyManager(cert, key);
        }
        return NettySslContextChannelCredentials.create(ssl.build());
    }

    /** The path of a {@code unix:/PATH} or {@code unix:///PATH} server (gRPC's name syntax), else null. */
    static String unixSocketPath(String server) {
        if (!server.startsWith("unix:")) {
            return null;
        }
        String path = server.substring("unix:".length());
        return path.startsWith("///") ? path.substring(2) : path;
    }

    /**
     * The epoll event loops of every Unix socket channel, made when the first one is (under channelFor's lock). Without
     * Netty's native epoll library (shaded into grpc-netty-shaded for Linux x86_64 and aarch64) there is no Unix socket
     * transport: each call on one then fails UNAVAILABLE with the reason.
     */
    private EventLoopGroup unixEventLoops;

    private EventLoopGroup unixEventLoops() {
        if (!Epoll.isAvailable()) {
            throw new UnsupportedOperationException("unix sockets are not supported by grpc-java without Netty's"
                    + " native epoll transport: " + Epoll.unavailabilityCause());
        } else if (unixEventLoops == null) {
            unixEventLoops = new EpollEventLoopGroup();
        }
        return unixEventLoops;
    }

    /** Runs a step; with copies, that many calls at once on its channel, copy k under the id ID*k. */
    private void runStep(Step step) throws InterruptedException {
        if (step.json.bench() != null) {
            runBench(step);
            return;
        } else if (step.json.copies() <= 1) {
            runCall(step, step.json.id());
            return;
        }
        CountDownLatch copies = new CountDownLatch(step.json.copies());
        for (int k = 0; k < step.json.copies(); k++) {
            String id = step.json.id() + "*" + k;
            COPIES.execute(() -> {
                try {
                    runCall(step, id);
                } finally {
                    copies.countDown();
                }
            });
        }
        copies.await();
    }

    /**
     * One call of a step, its lines under id, made as an application's stub makes it: a unary call through
     * ClientCalls.blockingUnaryCall (the blocking stub's path), a Batch through ClientCalls.asyncClientStreamingCall
     * (the async stub's, grpc-java's client-stream API), so the stack's own checks of their one response message apply.
     * The streams (Monitor, Trade) read their messages one at a time, each after the previous one was printed and
     * handled (after_first, read_pause_ms), so an unread stream is held back by flow control; a Trade sends its next
     * order after each fill (lock-step). grpc-stub's MetadataUtils interceptors send the request metadata and keep
     * the response headers and trailers.
     */
    private void runCall(Step step, String id) {
        long start = System.nanoTime();
        ManagedChannel channel;
        try {
            channel = channelFor(Objects.requireNonNullElse(step.json.connection(), defaultConnection));
        } catch (IOException | RuntimeException e) {
            Status status = Status.UNAVAILABLE.withDescription("connection: " + e.getMessage());
            emitStatus(id, start, status, new Metadata(), new Metadata());
            return;
        }
        // The listeners only queue what they are given (never block): they run on the transport's thread, with no
        // hand-off to an executor thread for each callback.
        CallOptions options = CallOptions.DEFAULT.withExecutor(MoreExecutors.directExecutor());
        if (step.json.timeoutMs() > 0) {
            options = options.withDeadlineAfter(step.json.timeoutMs(), TimeUnit.MILLISECONDS);
        }
        if ("gzip".equals(step.json.compression())) {
            options = options.withCompression("gzip");
        }
        AtomicReference<Metadata> headers = new AtomicReference<>(), trailers = new AtomicReference<>();
        Channel stub = ClientInterceptors.intercept(
                channel,
                MetadataUtils.newAttachHeadersInterceptor(step.metadata),
                MetadataUtils.newCaptureMetadataInterceptor(headers, trailers));
        // The call's context: the cancel_after_ms timer or cancel_after_messages cancels it, and with it the call
        // (thread-safe).
        Context.CancellableContext context = Context.current().withCancellation();
        Context previous = context.attach();
        ClientCall<Message, Message> call = stub.newCall(step.method, options);
        context.detach(previous);
        if (step.json.cancelAfterMs() > 0) {
            TIMER.schedule(() -> context.cancel(null), step.json.cancelAfterMs(), TimeUnit.MILLISECONDS);
        }
        // A stream's messages and its end, or the one response message of a Batch and its end (a Status).
        BlockingQueue<Object> events = new LinkedBlockingQueue<>();
        Status status;
        Message result = null; // the one response message, printed only once the call ended OK
        try {
            switch (step.method.getType()) {
                case UNARY -> {
                    try {
                        result = ClientCalls.blockingUnaryCall(call, step.requests.get(0));
                        status = Status.OK;
                    } catch (StatusRuntimeException e) {
                        status = e.getStatus();
                    }
                }
                case CLIENT_STREAMING -> {
                    StreamObserver<Message> requests =
                            ClientCalls.asyncClientStreamingCall(call, new StreamObserver<>() {
                                @Override
                                public void onNext(Message message) {
                                    events.add(message);
                                }

                                @Override
                                public void onError(Throwable t) {
                                    events.add(Status.fromThrowable(t));
                                }

                                @Override
                                public void onCompleted() {
                                    events.add(Status.OK);
                                }
                            });
                    step.requests.forEach(requests::onNext);
                    requests.onCompleted();
                    Object event;
                    while ((event = events.take()) instanceof Message message) {
                        result = message;
                    }
                    status = (Status) event;
                }
                default -> { // Monitor, Trade
                    call.start(
                            new ClientCall.Listener<>() {
                                @Override
                                public void onMessage(Message message) {
                                    events.add(message);
                                }

                                @Override
                                public void onClose(Status status, Metadata trailers) {
                                    events.add(status);
                                }
                            },
                            new Metadata());
                    call.request(1);
                    boolean lockStep = step.method.getType() == MethodType.BIDI_STREAMING;
                    Iterator<Message> pending = step.requests.iterator();
                    send(call, pending, lockStep ? 1 : step.requests.size());
                    int received = 0;
                    Object event;
                    while ((event = events.take()) instanceof Message message) {
                        emitMessage(id, message);
                        if (++received == 1) {
                            for (Step nested : step.afterFirst) {
                                runStep(nested);
                            }
                        }
                        if (received == step.json.cancelAfterMessages()) {
                            context.cancel(null); // nothing more is requested: the call's close comes next
                            continue;
                        }
                        Thread.sleep(step.json.readPauseMs());
                        if (lockStep && pending.hasNext()) {
                            send(call, pending, 1);
                        }
                        call.request(1);
                    }
                    status = (Status) event;
                }
            }
        } catch (InterruptedException e) {
            context.cancel(e);
            return;
        }
        context.cancel(null);
        if (result != null && status.isOk()) {
            emitMessage(id, result);
        }
        emitStatus(
                id,
                start,
                status,
                Objects.requireNonNullElseGet(headers.get(), Metadata::new),
                Objects.requireNonNullElseGet(trailers.get(), Metadata::new));
    }

    /** The latency bucket of v µs: v below 32, then 16 buckets per power of two (CONTRACT.md "Bench steps"). */
    static int bucket(long v) {
        int n = 64 - Long.numberOfLeadingZeros(v);
        return n <= 5 ? (int) v : 16 * (n - 4) + (int) ((v >>> (n - 5)) & 15);
    }

    /**
     * A bench step: {@code concurrency} threads share the step's channel, each running the step's call (through the
     * stack's paths that runCall takes, printing nothing) again and again until {@code duration_ms} have passed; then
     * one line with the counts, the latency histogram and the first failure. A worker's calls run their callbacks on
     * the worker itself (their executor queues them for it), so a lock-step Trade sends its next order from there, and
     * nothing is shared but the first failure until the workers are joined.
     */
    private void runBench(Step step) throws InterruptedException {
        long start = System.nanoTime();
        long stop = start + step.json.bench().durationMs() * 1_000_000;
        AtomicReference<Status> firstError = new AtomicReference<>();
        long[] calls = new long[1],
                errors = new long[1],
                messages = new long[1],
                histogram = new long[bucket(Long.MAX_VALUE) + 1];
        ManagedChannel channel;
        try {
            channel = channelFor(Objects.requireNonNullElse(step.json.connection(), defaultConnection));
        } catch (IOException | RuntimeException e) {
            channel = null;
            errors[0] = 1;
            firstError.set(Status.UNAVAILABLE.withDescription("connection: " + e.getMessage()));
        }
        MethodType type = step.method.getType();
        boolean lockStep = type == MethodType.BIDI_STREAMING;
        // Per call: one message (unary), the requests sent (client stream), or the responses received.
        int sent = type.clientSendsOneMessage() ? 1 : step.requests.size();
        List<Thread> workers = new ArrayList<>();
        for (int k = 0; channel != null && k < step.json.bench().concurrency(); k++) {
            ManagedChannel ch = channel;
            workers.add(new Thread(() -> {
                long myCalls = 0, myErrors = 0, myMessages = 0;
                long[] myHistogram = new long[histogram.length];
                BlockingQueue<Runnable> callbacks = new LinkedBlockingQueue<>();
                CallOptions base = CallOptions.DEFAULT.withExecutor(callbacks::add);
                if ("gzip".equals(step.json.compression())) {
                    base = base.withCompression("gzip");
                }
                Channel stub =
                        ClientInterceptors.intercept(ch, MetadataUtils.newAttachHeadersInterceptor(step.metadata));
                while (System.nanoTime() - stop < 0) {
                    long callStart = System.nanoTime();
                    CallOptions options = step.json.timeoutMs() > 0
                            ? base.withDeadlineAfter(step.json.timeoutMs(), TimeUnit.MILLISECONDS)
                            : base;
                    ClientCall<Message, Message> call = stub.newCall(step.method, options);
                    Status[] ended = new Status[1];
                    int[] received = new int[1];
                    switch (type) {
                        case UNARY -> { // futureUnaryCall (what blockingUnaryCall waits on), callbacks on this worker
                            var response = ClientCalls.futureUnaryCall(call, step.requests.get(0));
                            response.addListener(
                                    () -> {
                                        try {
                                            response.get();
                                            ended[0] = Status.OK;
                                        } catch (ExecutionException | InterruptedException e) {
                                            ended[0] = Status.fromThrowable(e);
                                        }
                                    },
                                    MoreExecutors.directExecutor());
                        }
                        case CLIENT_STREAMING -> { // the async stub's path, as runCall's Batch
                            StreamObserver<Message> requests =
                                    ClientCalls.asyncClientStreamingCall(call, new StreamObserver<>() {
                                        @Override
                                        public void onNext(Message message) {}

                                        @Override
                                        public void onError(Throwable t) {
                                            ended[0] = Status.fromThrowable(t);
                                        }

                                        @Override
                                        public void onCompleted() {
                                            ended[0] = Status.OK;
                                        }
                                    });
                            step.requests.forEach(requests::onNext);
                            requests.onCompleted();
                        }
                        default -> { // Monitor, Trade
                            Iterator<Message> pending = step.requests.iterator();
                            call.start(
                                    new ClientCall.Listener<>() {
                                        @Override
                                        public void onMessage(Message message) {
                                            received[0]++;
                                            if (lockStep && pending.hasNext()) {
                                                send(call, pending, 1);
                                            }
                                        }

                                        @Override
                                        public void onClose(Status status, Metadata trailers) {
                                            ended[0] = status;
                                        }
                                    },
                                    new Metadata());
                            call.request(Integer.MAX_VALUE); // read to the end; lock-step Trade is paced by its sends
                            send(call, pending, lockStep ? 1 : step.requests.size());
                        }
                    }
                    try {
                        while (ended[0] == null) {
                            callbacks.take().run();
                        }
                    } catch (InterruptedException e) {
                        call.cancel("interrupted", e);
                        break;
                    }
                    if (ended[0].isOk()) {
                        myCalls++;
                        myMessages += type.serverSendsOneMessage() ? sent : received[0];
                        myHistogram[bucket((System.nanoTime() - callStart) / 1000)]++;
                    } else {
                        myErrors++;
                        firstError.compareAndSet(null, ended[0]);
                    }
                }
                synchronized (histogram) {
                    calls[0] += myCalls;
                    errors[0] += myErrors;
                    messages[0] += myMessages;
                    for (int b = 0; b < histogram.length; b++) {
                        histogram[b] += myHistogram[b];
                    }
                }
            }));
        }
        workers.forEach(Thread::start);
        for (Thread worker : workers) {
            worker.join();
        }
        JsonObject bench = new JsonObject();
        bench.addProperty("calls", calls[0]);
        bench.addProperty("errors", errors[0]);
        bench.addProperty("messages", messages[0]);
        bench.addProperty("elapsed_ms", (System.nanoTime() - start) / 1e6);
        JsonArray buckets = new JsonArray();
        for (int b = 0; b < histogram.length; b++) {
            if (histogram[b] > 0) {
                JsonArray entry = new JsonArray();
                entry.add(b);
                entry.add(histogram[b]);
                buckets.add(entry);
            }
        }
        bench.add("histogram", buckets);
        Status failed = firstError.get();
        if (failed != null) {
            String message = Objects.requireNonNullElse(failed.getDescription(), "");
            bench.add(
                    "first_error",
                    GSON.toJsonTree(Map.of("code", failed.getCode().name(), "message", message)));
        }
        JsonObject line = new JsonObject();
        line.addProperty("id", step.json.id());
        line.add("bench", bench);
        println(line.toString());
    }

    /** Sends the next n requests, and half-closes after the last one. */
    private static void send(ClientCall<Message, Message> call, Iterator<Message> pending, int n) {
        for (int i = 0; i < n && pending.hasNext(); i++) {
            call.sendMessage(pending.next());
        }
        if (!pending.hasNext()) {
            call.halfClose();
        }
    }

    /**
     * Prints one line: its UTF-8 bytes at once (a large message's text is copied once, not converted char by char), with
     * one write under OUT's lock. Like a PrintStream, it ignores a failed write (stdout closed).
     */
    private static void println(String line) {
        byte[] text = line.getBytes(StandardCharsets.UTF_8);
        byte[] bytes = Arrays.copyOf(text, text.length + 1);
        bytes[text.length] = '\n';
        synchronized (OUT) {
            try {
                OUT.write(bytes);
            } catch (IOException e) {
                // as PrintStream.println: nothing to report it to
            }
        }
    }

    private static void emitMessage(String id, Message message) {
        StringBuilder line =
                new StringBuilder("{\"id\":").append(GSON.toJson(id)).append(",\"message\":");
        try {
            PRINTER.appendTo(message, line);
        } catch (IOException e) { // InvalidProtocolBufferException
            throw new IllegalStateException(e);
        }
        println(line.append('}').toString());
    }

    /** The status line: code name from grpc-java's Status.Code, x-stock-* metadata, timing, encoding, details. */
    private static void emitStatus(String id, long start, Status status, Metadata headers, Metadata trailers) {
        JsonObject line = new JsonObject();
        line.addProperty("id", id);
        String message = Objects.requireNonNullElse(status.getDescription(), "");
        JsonObject code = new JsonObject();
        code.addProperty("code", status.getCode().name());
        code.addProperty("message", message);
        line.add("status", code);
        line.add("headers", stockMetadata(headers));
        line.add("trailers", stockMetadata(trailers));
        line.addProperty("elapsed_ms", (System.nanoTime() - start) / 1e6);
        String encoding = headers.get(GrpcUtil.MESSAGE_ENCODING_KEY);
        line.addProperty("response_encoding", encoding == null ? "identity" : encoding);
        line.add("details", details(id, status, trailers));
        println(line.toString());
    }

    /** The received x-stock-* entries; -bin values in base64. */
    private static JsonObject stockMetadata(Metadata md) {
        JsonObject out = new JsonObject();
        for (String k : md.keys()) {
            if (k.startsWith("x-stock-") && k.endsWith(Metadata.BINARY_HEADER_SUFFIX)) {
                byte[] value = md.get(Metadata.Key.of(k, Metadata.BINARY_BYTE_MARSHALLER));
                out.addProperty(k, Base64.getEncoder().encodeToString(value));
            } else if (k.startsWith("x-stock-")) {
                out.addProperty(k, md.get(Metadata.Key.of(k, Metadata.ASCII_STRING_MARSHALLER)));
            }
        }
        return out;
    }

    /** The details of the google.rpc.Status in grpc-status-details-bin (StatusProto), each with its @type. */
    private static JsonElement details(String id, Status status, Metadata trailers) {
        try {
            com.google.rpc.Status rich = StatusProto.fromStatusAndTrailers(status, trailers);
            JsonElement details = rich == null
                    ? null
                    : JsonParser.parseString(PRINTER.print(rich))
                            .getAsJsonObject()
                            .get("details");
            return details == null ? new JsonArray() : details;
        } catch (InvalidProtocolBufferException | IllegalArgumentException e) {
            System.err.println("step " + id + ": grpc-status-details-bin: " + e.getMessage());
            return new JsonArray();
        }
    }
}
