// The in-memory store and its watch registry. JavaScript runs one handler at a
// time, so a watch's snapshot and its registration (one synchronous call) can
// never interleave with a put: no event is missed, none is sent twice.
import { Code, ConnectError } from "@connectrpc/connect";
import { BadRequestSchema } from "../gen/google/rpc/error_details_pb.js";
import type { BatchItem, BatchSummary, WatchEvent } from "../gen/stock_pb.js";

export const MAX_KEY = 256;
export const MAX_VALUE = 1 << 20;

/**
 * INVALID_ARGUMENT for a refused request, with a google.rpc.BadRequest detail
 * naming the field (Connect encodes it into grpc-status-details-bin).
 */
export function badRequest(field: string, description: string): ConnectError {
  return new ConnectError(description, Code.InvalidArgument, undefined, [
    {
      desc: BadRequestSchema,
      value: { fieldViolations: [{ field, description }] },
    },
  ]);
}

/** `where` prefixes the description (a Batch item's index). */
export function validateKey(key: string, where = ""): void {
  const n = Buffer.byteLength(key, "utf8");
  if (n < 1 || n > MAX_KEY)
    throw badRequest(
      "key",
      `${where}key must be 1 to ${MAX_KEY} bytes, got ${n}`,
    );
}

export function validateValue(value: Uint8Array, where = ""): void {
  if (value.length > MAX_VALUE) {
    throw badRequest(
      "value",
      `${where}value must be at most ${MAX_VALUE} bytes, got ${value.length}`,
    );
  }
}

/** Exact key, or a prefix when the pattern ends in '*'. */
export function matches(pattern: string, key: string): boolean {
  return pattern.endsWith("*")
    ? key.startsWith(pattern.slice(0, -1))
    : pattern === key;
}

type Event = Omit<WatchEvent, "$typeName" | "$unknown">;

/** One registered Monitor: a queue of events and a waiter to wake. */
export class Watcher {
  private queue: Event[] = [];
  private wake: (() => void) | undefined;

  constructor(readonly pattern: string) {}

  push(event: Event): void {
    this.queue.push(event);
    this.wake?.();
  }

  /** The next event; rejects with the signal's reason when it aborts. */
  async next(signal: AbortSignal): Promise<Event> {
    while (this.queue.length === 0) {
      if (signal.aborted) throw signal.reason;
      await new Promise<void>((resolve) => {
        const done = () => {
          signal.removeEventListener("abort", done);
          this.wake = undefined;
          resolve();
        };
        this.wake = done;
        signal.addEventListener("abort", done);
      });
    }
    return this.queue.shift()!;
  }
}

interface Entry {
  value: Uint8Array;
  version: bigint;
}

export class Store {
  private map = new Map<string, Entry>();
  private watchers = new Set<Watcher>();

  get(key: string): Entry | undefined {
    return this.map.get(key);
  }

  /** Writes one key and notifies the matching watchers; true when created. */
  put(key: string, value: Uint8Array): boolean {
    const old = this.map.get(key);
    const entry = { value, version: (old?.version ?? 0n) + 1n };
    this.map.set(key, entry);
    for (const w of this.watchers) {
      if (matches(w.pattern, key))
        w.push({ key, value, version: entry.version, existing: false });
    }
    return old === undefined;
  }

  /** Registers a watcher whose queue starts with the existing matches (key byte order). */
  watch(pattern: string, includeExisting: boolean): Watcher {
    const w = new Watcher(pattern);
    if (includeExisting) {
      const keys = [...this.map.keys()].filter((k) => matches(pattern, k));
      keys.sort((a, b) =>
        Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8")),
      );
      for (const key of keys) {
        const e = this.map.get(key)!;
        w.push({ key, value: e.value, version: e.version, existing: true });
      }
    }
    this.watchers.add(w);
    return w;
  }

  unwatch(w: Watcher): void {
    this.watchers.delete(w);
  }

  /** How many watchers are registered whose pattern starts with prefix. */
  watching(prefix: string): number {
    let n = 0;
    for (const w of this.watchers) if (w.pattern.startsWith(prefix)) n++;
    return n;
  }

  /** Validates every item, then applies them all in order. */
  batch(items: BatchItem[]): Omit<BatchSummary, "$typeName" | "$unknown"> {
    items.forEach((item, i) => {
      validateKey(item.key, `item ${i}: `);
      validateValue(item.value, `item ${i}: `);
    });
    const summary = { items: 0, valueBytes: 0n, created: 0, updated: 0 };
    for (const item of items) {
      summary.items++;
      summary.valueBytes += BigInt(item.value.length);
      if (this.put(item.key, item.value)) summary.created++;
      else summary.updated++;
    }
    return summary;
  }

  totals(): { keyCount: bigint; totalValueBytes: bigint } {
    let total = 0n;
    for (const e of this.map.values()) total += BigInt(e.value.length);
    return { keyCount: BigInt(this.map.size), totalValueBytes: total };
  }
}
