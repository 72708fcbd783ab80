"""The server's store: validation, keys with versions, and the open Monitor watchers."""

import asyncio

import grpc
from google.rpc import error_details_pb2

import stock_pb2

MAX_KEY = 256
MAX_VALUE = 1 << 20


class Refused(Exception):
    """A call that ends with a non-OK status; detail, when given, is the google.rpc message it carries."""

    def __init__(self, code, message, detail=None):
        super().__init__(code, message, detail)
        self.code, self.message, self.detail = code, message, detail


def bad_field(field, description):
    """INVALID_ARGUMENT for a refused request, with a google.rpc.BadRequest naming the field."""
    violation = error_details_pb2.BadRequest.FieldViolation(field=field, description=description)
    detail = error_details_pb2.BadRequest(field_violations=[violation])
    return Refused(grpc.StatusCode.INVALID_ARGUMENT, description, detail)


def validate_key(key, prefix=""):
    n = len(key.encode("utf-8"))
    if not 1 <= n <= MAX_KEY:
        raise bad_field("key", f"{prefix}key must be 1 to {MAX_KEY} bytes, got {n}")


def validate_value(value, prefix=""):
    if len(value) > MAX_VALUE:
        raise bad_field("value", f"{prefix}value must be at most {MAX_VALUE} bytes, got {len(value)}")


def matches(pattern, key):
    return key.startswith(pattern[:-1]) if pattern.endswith("*") else key == pattern


class Store:
    """Keys, versions and watchers. The server runs on one event loop thread, so code between two
    awaits is a critical section: a watch's snapshot and its registration happen together."""

    def __init__(self):
        self.entries = {}  # key -> (value, version)
        self.watches = []  # (pattern, asyncio.Queue of WatchEvent), one per open Monitor

    def get(self, key):
        """The (value, version) of a stored key."""
        validate_key(key)
        if key not in self.entries:
            raise Refused(grpc.StatusCode.NOT_FOUND, f"key {key!r} not found")
        return self.entries[key]

    def put(self, key, value):
        """Writes one key and streams it to matching watchers; True when it was created."""
        validate_key(key)
        validate_value(value)
        version = self.entries.get(key, (b"", 0))[1] + 1
        self.entries[key] = (value, version)
        for pattern, queue in self.watches:
            if matches(pattern, key):
                queue.put_nowait(stock_pb2.WatchEvent(key=key, value=value, version=version))
        return version == 1

    def batch(self, items):
        """Validates every item, then writes them all; the BatchSummary."""
        for i, item in enumerate(items):
            validate_key(item.key, f"item {i}: ")
            validate_value(item.value, f"item {i}: ")
        created = sum(self.put(item.key, item.value) for item in items)  # put is True when it created the key
        value_bytes = sum(len(item.value) for item in items)
        updated = len(items) - created
        return stock_pb2.BatchSummary(items=len(items), created=created, updated=updated, value_bytes=value_bytes)

    def watch(self, pattern, include_existing):
        """The existing matching keys as events (when asked for) and a new registered watch."""
        existing = []
        if include_existing:
            for key in sorted(k for k in self.entries if matches(pattern, k)):
                value, version = self.entries[key]
                existing.append(stock_pb2.WatchEvent(key=key, value=value, version=version, existing=True))
        watch = (pattern, asyncio.Queue())
        self.watches.append(watch)
        return existing, watch

    def unwatch(self, watch):
        if watch in self.watches:
            self.watches.remove(watch)

    def watchers(self, prefix):
        """How many open Monitors have a pattern that starts with prefix."""
        return sum(1 for pattern, _ in self.watches if pattern.startswith(prefix))

    def totals(self, prefix=None):
        """The number of keys and the bytes of their values: all keys, or those that start with prefix."""
        values = [value for key, (value, _) in self.entries.items() if prefix is None or key.startswith(prefix)]
        return len(values), sum(len(value) for value in values)
