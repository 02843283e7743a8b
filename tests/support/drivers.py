"""One cluster contract, two drivers: the suites that import ``Cluster`` from here run twice.

A test module that sets ``BOTH_DRIVERS = True`` and imports ``Cluster`` from
this module runs every test once with the sync ``cvstore.Cluster`` and once
with ``cvstore.AsyncCluster`` behind ``SyncOverAsync``: the same calls and
the same assertions, the async driver's coroutines run on an event loop of
its own in a thread.  Nodes given with a sync ``RedisStore`` get an
``AsyncRedisStore`` to the same server and prefix for the async driver, and
``raw(node)`` gives a sync store to look at a node's server directly under
either driver.  ``placement`` (set by the ``placed_by`` fixture) is the
``placement=`` every cluster made here gets unless the test passes one.
``CVSTORE_TEST_READ_POLICY=adaptive`` (or another policy) is the
``read_policy=`` every cluster made here gets unless the test passes one: the
contract suites run again under that policy (the promises do not depend on it).
"""

from __future__ import annotations

import asyncio
import inspect
import os
import threading
from collections.abc import Mapping
from typing import Any

import cvstore
from cvstore import AsyncCluster, Node
from cvstore.stores.base import AsyncStore

DRIVERS = ("sync", "async")
current = "sync"  # set for each test by the ``driver`` fixture (tests/conftest.py)
placement = "ring"  # set for each test by the ``placed_by`` fixture (ALL_PLACEMENTS modules)
read_policy = os.environ.get("CVSTORE_TEST_READ_POLICY")  # None: each cluster's default


class Cluster:
    """``cvstore.Cluster`` or ``SyncOverAsync``, whichever driver the test runs with."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:  # type: ignore[misc]
        kwargs.setdefault("placement", placement)
        if read_policy is not None:
            kwargs.setdefault("read_policy", read_policy)
        if current == "async":
            return SyncOverAsync(*args, **kwargs)
        return cvstore.Cluster(*args, **kwargs)

    @staticmethod
    def create(nodes: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("placement", placement)
        if read_policy is not None:
            kwargs.setdefault("read_policy", read_policy)
        if current == "async":
            return SyncOverAsync.create(nodes, **kwargs)
        return cvstore.Cluster.create(nodes, **kwargs)

    @staticmethod
    def join(seeds: Any, **kwargs: Any) -> Any:
        # no placement=: a joining client takes the one its cluster's layout records
        if read_policy is not None:
            kwargs.setdefault("read_policy", read_policy)
        if current == "async":
            return SyncOverAsync.join(seeds, **kwargs)
        return cvstore.Cluster.join(seeds, **kwargs)


class _Loop:
    """An event loop running in a daemon thread of its own."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="test-loop", daemon=True)
        self.thread.start()

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


def _async_store(store: Any) -> Any:
    """An AsyncRedisStore to the server and prefix of a sync RedisStore (other stores as they are)."""
    if isinstance(store, cvstore.RedisStore):
        twin = cvstore.AsyncRedisStore(
            store.address,
            prefix=store.prefix,
            timeout=store.timeout,
            codec=store.codec,
            name=store.name,
            max_connections=store.max_connections,
            pool_timeout=store.pool_timeout,
        )
        twin._sync_twin = store  # type: ignore[attr-defined]
        return twin
    return store


def _async_nodes(nodes: Any, made: list[Any] | None = None) -> Any:
    """The nodes for the async driver: a sync RedisStore's node gets an AsyncRedisStore twin."""
    if isinstance(nodes, (Node, str, bytes)):  # bad input goes as it is: the cluster refuses it
        return nodes
    out = []
    for node in nodes:
        if not isinstance(node, Node):  # bad input goes as it is: the cluster refuses it
            out.append(node)
            continue
        store = _async_store(node.store)
        if store is not node.store:
            node = Node(node.name, weight=node.weight, zone=node.zone, store=store)
            if made is not None:
                made.append(store)
        out.append(node)
    return out


def raw(node: Node) -> Any:
    """A sync store to read a node's server (or in-process store) directly."""
    store = node.store
    if isinstance(store, AsyncStore):
        twin = getattr(store, "_sync_twin", None)
        if twin is None:
            twin = store._sync_twin = cvstore.RedisStore(  # type: ignore[attr-defined]
                store.address, prefix=store.prefix, codec=store.codec, name=store.name
            )
        return twin
    return store


class SyncOverAsync:
    """The sync ``Cluster`` API, carried out by an ``AsyncCluster`` on an event loop of its own."""

    def __init__(self, nodes: Any = (), **kwargs: Any) -> None:
        self._loop = _Loop()
        self._twins: list[Any] = []  # async stores made here for sync ones: closed here
        self._cluster = AsyncCluster(_async_nodes(nodes, self._twins), **kwargs)
        self._run(self._cluster.open())

    @classmethod
    def _wrap(cls, make: Any) -> SyncOverAsync:
        self = object.__new__(cls)
        self._loop = _Loop()
        self._twins = []
        self._cluster = self._loop.run(make(self._twins))
        return self

    @classmethod
    def create(cls, nodes: Any, **kwargs: Any) -> SyncOverAsync:
        return cls._wrap(lambda twins: AsyncCluster.create(_async_nodes(nodes, twins), **kwargs))

    @classmethod
    def join(cls, seeds: Any, **kwargs: Any) -> SyncOverAsync:
        # a single URL or store goes as it is (join takes it as one seed), as does bad input
        if isinstance(seeds, (list, tuple)):
            seeds = [_async_store(s) if not isinstance(s, str) else s for s in seeds]
        elif isinstance(seeds, cvstore.RedisStore):
            seeds = _async_store(seeds)
        return cls._wrap(lambda twins: AsyncCluster.join(seeds, **kwargs))

    def _run(self, coro: Any) -> Any:
        return self._loop.run(coro)

    # what the async driver does as coroutines
    def put(self, *a: Any, **k: Any) -> Any:
        return self._run(self._cluster.put(*a, **k))

    def get(self, *a: Any, **k: Any) -> Any:
        return self._run(self._cluster.get(*a, **k))

    def delete(self, *a: Any, **k: Any) -> Any:
        return self._run(self._cluster.delete(*a, **k))

    def put_many(self, *a: Any, **k: Any) -> Any:
        return self._run(self._cluster.put_many(*a, **k))

    def get_many(self, *a: Any, **k: Any) -> Any:
        return self._run(self._cluster.get_many(*a, **k))

    def add_node(self, node: Node, **k: Any) -> Any:
        node = _async_nodes([node], self._twins)[0]
        return self._run(self._cluster.add_node(node, **k))

    def remove_node(self, node: Any, **k: Any) -> Any:
        return self._run(self._cluster.remove_node(node, **k))

    def set_weight(self, *a: Any, **k: Any) -> Any:
        return self._run(self._cluster.set_weight(*a, **k))

    def finish_change(self, **k: Any) -> Any:
        return self._run(self._cluster.finish_change(**k))

    def repair(self, **k: Any) -> Any:
        return self._run(self._cluster.repair(**k))

    def deliver_hints(self) -> Any:
        return self._run(self._cluster.deliver_hints())

    def stats(self) -> Any:
        return self._run(self._cluster.stats())

    def probe(self) -> Any:
        return self._run(self._cluster.probe())

    def close(self) -> None:
        if self._loop.thread.is_alive():
            self._run(self._cluster.close())
            for store in self._twins:
                self._run(store.close())
                twin = getattr(store, "_sync_twin", None)
                if twin is not None:
                    twin.close()
            self._loop.stop()

    # the mapping calls of the sync driver
    def __iter__(self) -> Any:
        return iter(self._run(self._cluster.keys()))

    def __len__(self) -> int:
        return self._run(self._cluster.count())

    def __contains__(self, key: Any) -> bool:
        return self._run(self._cluster.contains(key))

    def __getitem__(self, key: Any) -> Any:
        value = self.get(key, _MISSING)
        if value is _MISSING:
            raise KeyError(key)
        return value

    def __eq__(self, other: object) -> bool:  # as Mapping.__eq__ gives the sync Cluster
        if not isinstance(other, Mapping):
            return NotImplemented
        return dict(self._run(self._cluster.items())) == dict(other.items())

    __hash__ = None  # type: ignore[assignment]

    def __setitem__(self, key: Any, value: Any) -> None:
        self.put(key, value)

    def __delitem__(self, key: Any) -> None:
        if self.get(key, _MISSING) is _MISSING:
            raise KeyError(key)
        self.delete(key)

    @property
    def _place(self) -> Any:
        return self._cluster._state.placement

    @property
    def read_consistency(self) -> str:
        return self._cluster.read_consistency

    @read_consistency.setter
    def read_consistency(self, level: str) -> None:
        self._cluster.read_consistency = level

    @property
    def write_consistency(self) -> str:
        return self._cluster.write_consistency

    @write_consistency.setter
    def write_consistency(self, level: str) -> None:
        self._cluster.write_consistency = level

    @property
    def read_policy(self) -> str:
        return self._cluster.read_policy

    @read_policy.setter
    def read_policy(self, policy: str) -> None:
        self._cluster.read_policy = policy

    def __getattr__(self, name: str) -> Any:  # nodes, node(), ring, layout, suspected, clock...
        attr = getattr(self._cluster, name)
        if inspect.iscoroutinefunction(attr):  # update, setdefault, pop...: run on the loop
            return lambda *a, **k: self._run(attr(*a, **k))
        return attr

    def __repr__(self) -> str:
        return repr(self._cluster).replace("AsyncCluster", "Cluster", 1)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001, S110 - a test that already closed or broke it
            pass


_MISSING = object()
