package stockmatrix

import com.google.gson.GsonBuilder
import com.google.gson.JsonArray
import com.google.gson.JsonElement
import com.google.gson.JsonObject
import com.google.gson.JsonParser
import com.google.protobuf.InvalidProtocolBufferException
import com.google.protobuf.Message
import com.google.protobuf.util.JsonFormat
import com.google.rpc.ErrorDetailsProto
import io.grpc.CallOptions
import io.grpc.ChannelCredentials
import io.grpc.ClientCall
import io.grpc.ClientInterceptor
import io.grpc.ForwardingClientCall
import io.grpc.ForwardingClientCallListener
import io.grpc.InsecureChannelCredentials
import io.grpc.ManagedChannel
import io.grpc.Metadata
import io.grpc.MethodDescriptor
import io.grpc.Status
import io.grpc.TlsChannelCredentials
import io.grpc.protobuf.StatusProto
import io.grpc.kotlin.AbstractCoroutineStub
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder
import kotlinx.coroutines.CancellationException
import kotlinx.coroutines.CompletableDeferred
import kotlinx.coroutines.NonCancellable
import kotlinx.coroutines.async
import kotlinx.coroutines.channels.Channel
import kotlinx.coroutines.coroutineScope
import kotlinx.coroutines.delay
import kotlinx.coroutines.flow.asFlow
import kotlinx.coroutines.flow.consumeAsFlow
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withContext
import kotlinx.coroutines.withTimeoutOrNull
import stock.v1.LedgerGrpcKt.LedgerCoroutineStub
import stock.v1.StockGrpcKt.StockCoroutineStub
import stock.v1.StockOuterClass.BatchItem
import stock.v1.StockOuterClass.Empty
import stock.v1.StockOuterClass.GetRequest
import stock.v1.StockOuterClass.PutRequest
import stock.v1.StockOuterClass.TradeOrder
import stock.v1.StockOuterClass.WatchRequest
import java.io.BufferedReader
import java.io.File
import java.io.FileDescriptor
import java.io.FileOutputStream
import java.io.InputStreamReader
import java.io.PrintStream
import java.util.Base64
import java.util.TreeMap
import java.util.concurrent.TimeUnit

/** One script step (see CONTRACT.md). */
class Step(
    val id: String,
    val method: String,
    val request: JsonElement?,
    val requests: JsonArray?,
    val metadata: Map<String, String>,
    val timeoutMs: Long,
    val compression: String?,
    val afterFirst: List<Step>,
    val cancelAfterMs: Long = 0,
    val copies: Int = 0,
    val readPauseMs: Long = 0,
) {
    companion object {
        fun parse(o: JsonObject): Step {
            fun str(name: String): String? =
                o.get(name)?.takeUnless { it.isJsonNull }?.let {
                    if (it.isJsonPrimitive &&
                        it.asJsonPrimitive.isString
                    ) {
                        it.asString
                    } else {
                        throw UsageException("step field $name must be a string")
                    }
                }
            val metadata =
                o.get("metadata")?.takeUnless { it.isJsonNull }?.let { md ->
                    if (!md.isJsonObject) throw UsageException("step field metadata must be an object")
                    md.asJsonObject.entrySet().associate { (k, v) ->
                        if (!v.isJsonPrimitive) throw UsageException("metadata $k must be a string")
                        k to v.asString
                    }
                } ?: emptyMap()
            fun millis(name: String): Long =
                o.get(name)?.takeUnless { it.isJsonNull }?.let {
                    try {
                        it.asLong
                    } catch (e: Exception) {
                        throw UsageException("step field $name must be a number")
                    }
                } ?: 0L
            val requests =
                o.get("requests")?.takeUnless { it.isJsonNull }?.let {
                    if (!it.isJsonArray) throw UsageException("step field requests must be an array")
                    it.asJsonArray
                }
            val afterFirst =
                o.get("after_first")?.takeUnless { it.isJsonNull }?.let { a ->
                    if (!a.isJsonArray) throw UsageException("step field after_first must be an array")
                    a.asJsonArray.map { if (it.isJsonObject) parse(it.asJsonObject) else throw UsageException("after_first holds steps") }
                } ?: emptyList()
            return Step(
                id = str("id") ?: "",
                method = str("method") ?: throw UsageException("step without method"),
                request = o.get("request")?.takeUnless { it.isJsonNull },
                requests = requests,
                metadata = metadata,
                timeoutMs = millis("timeout_ms"),
                compression = str("compression"),
                afterFirst = afterFirst,
                cancelAfterMs = millis("cancel_after_ms"),
                copies = millis("copies").toInt(),
                readPauseMs = millis("read_pause_ms"),
            )
        }
    }
}

/** The client's command-line options. */
class ClientConfig(
    opts: Options,
) {
    val server = opts.single("server") ?: throw UsageException("--server HOST:PORT is required")
    val tlsMode = opts.single("tls-mode") ?: "none"
    val caFile = opts.single("ca-file")
    val certFile = opts.single("cert-file")
    val keyFile = opts.single("key-file")
    val serverName = opts.single("server-name")
    val timeoutMs = opts.single("timeout-ms")?.let { it.toLongOrNull() ?: throw UsageException("--timeout-ms must be a number") } ?: 0L
    val metadata =
        opts.all("metadata").map {
            if (!it.contains('=')) throw UsageException("--metadata expects K=V, got $it")
            it.substringBefore('=') to it.substringAfter('=')
        }
    val compression = opts.single("compression")

    init {
        if (tlsMode !in setOf("none", "server", "mtls")) throw UsageException("unknown --tls-mode $tlsMode")
        if (compression != null && compression !in setOf("gzip", "identity")) throw UsageException("unknown --compression $compression")
    }
}

/** Writes the contract's JSON lines, UTF-8, one flush per line. */
object Output {
    private val out = PrintStream(FileOutputStream(FileDescriptor.out), false, Charsets.UTF_8)
    private val gson = GsonBuilder().disableHtmlEscaping().create()
    private val printer = JsonFormat.printer().omittingInsignificantWhitespace()

    /** Prints the Any details of a google.rpc.Status: knows every google.rpc error detail message. */
    private val detailPrinter =
        JsonFormat
            .printer()
            .usingTypeRegistry(
                JsonFormat.TypeRegistry
                    .newBuilder()
                    .add(ErrorDetailsProto.getDescriptor().messageTypes)
                    .build(),
            ).omittingInsignificantWhitespace()

    @Synchronized
    private fun line(s: String) {
        out.print(s)
        out.print('\n')
        out.flush()
    }

    fun message(
        id: String,
        msg: Message,
    ) = line("{\"id\":${gson.toJson(id)},\"message\":${printer.print(msg)}}")

    fun status(
        id: String,
        status: Status,
        seen: Seen,
        elapsedMs: Double,
    ) {
        val o = JsonObject()
        o.addProperty("id", id)
        o.add(
            "status",
            JsonObject().apply {
                addProperty("code", status.code.name)
                addProperty("message", status.description ?: "")
            },
        )
        o.add("headers", JsonObject().apply { seen.headers.forEach { (k, v) -> addProperty(k, v) } })
        o.add("trailers", JsonObject().apply { seen.stockTrailers.forEach { (k, v) -> addProperty(k, v) } })
        o.addProperty("elapsed_ms", elapsedMs)
        o.addProperty("response_encoding", seen.encoding)
        o.add("details", details(status, seen.trailers))
        line(gson.toJson(o))
    }

    /** The details of the google.rpc.Status in `grpc-status-details-bin` (grpc-java's StatusProto), in proto3 JSON. */
    private fun details(
        status: Status,
        trailers: Metadata,
    ): JsonArray {
        val all = JsonArray()
        if (status.isOk) return all
        val rich =
            try {
                StatusProto.fromStatusAndTrailers(status, trailers)
            } catch (e: IllegalArgumentException) {
                // grpc-status-details-bin whose code differs from the call's status.
                System.err.println("warning: ${e.message}")
                null
            }
        rich?.detailsList?.forEach {
            try {
                all.add(JsonParser.parseString(detailPrinter.print(it)))
            } catch (e: InvalidProtocolBufferException) {
                // A detail of a type the registry does not know: said on stderr, left out.
                System.err.println("warning: cannot print detail ${it.typeUrl}: ${e.message}")
            }
        }
        return all
    }
}

private val GRPC_ENCODING = Metadata.Key.of("grpc-encoding", Metadata.ASCII_STRING_MARSHALLER)

/**
 * The `x-stock-*` headers and trailers one call received (`-bin` ones base64), all its trailers (for
 * `grpc-status-details-bin`), the `grpc-encoding` of its response headers, and the status grpc-java
 * closed it with.
 */
class Seen : ClientInterceptor {
    @Volatile var headers: Map<String, String> = emptyMap()

    @Volatile var stockTrailers: Map<String, String> = emptyMap()

    @Volatile var trailers: Metadata = Metadata()

    @Volatile var encoding: String = "identity"

    val closed = CompletableDeferred<Status>()

    private fun stock(md: Metadata): Map<String, String> {
        val found = TreeMap<String, String>()
        for (k in md.keys()) {
            if (!k.startsWith("x-stock-")) continue
            if (k.endsWith(Metadata.BINARY_HEADER_SUFFIX)) {
                md.get(Metadata.Key.of(k, Metadata.BINARY_BYTE_MARSHALLER))?.let { found[k] = Base64.getEncoder().encodeToString(it) }
            } else {
                md.get(Metadata.Key.of(k, Metadata.ASCII_STRING_MARSHALLER))?.let { found[k] = it }
            }
        }
        return found
    }

    override fun <Q, R> interceptCall(
        method: MethodDescriptor<Q, R>,
        options: CallOptions,
        next: io.grpc.Channel,
    ): ClientCall<Q, R> =
        object : ForwardingClientCall.SimpleForwardingClientCall<Q, R>(next.newCall(method, options)) {
            override fun start(
                listener: Listener<R>,
                md: Metadata,
            ) {
                super.start(
                    object : ForwardingClientCallListener.SimpleForwardingClientCallListener<R>(listener) {
                        override fun onHeaders(h: Metadata) {
                            headers = stock(h)
                            // grpc-java leaves the response's grpc-encoding header in the metadata it delivers.
                            h.get(GRPC_ENCODING)?.let { encoding = it }
                            super.onHeaders(h)
                        }

                        override fun onClose(
                            status: Status,
                            t: Metadata,
                        ) {
                            stockTrailers = stock(t)
                            trailers = t
                            closed.complete(status)
                            super.onClose(status, t)
                        }
                    },
                    md,
                )
            }
        }
}

private val parser = JsonFormat.parser()

private fun <B : Message.Builder> parseMessage(
    json: JsonElement?,
    builder: B,
    id: String,
): Message {
    try {
        if (json != null) parser.merge(json.toString(), builder)
    } catch (e: Exception) {
        throw UsageException("step \"$id\": invalid ${builder.descriptorForType.name}: ${e.message}")
    }
    return builder.build()
}

/** A step's request messages, parsed and checked before anything is sent. */
private fun prepare(step: Step): List<Message> {
    val streaming = step.method == "Batch" || step.method == "Trade"
    val builder: () -> Message.Builder =
        when (step.method) {
            "Get" -> GetRequest::newBuilder
            "Put" -> PutRequest::newBuilder
            "Monitor" -> WatchRequest::newBuilder
            "Batch" -> BatchItem::newBuilder
            "Trade" -> TradeOrder::newBuilder
            "Inventory", "Audit", "Ledger.Balance" -> Empty::newBuilder
            else -> throw UsageException("step \"${step.id}\": unknown method \"${step.method}\"")
        }
    if (step.afterFirst.isNotEmpty() &&
        step.method != "Monitor"
    ) {
        throw UsageException("step \"${step.id}\": after_first is for Monitor only")
    }
    step.afterFirst.forEach { prepare(it) }
    return if (streaming) {
        if (step.request != null) throw UsageException("step \"${step.id}\": ${step.method} takes `requests`")
        (step.requests ?: JsonArray()).map { parseMessage(it, builder(), step.id) }
    } else {
        if (step.requests != null) throw UsageException("step \"${step.id}\": ${step.method} takes `request`")
        listOf(parseMessage(step.request, builder(), step.id))
    }
}

class Runner(
    private val channel: ManagedChannel,
    private val config: ClientConfig,
) {
    private fun <S : AbstractCoroutineStub<S>> configure(
        stub: S,
        step: Step,
        seen: Seen,
    ): S {
        var s = stub.withInterceptors(seen)
        val timeout = if (step.timeoutMs > 0) step.timeoutMs else config.timeoutMs
        if (timeout > 0) s = s.withDeadlineAfter(timeout, TimeUnit.MILLISECONDS)
        if ((step.compression ?: config.compression) == "gzip") s = s.withCompression("gzip")
        return s
    }

    /** The call's metadata; a `-bin` key's value is base64 and goes out as binary metadata. */
    private fun metadata(step: Step): Metadata {
        val md = Metadata()
        for ((k, v) in config.metadata + step.metadata.toList()) {
            if (k.endsWith(Metadata.BINARY_HEADER_SUFFIX)) {
                val bytes =
                    try {
                        Base64.getDecoder().decode(v)
                    } catch (e: IllegalArgumentException) {
                        throw UsageException("metadata $k: invalid base64 \"$v\"")
                    }
                md.put(Metadata.Key.of(k, Metadata.BINARY_BYTE_MARSHALLER), bytes)
            } else {
                md.put(Metadata.Key.of(k, Metadata.ASCII_STRING_MARSHALLER), v)
            }
        }
        return md
    }

    /** Runs one step; with `copies`, that many calls at once on the channel, copy k under the id `ID*k`. */
    suspend fun runStep(step: Step) {
        val requests = prepare(step)
        if (step.copies > 1) {
            coroutineScope { repeat(step.copies) { k -> launch { runCall(step, requests, "${step.id}*$k") } } }
        } else {
            runCall(step, requests, step.id)
        }
    }

    /** One call of [step], its lines under [id]. */
    private suspend fun runCall(
        step: Step,
        requests: List<Message>,
        id: String,
    ) {
        val seen = Seen()
        val start = System.nanoTime()
        val status =
            try {
                cancelAfter(step.cancelAfterMs) { call(step, requests, seen, id) }
                Status.OK
            } catch (e: UsageException) {
                throw e
            } catch (e: CancellationException) {
                // cancel_after_ms: grpc-kotlin cancels the ClientCall when its coroutine is cancelled and
                // throws the CancellationException; the status is the one grpc-java closes the call with.
                withContext(NonCancellable) { withTimeoutOrNull(5000) { seen.closed.await() } }
                    ?: throw IllegalStateException("the cancelled call was never closed", e)
            } catch (e: Exception) {
                Status.fromThrowable(e)
            }
        Output.status(id, status, seen, (System.nanoTime() - start) / 1e6)
    }

    /** Runs [block], cancelling its coroutine (grpc-kotlin's cancellation) [ms] after it started unless it ended first. */
    private suspend fun cancelAfter(
        ms: Long,
        block: suspend () -> Unit,
    ) {
        if (ms <= 0) return block()
        coroutineScope {
            val work = async { block() }
            val timer =
                launch {
                    delay(ms)
                    work.cancel()
                }
            try {
                work.await()
            } finally {
                timer.cancel()
            }
        }
    }

    @Suppress("UNCHECKED_CAST")
    private suspend fun call(
        step: Step,
        requests: List<Message>,
        seen: Seen,
        id: String,
    ) {
        val md = metadata(step)
        if (step.method == "Ledger.Balance") {
            Output.message(id, configure(LedgerCoroutineStub(channel), step, seen).balance(requests[0] as Empty, md))
            return
        }
        val stub = configure(StockCoroutineStub(channel), step, seen)
        when (step.method) {
            "Get" -> {
                Output.message(id, stub.get(requests[0] as GetRequest, md))
            }

            "Put" -> {
                Output.message(id, stub.put(requests[0] as PutRequest, md))
            }

            "Inventory" -> {
                Output.message(id, stub.inventory(requests[0] as Empty, md))
            }

            "Audit" -> {
                Output.message(id, stub.audit(requests[0] as Empty, md))
            }

            "Batch" -> {
                Output.message(id, stub.batch((requests as List<BatchItem>).asFlow(), md))
            }

            "Monitor" -> {
                // grpc-kotlin requests the next message only when this block returns, so while it runs
                // (after_first steps, read_pause_ms) nothing is read and flow control holds the server back.
                var count = 0
                stub.monitor(requests[0] as WatchRequest, md).collect { event ->
                    Output.message(id, event)
                    if (++count == 1) step.afterFirst.forEach { runStep(it) }
                    if (step.readPauseMs > 0) delay(step.readPauseMs)
                }
            }

            "Trade" -> {
                // Lock-step: the next order goes out only after the previous fill was printed.
                val pending = ArrayDeque(requests as List<TradeOrder>)
                val orders = Channel<TradeOrder>(Channel.UNLIMITED)

                fun sendNext() {
                    pending.removeFirstOrNull()?.let { orders.trySend(it) }
                    if (pending.isEmpty()) orders.close()
                }
                sendNext()
                stub.trade(orders.consumeAsFlow(), md).collect { fill ->
                    Output.message(id, fill)
                    if (step.readPauseMs > 0) delay(step.readPauseMs)
                    sendNext()
                }
            }
        }
    }
}

private fun stdinLines(): Sequence<String> =
    BufferedReader(InputStreamReader(System.`in`, Charsets.UTF_8)).lineSequence().filter {
        it.isNotBlank()
    }

private fun jsonLine(line: String): JsonElement =
    try {
        JsonParser.parseString(line)
    } catch (e: Exception) {
        throw UsageException("invalid JSON line: $line")
    }

/** The step a single command stands for (null for `script`). */
private fun commandStep(
    command: String,
    args: List<String>,
): Step? {
    fun b64(s: String) = Base64.getEncoder().encodeToString(s.toByteArray(Charsets.UTF_8))

    fun step(
        method: String,
        request: JsonElement? = null,
        requests: JsonArray? = null,
    ) = Step(command, method, request, requests, emptyMap(), 0, null, emptyList())

    fun want(n: Int) {
        if (args.size != n) throw UsageException("$command takes $n argument(s)")
    }

    fun obj(vararg pairs: Pair<String, Any>) =
        JsonObject().apply {
            for ((k, v) in pairs) {
                when (v) {
                    is String -> addProperty(k, v)
                    is Number -> addProperty(k, v)
                    is Boolean -> addProperty(k, v)
                }
            }
        }
    return when (command) {
        "get" -> {
            want(1)
            step("Get", obj("key" to args[0]))
        }

        "put" -> {
            want(2)
            step("Put", obj("key" to args[0], "value" to b64(args[1])))
        }

        "monitor" -> {
            val o = parseOptions(args, setOf("max-events"), setOf("include-existing"), anywhere = true)
            if (o.rest.size != 1) throw UsageException("monitor takes one PATTERN")
            val max = o.single("max-events")?.let { it.toIntOrNull() ?: throw UsageException("--max-events must be a number") } ?: 0
            step("Monitor", obj("pattern" to o.rest[0], "maxEvents" to max, "includeExisting" to ("include-existing" in o.flags)))
        }

        "batch" -> {
            val items = JsonArray()
            if (args.isEmpty()) {
                stdinLines().forEach { items.add(jsonLine(it)) }
            } else {
                for (a in args) {
                    if (!a.contains('=')) throw UsageException("batch items are KEY=VALUE, got $a")
                    items.add(obj("key" to a.substringBefore('='), "value" to b64(a.substringAfter('='))))
                }
            }
            step("Batch", requests = items)
        }

        "trade" -> {
            want(0)
            step("Trade", requests = JsonArray().apply { stdinLines().forEach { add(jsonLine(it)) } })
        }

        "inventory" -> {
            want(0)
            step("Inventory")
        }

        "script" -> {
            want(0)
            null
        }

        else -> {
            throw UsageException("unknown command $command")
        }
    }
}

private fun channel(config: ClientConfig): ManagedChannel {
    fun file(
        flag: String,
        path: String?,
    ) = File(path ?: throw UsageException("--$flag is required with --tls-mode ${config.tlsMode}"))
    val creds: ChannelCredentials =
        when (config.tlsMode) {
            "none" -> {
                InsecureChannelCredentials.create()
            }

            else -> {
                val ca = file("ca-file", config.caFile)
                val tls = TlsChannelCredentials.newBuilder().trustManager(ca)
                if (config.tlsMode == "mtls") tls.keyManager(file("cert-file", config.certFile), file("key-file", config.keyFile))
                tls.build()
            }
        }
    val builder = NettyChannelBuilder.forTarget(config.server, creds).maxInboundMessageSize(4 shl 20)
    config.serverName?.let { builder.overrideAuthority(it) }
    return builder.build()
}

fun runClient(args: List<String>): Int {
    val opts =
        parseOptions(
            args,
            setOf("server", "tls-mode", "ca-file", "cert-file", "key-file", "server-name", "timeout-ms", "metadata", "compression"),
            emptySet(),
        )
    val config = ClientConfig(opts)
    val command = opts.rest.firstOrNull() ?: throw UsageException("missing COMMAND")
    val single = commandStep(command, opts.rest.drop(1))
    val channel = channel(config)
    val runner = Runner(channel, config)
    try {
        runBlocking {
            if (single != null) {
                single.let { runner.runStep(it) }
            } else {
                for (line in stdinLines()) {
                    val json = jsonLine(line)
                    if (!json.isJsonObject) throw UsageException("a step is a JSON object: $line")
                    runner.runStep(Step.parse(json.asJsonObject))
                }
            }
        }
    } finally {
        channel.shutdownNow()
    }
    return 0
}
