package stockmatrix

import io.grpc._

import java.nio.charset.StandardCharsets.UTF_8
import java.util.concurrent.TimeUnit
import scala.util.Try

/** What the `x-stock-*` metadata of one call asks the server to do. */
final case class Hooks(
    delayMs: Long,
    fail: Option[Status],
    failAfter: Long,
    watchers: Option[String] = None,
    repeatValue: Int = 1
)

object Hooks {
  val SpecialMessage = "\t\ntest with whitespace\r\nand Unicode BMP \u263a and non-BMP \ud83d\ude08\t\n"

  val Echo: Metadata.Key[String] = key("x-stock-echo")
  private val EchoBin = binaryKey("x-stock-echo-bin")
  private val EchoHeader = key("x-stock-echo-header")
  private val EchoTrailer = key("x-stock-echo-trailer")
  private val Compress = key("x-stock-compress")
  private val ReportEncoding = key("x-stock-report-encoding")
  private val ReportDeadline = key("x-stock-report-deadline")
  private val ReportWatchers = key("x-stock-report-watchers")
  private val GrpcEncoding = key("grpc-encoding")
  private val Delay = key("x-stock-delay-ms")
  private val Fail = key("x-stock-fail")
  private val FailMessage = key("x-stock-fail-message")
  private val FailMessageBin = binaryKey("x-stock-fail-message-bin")
  private val FailSpecial = key("x-stock-fail-special")
  private val FailAfter = key("x-stock-fail-after")
  private val RepeatValue = key("x-stock-repeat-value")

  /** The hooks of the current call, set by [[Interceptor]]. */
  val Current: Context.Key[Hooks] = Context.key("stock-hooks")

  def key(name: String): Metadata.Key[String] = Metadata.Key.of(name, Metadata.ASCII_STRING_MARSHALLER)

  def binaryKey(name: String): Metadata.Key[Array[Byte]] = Metadata.Key.of(name, Metadata.BINARY_BYTE_MARSHALLER)

  def current: Hooks = Option(Current.get()).getOrElse(Hooks(0, None, 0))

  /** Canonical upper-case name to code: the 16 non-OK codes. */
  def code(name: String): Option[Status.Code] =
    Try(Status.Code.valueOf(name)).toOption.filter(_ != Status.Code.OK)

  def parse(md: Metadata): Either[Status, Hooks] = {
    def text(k: Metadata.Key[String]) = Option(md.get(k))
    def number(k: Metadata.Key[String]): Either[Status, Long] = text(k) match {
      case None => Right(0L)
      case Some(v) =>
        v.trim.toLongOption
          .filter(_ >= 0)
          .toRight(Status.INVALID_ARGUMENT.withDescription(s"${k.name} must be a number, got \"$v\""))
    }
    val special = text(FailSpecial).contains("true")
    val codeE: Either[Status, Option[Status.Code]] = text(Fail) match {
      case Some(name) =>
        code(name)
          .map(Some(_))
          .toRight(Status.INVALID_ARGUMENT.withDescription(s"x-stock-fail: unknown code \"$name\""))
      case None => Right(if (special) Some(Status.Code.UNKNOWN) else None)
    }
    for {
      c <- codeE
      delay <- number(Delay)
      after <- number(FailAfter)
      repeat <- number(RepeatValue)
    } yield {
      val fail = c.map { code =>
        val message =
          if (special) SpecialMessage
          else
            Option(md.get(FailMessageBin))
              .map(new String(_, UTF_8))
              .orElse(text(FailMessage))
              .getOrElse(s"forced $code")
        code.toStatus.withDescription(message)
      }
      Hooks(delay, fail, after, text(ReportWatchers), repeat.max(1L).min(Int.MaxValue.toLong).toInt)
    }
  }

  /**
   * The echoes (`x-stock-echo` and `x-stock-echo-bin` as header and trailer, `x-stock-echo-header` and
   * `x-stock-echo-trailer` as one of them), `x-stock-compress` (grpc-java's per-call
   * ServerCall.setCompression), the reports (encoding and deadline as the call starts, watchers
   * after the delay), the delay; a call that is over by then goes no further; else the hooks go
   * into the call's Context.
   */
  final class Interceptor(store: Store) extends ServerInterceptor {
    override def interceptCall[Q, R](
        call: ServerCall[Q, R],
        headers: Metadata,
        next: ServerCallHandler[Q, R]
    ): ServerCall.Listener[Q] = {
      def asked(k: Metadata.Key[String]) = Option(headers.get(k)).contains("true")
      val echo = Option(headers.get(Echo))
      val echoBin = Option(headers.get(EchoBin))
      val echoHeader = Option(headers.get(EchoHeader))
      val echoTrailer = Option(headers.get(EchoTrailer))
      // Trailers reported by this call (written here, sent by close on whatever thread ends the call).
      val reports = new Metadata()
      def report(name: String, value: String): Unit = reports.synchronized(reports.put(key(name), value))
      // grpc-java leaves the request's grpc-encoding header in the metadata the call sees.
      if (asked(ReportEncoding))
        report("x-stock-request-encoding", Option(headers.get(GrpcEncoding)).getOrElse("identity"))
      if (asked(ReportDeadline))
        report(
          "x-stock-deadline-ms",
          Option(Context.current().getDeadline).fold("none")(_.timeRemaining(TimeUnit.MILLISECONDS).toString)
        )
      if (Option(headers.get(Compress)).contains("gzip")) call.setCompression("gzip")
      val echoing = new ForwardingServerCall.SimpleForwardingServerCall[Q, R](call) {
        override def sendHeaders(h: Metadata): Unit = {
          echo.foreach(h.put(Echo, _))
          echoBin.foreach(h.put(EchoBin, _))
          echoHeader.foreach(h.put(EchoHeader, _))
          super.sendHeaders(h)
        }
        override def close(status: Status, trailers: Metadata): Unit = {
          echo.foreach(trailers.put(Echo, _))
          echoBin.foreach(trailers.put(EchoBin, _))
          echoTrailer.foreach(trailers.put(EchoTrailer, _))
          reports.synchronized(trailers.merge(reports))
          super.close(status, trailers)
        }
      }
      parse(headers) match {
        case Left(status) =>
          echoing.close(status, new Metadata())
          new ServerCall.Listener[Q] {}
        case Right(hooks) =>
          if (hooks.delayMs > 0) Thread.sleep(hooks.delayMs)
          // Cancelled by the client or past its deadline while delayed: nothing is applied.
          if (Context.current().isCancelled) new ServerCall.Listener[Q] {}
          else {
            hooks.watchers.foreach(prefix => report("x-stock-watchers", store.watchers(prefix).toString))
            Contexts.interceptCall(Context.current().withValue(Current, hooks), echoing, headers, next)
          }
      }
    }
  }
}
