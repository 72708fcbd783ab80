package stockmatrix;

import io.grpc.InsecureServerCredentials;
import io.grpc.Server;
import io.grpc.ServerCredentials;
import io.grpc.TlsServerCredentials;
import io.grpc.health.v1.HealthCheckResponse.ServingStatus;
import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder;
import io.grpc.protobuf.services.HealthStatusManager;
import io.grpc.protobuf.services.ProtoReflectionServiceV1;
import java.io.File;
import java.io.IOException;
import java.io.InputStream;
import java.net.InetSocketAddress;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import sun.misc.Signal;

/** The contract's server: {@code server --port N [--host H] [--tls-mode M] ...}. */
public final class ServerMain {
  private ServerMain() {}

  private static int usage(String message) {
    System.err.println("error: " + message);
    System.err.println(
        "usage: server --port N [--host 127.0.0.1] [--tls-mode none|server|mtls]"
            + " [--cert-file F --key-file F] [--ca-file F]");
    return 2;
  }

  public static void main(String[] args) {
    System.exit(run(args));
  }

  private static int run(String[] args) {
    Map<String, String> opts = new HashMap<>();
    opts.put("--host", "127.0.0.1");
    opts.put("--tls-mode", "none");
    for (int i = 0; i < args.length; i++) {
      String a = args[i];
      String value = null;
      int eq = a.indexOf('=');
      if (a.startsWith("--") && eq > 0) {
        value = a.substring(eq + 1);
        a = a.substring(0, eq);
      }
      switch (a) {
        case "--port", "--host", "--tls-mode", "--cert-file", "--key-file", "--ca-file" -> {
          if (value == null) {
            if (i + 1 >= args.length) {
              return usage(a + " needs a value");
            }
            value = args[++i];
          }
          opts.put(a, value);
        }
        default -> {
          return usage("unknown argument " + a);
        }
      }
    }
    if (!opts.containsKey("--port")) {
      return usage("--port is required");
    }
    int port;
    try {
      port = Integer.parseInt(opts.get("--port"));
    } catch (NumberFormatException e) {
      return usage("invalid --port " + opts.get("--port"));
    }
    String host = opts.get("--host");
    String mode = opts.get("--tls-mode");
    if (!mode.equals("none") && !mode.equals("server") && !mode.equals("mtls")) {
      return usage("invalid --tls-mode " + mode);
    }

    ServerCredentials creds;
    try {
      creds = credentials(mode, opts);
    } catch (IOException | IllegalArgumentException | IllegalStateException e) {
      System.err.println("error: cannot load certificates: " + e.getMessage());
      return 1;
    }

    HealthStatusManager health = new HealthStatusManager();
    health.setStatus("", ServingStatus.SERVING);
    health.setStatus("stock.v1.Stock", ServingStatus.SERVING);
    health.setStatus("proto.KV", ServingStatus.SERVING);
    Store store = new Store();
    Server server;
    try {
      server =
          NettyServerBuilder.forAddress(new InetSocketAddress(host, port), creds)
              .maxInboundMessageSize(4 << 20)
              .addService(new StockService(store))
              .addService(new KvService(store))
              .addService(health.getHealthService())
              .addService(ProtoReflectionServiceV1.newInstance())
              .intercept(StockService.INTERCEPTOR)
              .build()
              .start();
    } catch (IOException | RuntimeException e) {
      System.err.println("error: cannot serve on " + host + ":" + port + ": " + e);
      return 1;
    }
    System.out.println("listening on " + host + ":" + server.getPort());
    System.out.flush();

    CountDownLatch stop = new CountDownLatch(1);
    Signal.handle(new Signal("TERM"), s -> stop.countDown());
    Signal.handle(new Signal("INT"), s -> stop.countDown());
    Thread stdin =
        new Thread(
            () -> {
              byte[] buf = new byte[256];
              try (InputStream in = System.in) {
                while (in.read(buf) >= 0) {
                  // discard
                }
              } catch (IOException e) {
                // treat like end-of-file
              }
              stop.countDown();
            },
            "stdin-watch");
    stdin.setDaemon(true);
    stdin.start();

    try {
      stop.await();
      server.shutdownNow();
      server.awaitTermination(1, TimeUnit.SECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    return 0;
  }

  private static ServerCredentials credentials(String mode, Map<String, String> opts)
      throws IOException {
    if (mode.equals("none")) {
      return InsecureServerCredentials.create();
    }
    TlsServerCredentials.Builder tls =
        TlsServerCredentials.newBuilder()
            .keyManager(file(opts, "--cert-file"), file(opts, "--key-file"));
    if (mode.equals("mtls")) {
      tls.trustManager(file(opts, "--ca-file")).clientAuth(TlsServerCredentials.ClientAuth.REQUIRE);
    }
    return tls.build();
  }

  private static File file(Map<String, String> opts, String flag) {
    String path = opts.get(flag);
    if (path == null) {
      throw new IllegalArgumentException(flag + " is required for this --tls-mode");
    }
    return new File(path);
  }
}
