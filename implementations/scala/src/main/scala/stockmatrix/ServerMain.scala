package stockmatrix

import com.google.protobuf.ByteString
import io.grpc._
import io.grpc.health.v1.HealthCheckResponse.ServingStatus
import io.grpc.internal.GrpcUtil
import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder
import io.grpc.protobuf.services.{HealthStatusManager, ProtoReflectionServiceV1}
import io.grpc.stub.{ServerCallStreamObserver, StreamObserver}
import proto.{KVGrpc, Kv}
import stock.v1.StockGrpc
import stock.v1.StockOuterClass._

import java.io.File
import java.net.InetSocketAddress
import java.util.concurrent.TimeUnit
import java.util.concurrent.atomic.AtomicBoolean
import scala.collection.mutable
import scala.jdk.CollectionConverters._
import scala.util.control.NonFatal

/** `server --port N [--host H] [--tls-mode none|server|mtls] [--cert-file F --key-file F] [--ca-file F]` */
object ServerMain {
  val Stack = s"grpc-java ${GrpcUtil.IMPLEMENTATION_VERSION} (Scala ${scala.util.Properties.versionNumberString})"

  def main(args: Array[String]): Unit = {
    val server = serve(parseArgs(args.toList, Map.empty))
    val stopped = new AtomicBoolean(false)
    def stop(): Unit = if (stopped.compareAndSet(false, true)) {
      server.shutdownNow()
      server.awaitTermination(1, TimeUnit.SECONDS)
      Runtime.getRuntime.halt(0)
    }
    // Exit 0 (not 128+n) on SIGTERM and SIGINT, and at stdin's end-of-file.
    for (sig <- Seq("TERM", "INT")) sun.misc.Signal.handle(new sun.misc.Signal(sig), _ => stop())
    val buffer = new Array[Byte](256)
    try while (System.in.read(buffer) >= 0) {}
    catch { case NonFatal(_) => }
    stop()
  }

  private def die(code: Int, msg: String): Nothing = {
    System.err.println(s"server: $msg")
    sys.exit(code)
  }

  private val Flags = Set("--port", "--host", "--tls-mode", "--cert-file", "--key-file", "--ca-file")

  @annotation.tailrec
  def parseArgs(args: List[String], opts: Map[String, String]): Map[String, String] = args match {
    case Nil                                  => opts
    case flag :: value :: rest if Flags(flag) => parseArgs(rest, opts + (flag -> value))
    case other :: _                           => die(2, s"unexpected argument $other")
  }

  /** Starts serving (or exits 1 saying why) and prints `listening on HOST:PORT`. */
  def serve(opts: Map[String, String]): Server = {
    val port = opts.get("--port").flatMap(_.toIntOption).getOrElse(die(2, "--port N is required"))
    val host = opts.getOrElse("--host", "127.0.0.1")
    val mode = opts.getOrElse("--tls-mode", "none")
    def file(flag: String) = new File(opts.getOrElse(flag, die(2, s"$flag is required for --tls-mode $mode")))
    val creds =
      try
        mode match {
          case "none"   => InsecureServerCredentials.create()
          case "server" => TlsServerCredentials.create(file("--cert-file"), file("--key-file"))
          case "mtls"   =>
            TlsServerCredentials
              .newBuilder()
              .keyManager(file("--cert-file"), file("--key-file"))
              .trustManager(file("--ca-file"))
              .clientAuth(TlsServerCredentials.ClientAuth.REQUIRE)
              .build()
          case other => die(2, s"unknown --tls-mode $other")
        }
      catch { case NonFatal(e) => die(1, s"cannot load certificates: $e") }
    val health = new HealthStatusManager()
    for (name <- Seq("", "stock.v1.Stock", "proto.KV")) health.setStatus(name, ServingStatus.SERVING)
    val store = new Store
    val server =
      try
        NettyServerBuilder
          .forAddress(new InetSocketAddress(host, port), creds)
          .maxInboundMessageSize(4 << 20)
          .maxInboundMetadataSize(16 << 10) // the contract's header-list limit
          .addService(ServerInterceptors.intercept(new StockService(store), new Hooks.Interceptor(store)))
          .addService(new KvService(store))
          .addService(health.getHealthService)
          .addService(ProtoReflectionServiceV1.newInstance())
          .addStreamTracerFactory(Hooks.DeadlineTracer)
          .build()
          .start()
      catch { case NonFatal(e) => die(1, s"cannot serve on $host:$port: $e") }
    println(s"listening on $host:${server.getPort}")
    System.out.flush()
    server
  }

  /** Ends a call with one response, or with the error (its rich details go out in the trailers). */
  def reply[T](obs: StreamObserver[T], result: Either[StatusException, T]): Unit = result match {
    case Right(response) => obs.onNext(response); obs.onCompleted()
    case Left(error)     => obs.onError(error)
  }
}

/** stock.v1.Stock over one [[Store]]; [[Hooks.Interceptor]] applies the hooks and fails unary calls it forces. */
final class StockService(store: Store) extends StockGrpc.StockImplBase {
  import ServerMain.reply

  override def get(req: GetRequest, obs: StreamObserver[GetResponse]): Unit =
    reply(
      obs,
      store.get(req.getKey).map { case (value, version) =>
        // x-stock-repeat-value: the stored value that many times over (a response past 4 MiB).
        val repeated = ByteString.copyFrom(Seq.fill(Hooks.Current.get.repeatValue)(value).asJava)
        GetResponse.newBuilder().setValue(repeated).setVersion(version).build()
      }
    )

  override def put(req: PutRequest, obs: StreamObserver[Empty]): Unit =
    reply(obs, store.put(req.getKey, req.getValue).map(_ => Empty.getDefaultInstance))

  /** Every delivery happens under the store's lock (the snapshot first, then the puts). The watch ends when the call is
    * cancelled and when its Context is (the deadline's lead, see [[Hooks.Interceptor]]).
    */
  override def monitor(req: WatchRequest, obs: StreamObserver[WatchEvent]): Unit = {
    val hooks = Hooks.Current.get
    val call = obs.asInstanceOf[ServerCallStreamObserver[WatchEvent]]
    if (req.getPattern.isEmpty) obs.onError(Store.badField("pattern", "pattern must not be empty"))
    else if (req.getMaxEvents < 0) obs.onError(Store.badField("max_events", "max_events must not be negative"))
    else {
      var sent = 0L
      var done = false
      var watch: Option[Watch] = None
      def finish(): Unit = { done = true; watch.foreach(store.unwatch) }
      def deliver(event: WatchEvent): Unit = if (!done) {
        call.onNext(event)
        sent += 1
        if (hooks.fail.isDefined && sent == hooks.failAfter) { finish(); obs.onError(hooks.fail.get) }
        else if (req.getMaxEvents > 0 && sent == req.getMaxEvents) { finish(); obs.onCompleted() }
      }
      call.setOnCancelHandler(() => store.synchronized(finish()))
      Context.current().addListener(_ => store.synchronized(finish()), (r: Runnable) => r.run())
      store.synchronized {
        watch = Some(store.watch(req.getPattern, req.getIncludeExisting, deliver))
        if (done) finish()
      }
    }
  }

  /** Applies the items at the half-close (a cancelled stream or Context applies nothing), or fails as forced. */
  override def batch(obs: StreamObserver[BatchSummary]): StreamObserver[BatchItem] = {
    val hooks = Hooks.Current.get
    val items = Vector.newBuilder[BatchItem]
    new StreamObserver[BatchItem] {
      override def onNext(item: BatchItem): Unit = items += item
      override def onError(t: Throwable): Unit = ()
      override def onCompleted(): Unit =
        if (!Context.current().isCancelled)
          reply(obs, hooks.fail.toLeft(()).flatMap(_ => store.batch(items.result())))
    }
  }

  /** One fill per order; a forced failure after `x-stock-fail-after` fills. */
  override def trade(obs: StreamObserver[TradeFill]): StreamObserver[TradeOrder] = {
    val hooks = Hooks.Current.get
    var done = false
    var sequence = 0L
    val positions = mutable.HashMap.empty[String, Long].withDefaultValue(0L)
    def end(error: Option[StatusException]): Unit = { done = true; error.fold(obs.onCompleted())(obs.onError) }
    new StreamObserver[TradeOrder] {
      override def onNext(order: TradeOrder): Unit = if (!done) {
        if (order.getQuantity <= 0) {
          val message = s"order \"${order.getOrderId}\": quantity must be > 0, got ${order.getQuantity}"
          end(Some(Store.badField("quantity", message)))
        } else {
          sequence += 1
          positions(order.getSymbol) += (if (order.getSide == Side.BUY) order.getQuantity else -order.getQuantity)
          val fill = TradeFill
            .newBuilder()
            .setOrderId(order.getOrderId)
            .setSymbol(order.getSymbol)
            .setSideValue(order.getSideValue)
            .setQuantity(order.getQuantity)
            .setPriceCents(order.getPriceCents)
            .setSequence(sequence)
            .setNetPosition(positions(order.getSymbol))
          obs.onNext(fill.build())
          if (hooks.fail.isDefined && sequence == hooks.failAfter) end(hooks.fail)
        }
      }
      override def onError(t: Throwable): Unit = done = true
      override def onCompleted(): Unit = if (!done) end(None)
    }
  }

  override def inventory(req: Empty, obs: StreamObserver[InventoryStatus]): Unit = {
    val (keys, bytes) = store.totals(Hooks.Current.get.countPrefix)
    val status = InventoryStatus.newBuilder().setKeyCount(keys).setTotalValueBytes(bytes)
    reply(obs, Right(status.setLanguage("scala").setStack(ServerMain.Stack).build()))
  }
}

/** The legacy proto.KV service (go-plugin's kvproto) over the same [[Store]] as stock.v1.Stock. */
final class KvService(store: Store) extends KVGrpc.KVImplBase {
  import ServerMain.reply

  override def get(req: Kv.GetRequest, obs: StreamObserver[Kv.GetResponse]): Unit =
    reply(obs, store.get(req.getKey).map { case (value, _) => Kv.GetResponse.newBuilder().setValue(value).build() })

  override def put(req: Kv.PutRequest, obs: StreamObserver[Kv.Empty]): Unit =
    reply(obs, store.put(req.getKey, req.getValue).map(_ => Kv.Empty.getDefaultInstance))
}
