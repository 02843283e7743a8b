"""Per-store counters of a RedisStore: calls, errors by kind, latency, records moved, bad data."""

from __future__ import annotations

import threading
from typing import Any

__all__ = ("StoreStats",)


class StoreStats:
    """Call counters and a latency histogram (powers of two in µs); thread-safe."""

    __slots__ = (
        "_lock",
        "buckets",
        "calls",
        "connection_errors",
        "error_replies",
        "errors",
        "last_error",
        "max_seconds",
        "no_connection",
        "pool_waits",
        "records_read",
        "records_written",
        "seconds",
        "timeouts",
        "unreadable",
    )  # fmt: skip

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._zero()

    def reset(self) -> None:
        with self._lock:
            self._zero()

    def _zero(self) -> None:
        self.calls = 0
        self.errors = 0
        self.timeouts = 0
        self.connection_errors = 0
        self.error_replies = 0
        self.no_connection = 0
        self.pool_waits = 0
        self.seconds = 0.0
        self.max_seconds = 0.0
        self.buckets = [0] * 32
        self.last_error: str | None = None
        self.records_read = 0
        self.records_written = 0
        self.unreadable = 0

    def moved(self, read: int, written: int) -> None:
        with self._lock:
            self.records_read += read
            self.records_written += written

    def bad_data(self, n: int) -> None:
        """`n` records that did not parse, or keys under the prefix that are not cvstore's."""
        if n:
            with self._lock:
                self.unreadable += n

    def waited(self) -> None:
        """A call found every connection of its pool busy and waited for one."""
        with self._lock:
            self.pool_waits += 1

    def ok(self, seconds: float) -> None:
        bucket = min(int(seconds * 1e6).bit_length(), 31)
        with self._lock:
            self.calls += 1
            self.seconds += seconds
            if seconds > self.max_seconds:
                self.max_seconds = seconds
            self.buckets[bucket] += 1

    def failed(self, seconds: float, kind: str, message: str) -> None:
        """A failed call; `kind` is "timeout", "connection", "reply" (the server said no) or
        "pool" (no free connection in the client)."""
        with self._lock:
            self.calls += 1
            self.errors += 1
            self.seconds += seconds
            if seconds > self.max_seconds:
                self.max_seconds = seconds
            if kind == "timeout":
                self.timeouts += 1
            elif kind == "connection":
                self.connection_errors += 1
            elif kind == "reply":
                self.error_replies += 1
            elif kind == "pool":
                self.no_connection += 1
            self.last_error = message

    @staticmethod
    def _percentile(q: float, buckets: list[int], total: int) -> float:
        if total == 0:
            return 0.0
        rank = q * total
        seen = 0
        for i, n in enumerate(buckets):
            seen += n
            if seen >= rank:
                return (1 << i) / 1000.0  # bucket upper bound, µs -> ms
        return (1 << 31) / 1000.0

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            buckets = list(self.buckets)
            calls, seconds = self.calls, self.seconds
            out: dict[str, Any] = {
                "calls": calls,
                "errors": self.errors,
                "timeouts": self.timeouts,
                "connection_errors": self.connection_errors,
                "error_replies": self.error_replies,
                "no_connection": self.no_connection,
                "pool_waits": self.pool_waits,
                "mean_ms": seconds / calls * 1000.0 if calls else 0.0,
                "max_ms": self.max_seconds * 1000.0,
                "last_error": self.last_error,
                "records_read": self.records_read,
                "records_written": self.records_written,
                "unreadable": self.unreadable,
            }
        ok = sum(buckets)
        out["p50_ms"] = self._percentile(0.50, buckets, ok)
        out["p99_ms"] = self._percentile(0.99, buckets, ok)
        return out
