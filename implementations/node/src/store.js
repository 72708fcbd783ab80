"use strict";
// The store and the watch registry (see ../../../CONTRACT.md, "Store rules"). Node runs every
// handler on one thread, so each synchronous method below is a critical section.
const grpc = require("@grpc/grpc-js");
const { statusError, badRequest } = require("./proto");

const MAX_KEY = 256;
const MAX_VALUE = 1 << 20;

function validateKey(key, where = "") {
  const n = Buffer.byteLength(key, "utf8");
  if (n < 1 || n > MAX_KEY) throw badRequest("key", `${where}key must be 1 to ${MAX_KEY} bytes, got ${n}`);
}

function validateValue(value, where = "") {
  if (value.length > MAX_VALUE) {
    throw badRequest("value", `${where}value must be at most ${MAX_VALUE} bytes, got ${value.length}`);
  }
}

/** A Monitor pattern: a trailing `*` matches any key with that prefix, else the key itself. */
function matches(pattern, key) {
  return pattern.endsWith("*") ? key.startsWith(pattern.slice(0, -1)) : pattern === key;
}

class Store {
  /** key → { value: Buffer, version: number } */
  entries = new Map();
  /** The open Monitors: send(event) → pattern. */
  watches = new Map();

  /** The entry of a valid, stored key; else INVALID_ARGUMENT or NOT_FOUND. */
  get(key = "") {
    validateKey(key);
    const entry = this.entries.get(key);
    if (!entry) throw statusError(grpc.status.NOT_FOUND, `key ${JSON.stringify(key)} not found`);
    return entry;
  }

  /** Stores a valid put, streams it to the matching Monitors; true when the key is new. */
  put(key = "", value = Buffer.alloc(0)) {
    validateKey(key);
    validateValue(value);
    const old = this.entries.get(key);
    const version = old ? old.version + 1 : 1;
    this.entries.set(key, { value, version });
    for (const [send, pattern] of this.watches) {
      if (matches(pattern, key)) send({ key, value, version: String(version), existing: false });
    }
    return !old;
  }

  /** All items or none: every item is validated before any is stored. */
  batch(items) {
    items.forEach((item, i) => {
      validateKey(item.key ?? "", `item ${i}: `);
      validateValue(item.value ?? Buffer.alloc(0), `item ${i}: `);
    });
    const summary = { items: items.length, value_bytes: 0, created: 0, updated: 0 };
    for (const item of items) {
      summary.value_bytes += item.value?.length ?? 0;
      if (this.put(item.key, item.value)) summary.created++;
      else summary.updated++;
    }
    return summary;
  }

  /**
   * Registers a Monitor's send(event) and returns the snapshot of the existing matching keys (when
   * asked), in key byte order, in one critical section: every later put is streamed, none twice.
   */
  watch(pattern, includeExisting, send) {
    const existing = [];
    if (includeExisting) {
      for (const [key, { value, version }] of this.entries) {
        if (matches(pattern, key)) existing.push({ key, value, version: String(version), existing: true });
      }
      existing.sort((a, b) => Buffer.compare(Buffer.from(a.key), Buffer.from(b.key)));
    }
    this.watches.set(send, pattern);
    return existing;
  }

  unwatch(send) {
    this.watches.delete(send);
  }

  /** How many open Monitors have a pattern that starts with prefix. */
  watchers(prefix) {
    let n = 0;
    for (const pattern of this.watches.values()) if (pattern.startsWith(prefix)) n++;
    return n;
  }

  /** The count and value bytes of the keys that start with prefix (all keys by default). */
  totals(prefix = "") {
    let keyCount = 0;
    let totalValueBytes = 0;
    for (const [key, { value }] of this.entries) {
      if (!key.startsWith(prefix)) continue;
      keyCount++;
      totalValueBytes += value.length;
    }
    return { keyCount, totalValueBytes };
  }
}

module.exports = { store: new Store() };
