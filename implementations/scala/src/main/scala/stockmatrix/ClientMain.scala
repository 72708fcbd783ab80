package stockmatrix

import com.google.gson.{GsonBuilder, JsonArray, JsonElement, JsonObject, JsonParser}
import com.google.protobuf.util.JsonFormat
import com.google.protobuf.{ByteString, InvalidProtocolBufferException, Message}
import com.google.rpc.ErrorDetailsProto
import io.grpc._
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder
import io.grpc.protobuf.StatusProto
import stock.v1.StockOuterClass._
import stock.v1.{LedgerGrpc, StockGrpc}

import java.io._
import java.net.InetSocketAddress
import java.nio.charset.StandardCharsets.UTF_8
import java.util.Base64
import java.util.concurrent.{ExecutionException, Executors, LinkedBlockingQueue, ScheduledExecutorService, TimeUnit}
import scala.jdk.CollectionConverters._
import scala.util.control.NonFatal

/** A usage error: exit code 2. */
final class UsageError(msg: String) extends Exception(msg)

/** One call to make: a script step or a single command. */
final case class Step(
    id: String,
    method: Methods.Method,
    requests: Vector[Message],
    metadata: Vector[(String, String)],
    timeoutMs: Long,
    gzip: Option[Boolean],
    afterFirst: Vector[Step],
    cancelAfterMs: Long = 0,
    copies: Int = 0,
    readPauseMs: Long = 0
)

object Methods {
  final case class Method(descriptor: MethodDescriptor[Message, Message], newBuilder: () => Message.Builder)

  private def m[Q <: Message, R <: Message](d: MethodDescriptor[Q, R], b: () => Message.Builder) =
    Method(d.asInstanceOf[MethodDescriptor[Message, Message]], b)

  val byName: Map[String, Method] = Map(
    "Get" -> m(StockGrpc.getGetMethod, () => GetRequest.newBuilder()),
    "Put" -> m(StockGrpc.getPutMethod, () => PutRequest.newBuilder()),
    "Monitor" -> m(StockGrpc.getMonitorMethod, () => WatchRequest.newBuilder()),
    "Batch" -> m(StockGrpc.getBatchMethod, () => BatchItem.newBuilder()),
    "Trade" -> m(StockGrpc.getTradeMethod, () => TradeOrder.newBuilder()),
    "Inventory" -> m(StockGrpc.getInventoryMethod, () => Empty.newBuilder()),
    "Audit" -> m(StockGrpc.getAuditMethod, () => Empty.newBuilder()),
    "Ledger.Balance" -> m(LedgerGrpc.getBalanceMethod, () => Empty.newBuilder())
  )

  def apply(name: String): Method = byName.getOrElse(name, throw new UsageError(s"unknown method $name"))
}

object ClientMain {
  private val out = new PrintStream(new BufferedOutputStream(new FileOutputStream(FileDescriptor.out)), false, UTF_8)
  private val gson = new GsonBuilder().disableHtmlEscaping().create()
  private val printer = JsonFormat.printer().omittingInsignificantWhitespace()

  /** Prints the Any details of a google.rpc.Status: knows every google.rpc error detail message. */
  private val detailPrinter = JsonFormat
    .printer()
    .usingTypeRegistry(
      JsonFormat.TypeRegistry.newBuilder().add(ErrorDetailsProto.getDescriptor.getMessageTypes).build()
    )
    .omittingInsignificantWhitespace()
  private val parser = JsonFormat.parser()

  private def emit(obj: JsonObject): Unit = synchronized {
    out.println(gson.toJson(obj))
    out.flush()
  }

  // ---- input -----------------------------------------------------------

  def parseMessage(method: Methods.Method, json: Option[JsonElement]): Message = {
    val b = method.newBuilder()
    json.filterNot(_.isJsonNull).foreach { j =>
      try parser.merge(gson.toJson(j), b)
      catch { case NonFatal(e) => throw new UsageError(s"invalid ${b.getDescriptorForType.getName}: ${e.getMessage}") }
    }
    b.build()
  }

  def parseJson(line: String): JsonObject =
    try JsonParser.parseString(line).getAsJsonObject
    catch { case NonFatal(_) => throw new UsageError(s"not a JSON object: $line") }

  def parseStep(o: JsonObject): Step =
    try {
      def opt(k: String) = Option(o.get(k)).filterNot(_.isJsonNull)
      val method = Methods(opt("method").map(_.getAsString).getOrElse(throw new UsageError("step without method")))
      val requests = opt("requests") match {
        case Some(arr) => arr.getAsJsonArray.asScala.map(j => parseMessage(method, Some(j))).toVector
        case None      => Vector(parseMessage(method, opt("request")))
      }
      Step(
        id = opt("id").map(_.getAsString).getOrElse(""),
        method = method,
        requests = requests,
        metadata = opt("metadata").toVector
          .flatMap(_.getAsJsonObject.entrySet.asScala.map(e => e.getKey -> e.getValue.getAsString)),
        timeoutMs = opt("timeout_ms").map(_.getAsLong).getOrElse(0L),
        gzip = opt("compression").map(_.getAsString == "gzip"),
        afterFirst =
          opt("after_first").toVector.flatMap(_.getAsJsonArray.asScala.map(j => parseStep(j.getAsJsonObject))),
        cancelAfterMs = opt("cancel_after_ms").map(_.getAsLong).getOrElse(0L),
        copies = opt("copies").map(_.getAsInt).getOrElse(0),
        readPauseMs = opt("read_pause_ms").map(_.getAsLong).getOrElse(0L)
      )
    } catch {
      case e: UsageError => throw e
      case NonFatal(e)   => throw new UsageError(s"invalid step: $e")
    }

  // ---- calls -----------------------------------------------------------

  private sealed trait Event
  private final case class Headers(md: Metadata) extends Event
  private final case class Msg(m: Message) extends Event
  private final case class Closed(status: Status, trailers: Metadata) extends Event

  /** The `x-stock-*` entries, `-bin` ones base64. */
  private def stockKeys(md: Metadata): JsonObject = {
    val o = new JsonObject
    if (md != null)
      md.keys.asScala.toSeq.sorted
        .filter(_.startsWith("x-stock-"))
        .foreach { k =>
          if (k.endsWith(Metadata.BINARY_HEADER_SUFFIX)) {
            val bytes = md.get(Metadata.Key.of(k, Metadata.BINARY_BYTE_MARSHALLER))
            o.addProperty(k, Base64.getEncoder.encodeToString(bytes))
          } else o.addProperty(k, md.get(Metadata.Key.of(k, Metadata.ASCII_STRING_MARSHALLER)))
        }
    o
  }

  private val GrpcEncoding = Metadata.Key.of("grpc-encoding", Metadata.ASCII_STRING_MARSHALLER)

  /** The details of the google.rpc.Status in `grpc-status-details-bin` (grpc-java's StatusProto), in proto3 JSON. */
  private def details(status: Status, trailers: Metadata): JsonArray = {
    val all = new JsonArray
    val rich =
      if (status.isOk || trailers == null) None
      else
        try Option(StatusProto.fromStatusAndTrailers(status, trailers))
        catch {
          // grpc-status-details-bin whose code differs from the call's status.
          case e: IllegalArgumentException => System.err.println(s"client: warning: ${e.getMessage}"); None
        }
    rich.foreach(_.getDetailsList.asScala.foreach { d =>
      try all.add(JsonParser.parseString(detailPrinter.print(d)))
      catch {
        // A detail of a type the registry does not know: said on stderr, left out.
        case e: InvalidProtocolBufferException =>
          System.err.println(s"client: warning: cannot print detail ${d.getTypeUrl}: ${e.getMessage}")
      }
    })
    all
  }

  /** Fires the cancel_after_ms cancellations. */
  private lazy val timer: ScheduledExecutorService = Executors.newSingleThreadScheduledExecutor { r =>
    val t = new Thread(r, "cancel-after")
    t.setDaemon(true)
    t
  }

  final class Runner(channel: ManagedChannel, timeoutMs: Long, metadata: Vector[(String, String)], gzip: Boolean) {

    /** Runs a step; with `copies`, that many calls at once on the channel (a thread each), copy k as `ID*k`. */
    def runStep(step: Step): Unit =
      if (step.copies <= 1) run(step)
      else {
        val pool = Executors.newFixedThreadPool(step.copies)
        try {
          val calls = (0 until step.copies).map { k =>
            pool.submit((() => run(step.copy(id = s"${step.id}*$k"))): Runnable)
          }
          calls.foreach { c =>
            try c.get()
            catch { case e: ExecutionException => throw e.getCause }
          }
        } finally pool.shutdown()
      }

    /** One call: messages are requested one at a time, each after the previous one was handled. */
    def run(step: Step): Unit = {
      val md = new Metadata()
      (metadata ++ step.metadata).foreach { case (k, v) =>
        // A -bin key's value is base64: sent as the bytes (binary metadata).
        if (k.endsWith(Metadata.BINARY_HEADER_SUFFIX)) {
          val bytes =
            try Base64.getDecoder.decode(v)
            catch { case _: IllegalArgumentException => throw new UsageError(s"metadata $k: invalid base64 \"$v\"") }
          md.put(Metadata.Key.of(k, Metadata.BINARY_BYTE_MARSHALLER), bytes)
        } else md.put(Metadata.Key.of(k, Metadata.ASCII_STRING_MARSHALLER), v)
      }
      var opts = CallOptions.DEFAULT
      val timeout = if (step.timeoutMs > 0) step.timeoutMs else timeoutMs
      if (timeout > 0) opts = opts.withDeadlineAfter(timeout, TimeUnit.MILLISECONDS)
      if (step.gzip.getOrElse(gzip)) opts = opts.withCompression("gzip")

      val events = new LinkedBlockingQueue[Event]()
      var headers: Metadata = null
      val started = System.nanoTime()
      val call = channel.newCall(step.method.descriptor, opts)
      call.start(
        new ClientCall.Listener[Message] {
          override def onHeaders(h: Metadata): Unit = events.put(Headers(h))
          override def onMessage(m: Message): Unit = events.put(Msg(m))
          override def onClose(s: Status, t: Metadata): Unit = events.put(Closed(s, t))
        },
        md
      )
      // One message at a time: the next is requested only after this one was printed (and after_first ran,
      // and read_pause_ms passed), so meanwhile nothing is read and flow control holds the server back.
      call.request(1)
      // cancel_after_ms: ClientCall.cancel from the timer thread; every call method is used under the
      // call's lock, since ClientCall is not thread-safe.
      val cancelling = Option.when(step.cancelAfterMs > 0) {
        timer.schedule(
          (() => call.synchronized(call.cancel("cancelled by the client (cancel_after_ms)", null))): Runnable,
          step.cancelAfterMs,
          TimeUnit.MILLISECONDS
        )
      }

      var printed = 0
      def line(): JsonObject = { val o = new JsonObject; o.addProperty("id", step.id); o }

      /** The next message (printed), or the final status. */
      @annotation.tailrec
      def next(): Option[Closed] = events.take() match {
        case Headers(h) => headers = h; next()
        case Msg(m) =>
          val o = line()
          o.add("message", JsonParser.parseString(printer.print(m)))
          emit(o)
          printed += 1
          if (printed == 1) step.afterFirst.foreach(runStep)
          if (step.readPauseMs > 0) Thread.sleep(step.readPauseMs)
          call.synchronized(call.request(1))
          None
        case c: Closed => Some(c)
      }
      @annotation.tailrec
      def drain(): Closed = next() match {
        case Some(c) => c
        case None    => drain()
      }

      val closed = step.method.descriptor.getType match {
        case MethodDescriptor.MethodType.BIDI_STREAMING =>
          // Lock-step: one order, one fill; stop sending once the stream ended.
          @annotation.tailrec
          def trade(orders: List[Message]): Closed = orders match {
            case order :: rest =>
              call.synchronized(call.sendMessage(order))
              next() match {
                case Some(c) => c
                case None    => trade(rest)
              }
            case Nil => call.synchronized(call.halfClose()); drain()
          }
          trade(step.requests.toList)
        case _ =>
          call.synchronized {
            step.requests.foreach(call.sendMessage)
            call.halfClose()
          }
          drain()
      }
      cancelling.foreach(_.cancel(false))

      val elapsed = (System.nanoTime() - started) / 1e6
      val o = line()
      val st = new JsonObject
      st.addProperty("code", closed.status.getCode.name)
      st.addProperty("message", Option(closed.status.getDescription).getOrElse(""))
      o.add("status", st)
      o.add("headers", stockKeys(headers))
      o.add("trailers", stockKeys(closed.trailers))
      o.addProperty("elapsed_ms", math.round(elapsed * 1000) / 1000.0)
      // grpc-java leaves the response's grpc-encoding header in the metadata it delivers.
      val encoding = Option(headers).flatMap(h => Option(h.get(GrpcEncoding)))
      o.addProperty("response_encoding", encoding.getOrElse("identity"))
      o.add("details", details(closed.status, closed.trailers))
      emit(o)
    }
  }

  // ---- command line ----------------------------------------------------

  private val Valued =
    Set(
      "--server",
      "--tls-mode",
      "--ca-file",
      "--cert-file",
      "--key-file",
      "--server-name",
      "--timeout-ms",
      "--metadata",
      "--compression"
    )

  private def stdinLines(): Iterator[String] = {
    val r = new BufferedReader(new InputStreamReader(System.in, UTF_8))
    Iterator.continually(r.readLine()).takeWhile(_ != null).filter(_.trim.nonEmpty)
  }

  private def channel(opts: Options): ManagedChannel = {
    val target = opts.single("--server").getOrElse(throw new UsageError("--server HOST:PORT is required"))
    val colon = target.lastIndexOf(':')
    val port = target.substring(colon + 1).toIntOption.filter(_ => colon > 0)
    val host = target.substring(0, colon.max(0)).stripPrefix("[").stripSuffix("]")
    if (port.isEmpty) throw new UsageError(s"--server must be HOST:PORT, got $target")
    def file(flag: String): File = {
      val f = new File(opts.single(flag).getOrElse(throw new UsageError(s"$flag is required for this --tls-mode")))
      if (!f.canRead) throw new IOException(s"cannot read $flag ${f.getPath}")
      f
    }
    val creds = opts.single("--tls-mode").getOrElse("none") match {
      case "none"   => InsecureChannelCredentials.create()
      case "server" => TlsChannelCredentials.newBuilder().trustManager(file("--ca-file")).build()
      case "mtls" =>
        TlsChannelCredentials
          .newBuilder()
          .trustManager(file("--ca-file"))
          .keyManager(file("--cert-file"), file("--key-file"))
          .build()
      case other => throw new UsageError(s"unknown --tls-mode $other")
    }
    // grpc-java's limits as they are: receive 4 MiB, send unlimited.
    val b = NettyChannelBuilder.forAddress(new InetSocketAddress(host, port.get), creds)
    opts.single("--server-name").foreach(b.overrideAuthority)
    b.build()
  }

  private def command(cmd: String, args: List[String]): Iterator[Step] = {
    def step(method: String, requests: Vector[Message]) =
      Step(cmd, Methods(method), requests, Vector.empty, 0, None, Vector.empty)
    def usage() = throw new UsageError(s"bad arguments for $cmd: ${args.mkString(" ")}")
    def fromStdin(method: String) = {
      val m = Methods(method)
      stdinLines().map(l => parseMessage(m, Some(parseJson(l)))).toVector
    }
    cmd match {
      case "get" =>
        args match {
          case key :: Nil => Iterator(step("Get", Vector(GetRequest.newBuilder().setKey(key).build())))
          case _          => usage()
        }
      case "put" =>
        args match {
          case key :: value :: Nil =>
            Iterator(
              step("Put", Vector(PutRequest.newBuilder().setKey(key).setValue(ByteString.copyFromUtf8(value)).build()))
            )
          case _ => usage()
        }
      case "monitor" =>
        args match {
          case pattern :: rest =>
            val (o, extra) = Options
              .parse(rest, Set("--max-events"), Set("--include-existing"))
              .fold(e => throw new UsageError(e), identity)
            if (extra.nonEmpty) usage()
            val max = o.single("--max-events").map(_.toIntOption.getOrElse(usage())).getOrElse(0)
            val req = WatchRequest
              .newBuilder()
              .setPattern(pattern)
              .setMaxEvents(max)
              .setIncludeExisting(o.has("--include-existing"))
            Iterator(step("Monitor", Vector(req.build())))
          case _ => usage()
        }
      case "batch" =>
        val items =
          if (args.isEmpty) fromStdin("Batch")
          else
            args.toVector.map { kv =>
              val eq = kv.indexOf('=')
              if (eq < 0) usage()
              BatchItem.newBuilder().setKey(kv.take(eq)).setValue(ByteString.copyFromUtf8(kv.drop(eq + 1))).build()
            }
        Iterator(step("Batch", items))
      case "trade"     => if (args.nonEmpty) usage() else Iterator(step("Trade", fromStdin("Trade")))
      case "inventory" => if (args.nonEmpty) usage() else Iterator(step("Inventory", Vector(Empty.getDefaultInstance)))
      case "script"    => if (args.nonEmpty) usage() else stdinLines().map(l => parseStep(parseJson(l)))
      case other       => throw new UsageError(s"unknown command $other")
    }
  }

  def main(args: Array[String]): Unit = {
    val code =
      try {
        val (opts, rest) = Options.parse(args.toList, Valued, Set.empty).fold(e => throw new UsageError(e), identity)
        val (cmd, cmdArgs) = rest match {
          case c :: a => (c, a)
          case Nil    => throw new UsageError("missing command")
        }
        val timeout = opts
          .single("--timeout-ms")
          .map(_.toLongOption.getOrElse(throw new UsageError("bad --timeout-ms")))
          .getOrElse(0L)
        val gzip = opts.single("--compression") match {
          case None | Some("identity") | Some("none") => false
          case Some("gzip")                           => true
          case Some(other)                            => throw new UsageError(s"unknown --compression $other")
        }
        val metadata = opts.all("--metadata").map { kv =>
          val eq = kv.indexOf('=')
          if (eq <= 0) throw new UsageError(s"--metadata must be K=V, got $kv")
          kv.take(eq).toLowerCase -> kv.drop(eq + 1)
        }
        val steps = command(cmd, cmdArgs)
        val ch = channel(opts)
        try {
          val runner = new Runner(ch, timeout, metadata, gzip)
          steps.foreach(runner.runStep)
          0
        } finally ch.shutdownNow()
      } catch {
        case e: UsageError => System.err.println(s"client: ${e.getMessage}"); 2
        case NonFatal(e)   => System.err.println(s"client: $e"); 1
      }
    out.flush()
    System.err.flush()
    Runtime.getRuntime.halt(code)
  }
}
