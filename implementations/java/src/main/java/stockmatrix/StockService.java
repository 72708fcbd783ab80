package stockmatrix;

import com.google.protobuf.Any;
import com.google.protobuf.ByteString;
import com.google.rpc.ErrorInfo;
import io.grpc.Context;
import io.grpc.Contexts;
import io.grpc.Deadline;
import io.grpc.ForwardingServerCall;
import io.grpc.Metadata;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerInterceptor;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.internal.GrpcUtil;
import io.grpc.protobuf.StatusProto;
import io.grpc.stub.ServerCallStreamObserver;
import io.grpc.stub.StreamObserver;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import stock.v1.StockGrpc;
import stock.v1.StockOuterClass.BatchItem;
import stock.v1.StockOuterClass.BatchSummary;
import stock.v1.StockOuterClass.Empty;
import stock.v1.StockOuterClass.GetRequest;
import stock.v1.StockOuterClass.GetResponse;
import stock.v1.StockOuterClass.InventoryStatus;
import stock.v1.StockOuterClass.PutRequest;
import stock.v1.StockOuterClass.Side;
import stock.v1.StockOuterClass.TradeFill;
import stock.v1.StockOuterClass.TradeOrder;
import stock.v1.StockOuterClass.WatchEvent;
import stock.v1.StockOuterClass.WatchRequest;

/** stock.v1.Stock over the store, with the contract's x-stock-* test hooks. */
final class StockService extends StockGrpc.StockImplBase {
  static final String SPECIAL_MESSAGE =
      "\t\ntest with whitespace\r\nand Unicode BMP \u263a and non-BMP \ud83d\ude08\t\n";

  private static final Metadata.Key<String> ECHO = key("x-stock-echo");
  private static final Metadata.Key<byte[]> ECHO_BIN = binaryKey("x-stock-echo-bin");
  private static final Metadata.Key<String> ECHO_HEADER = key("x-stock-echo-header");
  private static final Metadata.Key<String> ECHO_TRAILER = key("x-stock-echo-trailer");
  private static final Metadata.Key<String> REQUEST_ENCODING = key("x-stock-request-encoding");
  private static final Metadata.Key<String> DEADLINE_MS = key("x-stock-deadline-ms");
  private static final Metadata.Key<String> WATCHERS = key("x-stock-watchers");
  private static final Context.Key<Metadata> HEADERS = Context.key("request-headers");

  /** Trailers the hooks add to this call's status (the interceptor's and the handler's). */
  private static final Context.Key<Metadata> TRAILERS = Context.key("hook-trailers");

  private final Store store;

  StockService(Store store) {
    this.store = store;
  }

  private static Metadata.Key<String> key(String name) {
    return Metadata.Key.of(name, Metadata.ASCII_STRING_MARSHALLER);
  }

  private static Metadata.Key<byte[]> binaryKey(String name) {
    return Metadata.Key.of(name, Metadata.BINARY_BYTE_MARSHALLER);
  }

  /**
   * The hooks that work on the call itself: the echoes (x-stock-echo, -echo-bin, -echo-header,
   * -echo-trailer), per-call response compression (x-stock-compress), the request's grpc-encoding
   * and the deadline the stack gives the call (x-stock-report-encoding, -report-deadline). Also
   * makes the request headers and the hooks' trailers available to the handlers.
   */
  static final ServerInterceptor INTERCEPTOR =
      new ServerInterceptor() {
        @Override
        public <Q, R> ServerCall.Listener<Q> interceptCall(
            ServerCall<Q, R> call, Metadata headers, ServerCallHandler<Q, R> next) {
          Metadata header = new Metadata();
          Metadata trailer = new Metadata();
          String echo = headers.get(ECHO);
          if (echo != null) {
            header.put(ECHO, echo);
            trailer.put(ECHO, echo);
          }
          byte[] echoBin = headers.get(ECHO_BIN);
          if (echoBin != null) {
            header.put(ECHO_BIN, echoBin);
            trailer.put(ECHO_BIN, echoBin);
          }
          String echoHeader = headers.get(ECHO_HEADER);
          if (echoHeader != null) {
            header.put(ECHO_HEADER, echoHeader);
          }
          String echoTrailer = headers.get(ECHO_TRAILER);
          if (echoTrailer != null) {
            trailer.put(ECHO_TRAILER, echoTrailer);
          }
          if ("true".equals(headers.get(key("x-stock-report-encoding")))) {
            String encoding = headers.get(GrpcUtil.MESSAGE_ENCODING_KEY);
            trailer.put(REQUEST_ENCODING, encoding == null ? "identity" : encoding);
          }
          if ("true".equals(headers.get(key("x-stock-report-deadline")))) {
            Deadline deadline = Context.current().getDeadline();
            trailer.put(
                DEADLINE_MS,
                deadline == null
                    ? "none"
                    : Long.toString(Math.max(0, deadline.timeRemaining(TimeUnit.MILLISECONDS))));
          }
          if ("gzip".equals(headers.get(key("x-stock-compress")))) {
            call.setCompression("gzip");
          }
          ServerCall<Q, R> wrapped =
              new ForwardingServerCall.SimpleForwardingServerCall<Q, R>(call) {
                @Override
                public void sendHeaders(Metadata h) {
                  h.merge(header);
                  super.sendHeaders(h);
                }

                @Override
                public void close(Status status, Metadata trailers) {
                  trailers.merge(trailer);
                  super.close(status, trailers);
                }
              };
          Context ctx = Context.current().withValues(HEADERS, headers, TRAILERS, trailer);
          return Contexts.interceptCall(ctx, wrapped, headers, next);
        }
      };

  /**
   * What the metadata of one call asks for; fail is the forced status (with its
   * google.rpc.ErrorInfo detail), or null.
   */
  private record Hooks(com.google.rpc.Status fail, long failAfter, long repeatValue) {
    /** The forced failure, as the exception that ends the call. */
    StatusRuntimeException failure() {
      return StatusProto.toStatusRuntimeException(fail);
    }
  }

  /**
   * The status an x-stock-fail hook forces: a google.rpc.Status carrying one google.rpc.ErrorInfo
   * (reason FORCED, domain stock.v1), sent in grpc-status-details-bin by StatusProto.
   */
  private static com.google.rpc.Status forced(Status.Code code, String message) {
    return com.google.rpc.Status.newBuilder()
        .setCode(code.value())
        .setMessage(message)
        .addDetails(
            Any.pack(ErrorInfo.newBuilder().setReason("FORCED").setDomain("stock.v1").build()))
        .build();
  }

  private static long number(Metadata md, String name) {
    String v = md.get(key(name));
    if (v == null) {
      return 0;
    }
    try {
      long n = Long.parseLong(v.trim());
      if (n >= 0) {
        return n;
      }
    } catch (NumberFormatException e) {
      // reported below
    }
    throw Store.invalid(name + " must be a number, got \"" + v + "\"");
  }

  /**
   * Reads the hooks and sleeps the delay, then stops a call that is over (cancelled or past its
   * deadline) and counts the watchers (x-stock-report-watchers); for unary methods also applies the
   * fail.
   */
  private Hooks enter(boolean unary) {
    Metadata md = HEADERS.get();
    boolean special = "true".equals(md.get(key("x-stock-fail-special")));
    String name = md.get(key("x-stock-fail"));
    com.google.rpc.Status fail = null;
    if (name != null || special) {
      Status.Code code = Status.Code.UNKNOWN;
      if (name != null) {
        try {
          code = Status.Code.valueOf(name);
        } catch (IllegalArgumentException e) {
          code = Status.Code.OK;
        }
        if (code == Status.Code.OK) {
          throw Store.invalid("x-stock-fail: unknown code \"" + name + "\"");
        }
      }
      String message = md.get(key("x-stock-fail-message"));
      byte[] messageBin = md.get(binaryKey("x-stock-fail-message-bin"));
      if (special) {
        message = SPECIAL_MESSAGE;
      } else if (messageBin != null) {
        message = new String(messageBin, StandardCharsets.UTF_8);
      } else if (message == null) {
        message = "forced " + code.name();
      }
      fail = forced(code, message);
    }
    long failAfter = number(md, "x-stock-fail-after");
    long repeatValue = Math.max(1, number(md, "x-stock-repeat-value"));
    sleep(number(md, "x-stock-delay-ms"));
    Status over = Contexts.statusFromCancelled(Context.current());
    if (over != null) {
      throw over.asRuntimeException();
    }
    String prefix = md.get(key("x-stock-report-watchers"));
    if (prefix != null) {
      TRAILERS.get().put(WATCHERS, Long.toString(store.watchers(prefix)));
    }
    Hooks hooks = new Hooks(fail, failAfter, repeatValue);
    if (unary && fail != null) {
      throw hooks.failure();
    }
    return hooks;
  }

  /** Sleeps, ending early when the call is cancelled. */
  private static void sleep(long ms) {
    Context ctx = Context.current();
    long end = System.nanoTime() + ms * 1_000_000;
    try {
      for (long left = end - System.nanoTime(); left > 0 && !ctx.isCancelled(); ) {
        Thread.sleep(Math.min(left / 1_000_000 + 1, 10));
        left = end - System.nanoTime();
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  private static void fail(StreamObserver<?> obs, RuntimeException e) {
    obs.onError(
        e instanceof StatusRuntimeException
            ? e
            : Status.INTERNAL.withDescription(e.toString()).asRuntimeException());
  }

  @Override
  public void get(GetRequest req, StreamObserver<GetResponse> obs) {
    try {
      Hooks hooks = enter(true);
      WatchEvent e = store.require(req.getKey());
      // x-stock-repeat-value: the stored value that many times over.
      ByteString value = ByteString.EMPTY;
      for (long i = 0; i < hooks.repeatValue; i++) {
        value = value.concat(e.getValue());
      }
      obs.onNext(GetResponse.newBuilder().setValue(value).setVersion(e.getVersion()).build());
      obs.onCompleted();
    } catch (RuntimeException e) {
      fail(obs, e);
    }
  }

  @Override
  public void put(PutRequest req, StreamObserver<Empty> obs) {
    try {
      enter(true);
      store.checkedPut(req.getKey(), req.getValue());
      obs.onNext(Empty.getDefaultInstance());
      obs.onCompleted();
    } catch (RuntimeException e) {
      fail(obs, e);
    }
  }

  @Override
  public void inventory(Empty req, StreamObserver<InventoryStatus> obs) {
    try {
      enter(true);
      long[] t = store.totals();
      obs.onNext(
          InventoryStatus.newBuilder()
              .setKeyCount(t[0])
              .setTotalValueBytes(t[1])
              .setLanguage("java")
              .setStack("grpc-java " + GrpcUtil.IMPLEMENTATION_VERSION)
              .build());
      obs.onCompleted();
    } catch (RuntimeException e) {
      fail(obs, e);
    }
  }

  /** One Monitor stream; every method runs with the store's lock held. */
  private static final class Watch implements Store.Watcher {
    private final WatchRequest req;
    private final Hooks hooks;
    private final ServerCallStreamObserver<WatchEvent> obs;
    private long sent;

    Watch(WatchRequest req, Hooks hooks, ServerCallStreamObserver<WatchEvent> obs) {
      this.req = req;
      this.hooks = hooks;
      this.obs = obs;
    }

    @Override
    public String pattern() {
      return req.getPattern();
    }

    @Override
    public boolean deliver(WatchEvent event) {
      if (obs.isCancelled()) {
        return false;
      }
      obs.onNext(event);
      sent++;
      return check();
    }

    /** Ends the stream when the fail hook or max_events says so; false once ended. */
    boolean check() {
      if (hooks.fail != null && sent == hooks.failAfter) {
        obs.onError(hooks.failure());
        return false;
      }
      if (req.getMaxEvents() > 0 && sent == req.getMaxEvents()) {
        obs.onCompleted();
        return false;
      }
      return true;
    }
  }

  @Override
  public void monitor(WatchRequest req, StreamObserver<WatchEvent> obs) {
    try {
      Hooks hooks = enter(false);
      if (req.getPattern().isEmpty()) {
        throw Store.badField("pattern", "pattern must not be empty");
      }
      if (req.getMaxEvents() < 0) {
        throw Store.badField("max_events", "max_events must not be negative");
      }
      ServerCallStreamObserver<WatchEvent> sobs = (ServerCallStreamObserver<WatchEvent>) obs;
      Watch w = new Watch(req, hooks, sobs);
      // Cancelled by the client, past its deadline or at shutdown: deliver() sends nothing more,
      // and the call's context listener unregisters it at once (it runs at once when the call is
      // already over). max_events and a forced fail drop it in deliver().
      sobs.setOnCancelHandler(() -> {});
      if (w.check()) {
        store.watch(w, req.getIncludeExisting());
        Context.current().addListener(c -> store.unwatch(w), Runnable::run);
      }
    } catch (RuntimeException e) {
      fail(obs, e);
    }
  }

  @Override
  public StreamObserver<BatchItem> batch(StreamObserver<BatchSummary> obs) {
    Hooks hooks;
    try {
      hooks = enter(false);
    } catch (RuntimeException e) {
      fail(obs, e);
      return ignore();
    }
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
        if (Context.current().isCancelled()) {
          return; // the call is over: nothing is applied
        }
        try {
          if (hooks.fail != null) {
            throw hooks.failure();
          }
          obs.onNext(store.batch(items));
          obs.onCompleted();
        } catch (RuntimeException e) {
          fail(obs, e);
        }
      }
    };
  }

  @Override
  public StreamObserver<TradeOrder> trade(StreamObserver<TradeFill> obs) {
    Hooks hooks;
    try {
      hooks = enter(false);
      if (hooks.fail != null && hooks.failAfter == 0) {
        throw hooks.failure();
      }
    } catch (RuntimeException e) {
      fail(obs, e);
      return ignore();
    }
    return new StreamObserver<>() {
      private final Map<String, Long> positions = new HashMap<>();
      private long sequence;
      private boolean done;

      @Override
      public void onNext(TradeOrder order) {
        if (done) {
          return;
        }
        if (order.getQuantity() <= 0) {
          done = true;
          obs.onError(
              Store.badField(
                  "quantity",
                  "order \""
                      + order.getOrderId()
                      + "\": quantity must be > 0, got "
                      + order.getQuantity()));
          return;
        }
        sequence++;
        long signed = order.getSide() == Side.BUY ? order.getQuantity() : -order.getQuantity();
        long position = positions.merge(order.getSymbol(), signed, Long::sum);
        obs.onNext(
            TradeFill.newBuilder()
                .setOrderId(order.getOrderId())
                .setSymbol(order.getSymbol())
                .setSideValue(order.getSideValue())
                .setQuantity(order.getQuantity())
                .setPriceCents(order.getPriceCents())
                .setSequence(sequence)
                .setNetPosition(position)
                .build());
        if (hooks.fail != null && sequence == hooks.failAfter) {
          done = true;
          obs.onError(hooks.failure());
        }
      }

      @Override
      public void onError(Throwable t) {
        done = true;
      }

      @Override
      public void onCompleted() {
        if (!done) {
          done = true;
          obs.onCompleted();
        }
      }
    };
  }

  private static <T> StreamObserver<T> ignore() {
    return new StreamObserver<>() {
      @Override
      public void onNext(T value) {}

      @Override
      public void onError(Throwable t) {}

      @Override
      public void onCompleted() {}
    };
  }
}
