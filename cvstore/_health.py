"""Failure detection: nodes whose store failed are suspected down and probed with backoff.

When a store call raises ``StoreError`` (a Redis server refused the
connection, timed out, or answered with an error), the cluster marks the
node *suspected*: ``node.is_up`` turns False, so calls stop waiting on it and
write hints for it instead, exactly as for a node the operator took down
with ``fail()``.  The two states are kept apart: ``recover()`` clears both,
but a successful probe clears only the suspicion, never an operator's
``fail()``.

There is no background thread.  A suspect is probed (``store.ping()``, one
round trip bounded by the store's timeout) by the first cluster call made
after its backoff has elapsed; the backoff doubles after every failed probe,
from ``interval`` up to ``max_interval``.  Only one thread probes at a time;
the others go on without waiting.  When a probe succeeds the node is up
again and the cluster hands it the hints it missed.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from cvstore.errors import StoreError

__all__ = ("Health",)

DEFAULT_PROBE_INTERVAL = 0.1  # seconds before the first probe of a suspect
DEFAULT_MAX_PROBE_INTERVAL = 5.0  # the backoff stops doubling here


class _Suspect:
    __slots__ = ("delay", "due", "error", "node", "since")

    def __init__(self, node: Any, delay: float, error: str) -> None:
        now = time.monotonic()
        self.node = node
        self.delay = delay
        self.due = now + delay
        self.since = now
        self.error = error


class Health:
    """The suspected nodes of one cluster, their probe schedule, and counters.

    ``suspects`` maps a node name to its schedule; the cluster tests it for
    emptiness on every call.  ``failures`` counts the store failures seen
    per node name since the cluster was made.
    """

    def __init__(self, interval: float, max_interval: float) -> None:
        self.interval = interval
        self.max_interval = max_interval
        self.suspects: dict[str, _Suspect] = {}
        self.failures: dict[str, int] = {}
        self.last_error: dict[str, str] = {}
        self.detected = 0
        self.probes = 0
        self.recovered = 0
        self._lock = threading.Lock()
        self._probing = threading.Lock()

    def suspect(self, node: Any, error: BaseException | str) -> None:
        """Mark `node` suspected down after its store failed with `error`."""
        text = str(error)
        with self._lock:
            self.failures[node.name] = self.failures.get(node.name, 0) + 1
            self.last_error[node.name] = text
            entry = self.suspects.get(node.name)
            if entry is not None and entry.node is node:
                return
            node._suspected = True
            node.is_up = False
            self.suspects[node.name] = _Suspect(node, self.interval, text)
            self.detected += 1

    def due(self) -> bool:
        """Whether some suspect's backoff has elapsed (or it was recovered by hand)."""
        now = time.monotonic()
        return any(entry.due <= now or entry.node.is_up for entry in list(self.suspects.values()))

    def probe(self, *, force: bool = False) -> list[Any]:
        """Ping the suspects that are due (all of them if `force`); returns those back up.

        Without `force`, returns at once if another thread is probing.
        """
        if not self._probing.acquire(blocking=force):
            return []
        try:
            back = []
            now = time.monotonic()
            for name, entry in list(self.suspects.items()):
                node = entry.node
                if not node._suspected:  # recover() was called meanwhile
                    self._forget(name, entry)
                    back.append(node)
                    continue
                if not force and entry.due > now:
                    continue
                self.probes += 1
                try:
                    node.store.ping()
                except StoreError as exc:
                    with self._lock:
                        entry.delay = min(entry.delay * 2, self.max_interval)
                        entry.due = time.monotonic() + entry.delay
                        entry.error = str(exc)
                    continue
                node._suspected = False
                if not node._failed:
                    node.is_up = True
                self._forget(name, entry)
                self.recovered += 1
                back.append(node)
            return back
        finally:
            self._probing.release()

    def _forget(self, name: str, entry: _Suspect) -> None:
        with self._lock:
            if self.suspects.get(name) is entry:
                del self.suspects[name]

    def drop(self, name: str) -> None:
        """Stop tracking `name` (it left the cluster)."""
        with self._lock:
            self.suspects.pop(name, None)

    def report(self, name: str) -> dict[str, Any]:
        """What the cluster knows of `name`'s health, for ``Cluster.stats()``."""
        with self._lock:
            entry = self.suspects.get(name)
            out: dict[str, Any] = {
                "failures": self.failures.get(name, 0),
                "last_failure": self.last_error.get(name),
                "suspected_for_s": None,
                "next_probe_in_s": None,
            }
            if entry is not None:
                now = time.monotonic()
                out["suspected_for_s"] = now - entry.since
                out["next_probe_in_s"] = max(0.0, entry.due - now)
        return out
