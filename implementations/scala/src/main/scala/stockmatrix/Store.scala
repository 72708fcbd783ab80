package stockmatrix

import com.google.protobuf.ByteString
import io.grpc.{Status, StatusException}
import stock.v1.StockOuterClass.{BatchItem, BatchSummary, WatchEvent}

import java.nio.charset.StandardCharsets.UTF_8
import scala.collection.mutable

/** A registered Monitor: receives every later matching put. */
final class Watch(val pattern: String, val deliver: WatchEvent => Unit)

/** The in-memory store and the watch registry, guarded together by one lock. */
final class Store {
  private final case class Entry(value: ByteString, version: Long)

  private val entries = mutable.HashMap.empty[String, Entry]
  private val watches = mutable.LinkedHashSet.empty[Watch]

  private def event(key: String, e: Entry, existing: Boolean): WatchEvent =
    WatchEvent.newBuilder().setKey(key).setValue(e.value).setVersion(e.version).setExisting(existing).build()

  private def putLocked(key: String, value: ByteString): Boolean = {
    val before = entries.get(key)
    val entry = Entry(value, before.fold(1L)(_.version + 1))
    entries.update(key, entry)
    val ev = event(key, entry, existing = false)
    watches.toList.foreach(w => if (Store.matches(w.pattern, key)) w.deliver(ev))
    before.isEmpty
  }

  def get(key: String): Option[(ByteString, Long)] = synchronized {
    entries.get(key).map(e => (e.value, e.version))
  }

  def put(key: String, value: ByteString): Unit = synchronized { putLocked(key, value); () }

  /** Get as both services define it: the key's value and version, else INVALID_ARGUMENT or NOT_FOUND. */
  def lookup(key: String): Either[StatusException, (ByteString, Long)] =
    for {
      _ <- Store.validateKey(key).toLeft(())
      found <- get(key).toRight(Status.NOT_FOUND.withDescription(s"key \"$key\" not found").asException())
    } yield found

  /** Put as both services define it: INVALID_ARGUMENT for a bad key or value, else written. */
  def checkedPut(key: String, value: ByteString): Either[StatusException, Unit] =
    Store.validateKey(key).orElse(Store.validateValue(value)) match {
      case Some(invalid) => Left(invalid)
      case None          => Right(put(key, value))
    }

  /** Validates every item first, then applies all of them (all or nothing). */
  def batch(items: Seq[BatchItem]): Either[StatusException, BatchSummary] = {
    val invalid =
      items.iterator.flatMap(i => Store.validateKey(i.getKey).orElse(Store.validateValue(i.getValue))).nextOption()
    invalid.toLeft(synchronized {
      val created = items.count(i => putLocked(i.getKey, i.getValue))
      BatchSummary
        .newBuilder()
        .setItems(items.size)
        .setValueBytes(items.map(_.getValue.size.toLong).sum)
        .setCreated(created)
        .setUpdated(items.size - created)
        .build()
    })
  }

  /** Registers a watch and delivers the existing matching keys (ascending key bytes) in one critical section. */
  def watch(pattern: String, includeExisting: Boolean, deliver: WatchEvent => Unit): Watch = synchronized {
    val w = new Watch(pattern, deliver)
    watches += w
    if (includeExisting)
      entries.iterator
        .filter { case (k, _) => Store.matches(pattern, k) }
        .toSeq
        .sortWith((a, b) => Store.compareBytes(a._1, b._1) < 0)
        .foreach { case (k, e) => deliver(event(k, e, existing = true)) }
    w
  }

  def unwatch(w: Watch): Unit = synchronized { watches -= w; () }

  /** How many Monitors are registered with a pattern that starts with `prefix`. */
  def watchers(prefix: String): Int = synchronized(watches.count(_.pattern.startsWith(prefix)))

  def totals: (Long, Long) = synchronized {
    (entries.size.toLong, entries.valuesIterator.map(_.value.size.toLong).sum)
  }
}

object Store {
  val MaxValue: Int = 1 << 20

  def matches(pattern: String, key: String): Boolean =
    if (pattern.endsWith("*")) key.startsWith(pattern.dropRight(1)) else key == pattern

  def compareBytes(a: String, b: String): Int =
    java.util.Arrays.compareUnsigned(a.getBytes(UTF_8), b.getBytes(UTF_8))

  def validateKey(key: String): Option[StatusException] = {
    val n = key.getBytes(UTF_8).length
    if (n >= 1 && n <= 256) None
    else Some(Rich.badField("key", s"key must be 1 to 256 bytes of UTF-8, got $n bytes"))
  }

  def validateValue(value: ByteString): Option[StatusException] =
    if (value.size <= MaxValue) None
    else Some(Rich.badField("value", s"value must be at most $MaxValue bytes, got ${value.size}"))
}
