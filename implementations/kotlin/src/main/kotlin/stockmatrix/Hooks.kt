package stockmatrix

import com.google.protobuf.Any
import com.google.rpc.ErrorInfo
import io.grpc.*
import io.grpc.internal.GrpcUtil
import io.grpc.protobuf.StatusProto
import java.util.concurrent.ScheduledThreadPoolExecutor
import java.util.concurrent.TimeUnit
import kotlinx.coroutines.*

const val SPECIAL_MESSAGE = "\t\ntest with whitespace\r\nand Unicode BMP \u263A and non-BMP \uD83D\uDE08\t\n"

private fun text(name: String) = Metadata.Key.of(name, Metadata.ASCII_STRING_MARSHALLER)

private fun bytes(name: String) = Metadata.Key.of(name, Metadata.BINARY_BYTE_MARSHALLER)

/** What the `x-stock-*` metadata of one call asks for; [trailers] collects the ones the handler adds later. */
class Hooks(
    val delayMs: Long,
    val fail: Status?,
    val failAfter: Long,
    val watchers: String?,
    val repeatValue: Int,
    val countPrefix: String?,
) {
    val trailers = Metadata()
}

/** Request metadata → hooks; a value that is not a number or a status code name is INVALID_ARGUMENT. */
fun readHooks(metadata: Metadata): Hooks {
    fun invalid(message: String) = Status.INVALID_ARGUMENT.withDescription(message).asException()
    fun number(key: String): Long? =
        metadata.get(text(key))?.let { v -> v.trim().toLongOrNull()?.takeIf { it >= 0 } ?: throw invalid("$key: $v") }
    val special = metadata.get(text("x-stock-fail-special")) == "true"
    val code =
        metadata.get(text("x-stock-fail"))?.let { name ->
            // The stack's own code enum names the codes.
            Status.Code.entries.firstOrNull { it.name == name && it != Status.Code.OK }
                ?: throw invalid("x-stock-fail: $name")
        } ?: Status.Code.UNKNOWN.takeIf { special }
    val messageBytes = metadata.get(bytes("x-stock-fail-message-bin"))
    val message =
        when {
            special -> SPECIAL_MESSAGE
            messageBytes != null -> String(messageBytes, Charsets.UTF_8)
            else -> metadata.get(text("x-stock-fail-message")) ?: "forced $code"
        }
    return Hooks(
        delayMs = number("x-stock-delay-ms") ?: 0,
        fail = code?.toStatus()?.withDescription(message),
        failAfter = number("x-stock-fail-after") ?: 0,
        watchers = metadata.get(text("x-stock-report-watchers")),
        repeatValue = (number("x-stock-repeat-value") ?: 1).coerceIn(1, Int.MAX_VALUE.toLong()).toInt(),
        countPrefix = metadata.get(text("x-stock-count-prefix")),
    )
}

/** Hands the call's [Hooks] to its handler (grpc-kotlin runs handlers in the call's grpc Context). */
private val HOOKS: Context.Key<Hooks> = Context.key("x-stock-hooks")

/**
 * Applies to every Stock call the hooks that act on the call itself, whatever the outcome: the echoes (`x-stock-echo`
 * and `-echo-bin` as header and trailer, `-echo-header` and `-echo-trailer` as one of them), `x-stock-compress`
 * (grpc-java's per-call compression), the `report-*` trailers and the trailers the handler adds. The delay and the fail
 * depend on the method's kind: each Stock method runs inside [enter].
 */
object HooksInterceptor : ServerInterceptor {
    override fun <Q, R> interceptCall(
        call: ServerCall<Q, R>,
        headers: Metadata,
        next: ServerCallHandler<Q, R>,
    ): ServerCall.Listener<Q> {
        val echoHeaders = Metadata()
        val echoTrailers = Metadata()

        fun <T> echo(key: Metadata.Key<T>, vararg into: Metadata) {
            headers.get(key)?.let { value -> into.forEach { it.put(key, value) } }
        }
        echo(text("x-stock-echo"), echoHeaders, echoTrailers)
        echo(bytes("x-stock-echo-bin"), echoHeaders, echoTrailers)
        echo(text("x-stock-echo-header"), echoHeaders)
        echo(text("x-stock-echo-trailer"), echoTrailers)
        if (headers.get(text("x-stock-compress")) == "gzip") call.setCompression("gzip")
        val hooks = runCatching { readHooks(headers) }
        val late = hooks.getOrNull()?.trailers ?: Metadata()
        val hooked =
            object : ForwardingServerCall.SimpleForwardingServerCall<Q, R>(call) {
                override fun sendHeaders(responseHeaders: Metadata) {
                    responseHeaders.merge(echoHeaders)
                    super.sendHeaders(responseHeaders)
                }

                override fun close(status: Status, trailers: Metadata) {
                    // grpc-kotlin closes a call even after grpc-java cancelled it. For a request over the size limit
                    // grpc-java has already ended the stream while the client still sends; trailers written on that
                    // half-closed stream make its Netty server drop the whole connection. Nobody would read them.
                    if (isCancelled) return
                    trailers.merge(echoTrailers)
                    synchronized(late) { trailers.merge(late) }
                    super.close(status, trailers)
                }
            }
        hooks.exceptionOrNull()?.let {
            hooked.close(Status.fromThrowable(it), Metadata())
            return object : ServerCall.Listener<Q>() {}
        }
        if (headers.get(text("x-stock-report-encoding")) == "true") {
            // grpc-java leaves the request's grpc-encoding header in the metadata the call sees.
            late.put(text("x-stock-request-encoding"), headers.get(text("grpc-encoding")) ?: "identity")
        }
        val deadline = CALL_DEADLINE.get()
        if (headers.get(text("x-stock-report-deadline")) == "true") {
            val left = deadline?.timeRemaining(TimeUnit.MILLISECONDS)
            late.put(text("x-stock-deadline-ms"), left?.toString() ?: "none")
        }
        val context = Context.current().withValue(HOOKS, hooks.getOrThrow())
        return Contexts.interceptCall(
            deadline?.let { context.withDeadline(it, DEADLINE_TIMER) } ?: context,
            hooked,
            headers,
            next,
        )
    }
}

/** The deadline of a call whose `grpc-timeout` [DeadlineTracer] took from the stack. */
private val CALL_DEADLINE: Context.Key<Deadline> = Context.key("stock-deadline")

/** Runs the deadlines of the handlers' Contexts ([HooksInterceptor]). */
private val DEADLINE_TIMER =
    ScheduledThreadPoolExecutor(1) { r -> Thread(r, "stock-deadline").apply { isDaemon = true } }
        .apply { removeOnCancelPolicy = true }

/**
 * grpc-java resets a stream whose Context reaches its deadline (RST_STREAM CANCEL, no trailers: grpc-js and C-core
 * clients may then see CANCELLED), and that reset wins over the handler's DEADLINE_EXCEEDED whenever the process is
 * stalled past [DEADLINE_LEAD_MS] (a loaded machine, a GC pause). So the stack never sees a call's `grpc-timeout`:
 * taken from the headers before it makes the call's Context, it becomes that Context's [CALL_DEADLINE] value, and
 * [HooksInterceptor] gives the deadline to the handler's Context, below the stack's: only the handler ends a call at
 * its deadline, with trailers, however late.
 */
object DeadlineTracer : ServerStreamTracer.Factory() {
    private val none = object : ServerStreamTracer() {}

    override fun newServerStreamTracer(fullMethodName: String, headers: Metadata): ServerStreamTracer {
        val nanos = headers.get(GrpcUtil.TIMEOUT_KEY) ?: return none
        headers.discardAll(GrpcUtil.TIMEOUT_KEY)
        val deadline = Deadline.after(nanos, TimeUnit.NANOSECONDS)
        return object : ServerStreamTracer() {
            override fun filterContext(context: Context): Context = context.withValue(CALL_DEADLINE, deadline)
        }
    }
}

/**
 * A call still running this much before its deadline ends with DEADLINE_EXCEEDED in trailers (CONTRACT.md,
 * "Cancellation and deadlines at the server").
 */
private const val DEADLINE_LEAD_MS = 50L

/**
 * Runs a Stock method's [block] after the hooks that come first: the delay, a stop when the call is over by then, the
 * watcher count and (unary methods) the fail. The call ends with DEADLINE_EXCEEDED just before its deadline.
 */
suspend fun <T> enter(unary: Boolean, store: Store, block: suspend (Hooks) -> T): T {
    val hooks = HOOKS.get()
    val deadline = Context.current().deadline
    suspend fun run(): T {
        if (hooks.delayMs > 0) delay(hooks.delayMs)
        ensureLive()
        hooks.watchers?.let { prefix ->
            val count = store.watchers(prefix).toString()
            synchronized(hooks.trailers) { hooks.trailers.put(text("x-stock-watchers"), count) }
        }
        if (unary && hooks.fail != null) throw forcedStatus(hooks.fail)
        return block(hooks)
    }
    if (deadline == null) return run()
    return try {
        withTimeout(maxOf(deadline.timeRemaining(TimeUnit.MILLISECONDS) - DEADLINE_LEAD_MS, 1L)) { run() }
    } catch (e: TimeoutCancellationException) {
        throw Status.DEADLINE_EXCEEDED.withDescription("deadline exceeded").asException()
    }
}

/** Stops the handler when its call is over (cancelled by the client, or past its deadline): nothing more is applied. */
suspend fun ensureLive() {
    currentCoroutineContext().ensureActive()
    Contexts.statusFromCancelled(Context.current())?.let { throw it.asException() }
}

/** The failure `x-stock-fail` forces, with a google.rpc.ErrorInfo {reason FORCED, domain stock.v1} (StatusProto). */
fun forcedStatus(status: Status): StatusException {
    val info = ErrorInfo.newBuilder().setReason("FORCED").setDomain("stock.v1").build()
    val rich = com.google.rpc.Status.newBuilder().setCode(status.code.value()).setMessage(status.description ?: "")
    return StatusProto.toStatusException(rich.addDetails(Any.pack(info)).build())
}
