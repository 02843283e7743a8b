"""Cluster benchmarks: cvstore's replicated cluster against a dict and a naive replicated store.

Run ``pytest bench/bench_cluster.py --benchmark-only`` (``--benchmark-json=FILE``
to keep the run).  Every group runs its peers in the same session.

Groups and what one timed call does (``extra_info["keys"]`` is the number of
keys it handles):

- ``cluster_put`` / ``cluster_get``: a Python ``for`` loop of 1,000 single-key
  calls on 5 in-process nodes, replication factor 3.
- ``cluster_put_many`` / ``cluster_get_many``: one batch of 100,000 keys.
- ``cluster_add_node``: add an 11th node to 10 nodes holding 1,000,000 keys
  (3,000,000 copies), streaming the copies that move; ``extra_info`` holds the
  moved count and what the ring predicts (they must be equal).
  ``cluster_remove_node`` is the reverse (11 -> 10).
- ``cluster_add_node_100k``: the same add with 100,000 keys, where the naive
  peer (a Python loop over every key) finishes in reasonable time.
- ``cluster_update``: the mapping call ``update`` of 100,000 items into a
  cluster holding them, against ``put_many`` of the same items, the
  one-``__setitem__``-per-item loop that ``MutableMapping``'s own ``update``
  runs (what the cluster did before it had its own), and ``dict.update``.
- ``cluster_clear``: ``clear()`` of 100,000 keys, against ``put_many`` of
  100,000 tombstones (the write it amounts to), ``MutableMapping``'s own
  ``clear`` (a ``popitem`` loop: a read and a delete per key) and
  ``dict.clear``; each round starts from a freshly filled store (not timed).

Peers (ids):

- ``cvstore``: ``cvstore.Cluster`` at its default level, quorum (versions,
  conditional writes, level checks, read repair); ``cvstore-all`` and
  ``cvstore-one`` at those levels; ``cvstore-new-keys`` writes into an empty
  cluster each round (inserts, not overwrites).
- ``dict``: one plain dict, no replication: the floor of any Python store.
- ``naive``: ``NaiveCluster`` below: uhashring placement and a dict per node,
  writing 3 copies, reading the primary; no versions, no levels, no failures.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import numpy as np
import pytest

from cvstore import Cluster, HashRing, Node
from cvstore.versions import TOMBSTONE

RF = 3
VNODES = 160  # the Cluster default
SCALAR_KEYS = 1_000
BATCH_KEYS = 100_000


def _uhashring() -> Any:
    return pytest.importorskip("uhashring")


class NaiveCluster:
    """The replicated store one writes in an afternoon: ring placement, N dicts, no versions."""

    def __init__(self, names: list[str], replicas: int = RF) -> None:
        self.ring = _uhashring().HashRing(nodes=list(names))
        self.stores: dict[str, dict[str, Any]] = {name: {} for name in names}
        self.replicas = replicas

    def _replicas(self, key: str) -> list[str]:
        return [info["nodename"] for info in self.ring.range(key, size=self.replicas, unique=True)]

    def put(self, key: str, value: Any) -> None:
        for name in self._replicas(key):
            self.stores[name][key] = value

    def get(self, key: str, default: Any = None) -> Any:
        return self.stores[self.ring.get_node(key)].get(key, default)

    def put_many(self, mapping: dict[str, Any]) -> None:
        for key, value in mapping.items():
            self.put(key, value)

    def get_many(self, keys: list[str]) -> dict[str, Any]:
        out = {}
        for key in keys:
            value = self.get(key, out)
            if value is not out:
                out[key] = value
        return out

    def add_node(self, name: str) -> int:
        """Add a node and move what changes: a Python loop over every key. Returns copies moved."""
        everything = {k: v for store in self.stores.values() for k, v in store.items()}
        before = {k: set(self._replicas(k)) for k in everything}
        self.ring.add_node(name)
        self.stores[name] = {}
        moved = 0
        for key, value in everything.items():
            after = set(self._replicas(key))
            for gained in after - before[key]:
                self.stores[gained][key] = value
                moved += 1
            for lost in before[key] - after:
                del self.stores[lost][key]
        return moved


def _cluster(count: int, data: dict[str, Any] | None = None) -> Cluster:
    cluster = Cluster([Node(f"node-{i}") for i in range(count)], replication_factor=RF)
    if data:
        items = list(data.items())
        for start in range(0, len(items), BATCH_KEYS):
            cluster.put_many(dict(items[start : start + BATCH_KEYS]))
    return cluster


def _predicted_moves(before: HashRing, after: HashRing, keys: list[str]) -> int:
    """Copies the rings say change hands: new replicas that were not old ones."""
    old = np.asarray(before.nodes)[before.get_nodes_many(keys, RF)]
    new = np.asarray(after.nodes)[after.get_nodes_many(keys, RF)]
    return int((~(new[:, :, None] == old[:, None, :]).any(axis=2)).sum())


@pytest.fixture(scope="module")
def scalar_keys(keys_1k: list[str]) -> list[str]:
    return keys_1k


@pytest.fixture(scope="module")
def batch(keys_100k: list[str]) -> dict[str, int]:
    return {key: i for i, key in enumerate(keys_100k)}


# -- single keys ------------------------------------------------------------------------

SCALAR_PEERS = ["cvstore", "cvstore-all", "cvstore-one", "dict", "naive"]


def _scalar_target(peer: str, keys: list[str]) -> tuple[Any, Any]:
    """(put(key, value), get(key)) callables of `peer`, loaded with `keys`."""
    if peer == "dict":
        store: dict[str, Any] = dict.fromkeys(keys, 0)
        return store.__setitem__, store.get
    if peer == "naive":
        naive = NaiveCluster([f"node-{i}" for i in range(5)])
        naive.put_many(dict.fromkeys(keys, 0))
        return naive.put, naive.get
    level = peer.split("-", 1)[1] if "-" in peer else "quorum"
    cluster = _cluster(5, dict.fromkeys(keys, 0))

    def put(key: str, value: Any) -> None:
        cluster.put(key, value, consistency=level)

    def get(key: str) -> Any:
        return cluster.get(key, consistency=level)

    if level == "quorum":  # the cluster's defaults: no wrapper, so the call itself is timed
        return cluster.put, cluster.get
    return put, get


@pytest.mark.benchmark(group="cluster_put")
@pytest.mark.parametrize("peer", SCALAR_PEERS)
def test_put(benchmark, peer, scalar_keys):
    put, get = _scalar_target(peer, scalar_keys)

    def run() -> None:
        for key in scalar_keys:
            put(key, key)

    benchmark.extra_info.update(
        keys=len(scalar_keys), nodes=5, vnodes=VNODES, replication_factor=RF
    )
    benchmark(run)
    assert all(get(key) == key for key in scalar_keys[::50])


@pytest.mark.benchmark(group="cluster_get")
@pytest.mark.parametrize("peer", SCALAR_PEERS)
def test_get(benchmark, peer, scalar_keys):
    put, get = _scalar_target(peer, scalar_keys)
    for key in scalar_keys:
        put(key, key)

    def run() -> None:
        for key in scalar_keys:
            get(key)

    benchmark.extra_info.update(
        keys=len(scalar_keys), nodes=5, vnodes=VNODES, replication_factor=RF
    )
    benchmark(run)
    assert [get(key) for key in scalar_keys[::50]] == scalar_keys[::50]


# -- batches ----------------------------------------------------------------------------

BATCH_PEERS = ["cvstore", "dict", "naive"]


@pytest.mark.benchmark(group="cluster_put_many")
@pytest.mark.parametrize("peer", BATCH_PEERS + ["cvstore-new-keys"])
def test_put_many(benchmark, peer, batch):
    benchmark.extra_info.update(keys=len(batch), nodes=5, vnodes=VNODES, replication_factor=RF)
    if peer == "cvstore-new-keys":
        # Into an empty cluster each round: inserts rather than overwrites.
        benchmark.pedantic(
            lambda cluster: cluster.put_many(batch),
            setup=lambda: ((_cluster(5),), {}),
            rounds=5,
        )
        return
    if peer == "dict":
        store: dict[str, int] = {}
        benchmark(store.update, batch)
        assert store == batch
        return
    if peer == "naive":
        naive = NaiveCluster([f"node-{i}" for i in range(5)])
        benchmark.pedantic(naive.put_many, args=(batch,), rounds=3)
        assert sum(map(len, naive.stores.values())) == RF * len(batch)
        return
    cluster = _cluster(5)
    benchmark(cluster.put_many, batch)
    assert sum(n.store.count() for n in cluster.nodes) == RF * len(batch)


@pytest.mark.benchmark(group="cluster_get_many")
@pytest.mark.parametrize("peer", BATCH_PEERS + ["cvstore-one"])
def test_get_many(benchmark, peer, batch):
    keys = list(batch)
    benchmark.extra_info.update(keys=len(keys), nodes=5, vnodes=VNODES, replication_factor=RF)
    if peer == "dict":
        store = dict(batch)
        result = benchmark(lambda: {k: store[k] for k in keys if k in store})
    elif peer == "naive":
        naive = NaiveCluster([f"node-{i}" for i in range(5)])
        naive.put_many(batch)
        result = benchmark.pedantic(naive.get_many, args=(keys,), rounds=3)
    else:
        cluster = _cluster(5, batch)
        level = "one" if peer == "cvstore-one" else "quorum"
        result = benchmark(cluster.get_many, keys, consistency=level)
    assert result == batch


# -- rebalancing ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def million(keys_1m: list[str]) -> dict[str, int]:
    return dict.fromkeys(keys_1m, 1)


@pytest.mark.benchmark(group="cluster_add_node")
@pytest.mark.parametrize("peer", ["cvstore"])
def test_add_node_1m(benchmark, peer, million):
    keys = list(million)
    reports = []

    def setup():
        return (_cluster(10, million),), {}

    def add(cluster: Cluster) -> None:
        reports.append((cluster.ring, cluster.add_node(Node("node-10")), cluster))

    benchmark.pedantic(add, setup=setup, rounds=3)
    before, report, cluster = reports[-1]
    predicted = _predicted_moves(before, cluster.ring, keys)
    benchmark.extra_info.update(
        keys=len(keys),
        nodes=10,
        vnodes=VNODES,
        replication_factor=RF,
        moved=report.moved,
        predicted=predicted,
    )
    assert report.moved == predicted and report.missed == 0
    assert sum(n.store.count() for n in cluster.nodes) == RF * len(keys)


@pytest.mark.benchmark(group="cluster_remove_node")
@pytest.mark.parametrize("peer", ["cvstore"])
def test_remove_node_1m(benchmark, peer, million):
    keys = list(million)
    reports = []

    def setup():
        return (_cluster(11, million),), {}

    def remove(cluster: Cluster) -> None:
        reports.append((cluster.ring, cluster.remove_node("node-10"), cluster))

    benchmark.pedantic(remove, setup=setup, rounds=3)
    before, report, cluster = reports[-1]
    predicted = _predicted_moves(before, cluster.ring, keys)
    benchmark.extra_info.update(
        keys=len(keys),
        nodes=11,
        vnodes=VNODES,
        replication_factor=RF,
        moved=report.moved,
        predicted=predicted,
    )
    assert report.moved == predicted
    assert sum(n.store.count() for n in cluster.nodes) == RF * len(keys)


@pytest.mark.benchmark(group="cluster_add_node_100k")
@pytest.mark.parametrize("peer", ["cvstore", "naive"])
def test_add_node_100k(benchmark, peer, batch):
    moved = []
    names = [f"node-{i}" for i in range(10)]
    if peer == "naive":

        def setup():
            naive = NaiveCluster(names)
            naive.put_many(batch)
            return (naive,), {}

        benchmark.pedantic(
            lambda naive: moved.append(naive.add_node("node-10")), setup=setup, rounds=3
        )
    else:
        benchmark.pedantic(
            lambda cluster: moved.append(cluster.add_node(Node("node-10")).moved),
            setup=lambda: ((_cluster(10, batch),), {}),
            rounds=3,
        )
    benchmark.extra_info.update(
        keys=len(batch), nodes=10, vnodes=VNODES, replication_factor=RF, moved=moved[-1]
    )
    assert moved[-1] > 0


# -- the mapping calls ------------------------------------------------------------------


@pytest.mark.benchmark(group="cluster_update")
@pytest.mark.parametrize("peer", ["cvstore", "cvstore-put_many", "cvstore-setitem-loop", "dict"])
def test_update(benchmark, peer, batch):
    benchmark.extra_info.update(keys=len(batch), nodes=5, vnodes=VNODES, replication_factor=RF)
    if peer == "dict":
        store: dict[str, int] = {}
        benchmark(store.update, batch)
        assert store == batch
        return
    cluster = _cluster(5, batch)
    if peer == "cvstore":
        benchmark(cluster.update, batch)
    elif peer == "cvstore-put_many":
        benchmark(cluster.put_many, batch)
    else:  # MutableMapping.update: cluster[key] = value for each item
        benchmark.pedantic(MutableMapping.update, args=(cluster, batch), rounds=3)
    keys = list(batch)[::100]
    assert cluster.get_many(keys) == {key: batch[key] for key in keys}


@pytest.mark.benchmark(group="cluster_clear")
@pytest.mark.parametrize(
    "peer", ["cvstore", "cvstore-put_many-tombstones", "cvstore-popitem-loop", "dict"]
)
def test_clear(benchmark, peer, batch):
    benchmark.extra_info.update(keys=len(batch), nodes=5, vnodes=VNODES, replication_factor=RF)
    emptied = []
    if peer == "dict":
        benchmark.pedantic(
            lambda store: emptied.append(store.clear() or store),
            setup=lambda: ((dict(batch),), {}),
            rounds=5,
        )
        assert emptied[-1] == {}
        return
    tombstones = dict.fromkeys(batch, TOMBSTONE)
    clear = {
        "cvstore": Cluster.clear,
        "cvstore-put_many-tombstones": lambda cluster: cluster.put_many(tombstones),
        "cvstore-popitem-loop": MutableMapping.clear,
    }[peer]

    def run(cluster: Cluster) -> None:
        clear(cluster)
        emptied.append(cluster)

    benchmark.pedantic(run, setup=lambda: ((_cluster(5, batch),), {}), rounds=3)
    assert len(emptied[-1]) == 0
