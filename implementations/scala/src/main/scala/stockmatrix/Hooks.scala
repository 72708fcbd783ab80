package stockmatrix

import com.google.protobuf.Any
import com.google.rpc.ErrorInfo
import io.grpc._
import io.grpc.MethodDescriptor.MethodType.{CLIENT_STREAMING, UNARY}
import io.grpc.internal.GrpcUtil
import io.grpc.protobuf.StatusProto

import java.nio.charset.StandardCharsets.UTF_8
import java.util.concurrent.{CountDownLatch, ScheduledFuture, ScheduledThreadPoolExecutor, TimeUnit, TimeoutException}
import scala.util.Try

/** What the `x-stock-*` metadata of one call asks of the methods: the delay, the forced failure (after `failAfter`
  * messages for Monitor and Trade, after the request stream for Batch), the repeated value and Inventory's prefix.
  */
final case class Hooks(
    delayMs: Long,
    fail: Option[StatusException],
    failAfter: Long,
    repeatValue: Int,
    countPrefix: Option[String]
)

object Hooks {
  val SpecialMessage = "\t\ntest with whitespace\r\nand Unicode BMP \u263a and non-BMP \ud83d\ude08\t\n"

  /** The hooks of the current call, put into its Context by [[Interceptor]]. */
  val Current: Context.Key[Hooks] = Context.keyWithDefault("stock-hooks", Hooks(0, None, 0, 1, None))

  def key(name: String): Metadata.Key[String] = Metadata.Key.of(name, Metadata.ASCII_STRING_MARSHALLER)

  def binaryKey(name: String): Metadata.Key[Array[Byte]] = Metadata.Key.of(name, Metadata.BINARY_BYTE_MARSHALLER)

  /** A call still running this long before its deadline ends with DEADLINE_EXCEEDED (grpc-java would reset it). */
  private val DeadlineLeadNanos = TimeUnit.MILLISECONDS.toNanos(50)

  /** Ends the calls that reach their deadline minus the lead; a call that ends first takes its task out. */
  private val Timer = {
    val timer = new ScheduledThreadPoolExecutor(
      1,
      (r: Runnable) => {
        val t = new Thread(r, "stock-deadline")
        t.setDaemon(true)
        t
      }
    )
    timer.setRemoveOnCancelPolicy(true)
    timer
  }

  /** The deadline of a call whose `grpc-timeout` [[DeadlineTracer]] took from the stack. */
  private val CallDeadline: Context.Key[Deadline] = Context.key("stock-deadline")

  /** grpc-java resets a stream whose Context reaches its deadline (RST_STREAM CANCEL, no trailers: grpc-js and C-core
    * clients may then see CANCELLED), and that reset wins over the call's DEADLINE_EXCEEDED whenever the process is
    * stalled past the lead (a loaded machine, a GC pause). So the stack never sees a call's `grpc-timeout`: taken from
    * the headers before it makes the call's Context, it becomes that Context's `CallDeadline`, and [[Interceptor]]
    * gives the deadline to the handlers' Context, below the stack's: only the hooks end a call at its deadline, with
    * trailers, however late.
    */
  object DeadlineTracer extends ServerStreamTracer.Factory {
    private val none = new ServerStreamTracer {}

    override def newServerStreamTracer(fullMethodName: String, headers: Metadata): ServerStreamTracer =
      Option(headers.get(GrpcUtil.TIMEOUT_KEY)).fold(none) { nanos =>
        headers.discardAll(GrpcUtil.TIMEOUT_KEY)
        val deadline = Deadline.after(nanos, TimeUnit.NANOSECONDS)
        new ServerStreamTracer {
          override def filterContext(context: Context): Context = context.withValue(CallDeadline, deadline)
        }
      }
  }

  /** The request metadata's hooks; a value that is not a number or a code name is INVALID_ARGUMENT. */
  def readHooks(md: Metadata): Either[StatusException, Hooks] = {
    def text(name: String) = Option(md.get(key(name)))
    def invalid(message: String) = Status.INVALID_ARGUMENT.withDescription(message).asException()
    def number(name: String) = text(name).fold[Either[StatusException, Long]](Right(0L)) { v =>
      v.trim.toLongOption.filter(_ >= 0).toRight(invalid(s"$name must be a number, got \"$v\""))
    }
    val special = text("x-stock-fail-special").contains("true")
    val code = text("x-stock-fail") match {
      case None       => Right(Option.when(special)(Status.Code.UNKNOWN))
      case Some(name) => // a name of grpc-java's own Status.Code enum
        val known = Try(Status.Code.valueOf(name)).toOption.filter(_ != Status.Code.OK)
        known.map(Some(_)).toRight(invalid(s"x-stock-fail: unknown code \"$name\""))
    }
    for {
      code <- code
      delay <- number("x-stock-delay-ms")
      after <- number("x-stock-fail-after")
      repeat <- number("x-stock-repeat-value")
    } yield {
      def message(code: Status.Code) =
        if (special) SpecialMessage
        else
          Option(md.get(binaryKey("x-stock-fail-message-bin")))
            .map(new String(_, UTF_8))
            .orElse(text("x-stock-fail-message"))
            .getOrElse(s"forced $code")
      val repeated = repeat.max(1L).min(Int.MaxValue.toLong).toInt
      Hooks(delay, code.map(c => forcedStatus(c, message(c))), after, repeated, text("x-stock-count-prefix"))
    }
  }

  /** Applies the hooks to every call: the echoes (`x-stock-echo` and `x-stock-echo-bin` as header and trailer,
    * `x-stock-echo-header` and `x-stock-echo-trailer` as one of them), `x-stock-compress` (grpc-java's per-call
    * ServerCall.setCompression), the encoding and deadline reports as the call starts, the delay (a call that is over
    * by then goes no further), the watchers report, then a failure that takes effect at once (unary calls, or
    * `x-stock-fail-after` 0 but for Batch); else the hooks go into the call's Context for the method. A call with a
    * deadline ends with DEADLINE_EXCEEDED 50 ms before it (trailers, not grpc-java's reset: see [[DeadlineTracer]]);
    * the delay and the method run in a Context with that deadline, cancelled then.
    */
  final class Interceptor(store: Store) extends ServerInterceptor {
    override def interceptCall[Q, R](
        call: ServerCall[Q, R],
        headers: Metadata,
        next: ServerCallHandler[Q, R]
    ): ServerCall.Listener[Q] = {
      def text(name: String) = Option(headers.get(key(name)))
      val (head, tail) = (new Metadata(), new Metadata())
      for (name <- Seq("x-stock-echo", "x-stock-echo-header"); v <- text(name)) head.put(key(name), v)
      for (name <- Seq("x-stock-echo", "x-stock-echo-trailer"); v <- text(name)) tail.put(key(name), v)
      val echoBin = binaryKey("x-stock-echo-bin")
      Option(headers.get(echoBin)).foreach { v => head.put(echoBin, v); tail.put(echoBin, v) }
      // grpc-java leaves the request's grpc-encoding header in the metadata the call sees.
      if (text("x-stock-report-encoding").contains("true"))
        tail.put(key("x-stock-request-encoding"), text("grpc-encoding").getOrElse("identity"))
      val deadline = Option(CallDeadline.get())
      if (text("x-stock-report-deadline").contains("true")) {
        val left = deadline.map(_.timeRemaining(TimeUnit.MILLISECONDS).toString)
        tail.put(key("x-stock-deadline-ms"), left.getOrElse("none"))
      }
      if (text("x-stock-compress").contains("gzip")) call.setCompression("gzip")
      val context = deadline.fold(Context.current())(Context.current().withDeadline(_, Timer))
      val hooked = new HookedCall(call, head, tail, context)
      deadline.foreach(hooked.expireAt)
      def fail(e: StatusException) = {
        hooked.close(e.getStatus, Option(e.getTrailers).getOrElse(new Metadata())) // none from Status.asException
        new ServerCall.Listener[Q] {}
      }

      readHooks(headers) match {
        case Left(e)      => fail(e)
        case Right(hooks) =>
          delay(context, hooks.delayMs)
          if (context.isCancelled) new ServerCall.Listener[Q] {} // over while delayed: nothing applied
          else {
            text("x-stock-report-watchers").foreach { p =>
              val count = store.watchers(p).toString
              hooked.synchronized(tail.put(key("x-stock-watchers"), count))
            }
            val kind = call.getMethodDescriptor.getType
            hooks.fail.filter(_ => kind == UNARY || hooks.failAfter == 0 && kind != CLIENT_STREAMING) match {
              case Some(e) => fail(e)
              case None    => Contexts.interceptCall(context.withValue(Current, hooks), hooked, headers, next)
            }
          }
      }
    }
  }

  /** The failure `x-stock-fail` forces, with a google.rpc.ErrorInfo {reason FORCED, domain stock.v1}. */
  def forcedStatus(code: Status.Code, message: String): StatusException = {
    val info = ErrorInfo.newBuilder().setReason("FORCED").setDomain("stock.v1")
    val status = com.google.rpc.Status.newBuilder().setCode(code.value).setMessage(message)
    StatusProto.toStatusException(status.addDetails(Any.pack(info.build())).build())
  }

  /** Sleeps `ms`, or less when the call's Context is cancelled first (the call is over). */
  private def delay(context: Context, ms: Long): Unit = if (ms > 0) {
    val over = new CountDownLatch(1)
    val wake: Context.CancellationListener = _ => over.countDown()
    context.addListener(wake, (r: Runnable) => r.run())
    try over.await(ms, TimeUnit.MILLISECONDS)
    finally context.removeListener(wake)
  }

  /** The call with the hooks' headers (`head`) and trailers (`tail`); 50 ms before its deadline it ends with
    * DEADLINE_EXCEEDED. Sending and closing are serialized (a ServerCall is not thread-safe); once closed it sends
    * nothing more and reports itself cancelled.
    */
  private final class HookedCall[Q, R](call: ServerCall[Q, R], head: Metadata, tail: Metadata, context: Context)
      extends ForwardingServerCall.SimpleForwardingServerCall[Q, R](call) {
    private var closed = false
    private var expiry: Option[ScheduledFuture[_]] = None

    /** Schedules the end at the deadline minus the lead; a close before then cancels it. */
    def expireAt(deadline: Deadline): Unit = synchronized {
      if (!closed) {
        val left = deadline.timeRemaining(TimeUnit.NANOSECONDS) - DeadlineLeadNanos
        expiry = Some(Timer.schedule((() => expire()): Runnable, left.max(0L), TimeUnit.NANOSECONDS))
      }
    }

    /** Ends a call still running, then cancels its Context outside the lock (a Monitor's unwatch takes the store's
      * lock, under which deliveries take this one).
      */
    private def expire(): Unit = {
      if (!isCancelled) close(Status.DEADLINE_EXCEEDED.withDescription("deadline exceeded"), new Metadata())
      context match {
        case c: Context.CancellableContext => c.cancel(new TimeoutException("deadline exceeded"))
        case _                             => ()
      }
    }

    override def sendHeaders(h: Metadata): Unit = synchronized {
      if (!closed) { h.merge(head); super.sendHeaders(h) }
    }

    override def sendMessage(message: R): Unit = synchronized {
      if (!closed) super.sendMessage(message)
    }

    override def close(status: Status, trailers: Metadata): Unit = synchronized {
      if (!closed) {
        closed = true
        expiry.foreach(_.cancel(false))
        trailers.merge(tail)
        super.close(status, trailers)
      }
    }

    override def isCancelled: Boolean = synchronized(closed || super.isCancelled)
  }
}
