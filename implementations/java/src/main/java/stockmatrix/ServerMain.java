package stockmatrix;

import com.google.protobuf.ByteString;
import io.grpc.*;
import io.grpc.health.v1.HealthCheckResponse.ServingStatus;
import io.grpc.internal.GrpcUtil;
import io.grpc.netty.shaded.io.grpc.netty.GrpcSslContexts;
import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder;
import io.grpc.netty.shaded.io.grpc.netty.NettySslContextServerCredentials;
import io.grpc.netty.shaded.io.netty.handler.ssl.ClientAuth;
import io.grpc.netty.shaded.io.netty.handler.ssl.SslContextBuilder;
import io.grpc.netty.shaded.io.netty.handler.ssl.SslProvider;
import io.grpc.protobuf.services.HealthStatusManager;
import io.grpc.protobuf.services.ProtoReflectionServiceV1;
import io.grpc.stub.ServerCallStreamObserver;
import io.grpc.stub.StreamObserver;
import java.io.File;
import java.io.FileInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.security.cert.Certificate;
import java.security.cert.CertificateException;
import java.security.cert.CertificateFactory;
import java.security.interfaces.ECPublicKey;
import java.util.*;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Supplier;
import proto.KVGrpc;
import proto.Kv;
import stock.v1.StockGrpc;
import stock.v1.StockOuterClass.*;
import sun.misc.Signal;

/** The contract's server: stock.v1.Stock with the test hooks, proto.KV, health and reflection. */
public final class ServerMain {
    private static final Set<String> OPTIONS =
            Set.of("--port", "--host", "--tls-mode", "--cert-file", "--key-file", "--ca-file");
    private static final String USAGE = "usage: server --port N [--host 127.0.0.1] [--tls-mode none|server|mtls]"
            + " [--cert-file F --key-file F] [--ca-file F]";

    private final Store store = new Store();

    /** Serves until SIGTERM, SIGINT or stdin's end-of-file, then exits 0; exits 1 when it cannot serve. */
    public static void main(String[] args) {
        Server server;
        try {
            server = new ServerMain().serve(parseArgs(args));
        } catch (IOException | RuntimeException e) {
            System.err.println("error: cannot serve: " + e.getMessage());
            System.exit(1);
            return;
        }
        Signal.handle(new Signal("TERM"), s -> stop(server));
        Signal.handle(new Signal("INT"), s -> stop(server));
        try {
            System.in.transferTo(OutputStream.nullOutputStream());
        } catch (IOException e) {
            // as good as end-of-file
        }
        stop(server);
    }

    private static void stop(Server server) {
        try {
            server.shutdownNow().awaitTermination(1, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            // exiting anyway
        }
        System.exit(0);
    }

    private static Map<String, String> parseArgs(String[] args) {
        Map<String, String> opts = new HashMap<>(Map.of("--host", "127.0.0.1", "--tls-mode", "none"));
        for (int i = 0; i < args.length; i += 2) {
            if (!OPTIONS.contains(args[i]) || i + 1 == args.length) {
                throw new IllegalArgumentException("unknown option or missing value " + args[i] + "\n" + USAGE);
            }
            opts.put(args[i], args[i + 1]);
        }
        if (!opts.containsKey("--port")) {
            throw new IllegalArgumentException("--port is required\n" + USAGE);
        }
        return opts;
    }

    /** Starts the server (Stock with the hooks, proto.KV, health, reflection) and prints {@code listening on}. */
    private Server serve(Map<String, String> opts) throws IOException {
        String mode = opts.get("--tls-mode");
        ServerCredentials creds = InsecureServerCredentials.create();
        if (!mode.equals("none")) {
            File cert = new File(opts.get("--cert-file")), key = new File(opts.get("--key-file"));
            File ca = mode.equals("mtls") ? new File(opts.get("--ca-file")) : null;
            if (!mode.equals("mtls") && !mode.equals("server")) {
                throw new IllegalArgumentException("unknown --tls-mode " + mode);
            } else if (holdsP521(cert, ca)) { // P-521: the JDK's provider, BoringSSL (the default) has no P-521
                SslContextBuilder ssl =
                        GrpcSslContexts.configure(SslContextBuilder.forServer(cert, key), SslProvider.JDK);
                if (ca != null) {
                    ssl.trustManager(ca).clientAuth(ClientAuth.REQUIRE);
                }
                creds = NettySslContextServerCredentials.create(ssl.build());
            } else {
                TlsServerCredentials.Builder tls =
                        TlsServerCredentials.newBuilder().keyManager(cert, key);
                if (ca != null) {
                    tls.trustManager(ca).clientAuth(TlsServerCredentials.ClientAuth.REQUIRE);
                }
                creds = tls.build();
            }
        }
        HealthStatusManager health = new HealthStatusManager();
        for (String service : List.of("", "stock.v1.Stock", "proto.KV")) {
            health.setStatus(service, ServingStatus.SERVING);
        }
        var address = new InetSocketAddress(opts.get("--host"), Integer.parseInt(opts.get("--port")));
        Server server = NettyServerBuilder.forAddress(address, creds)
                .maxInboundMetadataSize(16 << 10) // the contract's header-list limit
                .addService(ServerInterceptors.intercept(new StockService(), new Hooks(store)))
                .addService(new KvService())
                .addService(health.getHealthService())
                .addService(ProtoReflectionServiceV1.newInstance())
                .addStreamTracerFactory(new Hooks.DeadlineTracer())
                .build()
                .start();
        System.out.println("listening on " + opts.get("--host") + ":" + server.getPort());
        System.out.flush();
        return server;
    }

    /**
     * Whether a PEM file (null: none) holds an EC P-521 certificate. grpc-netty-shaded's default TLS provider, OpenSSL
     * through netty-tcnative (BoringSSL), has no P-521: a connection or server with such a certificate (its own, or its
     * CA's) takes the JDK's provider instead, every other one the default (the faster). A file that cannot be read or
     * parsed here says no; the provider then reports it as before.
     */
    static boolean holdsP521(File... pemFiles) {
        for (File file : pemFiles) {
            if (file == null) {
                continue;
            }
            try (InputStream in = new FileInputStream(file)) {
                for (Certificate c : CertificateFactory.getInstance("X.509").generateCertificates(in)) {
                    if (c.getPublicKey() instanceof ECPublicKey key
                            && key.getParams().getCurve().getField().getFieldSize() == 521) {
                        return true;
                    }
                }
            } catch (IOException | CertificateException e) {
                // not a certificate file: the default provider's error
            }
        }
        return false;
    }

    /** Answers one message, or the status the body threw. */
    private static <T> void answer(StreamObserver<T> obs, Supplier<T> body) {
        try {
            obs.onNext(body.get());
            obs.onCompleted();
        } catch (StatusRuntimeException e) {
            obs.onError(e);
        }
    }

    /** stock.v1.Stock over the store; the Hooks interceptor applies the test hooks around it. */
    private final class StockService extends StockGrpc.StockImplBase {
        @Override
        public void get(GetRequest req, StreamObserver<GetResponse> obs) {
            answer(obs, () -> {
                WatchEvent e = store.get(req.getKey());
                ByteString value = ByteString.copyFrom(
                        Collections.nCopies(Hooks.CURRENT.get().repeatValue(), e.getValue()));
                return GetResponse.newBuilder()
                        .setValue(value)
                        .setVersion(e.getVersion())
                        .build();
            });
        }

        @Override
        public void put(PutRequest req, StreamObserver<Empty> obs) {
            answer(obs, () -> {
                store.put(req.getKey(), req.getValue());
                return Empty.getDefaultInstance();
            });
        }

        /**
         * Streams the matching puts; the store drops the watch once its sink says done, the call's end drops it too.
         */
        @Override
        public void monitor(WatchRequest req, StreamObserver<WatchEvent> obs) {
            if (req.getPattern().isEmpty()) {
                obs.onError(Store.invalid("pattern", "pattern must not be empty"));
                return;
            } else if (req.getMaxEvents() < 0) {
                obs.onError(Store.invalid("max_events", "max_events must not be negative, got " + req.getMaxEvents()));
                return;
            }
            ServerCallStreamObserver<WatchEvent> call = (ServerCallStreamObserver<WatchEvent>) obs;
            call.setOnCancelHandler(() -> {}); // an event racing the cancellation is dropped, not thrown
            AtomicLong sent = new AtomicLong();
            Store.Watch watch = store.watch(req.getPattern(), req.getIncludeExisting(), event -> {
                if (call.isCancelled()) {
                    return false;
                }
                call.onNext(event);
                if (sent.incrementAndGet() == req.getMaxEvents()) {
                    call.onCompleted();
                    return false;
                }
                return !call.isCancelled();
            });
            Context.current().addListener(c -> store.unwatch(watch), Runnable::run);
        }

        /** Applies the items at the half-close; a call that ends otherwise (cancelled, deadline) applies nothing. */
        @Override
        public StreamObserver<BatchItem> batch(StreamObserver<BatchSummary> obs) {
            List<BatchItem> items = new ArrayList<>();
            return new StreamObserver<>() {
                @Override
                public void onNext(BatchItem item) {
                    items.add(item);
                }

                @Override
                public void onError(Throwable t) {}

                @Override
                public void onCompleted() {
                    if (!Context.current().isCancelled()) {
                        answer(obs, () -> store.batch(items));
                    }
                }
            };
        }

        /** One fill per order, with the symbol's net position; a bad quantity ends the stream. */
        @Override
        public StreamObserver<TradeOrder> trade(StreamObserver<TradeFill> obs) {
            Map<String, Long> positions = new HashMap<>();
            return new StreamObserver<>() {
                private long sequence;
                private boolean failed;

                @Override
                public void onNext(TradeOrder o) {
                    if (!failed && o.getQuantity() <= 0) {
                        failed = true;
                        obs.onError(Store.invalid("quantity", "order " + o.getOrderId() + ": quantity must be > 0"));
                    } else if (!failed) {
                        long position = positions.merge(
                                o.getSymbol(), o.getSide() == Side.BUY ? o.getQuantity() : -o.getQuantity(), Long::sum);
                        obs.onNext(TradeFill.newBuilder()
                                .setOrderId(o.getOrderId())
                                .setSymbol(o.getSymbol())
                                .setSideValue(o.getSideValue())
                                .setQuantity(o.getQuantity())
                                .setPriceCents(o.getPriceCents())
                                .setSequence(++sequence)
                                .setNetPosition(position)
                                .build());
                    }
                }

                @Override
                public void onError(Throwable t) {}

                @Override
                public void onCompleted() {
                    if (!failed) {
                        obs.onCompleted();
                    }
                }
            };
        }

        @Override
        public void inventory(Empty req, StreamObserver<InventoryStatus> obs) {
            answer(obs, () -> {
                long[] totals = store.totals(Hooks.CURRENT.get().countPrefix());
                return InventoryStatus.newBuilder()
                        .setKeyCount(totals[0])
                        .setTotalValueBytes(totals[1])
                        .setLanguage("java")
                        .setStack("grpc-java " + GrpcUtil.IMPLEMENTATION_VERSION)
                        .build();
            });
        }
    }

    /** The legacy proto.KV service (go-plugin's kvproto) over the same store. */
    private final class KvService extends KVGrpc.KVImplBase {
        @Override
        public void get(Kv.GetRequest req, StreamObserver<Kv.GetResponse> obs) {
            answer(
                    obs,
                    () -> Kv.GetResponse.newBuilder()
                            .setValue(store.get(req.getKey()).getValue())
                            .build());
        }

        @Override
        public void put(Kv.PutRequest req, StreamObserver<Kv.Empty> obs) {
            answer(obs, () -> {
                store.put(req.getKey(), req.getValue());
                return Kv.Empty.getDefaultInstance();
            });
        }
    }
}
