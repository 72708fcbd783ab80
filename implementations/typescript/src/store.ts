// The in-memory store and its watch registry. JavaScript runs one handler at a time, so a watch's snapshot and its
// registration (one synchronous call) can never interleave with a put: no event is missed, none is sent twice.
import { Code, ConnectError } from "@connectrpc/connect";
import { BadRequestSchema } from "../gen/google/rpc/error_details_pb.js";
import type { BatchItem, BatchSummary, WatchEvent } from "../gen/stock_pb.js";

const MAX_KEY = 256;
const MAX_VALUE = 1 << 20;

type Init<T> = Omit<T, "$typeName" | "$unknown">;

/** INVALID_ARGUMENT with a google.rpc.BadRequest naming the field (Connect puts it in grpc-status-details-bin). */
export function badRequest(field: string, description: string): ConnectError {
  const violation = { desc: BadRequestSchema, value: { fieldViolations: [{ field, description }] } };
  return new ConnectError(description, Code.InvalidArgument, undefined, [violation]);
}

/** `where` prefixes the description (a Batch item's index). */
export function validateKey(key: string, where = ""): void {
  const n = Buffer.byteLength(key, "utf8");
  if (n < 1 || n > MAX_KEY) throw badRequest("key", `${where}key must be 1 to ${MAX_KEY} bytes, got ${n}`);
}

export function validateValue(value: Uint8Array, where = ""): void {
  const n = value.length;
  if (n > MAX_VALUE) throw badRequest("value", `${where}value must be at most ${MAX_VALUE} bytes, got ${n}`);
}

/** Exact key, or a prefix when the pattern ends in '*'. */
export function matches(pattern: string, key: string): boolean {
  return pattern.endsWith("*") ? key.startsWith(pattern.slice(0, -1)) : pattern === key;
}

interface Entry {
  value: Uint8Array;
  version: bigint;
}

export class Store {
  private map = new Map<string, Entry>();
  private watching = new Set<Watcher>();

  /** A validated read: NOT_FOUND (naming the key) when missing. */
  get(key: string): Entry {
    validateKey(key);
    const entry = this.map.get(key);
    if (!entry) throw new ConnectError(`key ${JSON.stringify(key)} not found`, Code.NotFound);
    return entry;
  }

  /** A validated write (bumps the version, notifies the matching watchers); true when created. */
  put(key: string, value: Uint8Array): boolean {
    validateKey(key);
    validateValue(value);
    const old = this.map.get(key);
    const version = (old?.version ?? 0n) + 1n;
    this.map.set(key, { value, version });
    for (const w of this.watching) {
      if (matches(w.pattern, key)) w.push({ key, value, version, existing: false });
    }
    return old === undefined;
  }

  /** Validates every item, then applies them all in order. */
  batch(items: BatchItem[]): Init<BatchSummary> {
    items.forEach((item, i) => {
      validateKey(item.key, `item ${i}: `);
      validateValue(item.value, `item ${i}: `);
    });
    const summary = { items: items.length, valueBytes: 0n, created: 0, updated: 0 };
    for (const item of items) {
      summary.valueBytes += BigInt(item.value.length);
      if (this.put(item.key, item.value)) summary.created++;
      else summary.updated++;
    }
    return summary;
  }

  /** Registers a watcher whose queue starts with the existing matches (in key byte order). */
  watch(pattern: string, includeExisting: boolean): Watcher {
    const w = new Watcher(pattern);
    if (includeExisting) {
      const keys = [...this.map.keys()].filter((k) => matches(pattern, k));
      keys.sort((a, b) => Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8")));
      for (const key of keys) w.push({ key, ...this.map.get(key)!, existing: true });
    }
    this.watching.add(w);
    return w;
  }

  unwatch(w: Watcher): void {
    this.watching.delete(w);
  }

  /** How many watchers are registered whose pattern starts with prefix. */
  watchers(prefix: string): number {
    return [...this.watching].filter((w) => w.pattern.startsWith(prefix)).length;
  }

  /** The count and value bytes of the keys that start with prefix (all of them by default). */
  totals(prefix = ""): { keyCount: bigint; totalValueBytes: bigint } {
    let count = 0n;
    let total = 0n;
    for (const [key, e] of this.map) {
      if (!key.startsWith(prefix)) continue;
      count++;
      total += BigInt(e.value.length);
    }
    return { keyCount: count, totalValueBytes: total };
  }
}

/** One registered Monitor: a queue of events and a waiter to wake. */
export class Watcher {
  private queue: Init<WatchEvent>[] = [];
  private wake: (() => void) | undefined;

  constructor(readonly pattern: string) {}

  push(event: Init<WatchEvent>): void {
    this.queue.push(event);
    this.wake?.();
  }

  /** The next event; rejects with the signal's reason when it aborts. */
  async next(signal: AbortSignal): Promise<Init<WatchEvent>> {
    while (this.queue.length === 0) {
      signal.throwIfAborted();
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
