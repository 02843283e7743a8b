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


# ------------------------------------------------- what adaptive reads measure

LATENCY_ALPHA = 0.5  # weight of the newest sample in a replica's latency average
ERROR_ALPHA = 0.2  # weight of the newest outcome (1 failed, 0 answered) in its error rate
WINDOW = 64  # latest single-key read latencies kept per replica, for its p95
HEDGE_BUDGET = 0.10  # hedges sent at most per adaptive single-key read (plus one)
# A sample moves a replica's latency average as if it were at most this far above
# it (SPIKE_RATIO times it, or SPIKE_ADD seconds more, whichever is higher): one
# stall of the client's own machine does not rank a fast replica behind a slow
# one it then never asks again; a replica that turned slow is last after one sample.
SPIKE_RATIO = 8.0
SPIKE_ADD = 0.010


class _Replica:
    __slots__ = ("cursor", "errors", "hedged", "latency", "outstanding", "p95", "samples", "won")

    def __init__(self) -> None:
        self.latency: float | None = None  # seconds, moving average; None before a sample
        self.outstanding = 0  # read calls sent by this client and not answered yet
        self.errors = 0.0  # moving average of failures among its read calls, 0..1
        self.samples: list[float] = []  # latest single-key read latencies (a ring of WINDOW)
        self.cursor = 0  # where the next sample goes once the ring is full
        self.p95: float | None = None  # of `samples`, recomputed as they come
        self.hedged = 0  # hedges sent to this replica
        self.won = 0  # hedges to it that answered first


class ReplicaStats:
    """What the driver measures of each replica for ``read_policy="adaptive"``.

    Per node name: a moving average of read latency (``LATENCY_ALPHA``; a
    sample far above it counts as ``SPIKE_RATIO`` times it or ``SPIKE_ADD``
    more, whichever is higher), the
    read calls this client has outstanding to it, a moving average of its
    read failures (``ERROR_ALPHA``), and the p95 of its latest ``WINDOW``
    single-key read latencies (the hedge delay).  The driver calls ``sent``
    before a read call and ``answered`` after it, with the seconds it took;
    ``core.reads`` scores replicas from ``view`` and asks ``may_hedge``.
    Reads no clock; thread-safe under the lock it is given.
    """

    def __init__(self, lock: Any) -> None:
        self.lock = lock
        self.nodes: dict[str, _Replica] = {}
        self.reads = 0  # adaptive single-key reads that could have hedged
        self.hedges = 0  # hedges sent
        self.hedges_won = 0  # hedges that answered before the replica first asked

    def _of(self, name: str) -> _Replica:
        entry = self.nodes.get(name)
        if entry is None:
            entry = self.nodes[name] = _Replica()
        return entry

    def sent(self, names: list[str]) -> None:
        with self.lock:
            for name in names:
                self._of(name).outstanding += 1

    def answered(self, name: str, seconds: float | None, failed: bool, single: bool) -> None:
        """A read call to `name` came back: after `seconds` (None: not measured), or `failed`.

        `single`: a one-key read, whose latency also feeds the replica's p95.
        """
        with self.lock:
            entry = self._of(name)
            entry.outstanding = max(0, entry.outstanding - 1)
            entry.errors += ERROR_ALPHA * ((1.0 if failed else 0.0) - entry.errors)
            if failed or seconds is None:
                return
            old = entry.latency
            if old is None:
                entry.latency = seconds
            else:
                counted = min(seconds, max(SPIKE_RATIO * old, old + SPIKE_ADD))
                entry.latency = old + LATENCY_ALPHA * (counted - old)
            if single:
                samples = entry.samples
                if len(samples) < WINDOW:
                    samples.append(seconds)
                else:
                    samples[entry.cursor] = seconds
                    entry.cursor = (entry.cursor + 1) % WINDOW
                if entry.p95 is None or entry.cursor % 8 == 0:  # every 8th sample once full
                    ranked = sorted(samples)
                    entry.p95 = ranked[min(len(ranked) - 1, int(0.95 * len(ranked)))]

    def view(self, name: str) -> tuple[float | None, int, float]:
        """(latency average in seconds or None, outstanding calls, error rate) of `name`."""
        entry = self.nodes.get(name)
        if entry is None:
            return None, 0, 0.0
        return entry.latency, entry.outstanding, entry.errors

    def p95(self, name: str) -> float | None:
        entry = self.nodes.get(name)
        return None if entry is None else entry.p95

    def may_hedge(self) -> bool:
        """Count one hedgeable read; whether a hedge is within the budget (``HEDGE_BUDGET``)."""
        with self.lock:
            self.reads += 1
            return self.hedges < HEDGE_BUDGET * self.reads + 1

    def hedged(self, name: str, won: bool | None) -> None:
        """A hedge was sent to `name` (won None), or it answered first (won True) or not."""
        with self.lock:
            entry = self._of(name)
            if won is None:
                self.hedges += 1
                entry.hedged += 1
            elif won:
                self.hedges_won += 1
                entry.won += 1

    def drop(self, name: str) -> None:
        with self.lock:
            self.nodes.pop(name, None)

    def report(self, name: str) -> dict[str, Any]:
        """The score's inputs for ``Cluster.stats()``."""
        with self.lock:
            entry = self.nodes.get(name) or _Replica()
            return {
                "read_latency_ms": None if entry.latency is None else entry.latency * 1000.0,
                "read_p95_ms": None if entry.p95 is None else entry.p95 * 1000.0,
                "reads_outstanding": entry.outstanding,
                "read_error_rate": entry.errors,
                "hedges_sent": entry.hedged,
                "hedges_won": entry.won,
            }
