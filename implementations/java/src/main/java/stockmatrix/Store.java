package stockmatrix;

import com.google.protobuf.Any;
import com.google.protobuf.ByteString;
import com.google.rpc.BadRequest;
import com.google.rpc.BadRequest.FieldViolation;
import com.google.rpc.Code;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.protobuf.StatusProto;
import java.nio.charset.StandardCharsets;
import java.util.*;
import java.util.function.Predicate;
import stock.v1.StockOuterClass.BatchItem;
import stock.v1.StockOuterClass.BatchSummary;
import stock.v1.StockOuterClass.WatchEvent;

/**
 * The in-memory store. Keys, versions and watchers are guarded by one lock (this object), so a watch's snapshot and
 * its registration happen in one critical section.
 */
final class Store {
    static final int MAX_KEY = 256;
    static final int MAX_VALUE = 1 << 20;

    /** A registered Monitor: its sink gets each event under the lock and answers false once it is done. */
    record Watch(String pattern, Predicate<WatchEvent> sink) {}

    /** Keys in ascending UTF-8 byte order, the order of a Monitor's existing keys. */
    private final Map<String, WatchEvent> map = new TreeMap<>(
            Comparator.comparing((String k) -> k.getBytes(StandardCharsets.UTF_8), Arrays::compareUnsigned));

    private final List<Watch> watches = new ArrayList<>();

    static void validateKey(String key, String prefix) {
        int n = key.getBytes(StandardCharsets.UTF_8).length;
        if (n < 1 || n > MAX_KEY) {
            throw invalid("key", prefix + "key must be 1 to " + MAX_KEY + " bytes, got " + n);
        }
    }

    static void validateValue(ByteString value, String prefix) {
        if (value.size() > MAX_VALUE) {
            throw invalid("value", prefix + "value must be at most " + MAX_VALUE + " bytes, got " + value.size());
        }
    }

    /** INVALID_ARGUMENT for a refused request, with a google.rpc.BadRequest naming the field (StatusProto). */
    static StatusRuntimeException invalid(String field, String description) {
        FieldViolation violation = FieldViolation.newBuilder()
                .setField(field)
                .setDescription(description)
                .build();
        return StatusProto.toStatusRuntimeException(com.google.rpc.Status.newBuilder()
                .setCode(Code.INVALID_ARGUMENT_VALUE)
                .setMessage(description)
                .addDetails(Any.pack(
                        BadRequest.newBuilder().addFieldViolations(violation).build()))
                .build());
    }

    static boolean matches(String pattern, String key) {
        return pattern.endsWith("*") ? key.startsWith(pattern.substring(0, pattern.length() - 1)) : pattern.equals(key);
    }

    /** The key's value and version; INVALID_ARGUMENT for a bad key, NOT_FOUND for a missing one. */
    synchronized WatchEvent get(String key) {
        validateKey(key, "");
        WatchEvent e = map.get(key);
        if (e == null) {
            throw Status.NOT_FOUND
                    .withDescription("key \"" + key + "\" not found")
                    .asRuntimeException();
        }
        return e;
    }

    synchronized void put(String key, ByteString value) {
        validateKey(key, "");
        validateValue(value, "");
        write(key, value);
    }

    /** Validates every item, then applies them all in order. */
    synchronized BatchSummary batch(List<BatchItem> items) {
        for (int i = 0; i < items.size(); i++) {
            validateKey(items.get(i).getKey(), "item " + i + ": ");
            validateValue(items.get(i).getValue(), "item " + i + ": ");
        }
        BatchSummary.Builder summary = BatchSummary.newBuilder().setItems(items.size());
        for (BatchItem item : items) {
            summary.setValueBytes(summary.getValueBytes() + item.getValue().size());
            if (write(item.getKey(), item.getValue())) {
                summary.setCreated(summary.getCreated() + 1);
            } else {
                summary.setUpdated(summary.getUpdated() + 1);
            }
        }
        return summary.build();
    }

    /** Writes one key (the next version) and sends it to the matching watches; true when the key was created. */
    private boolean write(String key, ByteString value) {
        WatchEvent old = map.get(key);
        long version = old == null ? 1 : old.getVersion() + 1;
        WatchEvent e = WatchEvent.newBuilder()
                .setKey(key)
                .setValue(value)
                .setVersion(version)
                .build();
        map.put(key, e);
        watches.removeIf(w -> matches(w.pattern, key) && !w.sink.test(e));
        return old == null;
    }

    /** Sends the matching existing keys when asked, then registers the watch (unless it is done by then). */
    synchronized Watch watch(String pattern, boolean includeExisting, Predicate<WatchEvent> sink) {
        Watch watch = new Watch(pattern, sink);
        for (WatchEvent e : includeExisting ? map.values() : List.<WatchEvent>of()) {
            if (matches(pattern, e.getKey())
                    && !sink.test(e.toBuilder().setExisting(true).build())) {
                return watch;
            }
        }
        watches.add(watch);
        return watch;
    }

    synchronized void unwatch(Watch watch) {
        watches.remove(watch);
    }

    /** How many registered watches have a pattern that starts with the prefix. */
    synchronized long watchers(String prefix) {
        return watches.stream().filter(w -> w.pattern.startsWith(prefix)).count();
    }

    /** {key count, total value bytes} of the keys that start with the prefix (all keys when it is null). */
    synchronized long[] totals(String prefix) {
        long[] totals = new long[2];
        for (WatchEvent e : map.values()) {
            if (prefix == null || e.getKey().startsWith(prefix)) {
                totals[0]++;
                totals[1] += e.getValue().size();
            }
        }
        return totals;
    }
}
