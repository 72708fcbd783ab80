package stockmatrix

import com.google.protobuf.Any
import com.google.protobuf.ByteString
import com.google.rpc.BadRequest
import io.grpc.Status
import io.grpc.StatusException
import io.grpc.protobuf.StatusProto
import java.util.Arrays
import kotlinx.coroutines.channels.Channel
import stock.v1.StockOuterClass.BatchItem
import stock.v1.StockOuterClass.BatchSummary
import stock.v1.StockOuterClass.WatchEvent

const val MAX_KEY = 256
const val MAX_VALUE = 1 shl 20

fun validateKey(key: String) {
    val n = key.toByteArray().size
    if (n < 1 || n > MAX_KEY) throw badField("key", "key must be 1 to $MAX_KEY bytes, got $n")
}

fun validateValue(value: ByteString) {
    if (value.size() > MAX_VALUE) throw badField("value", "value must be at most $MAX_VALUE bytes, got ${value.size()}")
}

/** INVALID_ARGUMENT for a refused request, with a google.rpc.BadRequest naming [field] (grpc-java's StatusProto). */
fun badField(field: String, description: String): StatusException {
    val violation = BadRequest.FieldViolation.newBuilder().setField(field).setDescription(description)
    val detail = Any.pack(BadRequest.newBuilder().addFieldViolations(violation).build())
    val rich = com.google.rpc.Status.newBuilder().setCode(Status.Code.INVALID_ARGUMENT.value()).setMessage(description)
    return StatusProto.toStatusException(rich.addDetails(detail).build())
}

/** Does [key] match a watch pattern (`prefix*`, or exact)? */
fun matches(pattern: String, key: String): Boolean =
    if (pattern.endsWith("*")) key.startsWith(pattern.dropLast(1)) else key == pattern

/** A registered Monitor: the puts that match its pattern go to [events]. */
class Watcher(val pattern: String) {
    val events = Channel<WatchEvent>(Channel.UNLIMITED)
}

/** The in-memory store: each key's latest put (value and version) and the watchers, under one lock. */
class Store {
    private val entries = HashMap<String, WatchEvent>()
    private val watchers = ArrayList<Watcher>()

    /** The key's value and version: INVALID_ARGUMENT for a bad key, NOT_FOUND for a missing one. */
    fun get(key: String): Pair<ByteString, Long> {
        validateKey(key)
        val entry = synchronized(this) { entries[key] }
        entry ?: throw Status.NOT_FOUND.withDescription("key not found: $key").asException()
        return entry.value to entry.version
    }

    /** Validates, then writes and tells the matching watchers. */
    fun put(key: String, value: ByteString) {
        validateKey(key)
        validateValue(value)
        synchronized(this) { write(key, value) }
    }

    /** Writes one key (the lock held) and tells the matching watchers; true when the key is new. */
    private fun write(key: String, value: ByteString): Boolean {
        val version = (entries[key]?.version ?: 0) + 1
        val event = WatchEvent.newBuilder().setKey(key).setValue(value).setVersion(version).build()
        entries[key] = event
        watchers.filter { matches(it.pattern, key) }.forEach { it.events.trySend(event) }
        return version == 1L
    }

    /** Validates every item, then applies them all under one lock (all or nothing). */
    fun batch(items: List<BatchItem>): BatchSummary {
        items.forEach {
            validateKey(it.key)
            validateValue(it.value)
        }
        val created = synchronized(this) { items.count { write(it.key, it.value) } }
        return BatchSummary.newBuilder()
            .setItems(items.size)
            .setValueBytes(items.sumOf { it.value.size().toLong() })
            .setCreated(created)
            .setUpdated(items.size - created)
            .build()
    }

    /** Snapshots the matching keys (sorted by key bytes) and registers the watcher, in one critical section. */
    @Synchronized
    fun watch(pattern: String, includeExisting: Boolean): Pair<List<WatchEvent>, Watcher> {
        val existing =
            entries.values
                .filter { includeExisting && matches(pattern, it.key) }
                .sortedWith { a, b -> Arrays.compareUnsigned(a.key.toByteArray(), b.key.toByteArray()) }
                .map { it.toBuilder().setExisting(true).build() }
        val watcher = Watcher(pattern)
        watchers.add(watcher)
        return existing to watcher
    }

    fun unwatch(watcher: Watcher) {
        synchronized(this) { watchers.remove(watcher) }
        watcher.events.close()
    }

    /** How many Monitors are open with a pattern that starts with [prefix]. */
    @Synchronized fun watchers(prefix: String): Int = watchers.count { it.pattern.startsWith(prefix) }

    /** The number of keys that start with [prefix] (all keys when null) and the bytes of all their values. */
    @Synchronized
    fun totals(prefix: String?): Pair<Long, Long> {
        val counted = entries.values.filter { prefix == null || it.key.startsWith(prefix) }
        return counted.size.toLong() to counted.sumOf { it.value.size().toLong() }
    }
}
