package stockmatrix

import com.google.protobuf.ByteString
import io.grpc.Status
import kotlinx.coroutines.channels.Channel
import stock.v1.StockOuterClass.BatchItem
import stock.v1.StockOuterClass.BatchSummary
import stock.v1.StockOuterClass.WatchEvent
import java.util.Arrays

const val MAX_KEY = 256
const val MAX_VALUE = 1 shl 20

fun validateKey(key: String) {
    val n = key.toByteArray(Charsets.UTF_8).size
    if (n < 1 || n > MAX_KEY) {
        throw badField("key", "key must be 1 to $MAX_KEY bytes, got $n")
    }
}

fun validateValue(value: ByteString) {
    if (value.size() > MAX_VALUE) {
        throw badField("value", "value must be at most $MAX_VALUE bytes, got ${value.size()}")
    }
}

/** Does [key] match a watch pattern (`prefix*` or exact)? */
fun matches(
    pattern: String,
    key: String,
): Boolean = if (pattern.endsWith("*")) key.startsWith(pattern.dropLast(1)) else key == pattern

/** A registered Monitor: live events go to [events]. */
class Watcher(
    val pattern: String,
) {
    val events = Channel<WatchEvent>(Channel.UNLIMITED)
}

/** The in-memory store; keys, versions and watchers share one lock. */
class Store {
    private class Entry(
        var value: ByteString,
        var version: Long,
    )

    private val lock = Any()
    private val map = HashMap<String, Entry>()
    private val watchers = ArrayList<Watcher>()

    fun get(key: String): Pair<ByteString, Long>? = synchronized(lock) { map[key]?.let { it.value to it.version } }

    /** Writes one key and notifies watchers; true when the key was created. Caller holds the lock. */
    private fun putLocked(
        key: String,
        value: ByteString,
    ): Boolean {
        val entry = map.getOrPut(key) { Entry(ByteString.EMPTY, 0) }
        val created = entry.version == 0L
        entry.version += 1
        entry.value = value
        val event =
            WatchEvent
                .newBuilder()
                .setKey(key)
                .setValue(value)
                .setVersion(entry.version)
                .setExisting(false)
                .build()
        for (w in watchers) {
            if (matches(w.pattern, key)) w.events.trySend(event)
        }
        return created
    }

    fun put(
        key: String,
        value: ByteString,
    ) {
        synchronized(lock) { putLocked(key, value) }
    }

    /** Get as both services define it: the key's value and version, else INVALID_ARGUMENT or NOT_FOUND. */
    fun require(key: String): Pair<ByteString, Long> {
        validateKey(key)
        return get(key) ?: throw Status.NOT_FOUND.withDescription("key not found: $key").asException()
    }

    /** Put as both services define it: INVALID_ARGUMENT for a bad key or value, else written. */
    fun checkedPut(
        key: String,
        value: ByteString,
    ) {
        validateKey(key)
        validateValue(value)
        put(key, value)
    }

    /** Validates every item, then applies them all under one lock (all or nothing). */
    fun batch(items: List<BatchItem>): BatchSummary {
        for (item in items) {
            validateKey(item.key)
            validateValue(item.value)
        }
        var bytes = 0L
        var created = 0
        var updated = 0
        synchronized(lock) {
            for (item in items) {
                bytes += item.value.size()
                if (putLocked(item.key, item.value)) created++ else updated++
            }
        }
        return BatchSummary
            .newBuilder()
            .setItems(items.size)
            .setValueBytes(bytes)
            .setCreated(created)
            .setUpdated(updated)
            .build()
    }

    /** Snapshot of existing matching keys (sorted by key bytes) and registration, atomically. */
    fun watch(
        pattern: String,
        includeExisting: Boolean,
    ): Pair<List<WatchEvent>, Watcher> {
        val watcher = Watcher(pattern)
        synchronized(lock) {
            val existing =
                if (includeExisting) {
                    map.entries
                        .filter { matches(pattern, it.key) }
                        .map { it.key.toByteArray(Charsets.UTF_8) to it }
                        .sortedWith { a, b -> Arrays.compareUnsigned(a.first, b.first) }
                        .map { (_, e) ->
                            WatchEvent
                                .newBuilder()
                                .setKey(e.key)
                                .setValue(e.value.value)
                                .setVersion(e.value.version)
                                .setExisting(true)
                                .build()
                        }
                } else {
                    emptyList()
                }
            watchers.add(watcher)
            return existing to watcher
        }
    }

    /** How many Monitors are registered with a pattern that starts with [prefix]. */
    fun watchers(prefix: String): Int = synchronized(lock) { watchers.count { it.pattern.startsWith(prefix) } }

    fun unwatch(watcher: Watcher) {
        synchronized(lock) { watchers.remove(watcher) }
        watcher.events.close()
    }

    fun totals(): Pair<Long, Long> = synchronized(lock) { map.size.toLong() to map.values.sumOf { it.value.size().toLong() } }
}
