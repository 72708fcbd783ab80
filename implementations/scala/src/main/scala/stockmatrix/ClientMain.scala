package stockmatrix

import com.google.gson.{GsonBuilder, JsonArray, JsonElement, JsonObject, JsonParser}
import com.google.protobuf.{ByteString, Message, UnsafeByteOperations}
import com.google.protobuf.Descriptors.FieldDescriptor
import com.google.protobuf.util.JsonFormat
import com.google.rpc.ErrorDetailsProto
import io.grpc._
import io.grpc.MethodDescriptor.MethodType
import io.grpc.MethodDescriptor.MethodType.{BIDI_STREAMING, CLIENT_STREAMING, UNARY}
import io.grpc.netty.shaded.io.grpc.netty.{GrpcSslContexts, NettyChannelBuilder, NettySslContextChannelCredentials}
import io.grpc.netty.shaded.io.netty.channel.epoll.{EpollDomainSocketChannel, EpollEventLoopGroup}
import io.grpc.netty.shaded.io.netty.channel.unix.DomainSocketAddress
import io.grpc.protobuf.StatusProto
import io.grpc.stub.{ClientCalls, MetadataUtils, StreamObserver}
import proto.KVGrpc
import stock.v1.{LedgerGrpc, StockGrpc}

import java.io._
import java.net.InetSocketAddress
import java.nio.charset.StandardCharsets.UTF_8
import java.util.Base64
import java.util.concurrent.{ExecutionException, Executors, LinkedBlockingQueue, TimeUnit}
import java.util.concurrent.atomic.AtomicReference
import scala.collection.mutable
import scala.jdk.CollectionConverters._
import scala.util.Try
import scala.util.control.NonFatal

/** `client --server HOST:PORT|unix:/PATH [--tls-mode none|server|mtls] [--ca-file F] [--cert-file F --key-file F]
  * [--server-name NAME] [--keepalive-ms N [--keepalive-timeout-ms N]] script`: runs the JSON steps of stdin over
  * grpc-java (see CONTRACT.md).
  */
object ClientMain {
  final class UsageError(msg: String) extends Exception(msg)

  /** A connection's settings by their step field names (`server`, `tls_mode`, `ca_file`, ...). */
  type Connection = Map[String, String]

  type Method = MethodDescriptor[Message, Message]

  final case class Step(
      id: String,
      method: Method,
      requests: Vector[Message],
      metadata: Metadata,
      timeoutMs: Long,
      gzip: Boolean,
      connection: Option[Connection],
      afterFirst: Vector[Step],
      copies: Int,
      readPauseMs: Long,
      cancelAfterMs: Long,
      cancelAfterMessages: Int,
      lane: Int,
      bench: Option[Bench]
  )

  /** A `bench` step's load: `concurrency` workers repeat the step's call until `durationMs` have passed. */
  final case class Bench(durationMs: Long, concurrency: Int)

  /** Every method a step may name: `Get` ... on stock.v1.Stock, `Ledger.Balance`, `proto.KV.Get` ... */
  private val methods: Map[String, Method] = {
    def named(service: ServiceDescriptor, prefix: String) =
      service.getMethods.asScala.map(m => prefix + m.getBareMethodName -> m.asInstanceOf[Method])
    (named(StockGrpc.getServiceDescriptor, "") ++ named(LedgerGrpc.getServiceDescriptor, "Ledger.") ++
      named(KVGrpc.getServiceDescriptor, "proto.KV.")).toMap
  }
  private val ConnectionFields =
    Set("server", "tls_mode", "ca_file", "cert_file", "key_file", "server_name", "keepalive_ms", "keepalive_timeout_ms")
  private val StepFields = Set(
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
    "bench"
  )

  private val out = new PrintStream(new BufferedOutputStream(new FileOutputStream(FileDescriptor.out)), false, UTF_8)
  private val gson = new GsonBuilder().disableHtmlEscaping().create()
  private val printer = JsonFormat.printer().omittingInsignificantWhitespace()
  private val parser = JsonFormat.parser()
  private val detailPrinter = printer.usingTypeRegistry(
    JsonFormat.TypeRegistry.newBuilder().add(ErrorDetailsProto.getDescriptor.getMessageTypes).build()
  )
  private val channels = mutable.Map.empty[Connection, ManagedChannel]

  /** TLS credentials by (mode, CA, certificate, key), shared by the channels that use the same files. */
  private val tlsByFiles = mutable.Map.empty[Seq[String], ChannelCredentials]
  private val lanes = mutable.Map.empty[Int, LinkedBlockingQueue[Option[Step]]] // by lane number, main's thread only
  private val laneThreads = mutable.ArrayBuffer.empty[Thread]
  private val timer = Executors.newSingleThreadScheduledExecutor()

  /** The threads of a step's copies: a new one for each copy that finds none idle, so all copies run at once; a thread
    * left idle by an earlier step is reused rather than started anew.
    */
  private val copyThreads = Executors.newCachedThreadPool()
  private val LargeValue = 1024 // base64 characters: from this length on, largeValue decodes a request's value
  private val GrpcEncoding = Metadata.Key.of("grpc-encoding", Metadata.ASCII_STRING_MARSHALLER)
  private var defaultConnection: Connection = Map.empty

  /** grpc-java sets SO_KEEPALIVE on every channel and Netty logs a warning for each Unix socket one, which has no such
    * option: that logger is quieted (and held in this field: java.util.logging keeps only weak references; set here,
    * not in `unixLoop`, as scalac nulls private fields that only a lazy val's initializer uses).
    */
  private val bootstrapLog = java.util.logging.Logger.getLogger("io.grpc.netty.shaded.io.netty.bootstrap.Bootstrap")
  bootstrapLog.setLevel(java.util.logging.Level.SEVERE)

  /** The event loop of the channels to Unix sockets (Netty's epoll transport, in grpc-netty-shaded). */
  private lazy val unixLoop = new EpollEventLoopGroup(1)

  def main(args: Array[String]): Unit = {
    val code =
      try {
        defaultConnection = parseArgs(args.toList, Map.empty)
        channelFor(defaultConnection) // an unreadable certificate file of the default connection: exit 1
        val stdin = new BufferedReader(new InputStreamReader(System.in, UTF_8))
        Iterator.continually(stdin.readLine()).takeWhile(_ != null).filter(_.trim.nonEmpty).foreach { line =>
          val json =
            try JsonParser.parseString(line)
            catch { case NonFatal(_) => usage(s"not JSON: $line") }
          val step = parseStep(json)
          lanes.getOrElseUpdate(step.lane, startLane()).put(Some(step))
        }
        lanes.values.foreach(_.put(None)) // stdin's end: each lane ends after its last step
        laneThreads.foreach(_.join())
        0
      } catch {
        case e: UsageError => System.err.println(s"client: ${e.getMessage}"); 2
        case NonFatal(e)   => System.err.println(s"client: $e"); 1
      }
    out.flush()
    Runtime.getRuntime.halt(code)
  }

  /** A lane: a thread of its own that runs its queue's steps in order, each after the previous one ended, while the
    * other lanes run theirs; None ends it. An error ends the client as it would in `main` (exit 1).
    */
  private def startLane(): LinkedBlockingQueue[Option[Step]] = {
    val steps = new LinkedBlockingQueue[Option[Step]]()
    val thread = new Thread(() =>
      try Iterator.continually(steps.take()).takeWhile(_.isDefined).foreach(step => runStep(step.get))
      catch {
        case NonFatal(e) => System.err.println(s"client: $e"); out.flush(); Runtime.getRuntime.halt(1)
      }
    )
    thread.start()
    laneThreads += thread
    steps
  }

  private def usage(msg: String): Nothing = throw new UsageError(msg)

  /** The options (the default connection, `--ca-file` as `ca_file` ...) up to the command, which must be `script`. */
  @annotation.tailrec
  def parseArgs(args: List[String], fields: Connection): Connection = {
    def field(flag: String) = flag.drop(2).replace('-', '_')
    args match {
      case "script" :: Nil                                                                 => connection(fields)
      case flag :: value :: rest if flag.startsWith("--") && ConnectionFields(field(flag)) =>
        parseArgs(rest, fields + (field(flag) -> value))
      case Nil           => usage("missing command (script)")
      case "script" :: _ => usage("script takes no arguments")
      case other :: _    => usage(s"unknown option or command $other")
    }
  }

  /** Checks a connection's settings (a usage error when wrong) and gives `tls_mode` its default. */
  private def connection(fields: Connection): Connection = {
    val conn = fields.updatedWith("tls_mode")(_.orElse(Some("none")))
    val server = conn.getOrElse("server", usage("server HOST:PORT is required"))
    if (!server.matches(""".+:\d+""") && !unixPath(server).exists(_.startsWith("/")))
      usage(s"server must be HOST:PORT or unix:/PATH, got $server")
    val files = conn("tls_mode") match {
      case "none"   => Nil
      case "server" => List("ca_file")
      case "mtls"   => List("ca_file", "cert_file", "key_file")
      case other    => usage(s"unknown tls_mode $other")
    }
    files.filterNot(conn.contains).foreach(f => usage(s"$f is required with tls_mode ${conn("tls_mode")}"))
    for (k <- List("keepalive_ms", "keepalive_timeout_ms"); ms <- conn.get(k) if !ms.toLongOption.exists(_ > 0))
      usage(s"$k must be a positive number of ms, got $ms")
    conn
  }

  /** One stdin line: the step with its request messages and its metadata (`-bin` values decoded). */
  def parseStep(json: JsonElement): Step =
    try {
      val o = json.getAsJsonObject
      o.keySet.asScala.diff(StepFields).foreach(k => usage(s"unknown step field $k"))
      def opt(k: String) = Option(o.get(k)).filterNot(_.isJsonNull)
      def long(k: String) = opt(k).fold(0L)(_.getAsLong)
      val name = opt("method").fold(usage("step without method"))(_.getAsString)
      val method = methods.getOrElse(name, usage(s"unknown method $name"))
      def message(j: JsonElement): Message = {
        val b = method.getRequestMarshaller
          .asInstanceOf[MethodDescriptor.PrototypeMarshaller[Message]]
          .getMessagePrototype
          .newBuilderForType()
        largeValue(j, b) match {
          case Some((rest, value, bytes)) => parser.merge(gson.toJson(rest), b); b.setField(value, bytes)
          case None                       => parser.merge(gson.toJson(j), b)
        }
        b.build()
      }
      val metadata = new Metadata()
      opt("metadata").foreach(_.getAsJsonObject.entrySet.asScala.foreach { e =>
        val (k, v) = (e.getKey, e.getValue.getAsString)
        if (k.endsWith(Metadata.BINARY_HEADER_SUFFIX))
          metadata.put(Metadata.Key.of(k, Metadata.BINARY_BYTE_MARSHALLER), Base64.getDecoder.decode(v))
        else metadata.put(Metadata.Key.of(k, Metadata.ASCII_STRING_MARSHALLER), v)
      })
      val parsed = opt("requests") match {
        case Some(array) => array.getAsJsonArray.asScala.map(message).toVector
        case None        => Vector(message(opt("request").getOrElse(new JsonObject)))
      }
      val requests = opt("fill").fold(parsed)(fillValues(name, parsed, _))
      val gzip = opt("compression").fold("identity")(_.getAsString) match {
        case "gzip"     => true
        case "identity" => false
        case other      => usage(s"unknown compression $other")
      }
      val afterFirst = opt("after_first").fold(Vector.empty[Step])(_.getAsJsonArray.asScala.map(parseStep).toVector)
      if (afterFirst.nonEmpty && name != "Monitor") usage(s"after_first is for Monitor only, not $name")
      val cancelAfterMessages = long("cancel_after_messages").toInt
      if (cancelAfterMessages > 0 && name != "Monitor") usage(s"cancel_after_messages is for Monitor only, not $name")
      Step(
        id = opt("id").fold("")(_.getAsString),
        method = method,
        requests = requests,
        metadata = metadata,
        timeoutMs = long("timeout_ms"),
        gzip = gzip,
        connection = opt("connection").map { c =>
          val fields = c.getAsJsonObject.entrySet.asScala.map(e => e.getKey -> e.getValue.getAsString).toMap
          fields.keySet.diff(ConnectionFields).foreach(k => usage(s"unknown connection field $k"))
          connection(fields)
        },
        afterFirst = afterFirst,
        copies = long("copies").toInt,
        readPauseMs = long("read_pause_ms"),
        cancelAfterMs = long("cancel_after_ms"),
        cancelAfterMessages = cancelAfterMessages,
        lane = opt("lane").fold(0)(_.getAsInt) match {
          case n if n < 0 => usage(s"lane must be >= 0, got $n")
          case n          => n
        },
        bench = opt("bench").map(benchOf)
      )
    } catch {
      case e: UsageError => throw e
      case NonFatal(e)   => usage(s"invalid step $json: $e")
    }

  /** A request's large `value` (bytes, base64 in the JSON) decoded at once, and the request without it for JsonFormat:
    * this spares printing the base64 back into JSON text, parsing it again, and decoding it a character at a time. Only
    * canonical base64 (standard alphabet, padded: it encodes back to the same text), which JsonFormat decodes to the
    * same bytes; anything else stays in the JSON for JsonFormat to read (or refuse) as it would.
    */
  private def largeValue(j: JsonElement, b: Message.Builder): Option[(JsonObject, FieldDescriptor, ByteString)] =
    for {
      o <- Option.when(j.isJsonObject)(j.getAsJsonObject)
      field <- Option(b.getDescriptorForType.findFieldByName("value"))
      if field.getType == FieldDescriptor.Type.BYTES && !field.isRepeated
      v <- Option(o.get("value"))
      if v.isJsonPrimitive && v.getAsJsonPrimitive.isString
      text = v.getAsString
      if text.length >= LargeValue
      bytes <- Try(Base64.getDecoder.decode(text)).toOption
      if Base64.getEncoder.encodeToString(bytes) == text
    } yield {
      val rest = new JsonObject
      o.entrySet.asScala.foreach(e => if (e.getKey != "value") rest.add(e.getKey, e.getValue))
      (rest, field, UnsafeByteOperations.unsafeWrap(bytes))
    }

  /** `{"duration_ms": D, "concurrency": C}`: D an integer >= 0, C an integer >= 1 (1.5, "3" and -1 are refused). */
  private def benchOf(json: JsonElement): Bench = {
    val o = json.getAsJsonObject
    o.keySet.asScala.diff(Set("duration_ms", "concurrency")).foreach(k => usage(s"unknown bench field $k"))
    def count(k: String, min: Long): Long = Option(o.get(k))
      .filter(j => j.isJsonPrimitive && j.getAsJsonPrimitive.isNumber)
      .flatMap(n => Try(n.getAsBigDecimal.longValueExact).toOption)
      .filter(_ >= min)
      .getOrElse(usage(s"bench: $k must be an integer >= $min, got ${o.get(k)}"))
    Bench(count("duration_ms", 0), math.min(count("concurrency", 1), Int.MaxValue.toLong).toInt)
  }

  /** The step's `fill` entries (`Put` and `Batch` only): the `value` of request message `request` becomes the bytes of
    * `repeat` (base64) repeated `times` times, built in one array of their total length; a bad entry is a usage error.
    */
  private def fillValues(name: String, requests: Vector[Message], fill: JsonElement): Vector[Message] = {
    if (name != "Put" && name != "Batch") usage(s"fill is for Put and Batch only, not $name")
    fill.getAsJsonArray.asScala.foldLeft(requests) { (messages, json) =>
      val entry = json.getAsJsonObject
      entry.keySet.asScala.diff(Set("request", "repeat", "times")).foreach(k => usage(s"unknown fill field $k"))
      def field(k: String) = Option(entry.get(k)).filter(_.isJsonPrimitive).map(_.getAsJsonPrimitive)
      def count(k: String): Long = field(k)
        .filter(_.isNumber)
        .flatMap(n => Try(n.getAsBigDecimal.longValueExact).toOption)
        .filter(_ >= 0)
        .getOrElse(usage(s"fill: $k must be an integer >= 0, got ${entry.get(k)}"))
      val index = count("request")
      if (index >= messages.size) usage(s"fill: no request $index (the step has ${messages.size})")
      val repeat =
        field("repeat").filter(_.isString).fold(usage("fill: repeat must be a base64 string"))(_.getAsString)
      val unit =
        try Base64.getDecoder.decode(repeat)
        catch { case _: IllegalArgumentException => usage(s"fill: repeat is not base64: $repeat") }
      val times = count("times")
      if (unit.nonEmpty && times > (Int.MaxValue - 8) / unit.length)
        usage(s"fill: ${unit.length} bytes $times times is too large for one value")
      val bytes = new Array[Byte](unit.length * times.toInt)
      if (bytes.nonEmpty) System.arraycopy(unit, 0, bytes, 0, unit.length)
      var filled = math.min(unit.length, bytes.length)
      while (filled < bytes.length) { // doubling: the filled part copied after itself
        val n = math.min(filled, bytes.length - filled)
        System.arraycopy(bytes, 0, bytes, filled, n)
        filled += n
      }
      val message = messages(index.toInt)
      val value = message.getDescriptorForType.findFieldByName("value")
      messages.updated(index.toInt, message.toBuilder.setField(value, UnsafeByteOperations.unsafeWrap(bytes)).build())
    }
  }

  /** The connection's channel, built (with its credentials) when first needed and reused after. */
  def channelFor(conn: Connection): ManagedChannel = channels.synchronized {
    channels.getOrElseUpdate(
      conn, {
        def file(k: String) = new File(conn(k))
        val creds = conn("tls_mode") match {
          case "none" => InsecureChannelCredentials.create()
          case mode   => // one SslContext (its files read once) for every channel with the same files
            val files =
              Seq(mode, conn("ca_file")) ++ (if (mode == "mtls") Seq(conn("cert_file"), conn("key_file")) else Nil)
            tlsByFiles.getOrElseUpdate(
              files, {
                val tls = GrpcSslContexts.forClient().trustManager(file("ca_file"))
                if (mode == "mtls") tls.keyManager(file("cert_file"), file("key_file"))
                NettySslContextChannelCredentials.create(tls.build())
              }
            )
        }
        val server = conn("server")
        // grpc-java's limits as they are: receive 4 MiB, send unlimited.
        val builder = unixPath(server) match {
          // A Unix socket: Netty's epoll domain socket channel; the authority is localhost unless server_name says.
          case Some(path) =>
            NettyChannelBuilder
              .forAddress(new DomainSocketAddress(path), creds)
              .channelType(classOf[EpollDomainSocketChannel])
              .eventLoopGroup(unixLoop)
              .overrideAuthority("localhost")
          case None =>
            val host = server.take(server.lastIndexOf(':')).stripPrefix("[").stripSuffix("]")
            val port = server.drop(server.lastIndexOf(':') + 1).toInt
            NettyChannelBuilder.forAddress(new InetSocketAddress(host, port), creds)
        }
        conn.get("server_name").foreach(builder.overrideAuthority)
        conn.get("keepalive_ms").foreach { ms => // grpc-java raises a time under 10 s to 10 s
          builder.keepAliveTime(ms.toLong, TimeUnit.MILLISECONDS).keepAliveWithoutCalls(true)
          conn.get("keepalive_timeout_ms").foreach(t => builder.keepAliveTimeout(t.toLong, TimeUnit.MILLISECONDS))
        }
        builder.build()
      }
    )
  }

  /** The socket path of a `unix:/PATH` or `unix:///PATH` server, else None (`HOST:PORT`). */
  def unixPath(server: String): Option[String] =
    if (server.startsWith("unix://")) Some(server.stripPrefix("unix://"))
    else if (server.startsWith("unix:")) Some(server.stripPrefix("unix:"))
    else None

  /** Runs a step; with `copies`, that many calls at once on the channel (a thread each), copy k as `ID*k`. */
  def runStep(step: Step): Unit =
    if (step.bench.isDefined) runBench(step, step.bench.get)
    else if (step.copies <= 1) runCall(step, step.id)
    else {
      val calls = (0 until step.copies).map(k => copyThreads.submit((() => runCall(step, s"${step.id}*$k")): Runnable))
      calls.foreach(c =>
        try c.get()
        catch { case e: ExecutionException => throw e.getCause }
      )
    }

  private sealed trait Event
  private final case class Received(m: Message) extends Event
  private final case class Closed(status: Status) extends Event

  /** One call, made as an application's stub makes it: a unary call through ClientCalls.futureUnaryCall (the future
    * stub's path, which the blocking stub's waits on), a Batch through ClientCalls.asyncClientStreamingCall (the async
    * stub's, grpc-java's client-stream API), so the stack's own checks of their one response message apply. The streams
    * (Monitor, Trade) request their messages one at a time, each after the previous one was handled (after_first,
    * read_pause_ms), so meanwhile nothing is read and flow control holds the server back. grpc-stub's MetadataUtils
    * interceptors send the request metadata and keep the response headers and trailers.
    */
  def runCall(step: Step, id: String): Unit = {
    val started = System.nanoTime()
    val conn = step.connection.getOrElse(defaultConnection)
    val channel =
      try channelFor(conn)
      catch {
        case NonFatal(e) =>
          val status = Status.UNAVAILABLE.withDescription(s"connection to ${conn("server")}: $e")
          return emitStatus(id, started, status, null, new Metadata())
      }
    var options = CallOptions.DEFAULT
    if (step.timeoutMs > 0) options = options.withDeadlineAfter(step.timeoutMs, TimeUnit.MILLISECONDS)
    if (step.gzip) options = options.withCompression("gzip")
    val headers, trailers = new AtomicReference[Metadata]()
    val stub = ClientInterceptors.intercept(
      channel,
      MetadataUtils.newAttachHeadersInterceptor(step.metadata),
      MetadataUtils.newCaptureMetadataInterceptor(headers, trailers)
    )

    val events = new LinkedBlockingQueue[Event]()
    val call = stub.newCall(step.method, options)
    val kind = step.method.getType
    // Started, and the requests sent (a Trade's later, lock-step), under the call's lock: ClientCall is not
    // thread-safe, and the timer thread cancels it.
    val response = call.synchronized {
      kind match {
        case UNARY            => Some(ClientCalls.futureUnaryCall(call, step.requests.head))
        case CLIENT_STREAMING =>
          val requests = ClientCalls.asyncClientStreamingCall(
            call,
            new StreamObserver[Message] {
              override def onNext(m: Message): Unit = events.put(Received(m))
              override def onError(t: Throwable): Unit = events.put(Closed(Status.fromThrowable(t)))
              override def onCompleted(): Unit = events.put(Closed(Status.OK))
            }
          )
          step.requests.foreach(requests.onNext)
          requests.onCompleted()
          None
        case _ =>
          call.start(
            new ClientCall.Listener[Message] {
              override def onMessage(m: Message): Unit = events.put(Received(m))
              override def onClose(s: Status, t: Metadata): Unit = events.put(Closed(s))
            },
            new Metadata()
          )
          call.request(1)
          if (kind != BIDI_STREAMING) {
            step.requests.foreach(call.sendMessage)
            call.halfClose()
          }
          None
      }
    }
    // Set with the cancel, under the call's lock: a cancelled ClientCall throws on a later sendMessage or
    // halfClose, and the timer may cancel a Trade before its first order is sent (a loaded machine).
    var cancelled = false
    def cancel(why: String): Unit = call.synchronized { cancelled = true; call.cancel(why, null) }
    val cancelling = Option.when(step.cancelAfterMs > 0) {
      val timed: Runnable = () => cancel("cancelled by the client (cancel_after_ms)")
      timer.schedule(timed, step.cancelAfterMs, TimeUnit.MILLISECONDS)
    }

    var received = 0
    // The one response message (unary, Batch): as grpc-java's stubs return it only from a call that ended OK (a failed
    // call returns none), it is held and printed only once the call ended OK.
    var result: Option[Message] = None

    /** The next message (printed, then the next one requested; a Batch's kept), or the final status. */
    @annotation.tailrec
    def next(): Option[Status] = events.take() match {
      case Received(m) if kind == CLIENT_STREAMING => result = Some(m); next()
      case Received(m)                             =>
        emitMessage(id, m)
        received += 1
        if (received == 1) step.afterFirst.foreach(runStep)
        if (received == step.cancelAfterMessages) // as cancel_after_ms; nothing more is requested, the close comes next
          cancel("cancelled by the client (cancel_after_messages)")
        else {
          if (step.readPauseMs > 0) Thread.sleep(step.readPauseMs)
          call.synchronized(call.request(1))
        }
        None
      case Closed(status) => Some(status)
    }
    @annotation.tailrec
    def rest(): Status = next() match {
      case Some(status) => status
      case None         => rest()
    }

    /** Lock-step: one order, one fill; stops sending once the stream ended. */
    @annotation.tailrec
    def trade(orders: List[Message]): Status = orders match {
      case order :: more =>
        call.synchronized(if (!cancelled) call.sendMessage(order))
        next() match {
          case Some(status) => status
          case None         => trade(more)
        }
      case Nil => call.synchronized(if (!cancelled) call.halfClose()); rest()
    }

    val status = kind match {
      case UNARY =>
        try { result = Some(response.get.get()); Status.OK }
        catch { case e: ExecutionException => Status.fromThrowable(e) }
      case BIDI_STREAMING => trade(step.requests.toList)
      case _              => rest() // Monitor (after_first, read_pause_ms, cancel_after_messages in next()), Batch
    }
    cancelling.foreach(_.cancel(false))
    if (status.isOk) result.foreach(emitMessage(id, _))
    emitStatus(id, started, status, headers.get, Option(trailers.get).getOrElse(new Metadata()))
  }

  /** The log-scale latency bucket of `v` µs (CONTRACT.md "Bench steps"): 16 buckets per power of two above 31. */
  def bucket(v: Long): Int = {
    val n = 64 - java.lang.Long.numberOfLeadingZeros(v)
    if (n <= 5) v.toInt else 16 * (n - 4) + ((v >> (n - 5)) & 15).toInt
  }

  /** A `bench` step: C threads on the step's one channel each repeat its call (printing nothing) until D ms have passed
    * since the step started, then the one `bench` line: OK calls, errors, messages, latency histogram, first error.
    */
  def runBench(step: Step, bench: Bench): Unit = {
    val started = System.nanoTime()
    val end = started + bench.durationMs * 1000000L
    val firstError = new AtomicReference[Status]()
    val conn = step.connection.getOrElse(defaultConnection)
    val channel =
      try channelFor(conn)
      catch {
        case NonFatal(e) =>
          firstError.set(Status.UNAVAILABLE.withDescription(s"connection to ${conn("server")}: $e"))
          null
      }
    val trade = step.method.getType == BIDI_STREAMING
    val orders = step.requests.toList
    // The messages an OK call counts: one (unary), the items sent (Batch), or those received (Monitor, Trade).
    val counted: Option[Int] = step.method.getType match {
      case MethodType.UNARY            => Some(1)
      case MethodType.CLIENT_STREAMING => Some(step.requests.size)
      case _                           => None
    }

    /** What one worker counted; the workers' tallies are summed at the end. */
    final class Tally(var calls: Long = 0, var errors: Long = 0, var messages: Long = 0) {
      val buckets = new Array[Long](1024)
    }

    /** One worker: the step's call over and over, as runCall makes it, its events on one queue (onClose comes last, so
      * nothing of one call is left in it for the next).
      */
    def worker(tally: Tally): Unit = {
      val events = new LinkedBlockingQueue[Event]()
      val listener = new ClientCall.Listener[Message] {
        override def onMessage(m: Message): Unit = events.put(Received(m))
        override def onClose(s: Status, t: Metadata): Unit = events.put(Closed(s))
      }
      val observer = new StreamObserver[Message] {
        override def onNext(m: Message): Unit = events.put(Received(m))
        override def onError(t: Throwable): Unit = events.put(Closed(Status.fromThrowable(t)))
        override def onCompleted(): Unit = events.put(Closed(Status.OK))
      }
      val stub = ClientInterceptors.intercept(channel, MetadataUtils.newAttachHeadersInterceptor(step.metadata))
      while (System.nanoTime() < end) {
        val t0 = System.nanoTime()
        var options = CallOptions.DEFAULT
        if (step.timeoutMs > 0) options = options.withDeadlineAfter(step.timeoutMs, TimeUnit.MILLISECONDS)
        if (step.gzip) options = options.withCompression("gzip")
        val call = stub.newCall(step.method, options)
        var received = 0
        @annotation.tailrec
        def rest(): Status = events.take() match {
          case Received(_) => received += 1; rest()
          case Closed(s)   => s
        }

        /** Lock-step: one order, one fill; stops sending once the stream ended. */
        @annotation.tailrec
        def lockStep(orders: List[Message]): Status = orders match {
          case order :: more =>
            call.sendMessage(order)
            events.take() match {
              case Closed(s) => s
              case _         => received += 1; lockStep(more)
            }
          case Nil => call.halfClose(); rest()
        }
        val status = step.method.getType match {
          case UNARY => // the future stub's path, as runCall's
            try { ClientCalls.futureUnaryCall(call, step.requests.head).get(); Status.OK }
            catch { case e: ExecutionException => Status.fromThrowable(e) }
          case CLIENT_STREAMING => // the async stub's path, as runCall's
            val requests = ClientCalls.asyncClientStreamingCall(call, observer)
            step.requests.foreach(requests.onNext)
            requests.onCompleted()
            rest()
          case _ =>
            call.start(listener, new Metadata())
            call.request(Int.MaxValue) // nothing paces the reads: every message is taken as it comes
            if (trade) lockStep(orders)
            else {
              step.requests.foreach(call.sendMessage)
              call.halfClose()
              rest()
            }
        }
        if (status.isOk) {
          tally.buckets(bucket((System.nanoTime() - t0) / 1000)) += 1
          tally.calls += 1
          tally.messages += counted.getOrElse(received)
        } else {
          tally.errors += 1
          firstError.compareAndSet(null, status)
        }
      }
    }

    val tallies = Vector.fill(if (channel == null) 0 else bench.concurrency)(new Tally())
    val threads = tallies.map(t => new Thread(() => worker(t)))
    threads.foreach(_.start())
    threads.foreach(_.join())
    val elapsedMs = (System.nanoTime() - started) / 1e6
    val buckets = new Array[Long](1024)
    for (t <- tallies; b <- buckets.indices) buckets(b) += t.buckets(b)
    val histogram = new JsonArray
    for (b <- buckets.indices if buckets(b) > 0) {
      val pair = new JsonArray
      pair.add(b)
      pair.add(buckets(b))
      histogram.add(pair)
    }
    val result = new JsonObject
    result.addProperty("calls", tallies.map(_.calls).sum)
    result.addProperty("errors", tallies.map(_.errors).sum + (if (channel == null) 1 else 0))
    result.addProperty("messages", tallies.map(_.messages).sum)
    result.addProperty("elapsed_ms", elapsedMs)
    result.add("histogram", histogram)
    Option(firstError.get).foreach { status =>
      val st = new JsonObject
      st.addProperty("code", status.getCode.name)
      st.addProperty("message", Option(status.getDescription).getOrElse(""))
      result.add("first_error", st)
    }
    val line = new JsonObject
    line.addProperty("id", step.id)
    line.add("bench", result)
    emit(line)
  }

  private def emit(line: JsonObject): Unit = emit(gson.toJson(line))

  private def emit(line: String): Unit = synchronized {
    out.println(line)
    out.flush()
  }

  /** The message line. JsonFormat's JSON is printed as it is when it holds no escape (no backslash), as parsing and
    * printing it again with gson would give the same text (no whitespace, numbers kept verbatim, no string with a
    * character either escapes); otherwise it goes through gson, which writes `<`, `>`, `&`, `=` and `'` unescaped.
    */
  def emitMessage(id: String, message: Message): Unit = {
    val json = printer.print(message)
    if (json.indexOf('\\') >= 0) {
      val line = new JsonObject
      line.addProperty("id", id)
      line.add("message", JsonParser.parseString(json))
      emit(line)
    } else emit("{\"id\":" + gson.toJson(id) + ",\"message\":" + json + "}")
  }

  /** The status line: the code's name from grpc-java's Status.Code, the `x-stock-` headers and trailers, the response's
    * grpc-encoding (grpc-java leaves it in the headers it delivers) and the rich details.
    */
  def emitStatus(id: String, started: Long, status: Status, headers: Metadata, trailers: Metadata): Unit = {
    def stockKeys(md: Metadata): JsonObject = {
      val o = new JsonObject
      Option(md).fold(Set.empty[String])(_.keys.asScala.toSet).filter(_.startsWith("x-stock-")).foreach { k =>
        if (k.endsWith(Metadata.BINARY_HEADER_SUFFIX)) {
          val bytes = md.get(Metadata.Key.of(k, Metadata.BINARY_BYTE_MARSHALLER))
          o.addProperty(k, Base64.getEncoder.encodeToString(bytes))
        } else o.addProperty(k, md.get(Metadata.Key.of(k, Metadata.ASCII_STRING_MARSHALLER)))
      }
      o
    }
    val details = new JsonArray
    try
      Option(StatusProto.fromStatusAndTrailers(status, trailers)).filterNot(_ => status.isOk).foreach {
        _.getDetailsList.asScala.foreach(d => details.add(JsonParser.parseString(detailPrinter.print(d))))
      }
    catch { case NonFatal(e) => System.err.println(s"client: warning: cannot read the details: $e") }
    val st = new JsonObject
    st.addProperty("code", status.getCode.name)
    st.addProperty("message", Option(status.getDescription).getOrElse(""))
    val line = new JsonObject
    line.addProperty("id", id)
    line.add("status", st)
    line.add("headers", stockKeys(headers))
    line.add("trailers", stockKeys(trailers))
    line.addProperty("elapsed_ms", math.round((System.nanoTime() - started) / 1e3) / 1000.0)
    val encoding = Option(headers).flatMap(h => Option(h.get(GrpcEncoding)))
    line.addProperty("response_encoding", encoding.getOrElse("identity"))
    line.add("details", details)
    emit(line)
  }
}
