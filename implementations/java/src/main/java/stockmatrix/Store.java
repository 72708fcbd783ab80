package stockmatrix;

import com.google.protobuf.Any;
import com.google.protobuf.ByteString;
import com.google.rpc.BadRequest;
import com.google.rpc.Code;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.protobuf.StatusProto;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import stock.v1.StockOuterClass.BatchItem;
import stock.v1.StockOuterClass.BatchSummary;
import stock.v1.StockOuterClass.WatchEvent;

/**
 * The in-memory store. Keys, versions and watchers are guarded by one lock (this object), so a
 * watch's snapshot and its registration happen in one critical section.
 */
final class Store {
  static final int MAX_KEY = 256;
  static final int MAX_VALUE = 1 << 20;

  /** A registered Monitor stream; called with the store's lock held. */
  interface Watcher {
    String pattern();

    /** Delivers one event; returns false when the watcher is done and must be dropped. */
    boolean deliver(WatchEvent event);
  }

  private record Entry(ByteString value, long version) {}

  private final Map<String, Entry> map = new HashMap<>();
  private final List<Watcher> watchers = new ArrayList<>();

  static boolean matches(String pattern, String key) {
    return pattern.endsWith("*")
        ? key.startsWith(pattern.substring(0, pattern.length() - 1))
        : pattern.equals(key);
  }

  /** A bad key: INVALID_ARGUMENT naming `key`; prefix starts the description. */
  static void validateKey(String key, String prefix) {
    int n = key.getBytes(StandardCharsets.UTF_8).length;
    if (n < 1 || n > MAX_KEY) {
      throw badField("key", prefix + "key must be 1 to " + MAX_KEY + " bytes, got " + n);
    }
  }

  /** A bad value: INVALID_ARGUMENT naming `value`; prefix starts the description. */
  static void validateValue(ByteString value, String prefix) {
    if (value.size() > MAX_VALUE) {
      throw badField(
          "value", prefix + "value must be at most " + MAX_VALUE + " bytes, got " + value.size());
    }
  }

  /** INVALID_ARGUMENT without details (a bad test hook, not a refused request). */
  static StatusRuntimeException invalid(String message) {
    return Status.INVALID_ARGUMENT.withDescription(message).asRuntimeException();
  }

  /**
   * INVALID_ARGUMENT for a refused request: a google.rpc.Status with one google.rpc.BadRequest
   * whose one field violation names the field, in grpc-status-details-bin (StatusProto).
   */
  static StatusRuntimeException badField(String field, String description) {
    BadRequest detail =
        BadRequest.newBuilder()
            .addFieldViolations(
                BadRequest.FieldViolation.newBuilder().setField(field).setDescription(description))
            .build();
    return StatusProto.toStatusRuntimeException(
        com.google.rpc.Status.newBuilder()
            .setCode(Code.INVALID_ARGUMENT_VALUE)
            .setMessage(description)
            .addDetails(Any.pack(detail))
            .build());
  }

  /** The key with its value and version, or null when it is missing. */
  synchronized WatchEvent get(String key) {
    Entry e = map.get(key);
    return e == null
        ? null
        : WatchEvent.newBuilder().setKey(key).setValue(e.value).setVersion(e.version).build();
  }

  synchronized void put(String key, ByteString value) {
    putLocked(key, value);
  }

  /** Get as both services define it: the key's entry, else INVALID_ARGUMENT or NOT_FOUND. */
  WatchEvent require(String key) {
    validateKey(key, "");
    WatchEvent e = get(key);
    if (e == null) {
      throw Status.NOT_FOUND.withDescription("key \"" + key + "\" not found").asRuntimeException();
    }
    return e;
  }

  /** Put as both services define it: INVALID_ARGUMENT for a bad key or value, else written. */
  void checkedPut(String key, ByteString value) {
    validateKey(key, "");
    validateValue(value, "");
    put(key, value);
  }

  /** Writes one key and notifies the matching watchers; returns true when it was created. */
  private boolean putLocked(String key, ByteString value) {
    Entry old = map.get(key);
    long version = old == null ? 1 : old.version + 1;
    map.put(key, new Entry(value, version));
    WatchEvent event = null;
    for (Iterator<Watcher> it = watchers.iterator(); it.hasNext(); ) {
      Watcher w = it.next();
      if (matches(w.pattern(), key)) {
        if (event == null) {
          event = WatchEvent.newBuilder().setKey(key).setValue(value).setVersion(version).build();
        }
        if (!w.deliver(event)) {
          it.remove();
        }
      }
    }
    return old == null;
  }

  /**
   * Sends the existing matching keys (when asked) in ascending byte order, then registers the
   * watcher, all under the lock.
   */
  synchronized void watch(Watcher w, boolean includeExisting) {
    if (includeExisting) {
      List<Map.Entry<String, Entry>> existing = new ArrayList<>();
      for (Map.Entry<String, Entry> e : map.entrySet()) {
        if (matches(w.pattern(), e.getKey())) {
          existing.add(e);
        }
      }
      existing.sort(
          (a, b) ->
              Arrays.compareUnsigned(
                  a.getKey().getBytes(StandardCharsets.UTF_8),
                  b.getKey().getBytes(StandardCharsets.UTF_8)));
      for (Map.Entry<String, Entry> e : existing) {
        WatchEvent event =
            WatchEvent.newBuilder()
                .setKey(e.getKey())
                .setValue(e.getValue().value)
                .setVersion(e.getValue().version)
                .setExisting(true)
                .build();
        if (!w.deliver(event)) {
          return;
        }
      }
    }
    watchers.add(w);
  }

  synchronized void unwatch(Watcher w) {
    watchers.remove(w);
  }

  /** How many registered watchers have a pattern that starts with the prefix. */
  synchronized long watchers(String prefix) {
    return watchers.stream().filter(w -> w.pattern().startsWith(prefix)).count();
  }

  /** Validates every item, then applies them all in order. */
  synchronized BatchSummary batch(List<BatchItem> items) {
    for (int i = 0; i < items.size(); i++) {
      validateKey(items.get(i).getKey(), "item " + i + ": ");
      validateValue(items.get(i).getValue(), "item " + i + ": ");
    }
    BatchSummary.Builder s = BatchSummary.newBuilder();
    for (BatchItem item : items) {
      s.setItems(s.getItems() + 1);
      s.setValueBytes(s.getValueBytes() + item.getValue().size());
      if (putLocked(item.getKey(), item.getValue())) {
        s.setCreated(s.getCreated() + 1);
      } else {
        s.setUpdated(s.getUpdated() + 1);
      }
    }
    return s.build();
  }

  /** {key count, total value bytes}. */
  synchronized long[] totals() {
    long bytes = 0;
    for (Entry e : map.values()) {
      bytes += e.value.size();
    }
    return new long[] {map.size(), bytes};
  }
}
