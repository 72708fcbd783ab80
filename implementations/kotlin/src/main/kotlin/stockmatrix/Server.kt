package stockmatrix

import com.google.protobuf.ByteString
import io.grpc.Context
import io.grpc.Contexts
import io.grpc.Deadline
import io.grpc.ForwardingServerCall
import io.grpc.InsecureServerCredentials
import io.grpc.Metadata
import io.grpc.ServerCall
import io.grpc.ServerCallHandler
import io.grpc.ServerCredentials
import io.grpc.ServerInterceptor
import io.grpc.ServerInterceptors
import io.grpc.Status
import io.grpc.TlsServerCredentials
import io.grpc.health.v1.HealthCheckResponse.ServingStatus
import io.grpc.kotlin.CoroutineContextServerInterceptor
import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder
import io.grpc.protobuf.services.HealthStatusManager
import io.grpc.protobuf.services.ProtoReflectionServiceV1
import kotlinx.coroutines.TimeoutCancellationException
import kotlinx.coroutines.currentCoroutineContext
import kotlinx.coroutines.delay
import kotlinx.coroutines.ensureActive
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.FlowCollector
import kotlinx.coroutines.flow.flow
import kotlinx.coroutines.withTimeout
import stock.v1.StockGrpcKt
import stock.v1.StockOuterClass.BatchItem
import stock.v1.StockOuterClass.BatchSummary
import stock.v1.StockOuterClass.Empty
import stock.v1.StockOuterClass.GetRequest
import stock.v1.StockOuterClass.GetResponse
import stock.v1.StockOuterClass.InventoryStatus
import stock.v1.StockOuterClass.PutRequest
import stock.v1.StockOuterClass.Side
import stock.v1.StockOuterClass.TradeFill
import stock.v1.StockOuterClass.TradeOrder
import stock.v1.StockOuterClass.WatchEvent
import stock.v1.StockOuterClass.WatchRequest
import sun.misc.Signal
import java.io.File
import java.net.InetSocketAddress
import java.util.Properties
import java.util.concurrent.CountDownLatch
import java.util.concurrent.TimeUnit
import kotlin.concurrent.thread
import kotlin.coroutines.AbstractCoroutineContextElement
import kotlin.coroutines.CoroutineContext
import kotlin.system.exitProcess

const val SPECIAL_MESSAGE = "\t\ntest with whitespace\r\nand Unicode BMP \u263A and non-BMP \uD83D\uDE08\t\n"

private fun asciiKey(name: String): Metadata.Key<String> = Metadata.Key.of(name, Metadata.ASCII_STRING_MARSHALLER)

private fun binaryKey(name: String): Metadata.Key<ByteArray> = Metadata.Key.of(name, Metadata.BINARY_BYTE_MARSHALLER)

private val ECHO = asciiKey("x-stock-echo")
private val ECHO_BIN = binaryKey("x-stock-echo-bin")
private val ECHO_HEADER = asciiKey("x-stock-echo-header")
private val ECHO_TRAILER = asciiKey("x-stock-echo-trailer")
private val GRPC_ENCODING = asciiKey("grpc-encoding")

/** Trailers the handler adds (under a lock) for [WireHooks] to send when the call closes. */
class LateTrailers {
    private val md = Metadata()

    @Synchronized
    fun put(
        key: String,
        value: String,
    ) = md.put(asciiKey(key), value)

    @Synchronized
    fun addTo(trailers: Metadata) = trailers.merge(md)
}

/** Hands the call's [LateTrailers] from [WireHooks] to [HeadersToCoroutine] (grpc Context). */
private val LATE_TRAILERS: Context.Key<LateTrailers> = Context.key("x-stock-late-trailers")

/** The request metadata, deadline and late trailers of the current call, handed to the coroutine that serves it. */
class CallHeaders(
    val headers: Metadata,
    val deadline: Deadline?,
    val trailers: LateTrailers,
) : AbstractCoroutineContextElement(Key) {
    companion object Key : CoroutineContext.Key<CallHeaders>
}

object HeadersToCoroutine : CoroutineContextServerInterceptor() {
    override fun coroutineContext(
        call: ServerCall<*, *>,
        headers: Metadata,
    ): CoroutineContext = CallHeaders(headers, Context.current().deadline, LATE_TRAILERS.get() ?: LateTrailers())
}

/** Answers ahead of grpc-java's own deadline handling, which resets the stream (some clients then see CANCELLED). */
private const val DEADLINE_LEAD_MS = 5L

/** Runs [block] and ends the call with a DEADLINE_EXCEEDED status just before its deadline. */
private suspend fun <T> deadlined(block: suspend () -> T): T {
    val deadline = currentCoroutineContext()[CallHeaders]?.deadline ?: return block()
    val left = deadline.timeRemaining(TimeUnit.MILLISECONDS) - DEADLINE_LEAD_MS
    return try {
        withTimeout(maxOf(left, 1L)) { block() }
    } catch (e: TimeoutCancellationException) {
        throw Status.DEADLINE_EXCEEDED.withDescription("deadline exceeded").asException()
    }
}

/**
 * The hooks that act on the call itself, whatever the outcome: the echoes (`x-stock-echo` and
 * `x-stock-echo-bin` as header and trailer, `x-stock-echo-header` and `x-stock-echo-trailer` as one
 * of them), `x-stock-compress` (grpc-java's per-call ServerCall.setCompression), the reports taken
 * as the call starts (`x-stock-report-encoding`, `x-stock-report-deadline`), and the trailers the
 * handler adds later ([LateTrailers]).
 */
object WireHooks : ServerInterceptor {
    override fun <Q, R> interceptCall(
        call: ServerCall<Q, R>,
        headers: Metadata,
        next: ServerCallHandler<Q, R>,
    ): ServerCall.Listener<Q> {
        val echo = headers.get(ECHO)
        val echoBin = headers.get(ECHO_BIN)
        val echoHeader = headers.get(ECHO_HEADER)
        val echoTrailer = headers.get(ECHO_TRAILER)
        val late = LateTrailers()
        if (headers.get(asciiKey("x-stock-report-encoding")) == "true") {
            // grpc-java leaves the request's grpc-encoding header in the metadata the call sees.
            late.put("x-stock-request-encoding", headers.get(GRPC_ENCODING) ?: "identity")
        }
        if (headers.get(asciiKey("x-stock-report-deadline")) == "true") {
            val left = Context.current().deadline?.timeRemaining(TimeUnit.MILLISECONDS)
            late.put("x-stock-deadline-ms", left?.toString() ?: "none")
        }
        if (headers.get(asciiKey("x-stock-compress")) == "gzip") call.setCompression("gzip")
        val hooked =
            object : ForwardingServerCall.SimpleForwardingServerCall<Q, R>(call) {
                override fun sendHeaders(responseHeaders: Metadata) {
                    echo?.let { responseHeaders.put(ECHO, it) }
                    echoBin?.let { responseHeaders.put(ECHO_BIN, it) }
                    echoHeader?.let { responseHeaders.put(ECHO_HEADER, it) }
                    super.sendHeaders(responseHeaders)
                }

                override fun close(
                    status: Status,
                    trailers: Metadata,
                ) {
                    // grpc-kotlin closes a call even after grpc-java cancelled it. For a request over the
                    // size limit grpc-java 1.83.1 has already ended the stream with RESOURCE_EXHAUSTED while
                    // the client is still sending; its Netty server then writes these trailers on that
                    // half-closed stream, fails ("Stream N in unexpected state HALF_CLOSED_LOCAL") and drops
                    // the whole connection. A cancelled call's trailers reach no one: skip them.
                    if (isCancelled) return
                    echo?.let { trailers.put(ECHO, it) }
                    echoBin?.let { trailers.put(ECHO_BIN, it) }
                    echoTrailer?.let { trailers.put(ECHO_TRAILER, it) }
                    late.addTo(trailers)
                    super.close(status, trailers)
                }
            }
        return Contexts.interceptCall(Context.current().withValue(LATE_TRAILERS, late), hooked, headers, next)
    }
}

/** What the `x-stock-*` metadata of one call asks for. */
class Hooks(
    val delayMs: Long,
    val fail: Status?,
    val failAfter: Long,
    val watchers: String?,
    val repeatValue: Int = 1,
) {
    companion object {
        fun parse(md: Metadata): Hooks {
            fun text(key: String) = md.get(asciiKey(key))

            fun number(key: String): Long? =
                text(key)?.let { v ->
                    v.trim().toLongOrNull()?.takeIf { it >= 0 }
                        ?: throw Status.INVALID_ARGUMENT.withDescription("$key must be a number, got \"$v\"").asException()
                }
            val special = text("x-stock-fail-special") == "true"
            val code =
                when (val name = text("x-stock-fail")) {
                    null -> {
                        if (special) Status.Code.UNKNOWN else null
                    }

                    else -> {
                        Status.Code.values().firstOrNull { it.name == name && it != Status.Code.OK }
                            ?: throw Status.INVALID_ARGUMENT.withDescription("x-stock-fail: unknown code \"$name\"").asException()
                    }
                }
            val fail =
                code?.let {
                    val bytes = md.get(binaryKey("x-stock-fail-message-bin"))
                    val message =
                        when {
                            special -> SPECIAL_MESSAGE
                            bytes != null -> String(bytes, Charsets.UTF_8)
                            else -> text("x-stock-fail-message") ?: "forced ${it.name}"
                        }
                    it.toStatus().withDescription(message)
                }
            return Hooks(
                number("x-stock-delay-ms") ?: 0,
                fail,
                number("x-stock-fail-after") ?: 0,
                text("x-stock-report-watchers"),
                (number("x-stock-repeat-value") ?: 1).coerceIn(1, Int.MAX_VALUE.toLong()).toInt(),
            )
        }
    }
}

/** Ends the handler when its call is over (cancelled by the client, or past its deadline): nothing more is applied. */
private suspend fun ensureLive() {
    currentCoroutineContext().ensureActive()
    Contexts.statusFromCancelled(Context.current())?.let { throw it.asException() }
}

/** Reads the hooks, sleeps the delay, stops if the call is over, counts watchers; unary methods also fail here. */
private suspend fun enter(
    unary: Boolean,
    store: Store,
): Hooks {
    val call = currentCoroutineContext()[CallHeaders]
    val hooks = Hooks.parse(call?.headers ?: Metadata())
    if (hooks.delayMs > 0) delay(hooks.delayMs)
    ensureLive()
    hooks.watchers?.let { call?.trailers?.put("x-stock-watchers", store.watchers(it).toString()) }
    if (unary && hooks.fail != null) throw forced(hooks.fail)
    return hooks
}

class StockService(
    private val store: Store,
    private val stack: String,
) : StockGrpcKt.StockCoroutineImplBase() {
    override suspend fun get(request: GetRequest): GetResponse =
        deadlined {
            val hooks = enter(unary = true, store)
            val (value, version) = store.require(request.key)
            GetResponse
                .newBuilder()
                // x-stock-repeat-value: the stored value that many times over (a response past 4 MiB).
                .setValue(ByteString.copyFrom(List(hooks.repeatValue) { value }))
                .setVersion(version)
                .build()
        }

    override suspend fun put(request: PutRequest): Empty =
        deadlined {
            enter(unary = true, store)
            store.checkedPut(request.key, request.value)
            Empty.getDefaultInstance()
        }

    override fun monitor(request: WatchRequest): Flow<WatchEvent> = flow { deadlined { monitorEvents(request) } }

    private suspend fun FlowCollector<WatchEvent>.monitorEvents(request: WatchRequest) {
        val hooks = enter(unary = false, store)
        if (request.pattern.isEmpty()) throw badField("pattern", "pattern must not be empty")
        if (request.maxEvents < 0) throw badField("max_events", "max_events must not be negative")
        val (existing, watcher) = store.watch(request.pattern, request.includeExisting)
        try {
            var sent = 0L
            val pending = existing.iterator()
            while (true) {
                if (hooks.fail != null && sent == hooks.failAfter) throw forced(hooks.fail)
                if (request.maxEvents > 0 && sent == request.maxEvents.toLong()) break
                emit(if (pending.hasNext()) pending.next() else watcher.events.receive())
                sent++
            }
        } finally {
            store.unwatch(watcher)
        }
    }

    override suspend fun batch(requests: Flow<BatchItem>): BatchSummary =
        deadlined {
            val hooks = enter(unary = false, store)
            val items = ArrayList<BatchItem>()
            // A request stream that ends in a cancellation or the deadline throws here: not a half-close.
            requests.collect { items.add(it) }
            ensureLive()
            if (hooks.fail != null) throw forced(hooks.fail)
            store.batch(items)
        }

    override fun trade(requests: Flow<TradeOrder>): Flow<TradeFill> = flow { deadlined { tradeFills(requests) } }

    private suspend fun FlowCollector<TradeFill>.tradeFills(requests: Flow<TradeOrder>) {
        val hooks = enter(unary = false, store)
        if (hooks.fail != null && hooks.failAfter == 0L) throw forced(hooks.fail)
        val positions = HashMap<String, Long>()
        var sequence = 0L
        requests.collect { order ->
            if (order.quantity <= 0) throw badField("quantity", "order \"${order.orderId}\": quantity must be > 0, got ${order.quantity}")
            sequence++
            val signed = if (order.side == Side.BUY) order.quantity else -order.quantity
            val position = (positions[order.symbol] ?: 0L) + signed
            positions[order.symbol] = position
            emit(
                TradeFill
                    .newBuilder()
                    .setOrderId(order.orderId)
                    .setSymbol(order.symbol)
                    .setSide(order.side)
                    .setQuantity(order.quantity)
                    .setPriceCents(order.priceCents)
                    .setSequence(sequence)
                    .setNetPosition(position)
                    .build(),
            )
            if (hooks.fail != null && sequence == hooks.failAfter) throw forced(hooks.fail)
        }
    }

    override suspend fun inventory(request: Empty): InventoryStatus =
        deadlined {
            enter(unary = true, store)
            val (keys, bytes) = store.totals()
            InventoryStatus
                .newBuilder()
                .setKeyCount(keys)
                .setTotalValueBytes(bytes)
                .setLanguage("kotlin")
                .setStack(stack)
                .build()
        }
}

/** "grpc-kotlin X (grpc-java Y)", from the versions the build recorded in the jar. */
fun stackName(): String {
    val p = Properties()
    StockService::class.java.getResourceAsStream("/stock-versions.properties")?.use { p.load(it) }
    return "grpc-kotlin ${p.getProperty("grpc-kotlin", "?")} (grpc-java ${p.getProperty("grpc-java", "?")})"
}

fun runServer(args: List<String>): Int {
    val opts = parseOptions(args, setOf("port", "host", "tls-mode", "cert-file", "key-file", "ca-file"), emptySet())
    if (opts.rest.isNotEmpty()) throw UsageException("unexpected argument: ${opts.rest.first()}")
    val port = opts.single("port")?.toIntOrNull() ?: throw UsageException("--port N is required")
    val host = opts.single("host") ?: "127.0.0.1"

    fun file(flag: String) = File(opts.single(flag) ?: throw UsageException("--$flag is required for this --tls-mode"))
    val creds: ServerCredentials =
        try {
            when (val mode = opts.single("tls-mode") ?: "none") {
                "none" -> {
                    InsecureServerCredentials.create()
                }

                "server" -> {
                    TlsServerCredentials.create(file("cert-file"), file("key-file"))
                }

                "mtls" -> {
                    TlsServerCredentials
                        .newBuilder()
                        .keyManager(file("cert-file"), file("key-file"))
                        .trustManager(file("ca-file"))
                        .clientAuth(TlsServerCredentials.ClientAuth.REQUIRE)
                        .build()
                }

                else -> {
                    throw UsageException("unknown --tls-mode $mode")
                }
            }
        } catch (e: UsageException) {
            throw e
        } catch (e: Exception) {
            System.err.println("error: cannot load certificates: $e")
            return 1
        }
    val health = HealthStatusManager()
    health.setStatus("", ServingStatus.SERVING)
    health.setStatus("stock.v1.Stock", ServingStatus.SERVING)
    health.setStatus("proto.KV", ServingStatus.SERVING)
    val store = Store()
    val server =
        NettyServerBuilder
            .forAddress(InetSocketAddress(host, port), creds)
            // The last interceptor runs first: WireHooks hands its LateTrailers on to HeadersToCoroutine.
            .addService(ServerInterceptors.intercept(StockService(store, stackName()), HeadersToCoroutine, WireHooks))
            .addService(KvService(store))
            .addService(health.healthService)
            .addService(ProtoReflectionServiceV1.newInstance())
            .maxInboundMessageSize(4 shl 20)
            .build()
    try {
        server.start()
    } catch (e: Exception) {
        System.err.println("error: cannot serve on $host:$port: ${e.cause ?: e}")
        return 1
    }
    println("listening on $host:${server.port}")
    System.out.flush()

    val stop = CountDownLatch(1)
    Signal.handle(Signal("TERM")) { stop.countDown() }
    Signal.handle(Signal("INT")) { stop.countDown() }
    thread(isDaemon = true, name = "stdin-eof") {
        try {
            val buf = ByteArray(256)
            while (System.`in`.read(buf) >= 0) Unit
        } finally {
            stop.countDown()
        }
    }
    stop.await()
    server.shutdownNow()
    server.awaitTermination(1, TimeUnit.SECONDS)
    exitProcess(0)
}
