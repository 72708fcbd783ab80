package stockmatrix

import com.google.gson.*
import com.google.protobuf.Descriptors.FieldDescriptor
import com.google.protobuf.Message
import com.google.protobuf.UnsafeByteOperations
import com.google.protobuf.util.JsonFormat
import com.google.rpc.ErrorDetailsProto
import io.grpc.*
import io.grpc.MethodDescriptor.MethodType
import io.grpc.kotlin.ClientCalls
import io.grpc.netty.shaded.io.grpc.netty.GrpcSslContexts
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder
import io.grpc.netty.shaded.io.grpc.netty.NettySslContextChannelCredentials
import io.grpc.netty.shaded.io.netty.channel.epoll.EpollDomainSocketChannel
import io.grpc.netty.shaded.io.netty.channel.epoll.EpollEventLoopGroup
import io.grpc.netty.shaded.io.netty.channel.unix.DomainSocketAddress
import io.grpc.protobuf.StatusProto
import java.io.File
import java.io.FileDescriptor
import java.io.FileOutputStream
import java.io.PrintStream
import java.util.Base64
import java.util.concurrent.TimeUnit
import java.util.concurrent.atomic.AtomicReference
import kotlin.system.exitProcess
import kotlinx.coroutines.*
import kotlinx.coroutines.channels.Channel
import kotlinx.coroutines.channels.SendChannel
import kotlinx.coroutines.flow.asFlow
import kotlinx.coroutines.flow.consumeAsFlow
import proto.KVGrpc
import stock.v1.LedgerGrpc
import stock.v1.StockGrpc

/** A bad option, command or stdin line: the client exits 2. */
class UsageException(message: String) : Exception(message)

/** Where calls go: the options (the default connection) or a step's `connection`; equal ones share a channel. */
data class Connection(
    val server: String,
    val tlsMode: String = "none",
    val caFile: String? = null,
    val certFile: String? = null,
    val keyFile: String? = null,
    val serverName: String? = null,
    val keepaliveMs: Long? = null,
    val keepaliveTimeoutMs: Long? = null,
) {
    init {
        if (tlsMode !in setOf("none", "server", "mtls")) throw UsageException("unknown tls mode \"$tlsMode\"")
        if (listOfNotNull(keepaliveMs, keepaliveTimeoutMs).any { it <= 0 }) {
            throw UsageException("keepalive times must be positive numbers of ms")
        }
    }
}

/** One script step (CONTRACT.md), its request messages parsed and its metadata decoded. */
class Step(
    val id: String,
    val method: MethodDescriptor<Message, Message>,
    val requests: List<Message>,
    val metadata: Metadata,
    val timeoutMs: Long,
    val gzip: Boolean,
    val connection: Connection?,
    val afterFirst: List<Step>,
    val copies: Int,
    val readPauseMs: Long,
    val cancelAfterMs: Long,
    val cancelAfterMessages: Int,
    val lane: Int,
    val bench: Bench?,
)

/** A `bench` step's load: `concurrency` workers repeat the step's call until `durationMs` have passed. */
data class Bench(val durationMs: Long, val concurrency: Int)

/**
 * Every method a step may name, with the stack's own descriptors (their type is the method's kind): Stock's by their
 * bare names, Ledger's as `Ledger.M`, the legacy kv.proto service's as `proto.KV.M`.
 */
@Suppress("UNCHECKED_CAST")
private val METHODS =
    (StockGrpc.getServiceDescriptor().methods.associateBy { it.bareMethodName } +
        LedgerGrpc.getServiceDescriptor().methods.associateBy { "Ledger.${it.bareMethodName}" } +
        KVGrpc.getServiceDescriptor().methods.associateBy { "proto.KV.${it.bareMethodName}" })
        as Map<String, MethodDescriptor<Message, Message>>

private val out = PrintStream(FileOutputStream(FileDescriptor.out), false, Charsets.UTF_8)
private val gson = GsonBuilder().disableHtmlEscaping().create()
private val printer = JsonFormat.printer().omittingInsignificantWhitespace()
private val detailPrinter = // knows every google.rpc error detail
    printer.usingTypeRegistry(
        JsonFormat.TypeRegistry.newBuilder().add(ErrorDetailsProto.getDescriptor().messageTypes).build()
    )
/** A connection's settings as options (`--tls-mode`); a step's `connection` has them as fields (`tls_mode`). */
private val SETTINGS =
    listOf(
        "server",
        "tls-mode",
        "ca-file",
        "cert-file",
        "key-file",
        "server-name",
        "keepalive-ms",
        "keepalive-timeout-ms",
    )
private val channels = HashMap<Connection, ManagedChannel>()

/** TLS credentials by (mode, CA, certificate, key), shared by the channels that use the same files. */
private val tlsByFiles = HashMap<List<String?>, ChannelCredentials>()
/**
 * The event loop of the channels to Unix sockets (Netty's epoll transport, in grpc-netty-shaded), made when needed.
 * grpc-java sets SO_KEEPALIVE on every channel and Netty logs a warning for each Unix one, which has no such option:
 * that logger is quieted (held here, as java.util.logging keeps only weak references).
 */
private val bootstrapLog = java.util.logging.Logger.getLogger("io.grpc.netty.shaded.io.netty.bootstrap.Bootstrap")
private val unixLoop by lazy {
    bootstrapLog.level = java.util.logging.Level.SEVERE
    EpollEventLoopGroup(1)
}
private lateinit var defaultConnection: Connection

fun main(args: Array<String>) {
    val code =
        try {
            defaultConnection = parseArgs(args.toList())
            channelFor(defaultConnection) // reads its certificate files now: unreadable ones end the client (exit 1)
            // One thread runs every lane's calls (they suspend while they wait); stdin is read on an IO thread.
            runBlocking {
                val stdin = System.`in`.bufferedReader()
                val lanes = HashMap<Int, SendChannel<Step>>()
                try {
                    while (true) {
                        val line = withContext(Dispatchers.IO) { stdin.readLine() } ?: break
                        if (line.isBlank()) continue
                        val step = parseStep(line)
                        lanes.getOrPut(step.lane) { startLane() }.send(step)
                    }
                } finally { // stdin's end or a bad line: every lane ends its steps first
                    lanes.values.forEach { it.close() }
                    coroutineContext.job.children.toList().joinAll()
                }
            }
            0
        } catch (e: UsageException) {
            System.err.println("usage error: ${e.message}")
            2
        } catch (e: Exception) {
            System.err.println("error: ${e.message ?: e}")
            1
        }
    exitProcess(code)
}

/** A lane: a queue whose steps run in order, each after the previous one ended, at the same time as other lanes. */
fun CoroutineScope.startLane(): SendChannel<Step> {
    val steps = Channel<Step>(Channel.UNLIMITED)
    launch { for (step in steps) runStep(step) }
    return steps
}

/**
 * `--server HOST:PORT [--tls-mode M] [--ca-file F] [--cert-file F --key-file F] [--server-name N]
 * [--keepalive-ms N [--keepalive-timeout-ms N]] script`.
 */
fun parseArgs(args: List<String>): Connection {
    val options = HashMap<String, String>()
    var i = 0
    while (i < args.size && args[i].startsWith("--")) {
        val name = args[i].removePrefix("--")
        if (name !in SETTINGS) {
            throw UsageException("unknown option ${args[i]}")
        }
        options[name] = args.getOrNull(i + 1) ?: throw UsageException("${args[i]} needs a value")
        i += 2
    }
    if (args.drop(i) != listOf("script")) throw UsageException("expected the command `script` after the options")
    val server = options["server"] ?: throw UsageException("--server HOST:PORT is required")
    val mode = options["tls-mode"] ?: "none"
    val needed = mapOf("server" to listOf("ca-file"), "mtls" to listOf("ca-file", "cert-file", "key-file"))
    needed[mode]?.firstOrNull { it !in options }?.let { throw UsageException("--$it is needed with --tls-mode $mode") }
    val files = listOf("ca-file", "cert-file", "key-file").map { options[it] }
    val keepalive =
        listOf("keepalive-ms", "keepalive-timeout-ms").map { name ->
            options[name]?.let { it.toLongOrNull() ?: throw UsageException("--$name needs a number of ms, got $it") }
        }
    return Connection(server, mode, files[0], files[1], files[2], options["server-name"], keepalive[0], keepalive[1])
}

/** One stdin line → a step; anything that is not a valid step or message is a usage error. */
fun parseStep(line: String): Step =
    try {
        stepOf(JsonParser.parseString(line).asJsonObject)
    } catch (e: UsageException) {
        throw e
    } catch (e: Exception) {
        throw UsageException("invalid step ($e): $line")
    }

/** The fields of a step (CONTRACT.md "Script steps"); any other is a usage error. */
private val STEP_FIELDS =
    setOf(
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
        "bench",
    )

private fun stepOf(o: JsonObject): Step {
    o.keySet().firstOrNull { it !in STEP_FIELDS }?.let { throw UsageException("unknown step field $it") }
    fun field(name: String): JsonElement? = o.get(name)?.takeUnless { it.isJsonNull }
    val name = field("method")?.asString ?: throw UsageException("a step needs a method")
    val method = METHODS[name] ?: throw UsageException("unknown method \"$name\"")
    val prototype = (method.requestMarshaller as MethodDescriptor.PrototypeMarshaller<*>).messagePrototype as Message

    fun message(json: JsonElement?): Message =
        prototype.newBuilderForType().also { if (json != null) JsonFormat.parser().merge(json.toString(), it) }.build()
    val streaming = method.type == MethodType.CLIENT_STREAMING || method.type == MethodType.BIDI_STREAMING
    val metadata = Metadata()
    for ((key, value) in field("metadata")?.asJsonObject?.entrySet().orEmpty()) {
        if (key.endsWith(Metadata.BINARY_HEADER_SUFFIX)) {
            val bytes = Base64.getDecoder().decode(value.asString)
            metadata.put(Metadata.Key.of(key, Metadata.BINARY_BYTE_MARSHALLER), bytes)
        } else {
            metadata.put(Metadata.Key.of(key, Metadata.ASCII_STRING_MARSHALLER), value.asString)
        }
    }
    val parsed =
        if (streaming) field("requests")?.asJsonArray?.map(::message).orEmpty() else listOf(message(field("request")))
    val requests = fillValues(field("fill"), parsed)
    val connection =
        field("connection")?.asJsonObject?.let { c ->
            fun text(key: String) = c.get(key)?.takeUnless { it.isJsonNull }?.asString
            val known = SETTINGS.map { it.replace('-', '_') }
            c.keySet().firstOrNull { it !in known }?.let { throw UsageException("unknown connection field $it") }
            val server = text("server") ?: throw UsageException("a connection needs a server")
            val files = listOf("ca_file", "cert_file", "key_file").map(::text)
            val keepalive = listOf("keepalive_ms", "keepalive_timeout_ms").map { text(it)?.toLong() } // 1.5 is refused
            Connection(
                server,
                text("tls_mode") ?: "none",
                files[0],
                files[1],
                files[2],
                text("server_name"),
                keepalive[0],
                keepalive[1],
            )
        }
    val compression = field("compression")?.asString ?: "identity"
    if (compression !in setOf("gzip", "identity")) throw UsageException("unknown compression \"$compression\"")
    val afterFirst = field("after_first")?.asJsonArray?.map { stepOf(it.asJsonObject) }.orEmpty()
    if (afterFirst.isNotEmpty() && name != "Monitor") throw UsageException("after_first is for Monitor only, not $name")
    val cancelAfterMessages = field("cancel_after_messages")?.asInt ?: 0
    if (cancelAfterMessages > 0 && name != "Monitor") {
        throw UsageException("cancel_after_messages is for Monitor only, not $name")
    }
    return Step(
        id = field("id")?.asString ?: "",
        method = method,
        requests = requests,
        metadata = metadata,
        timeoutMs = field("timeout_ms")?.asLong ?: 0,
        gzip = compression == "gzip",
        connection = connection,
        afterFirst = afterFirst,
        copies = field("copies")?.asInt ?: 0,
        readPauseMs = field("read_pause_ms")?.asLong ?: 0,
        cancelAfterMs = field("cancel_after_ms")?.asLong ?: 0,
        cancelAfterMessages = cancelAfterMessages,
        lane = (field("lane")?.asInt ?: 0).also { if (it < 0) throw UsageException("lane must be >= 0, got $it") },
        bench = field("bench")?.let(::benchOf),
    )
}

/** `{"duration_ms": D, "concurrency": C}`: D an integer >= 0, C an integer >= 1 (1.5, "3" and -1 are refused). */
private fun benchOf(json: JsonElement): Bench {
    val o = json.asJsonObject
    o.keySet()
        .firstOrNull { it !in setOf("duration_ms", "concurrency") }
        ?.let { throw UsageException("unknown bench field $it") }
    fun count(key: String, min: Long): Long =
        o.get(key)
            ?.takeIf { it.isJsonPrimitive && it.asJsonPrimitive.isNumber }
            ?.asString
            ?.toLongOrNull()
            ?.takeIf { it >= min } ?: throw UsageException("bench needs \"$key\", an integer >= $min")
    return Bench(count("duration_ms", 0), count("concurrency", 1).coerceAtMost(Int.MAX_VALUE.toLong()).toInt())
}

/**
 * A step's `fill` applied to its [requests]: each entry sets the `value` of request message `request` to the bytes of
 * `repeat` (base64) repeated `times` times, built in one array. Only Put's and Batch's messages have a `value`; a bad
 * entry is a usage error.
 */
private fun fillValues(fill: JsonElement?, requests: List<Message>): List<Message> {
    if (fill == null) return requests
    val filled = requests.toMutableList()
    for (element in fill.asJsonArray) {
        val entry = element.asJsonObject
        entry
            .keySet()
            .firstOrNull { it !in setOf("request", "repeat", "times") }
            ?.let { throw UsageException("unknown fill field $it") }
        // A JSON integer >= 0 (1.5 and "3" are refused).
        fun count(key: String): Long =
            entry
                .get(key)
                ?.takeIf { it.isJsonPrimitive && it.asJsonPrimitive.isNumber }
                ?.asString
                ?.toLongOrNull()
                ?.takeIf { it >= 0 } ?: throw UsageException("a fill entry needs \"$key\", an integer >= 0")
        val index = count("request")
        val message =
            filled.getOrNull(index.coerceAtMost(Int.MAX_VALUE.toLong()).toInt())
                ?: throw UsageException("fill names request $index; the step has ${filled.size} request message(s)")
        val field =
            message.descriptorForType.findFieldByName("value")?.takeIf { it.type == FieldDescriptor.Type.BYTES }
                ?: throw UsageException("fill is for Put and Batch only")
        val repeat = entry.get("repeat")?.takeIf { it.isJsonPrimitive && it.asJsonPrimitive.isString }?.asString
        val unit =
            try {
                Base64.getDecoder().decode(repeat ?: throw UsageException("a fill entry needs \"repeat\", a string"))
            } catch (e: IllegalArgumentException) {
                throw UsageException("fill repeat is not base64 ($e)")
            }
        val times = count("times")
        val size =
            runCatching { Math.multiplyExact(unit.size.toLong(), times) }
                .getOrNull()
                ?.takeIf { it <= Int.MAX_VALUE - 8 }
                ?: throw UsageException("fill of ${unit.size} bytes x $times is too large")
        val bytes = ByteArray(size.toInt())
        var done = minOf(unit.size, bytes.size).also { System.arraycopy(unit, 0, bytes, 0, it) }
        while (done in 1 until bytes.size) { // doubling copies of what is already there
            val n = minOf(done, bytes.size - done)
            System.arraycopy(bytes, 0, bytes, done, n)
            done += n
        }
        filled[index.toInt()] = message.toBuilder().setField(field, UnsafeByteOperations.unsafeWrap(bytes)).build()
    }
    return filled
}

/** The connection's one channel, made (its files read) when first needed; a file it cannot read is UNAVAILABLE. */
fun channelFor(connection: Connection): ManagedChannel =
    synchronized(channels) {
        channels.getOrPut(connection) {
            val credentials =
                try {
                    if (connection.tlsMode == "none") {
                        InsecureChannelCredentials.create()
                    } else {
                        val files =
                            listOf(connection.tlsMode, connection.caFile, connection.certFile, connection.keyFile)
                        tlsByFiles.getOrPut(files) { // one SslContext (its files read once) for every such channel
                            val tls = GrpcSslContexts.forClient()
                            connection.caFile?.let { tls.trustManager(File(it)) }
                            if (
                                connection.tlsMode == "mtls" &&
                                    connection.certFile != null &&
                                    connection.keyFile != null
                            ) {
                                tls.keyManager(File(connection.certFile), File(connection.keyFile))
                            }
                            NettySslContextChannelCredentials.create(tls.build())
                        }
                    }
                } catch (e: Exception) {
                    throw Status.UNAVAILABLE.withDescription("cannot load certificates: $e").withCause(e).asException()
                }
            val path = unixPath(connection.server)
            val builder =
                if (path == null) {
                    NettyChannelBuilder.forTarget(connection.server, credentials)
                } else { // a Unix socket: Netty's epoll domain socket channel; the authority is localhost by default
                    NettyChannelBuilder.forAddress(DomainSocketAddress(path), credentials)
                        .channelType(EpollDomainSocketChannel::class.java)
                        .eventLoopGroup(unixLoop)
                        .overrideAuthority(connection.serverName ?: "localhost")
                }
            connection.serverName?.let { builder.overrideAuthority(it) }
            connection.keepaliveMs?.let { ms -> // grpc-java raises a time under 10 s to 10 s
                builder.keepAliveTime(ms, TimeUnit.MILLISECONDS).keepAliveWithoutCalls(true)
                connection.keepaliveTimeoutMs?.let { builder.keepAliveTimeout(it, TimeUnit.MILLISECONDS) }
            }
            builder.build()
        }
    }

/** The socket path of a `unix:/PATH` or `unix:///PATH` server, else null (`HOST:PORT`). */
fun unixPath(server: String): String? =
    when {
        server.startsWith("unix://") -> server.removePrefix("unix://")
        server.startsWith("unix:") -> server.removePrefix("unix:")
        else -> null
    }

/** Runs a step: its call, or `copies` of it at once on its channel, copy k under the id `ID*k`. */
suspend fun runStep(step: Step) {
    if (step.bench != null) {
        runBench(step, step.bench)
    } else if (step.copies > 1) {
        coroutineScope { repeat(step.copies) { k -> launch { runCall(step, "${step.id}*$k") } } }
    } else {
        runCall(step, step.id)
    }
}

/** One call of [step] (deadline, metadata, compression, `cancel_after_ms`), by the method's kind; lines under [id]. */
suspend fun runCall(step: Step, id: String) {
    val seen = Seen()
    val start = System.nanoTime()
    var options = CallOptions.DEFAULT
    if (step.timeoutMs > 0) options = options.withDeadlineAfter(step.timeoutMs, TimeUnit.MILLISECONDS)
    if (step.gzip) options = options.withCompression("gzip")
    var received = 0

    // After each streamed message: print it, run `after_first` after the first, cancel at `cancel_after_messages`,
    // pause (a slow reader). grpc-kotlin asks for the next message only when this returns, so meanwhile flow control
    // holds the server back; it cancels the call when this throws, as when `cancel_after_ms` cancels the coroutine.
    suspend fun onMessage(message: Message) {
        emitMessage(id, message)
        if (++received == 1) step.afterFirst.forEach { runStep(it) }
        if (received == step.cancelAfterMessages) throw CancellationException("cancel_after_messages")
        if (step.readPauseMs > 0) delay(step.readPauseMs)
    }

    suspend fun call() {
        val channel = ClientInterceptors.intercept(channelFor(step.connection ?: defaultConnection), seen)
        val (method, metadata) = step.method to step.metadata
        when (method.type) {
            MethodType.UNARY -> {
                emitMessage(id, ClientCalls.unaryRpc(channel, method, step.requests[0], options, metadata))
            }

            MethodType.SERVER_STREAMING -> {
                val responses = ClientCalls.serverStreamingRpc(channel, method, step.requests[0], options, metadata)
                responses.collect(::onMessage)
            }

            MethodType.CLIENT_STREAMING -> {
                val requests = step.requests.asFlow()
                emitMessage(id, ClientCalls.clientStreamingRpc(channel, method, requests, options, metadata))
            }

            else -> {
                // Lock-step: each request goes out once the previous response is printed; half-close after the last.
                val pending = ArrayDeque(step.requests)
                val requests = Channel<Message>(Channel.UNLIMITED)
                val sendNext = {
                    pending.removeFirstOrNull()?.let { requests.trySend(it) }
                    if (pending.isEmpty()) requests.close()
                }
                sendNext()
                ClientCalls.bidiStreamingRpc(channel, method, requests.consumeAsFlow(), options, metadata).collect {
                    onMessage(it)
                    sendNext()
                }
            }
        }
    }
    val status =
        try {
            if (step.cancelAfterMs > 0) withTimeout(step.cancelAfterMs) { call() } else call()
            Status.OK
        } catch (e: CancellationException) {
            // cancel_after_ms, cancel_after_messages: grpc-kotlin cancels the call; report how grpc-java closed it.
            withContext(NonCancellable) { withTimeoutOrNull(5000) { seen.closed.await() } } ?: Status.CANCELLED
        } catch (e: Exception) {
            Status.fromThrowable(e)
        }
    emitStatus(id, status, seen, (System.nanoTime() - start) / 1e6)
}

/** The log-scale latency bucket of [v] µs (CONTRACT.md "Bench steps"): 16 buckets per power of two above 31. */
fun bucket(v: Long): Int {
    val n = 64 - java.lang.Long.numberOfLeadingZeros(v)
    return if (n <= 5) v.toInt() else 16 * (n - 4) + ((v shr (n - 5)) and 15).toInt()
}

/**
 * A `bench` step: C coroutines on the step's one channel each repeat its call (printing nothing) until D ms have passed
 * since the step started, then the one `bench` line: OK calls, errors, messages, latency histogram, first error.
 */
suspend fun runBench(step: Step, bench: Bench) {
    val start = System.nanoTime()
    val end = start + bench.durationMs * 1_000_000
    val firstError = AtomicReference<Status>()
    val channel = // a certificate file it cannot read fails the step as one call
        try {
            channelFor(step.connection ?: defaultConnection)
        } catch (e: Exception) {
            firstError.set(Status.fromThrowable(e))
            null
        }
    val (method, metadata, requests) = Triple(step.method, step.metadata, step.requests)

    /** One call, as the step would run it; returns the messages it counts (an error is thrown as grpc-kotlin does). */
    suspend fun call(channel: ManagedChannel): Int {
        var options = CallOptions.DEFAULT
        if (step.timeoutMs > 0) options = options.withDeadlineAfter(step.timeoutMs, TimeUnit.MILLISECONDS)
        if (step.gzip) options = options.withCompression("gzip")
        return when (method.type) {
            MethodType.UNARY -> ClientCalls.unaryRpc(channel, method, requests[0], options, metadata).let { 1 }
            MethodType.SERVER_STREAMING -> {
                var n = 0
                ClientCalls.serverStreamingRpc(channel, method, requests[0], options, metadata).collect { n++ }
                n
            }
            MethodType.CLIENT_STREAMING -> {
                ClientCalls.clientStreamingRpc(channel, method, requests.asFlow(), options, metadata)
                requests.size
            }
            else -> { // lock-step Trade, as in runCall
                var n = 0
                val pending = ArrayDeque(requests)
                val sent = Channel<Message>(Channel.UNLIMITED)
                val sendNext = {
                    pending.removeFirstOrNull()?.let { sent.trySend(it) }
                    if (pending.isEmpty()) sent.close()
                }
                sendNext()
                ClientCalls.bidiStreamingRpc(channel, method, sent.consumeAsFlow(), options, metadata).collect {
                    n++
                    sendNext()
                }
                n
            }
        }
    }

    /** What one worker counted; the workers' tallies are summed at the end. */
    class Tally(
        var calls: Long = 0,
        var errors: Long = 0,
        var messages: Long = 0,
        val buckets: LongArray = LongArray(1024),
    )
    val tallies =
        if (channel == null) {
            listOf(Tally(errors = 1))
        } else {
            coroutineScope {
                List(bench.concurrency) {
                        async {
                            val tally = Tally()
                            while (System.nanoTime() < end) {
                                val t0 = System.nanoTime()
                                try {
                                    val n = call(channel)
                                    tally.buckets[bucket((System.nanoTime() - t0) / 1000)]++
                                    tally.calls++
                                    tally.messages += n
                                } catch (e: CancellationException) {
                                    throw e
                                } catch (e: Exception) {
                                    tally.errors++
                                    firstError.compareAndSet(null, Status.fromThrowable(e))
                                }
                            }
                            tally
                        }
                    }
                    .awaitAll()
            }
        }
    val elapsedMs = (System.nanoTime() - start) / 1e6
    val buckets =
        LongArray(1024).also { sum -> tallies.forEach { t -> t.buckets.forEachIndexed { b, c -> sum[b] += c } } }
    val result =
        mutableMapOf<String, Any>(
            "calls" to tallies.sumOf { it.calls },
            "errors" to tallies.sumOf { it.errors },
            "messages" to tallies.sumOf { it.messages },
            "elapsed_ms" to elapsedMs,
            "histogram" to buckets.indices.filter { buckets[it] > 0 }.map { listOf(it, buckets[it]) },
        )
    firstError.get()?.let { result["first_error"] = mapOf("code" to it.code.name, "message" to (it.description ?: "")) }
    printLine(mapOf("id" to step.id, "bench" to result))
}

private fun printLine(fields: Map<String, Any>) = printLine(gson.toJson(fields))

/** One output line, encoded at once and written in one piece (not in the PrintStream's 8 KiB chunks), then flushed. */
@Synchronized
private fun printLine(line: String) {
    val bytes = (line + "\n").toByteArray(Charsets.UTF_8)
    out.write(bytes, 0, bytes.size)
    out.flush()
}

/**
 * `{"id": ID, "message": M}`, byte for byte what Gson writes for that map with M parsed from the printer's output,
 * built without parsing and re-writing M (megabytes for a large value): see [unescapeHtml].
 */
fun emitMessage(id: String, message: Message) =
    printLine("{\"id\":" + gson.toJson(id) + ",\"message\":" + unescapeHtml(printer.print(message)) + "}")

/**
 * The printer's compact JSON as [gson] (HTML escaping off) re-writes it once parsed: the printer escapes strings with
 * an HTML-safe Gson, so each `\u003c`, `\u003e`, `\u0026`, `\u003d` and `\u0027` escape becomes its character; every
 * other escape is one both write alike, and all else (no whitespace, numbers as printed) is copied as it is.
 */
internal fun unescapeHtml(printed: String): String {
    var escape = printed.indexOf('\\')
    if (escape < 0) return printed // no escapes: base64 bytes, plain strings, numbers
    val text = StringBuilder(printed.length)
    var from = 0
    while (escape >= 0) {
        text.append(printed, from, escape)
        from =
            if (printed[escape + 1] == 'u') {
                val c = printed.substring(escape + 2, escape + 6).toInt(16).toChar()
                if (c in HTML_CHARS) text.append(c) else text.append(printed, escape, escape + 6)
                escape + 6
            } else {
                text.append(printed, escape, escape + 2)
                escape + 2
            }
        escape = printed.indexOf('\\', from)
    }
    return text.append(printed, from, printed.length).toString()
}

/** The characters only Gson's HTML-safe mode escapes. */
private const val HTML_CHARS = "<>&='"

/** The status line: the name from grpc-java's code enum, `x-stock-` metadata, timing, encoding, rich details. */
fun emitStatus(id: String, status: Status, seen: Seen, elapsedMs: Double) {
    // The google.rpc.Status in grpc-status-details-bin (grpc-java's StatusProto), if its code is the call's.
    val rich = runCatching { StatusProto.fromStatusAndTrailers(status, seen.trailers) }.getOrNull()
    val line =
        mapOf(
            "id" to id,
            "status" to mapOf("code" to status.code.name, "message" to (status.description ?: "")),
            "headers" to stockEntries(seen.headers),
            "trailers" to stockEntries(seen.trailers),
            "elapsed_ms" to elapsedMs,
            "response_encoding" to (seen.headers.get(GRPC_ENCODING) ?: "identity"),
            "details" to rich?.detailsList.orEmpty().mapNotNull { runCatching { json(detailPrinter, it) }.getOrNull() },
        )
    printLine(line)
}

private fun json(printer: JsonFormat.Printer, message: Message) = JsonParser.parseString(printer.print(message))

/** The `x-stock-` entries of received metadata, `-bin` ones in base64. */
private fun stockEntries(metadata: Metadata): Map<String, String> =
    metadata
        .keys()
        .filter { it.startsWith("x-stock-") }
        .sorted()
        .associateWith { key ->
            if (key.endsWith(Metadata.BINARY_HEADER_SUFFIX)) {
                Base64.getEncoder().encodeToString(metadata.get(Metadata.Key.of(key, Metadata.BINARY_BYTE_MARSHALLER)))
            } else {
                metadata.get(Metadata.Key.of(key, Metadata.ASCII_STRING_MARSHALLER)).orEmpty()
            }
        }

// grpc-java leaves the response's grpc-encoding header in the metadata it delivers.
private val GRPC_ENCODING = Metadata.Key.of("grpc-encoding", Metadata.ASCII_STRING_MARSHALLER)

/** What one call received: its response headers, its trailers, and the status it closed with. */
class Seen : ClientInterceptor {
    @Volatile var headers = Metadata()

    @Volatile var trailers = Metadata()
    val closed = CompletableDeferred<Status>()

    override fun <Q, R> interceptCall(method: MethodDescriptor<Q, R>, options: CallOptions, next: io.grpc.Channel) =
        object : ForwardingClientCall.SimpleForwardingClientCall<Q, R>(next.newCall(method, options)) {
            override fun start(listener: Listener<R>, metadata: Metadata) {
                val seeing =
                    object : ForwardingClientCallListener.SimpleForwardingClientCallListener<R>(listener) {
                        override fun onHeaders(received: Metadata) {
                            headers = received
                            super.onHeaders(received)
                        }

                        override fun onClose(status: Status, received: Metadata) {
                            trailers = received
                            closed.complete(status)
                            super.onClose(status, received)
                        }
                    }
                super.start(seeing, metadata)
            }
        }
}
