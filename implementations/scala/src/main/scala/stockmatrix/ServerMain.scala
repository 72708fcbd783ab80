package stockmatrix

import io.grpc._
import io.grpc.internal.GrpcUtil
import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder
import io.grpc.protobuf.services.{HealthStatusManager, ProtoReflectionServiceV1}
import io.grpc.health.v1.HealthCheckResponse.ServingStatus

import java.io.File
import java.net.InetSocketAddress
import java.util.concurrent.TimeUnit
import scala.util.control.NonFatal

/** `server --port N [--host H] [--tls-mode none|server|mtls] [--cert-file F --key-file F] [--ca-file F]` */
object ServerMain {
  val Stack = s"grpc-java ${GrpcUtil.IMPLEMENTATION_VERSION} (Scala ${scala.util.Properties.versionNumberString})"

  private def die(code: Int, msg: String): Nothing = {
    System.err.println(s"server: $msg")
    System.err.flush()
    sys.exit(code)
  }

  def main(args: Array[String]): Unit = {
    val opts = Options.parse(
      args.toList,
      Set("--port", "--host", "--tls-mode", "--cert-file", "--key-file", "--ca-file"),
      Set.empty
    ) match {
      case Right((o, Nil))  => o
      case Right((_, rest)) => die(2, s"unexpected argument ${rest.head}")
      case Left(err)        => die(2, err)
    }
    val port = opts.single("--port").flatMap(_.toIntOption).getOrElse(die(2, "--port N is required"))
    val host = opts.single("--host").getOrElse("127.0.0.1")
    val mode = opts.single("--tls-mode").getOrElse("none")

    val creds: ServerCredentials =
      try {
        def file(flag: String): File = {
          val f = new File(opts.single(flag).getOrElse(die(2, s"$flag is required for --tls-mode $mode")))
          if (!f.canRead) die(1, s"cannot read $flag ${f.getPath}")
          f
        }
        mode match {
          case "none"   => InsecureServerCredentials.create()
          case "server" => TlsServerCredentials.create(file("--cert-file"), file("--key-file"))
          case "mtls" =>
            TlsServerCredentials
              .newBuilder()
              .keyManager(file("--cert-file"), file("--key-file"))
              .trustManager(file("--ca-file"))
              .clientAuth(TlsServerCredentials.ClientAuth.REQUIRE)
              .build()
          case other => die(2, s"unknown --tls-mode $other")
        }
      } catch { case NonFatal(e) => die(1, s"cannot load certificates: $e") }

    val health = new HealthStatusManager()
    health.setStatus("", ServingStatus.SERVING)
    health.setStatus("stock.v1.Stock", ServingStatus.SERVING)
    health.setStatus("proto.KV", ServingStatus.SERVING)
    val store = new Store
    val server =
      try
        NettyServerBuilder
          .forAddress(new InetSocketAddress(host, port), creds)
          .maxInboundMessageSize(4 << 20)
          .addService(ServerInterceptors.intercept(new StockService(store, Stack), new Hooks.Interceptor(store)))
          .addService(new KvService(store))
          .addService(health.getHealthService)
          .addService(ProtoReflectionServiceV1.newInstance())
          .build()
          .start()
      catch { case NonFatal(e) => die(1, s"cannot serve on $host:$port: $e") }

    val stopped = new java.util.concurrent.atomic.AtomicBoolean(false)
    def stop(): Unit = if (stopped.compareAndSet(false, true)) {
      server.shutdownNow()
      server.awaitTermination(1, TimeUnit.SECONDS)
      System.out.flush()
      Runtime.getRuntime.halt(0)
    }
    // Exit 0 (not 128+n) on SIGTERM and SIGINT.
    for (sig <- Seq("TERM", "INT"))
      try sun.misc.Signal.handle(new sun.misc.Signal(sig), _ => stop())
      catch { case NonFatal(e) => System.err.println(s"server: cannot handle SIG$sig: $e") }

    println(s"listening on $host:${server.getPort}")
    System.out.flush()

    // stdin end-of-file also stops the server.
    val in = System.in
    val buf = new Array[Byte](256)
    try while (in.read(buf) >= 0) {}
    catch { case NonFatal(_) => }
    stop()
  }
}
