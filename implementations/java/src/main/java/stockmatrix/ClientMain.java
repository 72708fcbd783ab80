package stockmatrix;

import com.google.gson.Gson;
import com.google.gson.GsonBuilder;
import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParseException;
import com.google.gson.JsonParser;
import com.google.protobuf.Any;
import com.google.protobuf.ByteString;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.Message;
import com.google.protobuf.TypeRegistry;
import com.google.protobuf.util.JsonFormat;
import com.google.rpc.ErrorDetailsProto;
import io.grpc.CallOptions;
import io.grpc.ChannelCredentials;
import io.grpc.ClientCall;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.MethodDescriptor;
import io.grpc.Status;
import io.grpc.TlsChannelCredentials;
import io.grpc.internal.GrpcUtil;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.grpc.protobuf.StatusProto;
import java.io.BufferedReader;
import java.io.File;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.Executors;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Supplier;
import stock.v1.LedgerGrpc;
import stock.v1.StockGrpc;
import stock.v1.StockOuterClass.BatchItem;
import stock.v1.StockOuterClass.Empty;
import stock.v1.StockOuterClass.GetRequest;
import stock.v1.StockOuterClass.PutRequest;
import stock.v1.StockOuterClass.TradeOrder;
import stock.v1.StockOuterClass.WatchRequest;

/** The contract's client: {@code client --server HOST:PORT [options] COMMAND [ARGS]}. */
public final class ClientMain {
  private static final PrintStream OUT =
      new PrintStream(new FileOutputStream(FileDescriptor.out), false, StandardCharsets.UTF_8);
  private static final Gson GSON = new GsonBuilder().disableHtmlEscaping().create();
  private static final JsonFormat.Printer PRINTER =
      JsonFormat.printer().omittingInsignificantWhitespace();
  private static final JsonFormat.Parser PARSER = JsonFormat.parser();

  /**
   * Prints rich error details (google.protobuf.Any) with their @type: the registry knows every
   * message of google/rpc/error_details.proto (BadRequest, ErrorInfo, ...).
   */
  private static final JsonFormat.Printer DETAILS_PRINTER =
      PRINTER.usingTypeRegistry(
          TypeRegistry.newBuilder()
              .add(ErrorDetailsProto.getDescriptor().getMessageTypes())
              .build());

  /** Runs the cancel_after_ms cancels. */
  private static final ScheduledExecutorService TIMER =
      Executors.newSingleThreadScheduledExecutor(
          r -> {
            Thread t = new Thread(r, "cancel-timer");
            t.setDaemon(true);
            return t;
          });

  /** A usage error: the process exits 2. */
  static final class UsageError extends Exception {
    UsageError(String message) {
      super(message);
    }
  }

  /** A method a step can call, with the builder of its request message. */
  private record Method(MethodDescriptor<?, ?> descriptor, Supplier<Message.Builder> input) {}

  private static final Map<String, Method> METHODS =
      Map.of(
          "Get", new Method(StockGrpc.getGetMethod(), GetRequest::newBuilder),
          "Put", new Method(StockGrpc.getPutMethod(), PutRequest::newBuilder),
          "Monitor", new Method(StockGrpc.getMonitorMethod(), WatchRequest::newBuilder),
          "Batch", new Method(StockGrpc.getBatchMethod(), BatchItem::newBuilder),
          "Trade", new Method(StockGrpc.getTradeMethod(), TradeOrder::newBuilder),
          "Inventory", new Method(StockGrpc.getInventoryMethod(), Empty::newBuilder),
          "Audit", new Method(StockGrpc.getAuditMethod(), Empty::newBuilder),
          "Ledger.Balance", new Method(LedgerGrpc.getBalanceMethod(), Empty::newBuilder));

  /** One script step, checked before anything is sent. */
  private record Step(
      String id,
      Method method,
      List<Message> requests,
      Map<String, String> metadata,
      long timeoutMs,
      String compression,
      long cancelAfterMs,
      List<Step> afterFirst,
      int copies,
      long readPauseMs) {}

  private record Headers(Metadata metadata) {}

  /**
   * A started call that the cancel_after_ms timer may cancel from its own thread. ClientCall is not
   * thread-safe, so sends, the half-close and the cancel take this lock; nothing is sent once the
   * call is cancelled.
   */
  private static final class Call {
    private final ClientCall<Message, Message> call;
    private boolean cancelled;

    Call(ClientCall<Message, Message> call) {
      this.call = call;
    }

    synchronized void send(Message message) {
      if (!cancelled) {
        call.sendMessage(message);
      }
    }

    synchronized void halfClose() {
      if (!cancelled) {
        call.halfClose();
      }
    }

    synchronized void request(int n) {
      if (!cancelled) {
        call.request(n);
      }
    }

    synchronized void cancel(String message, Throwable cause) {
      cancelled = true;
      call.cancel(message, cause);
    }
  }

  private record Closed(Status status, Metadata trailers) {}

  private final ManagedChannel channel;
  private final Map<String, String> metadata;
  private final long timeoutMs;
  private final String compression;

  private ClientMain(
      ManagedChannel channel, Map<String, String> metadata, long timeoutMs, String compression) {
    this.channel = channel;
    this.metadata = metadata;
    this.timeoutMs = timeoutMs;
    this.compression = compression;
  }

  public static void main(String[] args) {
    int code;
    try {
      code = run(args);
    } catch (UsageError e) {
      System.err.println("error: " + e.getMessage());
      code = 2;
    } catch (IOException | RuntimeException e) {
      System.err.println("error: " + e);
      code = 1;
    }
    OUT.flush();
    System.exit(code);
  }

  private static final String USAGE =
      "usage: client --server HOST:PORT [--tls-mode none|server|mtls] [--ca-file F]"
          + " [--cert-file F --key-file F] [--server-name NAME] [--timeout-ms N]"
          + " [--metadata K=V]... [--compression gzip] COMMAND [ARGS]";

  private static int run(String[] args) throws UsageError, IOException {
    Map<String, String> opts = new TreeMap<>();
    Map<String, String> metadata = new LinkedHashMap<>();
    int i = 0;
    for (; i < args.length && args[i].startsWith("--"); i++) {
      String a = args[i];
      String value = null;
      int eq = a.indexOf('=');
      if (eq > 0) {
        value = a.substring(eq + 1);
        a = a.substring(0, eq);
      }
      switch (a) {
        case "--server",
            "--tls-mode",
            "--ca-file",
            "--cert-file",
            "--key-file",
            "--server-name",
            "--timeout-ms",
            "--metadata",
            "--compression" -> {
          if (value == null) {
            if (i + 1 >= args.length) {
              throw new UsageError(a + " needs a value\n" + USAGE);
            }
            value = args[++i];
          }
          if (a.equals("--metadata")) {
            String[] kv = pair(value);
            putMetadata(new Metadata(), kv[0], kv[1]);
            metadata.put(kv[0], kv[1]);
          } else {
            opts.put(a, value);
          }
        }
        default -> throw new UsageError("unknown option " + a + "\n" + USAGE);
      }
    }
    String server = opts.get("--server");
    if (server == null) {
      throw new UsageError("--server is required\n" + USAGE);
    }
    if (i >= args.length) {
      throw new UsageError("missing command\n" + USAGE);
    }
    long timeout = number(opts.getOrDefault("--timeout-ms", "0"), "--timeout-ms");
    String compression = opts.get("--compression");
    if (compression != null && !compression.equals("gzip") && !compression.equals("identity")) {
      throw new UsageError("unsupported --compression " + compression);
    }
    String command = args[i];
    List<String> rest = List.of(args).subList(i + 1, args.length);
    Step step = command.equals("script") ? null : commandStep(command, rest);

    ManagedChannel channel = channel(server, opts);
    try {
      ClientMain client = new ClientMain(channel, metadata, timeout, compression);
      if (step != null) {
        client.runStep(step);
      } else {
        client.script();
      }
    } finally {
      channel.shutdownNow();
    }
    return 0;
  }

  private static String[] pair(String s) throws UsageError {
    int eq = s.indexOf('=');
    if (eq < 0) {
      throw new UsageError("expected K=V, got \"" + s + "\"");
    }
    return new String[] {s.substring(0, eq), s.substring(eq + 1)};
  }

  private static long number(String s, String what) throws UsageError {
    try {
      long n = Long.parseLong(s);
      if (n >= 0) {
        return n;
      }
    } catch (NumberFormatException e) {
      // reported below
    }
    throw new UsageError(what + ": expected a non-negative number, got \"" + s + "\"");
  }

  private static ManagedChannel channel(String server, Map<String, String> opts)
      throws UsageError, IOException {
    String mode = opts.getOrDefault("--tls-mode", "none");
    ChannelCredentials creds;
    switch (mode) {
      case "none" -> creds = InsecureChannelCredentials.create();
      case "server", "mtls" -> {
        TlsChannelCredentials.Builder tls =
            TlsChannelCredentials.newBuilder().trustManager(file(opts, "--ca-file"));
        if (mode.equals("mtls")) {
          tls.keyManager(file(opts, "--cert-file"), file(opts, "--key-file"));
        }
        creds = tls.build();
      }
      default -> throw new UsageError("invalid --tls-mode " + mode);
    }
    NettyChannelBuilder b = NettyChannelBuilder.forTarget(server, creds);
    String name = opts.get("--server-name");
    if (name != null) {
      b.overrideAuthority(name);
    }
    ManagedChannel channel = b.maxInboundMessageSize(4 << 20).build();
    // Start connecting now, while the command is prepared (calls never wait for it).
    channel.getState(true);
    return channel;
  }

  private static File file(Map<String, String> opts, String flag) throws UsageError {
    String path = opts.get(flag);
    if (path == null) {
      throw new UsageError(flag + " is required with this --tls-mode");
    }
    return new File(path);
  }

  /** The step a single command stands for. */
  private static Step commandStep(String command, List<String> args)
      throws UsageError, IOException {
    List<Message> requests = new ArrayList<>();
    String method;
    switch (command) {
      case "get" -> {
        want(command, args, 1);
        method = "Get";
        requests.add(GetRequest.newBuilder().setKey(args.get(0)).build());
      }
      case "put" -> {
        want(command, args, 2);
        method = "Put";
        requests.add(
            PutRequest.newBuilder()
                .setKey(args.get(0))
                .setValue(ByteString.copyFromUtf8(args.get(1)))
                .build());
      }
      case "monitor" -> {
        method = "Monitor";
        WatchRequest.Builder w = WatchRequest.newBuilder();
        String pattern = null;
        for (int i = 0; i < args.size(); i++) {
          String a = args.get(i);
          if (a.equals("--include-existing")) {
            w.setIncludeExisting(true);
          } else if (a.equals("--max-events") || a.startsWith("--max-events=")) {
            String v = a.contains("=") ? a.substring(a.indexOf('=') + 1) : null;
            if (v == null) {
              if (i + 1 >= args.size()) {
                throw new UsageError("--max-events needs a value");
              }
              v = args.get(++i);
            }
            try {
              w.setMaxEvents(Integer.parseInt(v));
            } catch (NumberFormatException e) {
              throw new UsageError("invalid --max-events " + v);
            }
          } else if (a.startsWith("--") || pattern != null) {
            throw new UsageError("monitor: unexpected argument " + a);
          } else {
            pattern = a;
          }
        }
        if (pattern == null) {
          throw new UsageError("monitor needs PATTERN");
        }
        requests.add(w.setPattern(pattern).build());
      }
      case "batch" -> {
        method = "Batch";
        if (args.isEmpty()) {
          for (String line : stdinLines()) {
            requests.add(parse(BatchItem.newBuilder(), line, "BatchItem"));
          }
        } else {
          for (String a : args) {
            String[] kv = pair(a);
            requests.add(
                BatchItem.newBuilder()
                    .setKey(kv[0])
                    .setValue(ByteString.copyFromUtf8(kv[1]))
                    .build());
          }
        }
      }
      case "trade" -> {
        want(command, args, 0);
        method = "Trade";
        for (String line : stdinLines()) {
          requests.add(parse(TradeOrder.newBuilder(), line, "TradeOrder"));
        }
      }
      case "inventory" -> {
        want(command, args, 0);
        method = "Inventory";
        requests.add(Empty.getDefaultInstance());
      }
      default -> throw new UsageError("unknown command " + command + "\n" + USAGE);
    }
    return new Step(command, METHODS.get(method), requests, Map.of(), 0, null, 0, List.of(), 1, 0);
  }

  private static void want(String command, List<String> args, int n) throws UsageError {
    if (args.size() != n) {
      throw new UsageError(command + " takes " + n + " argument(s), got " + args.size());
    }
  }

  private static BufferedReader stdin() {
    return new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
  }

  private static List<String> stdinLines() throws IOException {
    List<String> lines = new ArrayList<>();
    BufferedReader in = stdin();
    for (String line; (line = in.readLine()) != null; ) {
      if (!line.isBlank()) {
        lines.add(line);
      }
    }
    return lines;
  }

  private static Message parse(Message.Builder builder, String json, String what)
      throws UsageError {
    try {
      PARSER.merge(json, builder);
      return builder.build();
    } catch (InvalidProtocolBufferException | RuntimeException e) {
      throw new UsageError("invalid " + what + " " + json + ": " + e.getMessage());
    }
  }

  /** Parses one script step (and its after_first steps). */
  private static Step parseStep(JsonElement json) throws UsageError {
    if (!json.isJsonObject()) {
      throw new UsageError("a step must be a JSON object: " + json);
    }
    JsonObject o = json.getAsJsonObject();
    try {
      String id = o.has("id") ? o.get("id").getAsString() : "";
      String name = o.has("method") ? o.get("method").getAsString() : "";
      Method method = METHODS.get(name);
      if (method == null) {
        throw new UsageError("step \"" + id + "\": unknown method \"" + name + "\"");
      }
      List<Message> requests = new ArrayList<>();
      if (method.descriptor.getType().clientSendsOneMessage()) {
        JsonElement r = o.get("request");
        String text = r == null || r.isJsonNull() ? "{}" : r.toString();
        requests.add(parse(method.input.get(), text, "request of step \"" + id + "\":"));
      } else if (o.has("requests") && !o.get("requests").isJsonNull()) {
        for (JsonElement r : o.getAsJsonArray("requests")) {
          requests.add(parse(method.input.get(), r.toString(), "request of step \"" + id + "\":"));
        }
      }
      Map<String, String> md = new LinkedHashMap<>();
      if (o.has("metadata") && !o.get("metadata").isJsonNull()) {
        for (Map.Entry<String, JsonElement> e : o.getAsJsonObject("metadata").entrySet()) {
          // A bad key or -bin value is a usage error before anything is sent.
          putMetadata(new Metadata(), e.getKey(), e.getValue().getAsString());
          md.put(e.getKey(), e.getValue().getAsString());
        }
      }
      long timeout =
          o.has("timeout_ms") && !o.get("timeout_ms").isJsonNull()
              ? o.get("timeout_ms").getAsLong()
              : 0;
      String compression =
          o.has("compression") && !o.get("compression").isJsonNull()
              ? o.get("compression").getAsString()
              : null;
      long cancelAfter =
          o.has("cancel_after_ms") && !o.get("cancel_after_ms").isJsonNull()
              ? o.get("cancel_after_ms").getAsLong()
              : 0;
      int copies =
          o.has("copies") && !o.get("copies").isJsonNull() ? o.get("copies").getAsInt() : 1;
      long readPause =
          o.has("read_pause_ms") && !o.get("read_pause_ms").isJsonNull()
              ? o.get("read_pause_ms").getAsLong()
              : 0;
      List<Step> afterFirst = new ArrayList<>();
      if (o.has("after_first") && !o.get("after_first").isJsonNull()) {
        for (JsonElement nested : o.getAsJsonArray("after_first")) {
          afterFirst.add(parseStep(nested));
        }
      }
      return new Step(
          id,
          method,
          requests,
          md,
          timeout,
          compression,
          cancelAfter,
          afterFirst,
          copies,
          readPause);
    } catch (ClassCastException
        | IllegalStateException
        | UnsupportedOperationException
        | NumberFormatException e) {
      throw new UsageError("invalid step " + json + ": " + e.getMessage());
    }
  }

  /** Runs script steps read from stdin, one JSON object per line. */
  private void script() throws UsageError, IOException {
    BufferedReader in = stdin();
    for (String line; (line = in.readLine()) != null; ) {
      if (line.isBlank()) {
        continue;
      }
      JsonElement json;
      try {
        json = JsonParser.parseString(line);
      } catch (JsonParseException e) {
        throw new UsageError("invalid step line " + line + ": " + e.getMessage());
      }
      runStep(parseStep(json));
    }
  }

  private static void emit(String line) {
    synchronized (OUT) {
      OUT.print(line);
      OUT.print('\n');
      OUT.flush();
    }
  }

  /** Adds one request metadata entry: a -bin key's value is base64, sent as its bytes. */
  private static void putMetadata(Metadata md, String key, String value) throws UsageError {
    try {
      if (key.endsWith(Metadata.BINARY_HEADER_SUFFIX)) {
        md.put(
            Metadata.Key.of(key, Metadata.BINARY_BYTE_MARSHALLER),
            Base64.getDecoder().decode(value));
      } else {
        md.put(Metadata.Key.of(key, Metadata.ASCII_STRING_MARSHALLER), value);
      }
    } catch (IllegalArgumentException e) {
      throw new UsageError("invalid metadata " + key + ": " + e.getMessage());
    }
  }

  /** The received x-stock-* entries; -bin values in base64. */
  private static Map<String, String> stockMetadata(Metadata md) {
    Map<String, String> out = new TreeMap<>();
    if (md != null) {
      for (String k : md.keys()) {
        if (!k.startsWith("x-stock-")) {
          continue;
        }
        if (k.endsWith(Metadata.BINARY_HEADER_SUFFIX)) {
          byte[] v = md.get(Metadata.Key.of(k, Metadata.BINARY_BYTE_MARSHALLER));
          out.put(k, Base64.getEncoder().encodeToString(v));
        } else {
          out.put(k, md.get(Metadata.Key.of(k, Metadata.ASCII_STRING_MARSHALLER)));
        }
      }
    }
    return out;
  }

  /**
   * Runs one step, printing every line; with copies, that many calls at once on the channel (one
   * thread each; past the server's stream limit the transport queues them), copy k under the id
   * ID*k.
   */
  private void runStep(Step step) throws UsageError {
    if (step.copies <= 1) {
      runCall(step, step.id);
      return;
    }
    List<Thread> threads = new ArrayList<>();
    AtomicReference<Exception> error = new AtomicReference<>();
    for (int k = 0; k < step.copies; k++) {
      String id = step.id + "*" + k;
      Thread t =
          new Thread(
              () -> {
                try {
                  runCall(step, id);
                } catch (UsageError | RuntimeException e) {
                  error.compareAndSet(null, e);
                }
              },
              "copy-" + k);
      t.setDaemon(true);
      t.start();
      threads.add(t);
    }
    for (Thread t : threads) {
      try {
        t.join();
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        return;
      }
    }
    if (error.get() instanceof UsageError e) {
      throw e;
    } else if (error.get() instanceof RuntimeException e) {
      throw e;
    }
  }

  /**
   * Runs one call of a step (and its after_first steps), its lines under id. Messages are requested
   * one at a time, each after the previous one was printed and handled (after_first, the
   * read_pause_ms pause), so an unread stream is held back by the transport's flow control.
   */
  @SuppressWarnings("unchecked")
  private void runCall(Step step, String id) throws UsageError {
    long start = System.nanoTime();
    CallOptions options = CallOptions.DEFAULT;
    long timeout = step.timeoutMs > 0 ? step.timeoutMs : timeoutMs;
    if (timeout > 0) {
      options = options.withDeadlineAfter(timeout, TimeUnit.MILLISECONDS);
    }
    String comp = step.compression != null ? step.compression : compression;
    if ("gzip".equals(comp)) {
      options = options.withCompression("gzip");
    }
    Metadata md = new Metadata();
    for (Map<String, String> m : List.of(metadata, step.metadata)) {
      for (Map.Entry<String, String> e : m.entrySet()) {
        putMetadata(md, e.getKey(), e.getValue());
      }
    }

    BlockingQueue<Object> events = new LinkedBlockingQueue<>();
    MethodDescriptor<Message, Message> descriptor =
        (MethodDescriptor<Message, Message>) step.method.descriptor;
    ClientCall<Message, Message> clientCall = channel.newCall(descriptor, options);
    Call call = new Call(clientCall);
    clientCall.start(
        new ClientCall.Listener<>() {
          @Override
          public void onHeaders(Metadata headers) {
            events.add(new Headers(headers));
          }

          @Override
          public void onMessage(Message message) {
            events.add(message);
          }

          @Override
          public void onClose(Status status, Metadata trailers) {
            events.add(new Closed(status, trailers));
          }
        },
        md);
    clientCall.request(1);
    ScheduledFuture<?> cancel =
        step.cancelAfterMs > 0
            ? TIMER.schedule(
                () ->
                    call.cancel(
                        "cancelled by the client after " + step.cancelAfterMs + " ms", null),
                step.cancelAfterMs,
                TimeUnit.MILLISECONDS)
            : null;

    // Lock-step for Trade: one order, then wait for its fill before the next.
    boolean lockStep = descriptor.getType() == MethodDescriptor.MethodType.BIDI_STREAMING;
    Iterator<Message> pending = step.requests.iterator();
    boolean sending = true;
    while (sending && pending.hasNext()) {
      call.send(pending.next());
      sending = !lockStep;
    }
    if (!pending.hasNext()) {
      call.halfClose();
    }

    Map<String, String> headers = Map.of();
    String encoding = null;
    int count = 0;
    Closed closed;
    while (true) {
      Object event;
      try {
        event = events.take();
      } catch (InterruptedException e) {
        call.cancel("interrupted", e);
        Thread.currentThread().interrupt();
        return;
      }
      if (event instanceof Headers h) {
        headers = stockMetadata(h.metadata);
        encoding = h.metadata.get(GrpcUtil.MESSAGE_ENCODING_KEY);
      } else if (event instanceof Message m) {
        String printed;
        try {
          printed = PRINTER.print(m);
        } catch (InvalidProtocolBufferException e) {
          throw new IllegalStateException(e);
        }
        emit("{\"id\":" + GSON.toJson(id) + ",\"message\":" + printed + "}");
        if (++count == 1) {
          for (Step nested : step.afterFirst) {
            runStep(nested);
          }
        }
        if (step.readPauseMs > 0) {
          try {
            Thread.sleep(step.readPauseMs);
          } catch (InterruptedException e) {
            call.cancel("interrupted", e);
            Thread.currentThread().interrupt();
            return;
          }
        }
        if (lockStep && pending.hasNext()) {
          call.send(pending.next());
          if (!pending.hasNext()) {
            call.halfClose();
          }
        }
        call.request(1);
      } else {
        closed = (Closed) event;
        break;
      }
    }
    if (cancel != null) {
      cancel.cancel(false);
    }

    double elapsed = (System.nanoTime() - start) / 1e6;
    JsonObject status = new JsonObject();
    status.addProperty("code", closed.status.getCode().name());
    String message = closed.status.getDescription();
    status.addProperty("message", message == null ? "" : message);
    JsonObject line = new JsonObject();
    line.addProperty("id", id);
    line.add("status", status);
    line.add("headers", GSON.toJsonTree(headers));
    line.add("trailers", GSON.toJsonTree(stockMetadata(closed.trailers)));
    line.addProperty("elapsed_ms", elapsed);
    line.addProperty("response_encoding", encoding == null ? "identity" : encoding);
    line.add("details", details(closed, id));
    emit(GSON.toJson(line));
  }

  /**
   * The details of the google.rpc.Status in grpc-status-details-bin of a failed call (StatusProto),
   * each printed by JsonFormat with its @type; an empty list when there are none.
   */
  private static JsonArray details(Closed closed, String id) {
    JsonArray out = new JsonArray();
    if (closed.status.isOk()) {
      return out;
    }
    com.google.rpc.Status rich;
    try {
      rich = StatusProto.fromStatusAndTrailers(closed.status, closed.trailers);
    } catch (IllegalArgumentException e) { // its code differs from the call's
      System.err.println("step " + id + ": grpc-status-details-bin: " + e.getMessage());
      return out;
    }
    if (rich == null) {
      return out;
    }
    for (Any detail : rich.getDetailsList()) {
      try {
        out.add(JsonParser.parseString(DETAILS_PRINTER.print(detail)));
      } catch (InvalidProtocolBufferException e) { // an @type the registry does not know
        System.err.println("step " + id + ": " + detail.getTypeUrl() + ": " + e.getMessage());
      }
    }
    return out;
  }
}
