"""LoadTracker: requests in flight per node of a ring, for bounded-load routing.

A service that picks a backend per request with a ``HashRing`` keeps one
tracker beside it::

    tracker = LoadTracker(ring, c=1.25)
    with tracker.request(key) as node:
        send(node, ...)

``request`` (or ``acquire`` and ``release``) counts the request on the node that
``ring.get_node_bounded(key, loads, c)`` chooses for it, so no node serves more
than ``ceil(c * (in flight + 1) * weight / total weight)`` at once.
"""

from __future__ import annotations

import math
import numbers
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from cvstore._limits import show_number
from cvstore._ring import HashRing

__all__ = ("DEFAULT_BALANCE", "LoadTracker")

#: the balance factor c when none is given (HAProxy and Envoy default to 1.25 too)
DEFAULT_BALANCE = 1.25


def _check_balance(c: object) -> float:
    if isinstance(c, bool) or not isinstance(c, numbers.Real):
        raise TypeError(f"c must be a number > 1, got {type(c).__name__}: {c!r:.60}")
    try:
        value = float(c)
    except OverflowError:  # an int beyond the float range
        value = math.inf
    if not (value > 1.0 and math.isfinite(value)):
        raise ValueError(f"c must be a finite number > 1, got {show_number(c)}")
    return value


class LoadTracker:
    """Requests in flight per node of `ring`, and the bounded-load choice of node.

    Thread-safe: one lock guards the counts, and each choice and its count are
    made together under it.

    Methods: ``acquire(key) -> node`` (choose and count), ``release(node)``,
    ``request(key)`` (the two as a context manager), ``loads()`` (a snapshot).

    Membership changes of `ring` are followed: the tracker works on a copy of
    the ring and takes a new copy at the first ``acquire`` after ``add`` or
    ``remove``.  A node added starts with no requests; a node removed keeps
    its requests in flight in ``loads()`` until they are released (they no
    longer count towards the total, so its bound does not hold the others
    back), and a node removed and added again keeps them.

    Parameters
    ----------
    ring : HashRing
        The ring whose nodes serve the requests.
    c : float
        The balance factor, a finite number > 1 (default 1.25).
    """

    def __init__(self, ring: HashRing, c: float = DEFAULT_BALANCE) -> None:
        if not isinstance(ring, HashRing):
            raise TypeError(f"ring must be a HashRing, got {type(ring).__name__}: {ring!r:.60}")
        self._c = _check_balance(c)
        self._ring = ring
        self._lock = threading.Lock()
        self._held: dict[str, int] = {}  # node -> requests in flight, removed nodes too
        self._refresh()

    def _refresh(self) -> None:
        """Take a copy of the ring and rebuild the loads array in its node order."""
        snap = self._ring.copy()
        self._snap = snap
        self._nodes = snap.nodes  # the ring's own tuple: a new one after every change
        self._index = {name: i for i, name in enumerate(snap.nodes)}
        self._loads = np.array([self._held.get(n, 0) for n in snap.nodes], dtype=np.int64)

    @property
    def ring(self) -> HashRing:
        return self._ring

    @property
    def c(self) -> float:
        return self._c

    def acquire(self, key: str | bytes) -> str:
        """Choose the node for a request on `key` and count the request on it.

        Call ``release(node)`` when the request completes.  Raises what
        ``get_node_bounded`` raises (TypeError for a bad key, EmptyRingError).
        """
        with self._lock:
            if self._ring.nodes is not self._nodes:
                self._refresh()
            node = self._snap.get_node_bounded(key, self._loads, self._c)
            self._loads[self._index[node]] += 1
            self._held[node] = self._held.get(node, 0) + 1
        return node

    def release(self, node: str) -> None:
        """Count one request on `node` as complete.

        Raises TypeError if `node` is not a str, ValueError if it has no
        request in flight (never acquired, or released already); then nothing
        changes.
        """
        if not isinstance(node, str):
            raise TypeError(f"node must be a str, got {type(node).__name__}: {node!r:.60}")
        with self._lock:
            held = self._held.get(node, 0)
            if held <= 0:
                raise ValueError(
                    f"node must have a request in flight (acquired and not yet released), "
                    f"got {node!r:.60}, which has none"
                )
            if held == 1:
                del self._held[node]
            else:
                self._held[node] = held - 1
            i = self._index.get(node)
            if i is not None:
                self._loads[i] -= 1

    @contextmanager
    def request(self, key: str | bytes) -> Iterator[str]:
        """``with tracker.request(key) as node:`` acquire, and release on leaving
        (also when the block raises)."""
        node = self.acquire(key)
        try:
            yield node
        finally:
            self.release(node)

    def loads(self) -> dict[str, int]:
        """Requests in flight per node: every node of the ring as last seen (0
        included), then removed nodes that still have requests in flight."""
        with self._lock:
            if self._ring.nodes is not self._nodes:
                self._refresh()
            out = {name: int(n) for name, n in zip(self._nodes, self._loads.tolist())}
            for name, held in self._held.items():
                out.setdefault(name, held)
            return out

    def __repr__(self) -> str:
        with self._lock:
            total = sum(self._held.values())
        return f"LoadTracker(nodes={len(self._nodes)}, in_flight={total}, c={self._c})"
