package stockmatrix

import com.google.protobuf.ByteString
import io.grpc.*
import io.grpc.health.v1.HealthCheckResponse.ServingStatus
import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder
import io.grpc.protobuf.services.HealthStatusManager
import io.grpc.protobuf.services.ProtoReflectionServiceV1
import java.io.File
import java.net.InetSocketAddress
import java.util.Properties
import java.util.concurrent.CountDownLatch
import java.util.concurrent.TimeUnit
import kotlin.concurrent.thread
import kotlin.system.exitProcess
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.flow
import kotlinx.coroutines.flow.toList
import proto.KVGrpcKt
import proto.Kv
import stock.v1.StockGrpcKt
import stock.v1.StockOuterClass.*
import sun.misc.Signal

fun main(args: Array<String>) {
    val options =
        try {
            parseArgs(args)
        } catch (e: IllegalArgumentException) {
            System.err.println("usage error: ${e.message}")
            exitProcess(2)
        }
    val server =
        try {
            serve(options)
        } catch (e: Exception) {
            System.err.println("error: cannot serve: ${e.cause ?: e}")
            exitProcess(1)
        }
    val stop = CountDownLatch(1)
    Signal.handle(Signal("TERM")) { stop.countDown() }
    Signal.handle(Signal("INT")) { stop.countDown() }
    thread(isDaemon = true) {
        runCatching { while (System.`in`.read(ByteArray(256)) >= 0) Unit }
        stop.countDown()
    }
    stop.await()
    server.shutdownNow().awaitTermination(1, TimeUnit.SECONDS)
    exitProcess(0)
}

/** `--port N [--host H] [--tls-mode none|server|mtls] [--cert-file F --key-file F] [--ca-file F]`. */
fun parseArgs(args: Array<String>): Map<String, String> {
    val known = setOf("port", "host", "tls-mode", "cert-file", "key-file", "ca-file")
    val options =
        args.toList().chunked(2).associate { pair ->
            val name = pair[0].removePrefix("--")
            require(pair[0].startsWith("--") && name in known) { "unknown argument ${pair[0]}" }
            name to requireNotNull(pair.getOrNull(1)) { "${pair[0]} needs a value" }
        }
    require(options["port"]?.toIntOrNull() != null) { "--port N is required" }
    require(options["tls-mode"] in setOf(null, "none", "server", "mtls")) { "unknown --tls-mode" }
    return options
}

/** Starts the server: credentials, Stock with the hooks, proto.KV, health, reflection; prints `listening on`. */
fun serve(options: Map<String, String>): Server {
    fun file(name: String) = File(requireNotNull(options[name]) { "--$name is required with this --tls-mode" })
    val credentials: ServerCredentials =
        when (options["tls-mode"]) {
            "server" -> TlsServerCredentials.create(file("cert-file"), file("key-file"))
            "mtls" ->
                TlsServerCredentials.newBuilder()
                    .keyManager(file("cert-file"), file("key-file"))
                    .trustManager(file("ca-file"))
                    .clientAuth(TlsServerCredentials.ClientAuth.REQUIRE)
                    .build()
            else -> InsecureServerCredentials.create()
        }
    val health = HealthStatusManager()
    listOf("", "stock.v1.Stock", "proto.KV").forEach { health.setStatus(it, ServingStatus.SERVING) }
    val store = Store()
    val host = options["host"] ?: "127.0.0.1"
    val server =
        NettyServerBuilder.forAddress(InetSocketAddress(host, options["port"]!!.toInt()), credentials)
            .addService(ServerInterceptors.intercept(StockService(store), HooksInterceptor))
            .addService(KvService(store))
            .addService(health.healthService)
            .addService(ProtoReflectionServiceV1.newInstance())
            .addStreamTracerFactory(DeadlineTracer)
            .maxInboundMessageSize(4 shl 20)
            .maxInboundMetadataSize(16 shl 10) // the contract's header-list limit
            .build()
            .start()
    println("listening on $host:${server.port}")
    System.out.flush()
    return server
}

/** `stock.v1.Stock`: each method runs in [enter] (delay, liveness, watchers, unary fail); Audit is unimplemented. */
class StockService(private val store: Store) : StockGrpcKt.StockCoroutineImplBase() {
    override suspend fun get(request: GetRequest): GetResponse =
        enter(unary = true, store) { hooks ->
            val (value, version) = store.get(request.key)
            // x-stock-repeat-value: the stored value that many times over (a response past 4 MiB).
            val repeated = ByteString.copyFrom(List(hooks.repeatValue) { value })
            GetResponse.newBuilder().setValue(repeated).setVersion(version).build()
        }

    override suspend fun put(request: PutRequest): Empty =
        enter(unary = true, store) {
            store.put(request.key, request.value)
            Empty.getDefaultInstance()
        }

    override fun monitor(request: WatchRequest): Flow<WatchEvent> = flow {
        enter(unary = false, store) { hooks ->
            if (request.pattern.isEmpty()) throw badField("pattern", "pattern must not be empty")
            if (request.maxEvents < 0) throw badField("max_events", "max_events must not be negative")
            val (existing, watcher) = store.watch(request.pattern, request.includeExisting)
            try {
                val pending = existing.iterator()
                var sent = 0L
                while (true) {
                    if (hooks.fail != null && sent == hooks.failAfter) throw forcedStatus(hooks.fail)
                    if (request.maxEvents > 0 && sent >= request.maxEvents) break
                    emit(if (pending.hasNext()) pending.next() else watcher.events.receive())
                    sent++
                }
            } finally {
                store.unwatch(watcher)
            }
        }
    }

    override suspend fun batch(requests: Flow<BatchItem>): BatchSummary =
        enter(unary = false, store) { hooks ->
            // A request stream that ends in a cancellation or the deadline throws here: it is not a half-close.
            val items = requests.toList()
            ensureLive()
            if (hooks.fail != null) throw forcedStatus(hooks.fail)
            store.batch(items)
        }

    override fun trade(requests: Flow<TradeOrder>): Flow<TradeFill> = flow {
        enter(unary = false, store) { hooks ->
            if (hooks.fail != null && hooks.failAfter == 0L) throw forcedStatus(hooks.fail)
            val positions = HashMap<String, Long>()
            var sequence = 0L
            requests.collect { order ->
                if (order.quantity <= 0) throw badField("quantity", "quantity must be > 0, got ${order.quantity}")
                val signed = if (order.side == Side.BUY) order.quantity else -order.quantity
                val position = positions.merge(order.symbol, signed, Long::plus)!!
                val fill =
                    TradeFill.newBuilder()
                        .setOrderId(order.orderId)
                        .setSymbol(order.symbol)
                        .setSideValue(order.sideValue)
                        .setQuantity(order.quantity)
                        .setPriceCents(order.priceCents)
                emit(fill.setSequence(++sequence).setNetPosition(position).build())
                if (hooks.fail != null && sequence == hooks.failAfter) throw forcedStatus(hooks.fail)
            }
        }
    }

    override suspend fun inventory(request: Empty): InventoryStatus =
        enter(unary = true, store) { hooks ->
            val (keys, bytes) = store.totals(hooks.countPrefix)
            val versions = Properties()
            StockService::class.java.getResourceAsStream("/stock-versions.properties")?.use(versions::load)
            val stack = "grpc-kotlin ${versions["grpc-kotlin"]} (grpc-java ${versions["grpc-java"]})"
            InventoryStatus.newBuilder()
                .setKeyCount(keys)
                .setTotalValueBytes(bytes)
                .setLanguage("kotlin")
                .setStack(stack)
                .build()
        }
}

/** The legacy `proto.KV` service (go-plugin's kvproto) over the same store, without the hooks. */
class KvService(private val store: Store) : KVGrpcKt.KVCoroutineImplBase() {
    override suspend fun get(request: Kv.GetRequest): Kv.GetResponse =
        Kv.GetResponse.newBuilder().setValue(store.get(request.key).first).build()

    override suspend fun put(request: Kv.PutRequest): Kv.Empty {
        store.put(request.key, request.value)
        return Kv.Empty.getDefaultInstance()
    }
}
