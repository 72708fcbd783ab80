package stockmatrix

import com.google.protobuf.{Any, ByteString}
import com.google.rpc.BadRequest
import io.grpc.{Status, StatusException}
import io.grpc.protobuf.StatusProto
import stock.v1.StockOuterClass.{BatchItem, BatchSummary, WatchEvent}

import java.nio.charset.StandardCharsets.UTF_8
import scala.collection.mutable

object Store {
  val MaxValue: Int = 1 << 20

  /** INVALID_ARGUMENT for a refused request, with a google.rpc.BadRequest naming `field` (grpc-java's StatusProto). */
  def badField(field: String, description: String): StatusException = {
    val violation = BadRequest.FieldViolation.newBuilder().setField(field).setDescription(description)
    val status = com.google.rpc.Status
      .newBuilder()
      .setCode(Status.Code.INVALID_ARGUMENT.value)
      .setMessage(description)
      .addDetails(Any.pack(BadRequest.newBuilder().addFieldViolations(violation).build()))
    StatusProto.toStatusException(status.build())
  }

  def validateKey(key: String): Option[StatusException] = {
    val n = key.getBytes(UTF_8).length
    Option.when(n < 1 || n > 256)(badField("key", s"key must be 1 to 256 bytes of UTF-8, got $n bytes"))
  }

  def validateValue(value: ByteString): Option[StatusException] =
    Option.when(value.size > MaxValue)(badField("value", s"value must be at most $MaxValue bytes, got ${value.size}"))

  /** `prefix*` matches the keys that start with prefix, any other pattern only itself. */
  def matches(pattern: String, key: String): Boolean =
    if (pattern.endsWith("*")) key.startsWith(pattern.dropRight(1)) else key == pattern
}

/** A registered Monitor: receives every later matching put. */
final class Watch(val pattern: String, val deliver: WatchEvent => Unit)

/** The in-memory store and the watch registry, guarded together by this object's lock. */
final class Store {
  import Store._

  private val entries = mutable.HashMap.empty[String, (ByteString, Long)]
  private val watches = mutable.LinkedHashSet.empty[Watch]

  private def event(key: String, value: ByteString, version: Long, existing: Boolean): WatchEvent =
    WatchEvent.newBuilder().setKey(key).setValue(value).setVersion(version).setExisting(existing).build()

  /** The key's value and version; INVALID_ARGUMENT for a bad key, NOT_FOUND (naming the key) for a missing one. */
  def get(key: String): Either[StatusException, (ByteString, Long)] =
    validateKey(key).toLeft(synchronized(entries.get(key))).flatMap {
      _.toRight(Status.NOT_FOUND.withDescription(s"key \"$key\" not found").asException())
    }

  /** Validates, then writes (the version bumped) and streams the put to the matching watches. */
  def put(key: String, value: ByteString): Either[StatusException, Unit] =
    validateKey(key).orElse(validateValue(value)).toLeft(synchronized { putLocked(key, value); () })

  /** Returns whether the key was created. */
  private def putLocked(key: String, value: ByteString): Boolean = {
    val before = entries.get(key)
    val version = before.fold(1L)(_._2 + 1)
    entries.update(key, (value, version))
    val ev = event(key, value, version, existing = false)
    watches.toList.foreach(w => if (matches(w.pattern, key)) w.deliver(ev))
    before.isEmpty
  }

  /** Validates every item first, then applies all of them (all or nothing). */
  def batch(items: Seq[BatchItem]): Either[StatusException, BatchSummary] =
    items.iterator.flatMap(i => validateKey(i.getKey).orElse(validateValue(i.getValue))).nextOption().toLeft {
      synchronized {
        val created = items.count(i => putLocked(i.getKey, i.getValue))
        BatchSummary
          .newBuilder()
          .setItems(items.size)
          .setValueBytes(items.map(_.getValue.size.toLong).sum)
          .setCreated(created)
          .setUpdated(items.size - created)
          .build()
      }
    }

  /** Registers a watch and delivers the existing matching keys (ascending key bytes) in one critical section. */
  def watch(pattern: String, includeExisting: Boolean, deliver: WatchEvent => Unit): Watch = synchronized {
    val w = new Watch(pattern, deliver)
    watches += w
    if (includeExisting)
      entries.toSeq
        .filter { case (k, _) => matches(pattern, k) }
        .sortWith((a, b) => java.util.Arrays.compareUnsigned(a._1.getBytes(UTF_8), b._1.getBytes(UTF_8)) < 0)
        .foreach { case (k, (value, version)) => deliver(event(k, value, version, existing = true)) }
    w
  }

  def unwatch(w: Watch): Unit = synchronized { watches -= w; () }

  /** How many Monitors are registered with a pattern that starts with `prefix`. */
  def watchers(prefix: String): Int = synchronized(watches.count(_.pattern.startsWith(prefix)))

  /** The number of keys that start with `prefix` (all keys without one) and the bytes of their values. */
  def totals(prefix: Option[String]): (Long, Long) = synchronized {
    val counted = entries.filter { case (k, _) => prefix.forall(k.startsWith) }
    (counted.size.toLong, counted.valuesIterator.map(_._1.size.toLong).sum)
  }
}
