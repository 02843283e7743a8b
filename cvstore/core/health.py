"""Failure detection as a schedule: which nodes are suspected, and when to probe each.

When a store call finds a node unreachable (``StoreError.unreachable``: a
server down, refusing connections, timing out), the node becomes *suspected*:
calls skip it and hint around it, exactly as for a node an operator took
down with ``fail()``.  The driver probes each suspect (``store.ping()``) in
the background, never in a caller's call: the first probe ``interval``
seconds after the suspicion, then with the wait doubled after every failed
probe, up to ``max_interval``.  A probe that answers ends the suspicion; the
driver then hands the node its hints.

This module keeps the schedule and the counters and reads no clock: every
method is given ``now`` (seconds, monotonic) by the driver, which also holds
the lock around it.
"""

from __future__ import annotations

from typing import Any

from cvstore.errors import StoreError

__all__ = ("DEFAULT_MAX_PROBE_INTERVAL", "DEFAULT_PROBE_INTERVAL", "Schedule")

DEFAULT_PROBE_INTERVAL = 0.1  # seconds before the first probe of a suspect
DEFAULT_MAX_PROBE_INTERVAL = 5.0  # the backoff stops doubling here


class _Suspect:
    __slots__ = ("delay", "due", "node", "since")

    def __init__(self, node: Any, delay: float, now: float) -> None:
        self.node = node
        self.delay = delay
        self.due = now + delay
        self.since = now


class Schedule:
    """The suspected nodes of one cluster, their probe times, and failure counters.

    ``suspects`` maps a node name to its entry (drivers test it for
    emptiness on every call); ``failures`` counts the store failures seen
    per node name, ``last_error`` keeps the last one (the cause named by
    UnavailableError).
    """

    def __init__(self, interval: float, max_interval: float) -> None:
        self.interval = interval
        self.max_interval = max_interval
        self.suspects: dict[str, _Suspect] = {}
        self.failures: dict[str, int] = {}
        self.last_error: dict[str, StoreError] = {}
        self.detected = 0
        self.probes = 0
        self.recovered = 0

    def failed(self, node: Any, error: StoreError, now: float) -> bool:
        """Note `error` from `node`'s store; returns True if the node is newly suspected.

        Only an unreachable store suspects its node; every failure is counted.
        """
        name = node.name
        self.failures[name] = self.failures.get(name, 0) + 1
        self.last_error[name] = error
        if not error.unreachable:
            return False
        entry = self.suspects.get(name)
        if entry is not None and entry.node is node:
            return False
        self.suspects[name] = _Suspect(node, self.interval, now)
        self.detected += 1
        return True

    def due(self, now: float) -> list[Any]:
        """The suspected nodes whose probe is due at `now`."""
        return [entry.node for entry in self.suspects.values() if entry.due <= now]

    def next_due(self) -> float | None:
        """When the earliest probe is due (the driver's clock), or None without suspects."""
        return min((entry.due for entry in self.suspects.values()), default=None)

    def probe_failed(self, node: Any, error: StoreError, now: float) -> None:
        """A probe of `node` failed: wait twice as long (up to the maximum) for the next."""
        self.probes += 1
        self.failures[node.name] = self.failures.get(node.name, 0) + 1
        self.last_error[node.name] = error
        entry = self.suspects.get(node.name)
        if entry is not None and entry.node is node:
            entry.delay = min(entry.delay * 2, self.max_interval)
            entry.due = now + entry.delay

    def answered(self, node: Any, probed: bool = True) -> bool:
        """`node` answered (a probe, or an operator's recover()); returns True if it was suspected."""
        if probed:
            self.probes += 1
        entry = self.suspects.get(node.name)
        if entry is None or entry.node is not node:
            return False
        del self.suspects[node.name]
        self.recovered += 1
        return True

    def drop(self, name: str) -> None:
        """Forget `name` entirely (it left the cluster)."""
        self.suspects.pop(name, None)
        self.failures.pop(name, None)
        self.last_error.pop(name, None)

    def report(self, name: str, now: float) -> dict[str, Any]:
        """What is known of `name`'s health, for ``Cluster.stats()``."""
        entry = self.suspects.get(name)
        last = self.last_error.get(name)
        out: dict[str, Any] = {
            "failures": self.failures.get(name, 0),
            "last_failure": None if last is None else str(last),
            "suspected_for_s": None,
            "next_probe_in_s": None,
        }
        if entry is not None:
            out["suspected_for_s"] = now - entry.since
            out["next_probe_in_s"] = max(0.0, entry.due - now)
        return out
