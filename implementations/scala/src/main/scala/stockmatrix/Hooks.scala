package stockmatrix

import io.grpc._

import scala.util.Try

/** What the `x-stock-*` metadata of one call asks the server to do. */
final case class Hooks(delayMs: Long, fail: Option[Status], failAfter: Long)

object Hooks {
  val SpecialMessage = "\t\ntest with whitespace\r\nand Unicode BMP \u263a and non-BMP \ud83d\ude08\t\n"

  val Echo: Metadata.Key[String] = key("x-stock-echo")
  private val Delay = key("x-stock-delay-ms")
  private val Fail = key("x-stock-fail")
  private val FailMessage = key("x-stock-fail-message")
  private val FailSpecial = key("x-stock-fail-special")
  private val FailAfter = key("x-stock-fail-after")

  /** The hooks of the current call, set by [[Interceptor]]. */
  val Current: Context.Key[Hooks] = Context.key("stock-hooks")

  def key(name: String): Metadata.Key[String] = Metadata.Key.of(name, Metadata.ASCII_STRING_MARSHALLER)

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
    } yield {
      val fail = c.map { code =>
        val message =
          if (special) SpecialMessage
          else text(FailMessage).getOrElse(s"forced $code")
        code.toStatus.withDescription(message)
      }
      Hooks(delay, fail, after)
    }
  }

  /** Echo (header and trailer), delay, then the hooks go into the call's Context. */
  object Interceptor extends ServerInterceptor {
    override def interceptCall[Q, R](
        call: ServerCall[Q, R],
        headers: Metadata,
        next: ServerCallHandler[Q, R]
    ): ServerCall.Listener[Q] = {
      val echo = Option(headers.get(Echo))
      val echoing = new ForwardingServerCall.SimpleForwardingServerCall[Q, R](call) {
        override def sendHeaders(h: Metadata): Unit = {
          echo.foreach(h.put(Echo, _))
          super.sendHeaders(h)
        }
        override def close(status: Status, trailers: Metadata): Unit = {
          echo.foreach(trailers.put(Echo, _))
          super.close(status, trailers)
        }
      }
      parse(headers) match {
        case Left(status) =>
          echoing.close(status, new Metadata())
          new ServerCall.Listener[Q] {}
        case Right(hooks) =>
          if (hooks.delayMs > 0) Thread.sleep(hooks.delayMs)
          if (Context.current().isCancelled) new ServerCall.Listener[Q] {}
          else Contexts.interceptCall(Context.current().withValue(Current, hooks), echoing, headers, next)
      }
    }
  }
}
