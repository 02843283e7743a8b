"""Node: a name, a weight, an optional zone, a store, and up/down state.

A node is what the ring places keys on and what the cluster replicates to.
``node.storage`` is direct access to the node's live values as a mapping, the
way the seed's examples use it; ``fail()`` and ``recover()`` simulate an
outage for tests and demonstrations.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, MutableMapping
from typing import Any

from cvstore._records import record as new_record
from cvstore.core.keys import key_bytes, key_out
from cvstore.core.records import TOMBSTONE, live, value_of
from cvstore.errors import StoreError
from cvstore.stores.base import AsyncStore, Store
from cvstore.stores.memory import MemoryStore
from cvstore.versions import HybridClock

__all__ = ("Node",)

# Stamps writes made through node.storage on a node that belongs to no cluster.
_LONE_CLOCK = HybridClock()

# Weight of the newest sample in a node's read latency (exponential moving average).
_LATENCY_ALPHA = 0.2


class Node:
    """One member of a cluster.

    Parameters
    ----------
    name : str
        Unique within a cluster; the ring hashes it to place the node.
    weight : float, default 1.0
        Relative capacity: a node of weight 2 gets about twice the keys.
    zone : str, optional
        Failure domain (rack, availability zone).  Where nodes have zones, a
        key's replicas go to distinct zones first.
    store : Store, optional
        Where the node keeps its records; a new ``MemoryStore`` by default.

    Attributes
    ----------
    is_up : bool
        False between ``fail()`` and ``recover()``, and while the cluster
        suspects the node is down (its store raised ``StoreError``; see
        ``suspected``).  While a node is down the cluster does not call its
        store and ``node.storage`` raises ``StoreError``; ``node.store`` is the
        backend itself and stays reachable so tests can look at what a down
        node holds.

    Examples
    --------
    >>> node = Node("node1")
    >>> node.storage["key1"] = "value1"
    >>> node.storage["key1"]
    'value1'
    >>> node.fail()
    >>> node.storage["key1"]
    Traceback (most recent call last):
    ...
    cvstore.errors.StoreError: node 'node1' is down
    """

    __slots__ = (
        "_clock",
        "_cluster",
        "_failed",
        "_fast",
        "_get",
        "_latency",
        "_put",
        "_storage",
        "_suspected",
        "is_up",
        "name",
        "store",
        "weight",
        "zone",
    )

    def __init__(
        self,
        name: str,
        *,
        weight: float = 1.0,
        zone: str | None = None,
        store: Store | None = None,
    ) -> None:
        if not isinstance(name, str):
            raise TypeError(f"name must be a str, got {type(name).__name__}")
        if not name:
            raise ValueError("name must be a non-empty str, got ''")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)):
            raise TypeError(f"weight must be a number, got {type(weight).__name__}")
        if not (math.isfinite(weight) and weight > 0):
            raise ValueError(f"weight must be a finite number > 0, got {weight!r}")
        if zone is not None and not isinstance(zone, str):
            raise TypeError(f"zone must be a str or None, got {type(zone).__name__}")
        if store is None:
            store = MemoryStore()
        elif not isinstance(store, (Store, AsyncStore)):
            raise TypeError(
                f"store must be a cvstore.stores.Store, got {type(store).__name__}; subclass "
                "Store to plug in a backend (AsyncStore for an asyncio one)"
            )
        self.name = name
        self.weight = float(weight)
        self.zone = zone
        self.store = store
        if store.name is None:
            store.name = name  # so the store's StoreErrors name this node
        self.is_up = True
        self._failed = False
        self._suspected = False
        # Bound store methods, looked up once: the cluster's per-key fast
        # path calls these directly, for the built-in in-process store only
        # (any other store goes through the general path and write_many).
        self._fast = store.direct
        self._get = store.get if self._fast else None
        self._put = store.put if self._fast else None
        self._latency: float | None = None
        self._clock = _LONE_CLOCK
        self._cluster: Any = None
        self._storage: NodeStorage | None = None

    def fail(self) -> None:
        """Take the node down: from now on every store call through it fails."""
        self._failed = True
        self.is_up = False

    def recover(self) -> None:
        """Bring the node back up (with whatever its store held when it failed).

        Also clears a suspicion: the operator says the node is back.
        """
        self._failed = False
        self._suspected = False
        self.is_up = True
        if self._cluster is not None:
            self._cluster._state.recovered(self)

    @property
    def suspected(self) -> bool:
        """True while the cluster suspects the node is down because its store failed.

        The cluster probes a suspected node with backoff and brings it back up
        (and hands it its hints) when it answers again.
        """
        return self._suspected

    @property
    def storage(self) -> NodeStorage:
        """This node's live values as a mutable mapping (str or bytes keys)."""
        storage = self._storage
        if storage is None:
            if isinstance(self.store, AsyncStore):
                raise TypeError(
                    f"node {self.name!r} has an asyncio store: node.storage needs a sync one "
                    "(read and write its keys through the AsyncCluster)"
                )
            storage = self._storage = NodeStorage(self)
        return storage

    @property
    def remote(self) -> bool:
        """Whether the node's store waits on a server."""
        return self.store.remote

    @property
    def direct(self) -> bool:
        """Whether the per-key fast path may call the node's store directly (``Store.direct``)."""
        return self._fast

    @property
    def latency(self) -> float | None:
        """Recent read latency in seconds (moving average), None before the first read."""
        return self._latency

    def _observe_latency(self, seconds: float) -> None:
        old = self._latency
        self._latency = seconds if old is None else old + _LATENCY_ALPHA * (seconds - old)

    def _check_up(self) -> None:
        if not self.is_up:
            raise StoreError(f"node {self.name!r} is down", node=self.name)

    def __repr__(self) -> str:
        zone = f", zone={self.zone!r}" if self.zone is not None else ""
        state = (
            ""
            if self.is_up
            else (", suspected" if self._suspected and not self._failed else ", down")
        )
        return f"Node({self.name!r}, weight={self.weight:g}{zone}{state})"


class NodeStorage(MutableMapping):
    """A node's live values: ``storage[key]``, ``storage[key] = v``, ``del storage[key]``.

    A write stamps a new version from the cluster's clock (the node's own
    when it belongs to no cluster) and replaces this node's record, so it is
    newer than any copy on other replicas and wins when they are repaired.
    A delete writes a tombstone.  Reads return live values only.  Only this
    node is touched: the other replicas catch up by read repair or
    ``cluster.repair()``.
    """

    __slots__ = ("_node",)

    def __init__(self, node: Node) -> None:
        self._node = node

    def __getitem__(self, key: str | bytes) -> Any:
        node = self._node
        kb = key_bytes(key)
        node._check_up()
        record = node.store.get(kb)
        now = node._clock.time_ms()
        if not live(record, now):
            raise KeyError(key)
        node._clock.observe(record[0])  # a later write through this clock is newer
        return value_of(record, None, now)

    def _write(self, kb: bytes, value: Any) -> None:
        node = self._node
        store = node.store
        clock = node._clock
        for _ in range(2):
            (held,) = store.write_many([kb], [new_record(clock.now(), value)])
            if held is None:
                return
            # Refused by a newer record: stamp above it and write again.  Refused again,
            # the record that refused it arrived after this write began (a concurrent
            # write): this one is ordered just before it, and done (see core.writes).
            clock.observe(held)

    def __setitem__(self, key: str | bytes, value: Any) -> None:
        kb = key_bytes(key)
        self._node._check_up()
        self._write(kb, value)

    def __delitem__(self, key: str | bytes) -> None:
        kb = key_bytes(key)
        node = self._node
        node._check_up()
        if not live(node.store.get(kb), node._clock.time_ms()):
            raise KeyError(key)
        self._write(kb, TOMBSTONE)

    def __iter__(self) -> Iterator[str | bytes]:
        node = self._node
        node._check_up()
        now = node._clock.time_ms()
        for kb, record in node.store.scan():
            if live(record, now):
                yield key_out(kb)

    def __len__(self) -> int:
        node = self._node
        node._check_up()
        now = node._clock.time_ms()
        return sum(1 for _, record in node.store.scan() if live(record, now))

    def __repr__(self) -> str:
        return f"<storage of node {self._node.name!r}>"
