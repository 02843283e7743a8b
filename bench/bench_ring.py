"""HashRing benchmarks: cvstore against its peers, every group in the same run.

Run ``pytest bench --benchmark-only`` (add ``--benchmark-json=FILE`` to keep a
run, and ``python bench/report.py FILE`` to print it as a Markdown table).

Groups and what one timed call does (``extra_info["keys"]`` is the number of
keys it handles, so per-key times and rates can be derived):

- ``get_node``: a Python ``for`` loop of 1,000 scalar lookups, 100 nodes x 160 points.
- ``get_nodes``: the same loop asking for a preference list of 3 distinct nodes.
- ``lookup_many``: the owners of 1,000,000 str keys; peers without a batch call
  run a list comprehension over the first 100,000 of the same keys.
- ``hash``: the 64-bit hashes of the same keys (placement hash only, no search).
- ``build``: a ring of 1000 nodes x 160 points; ``extra_info`` also holds the
  memory per point.
- ``add_node``: add one node to a fresh 1000-node ring (``pedantic``, since add mutates).
- ``bounded``: a loop of 1,000 ``get_node`` calls against 1,000
  ``get_node_bounded(key, loads, 1.25)`` calls (loads as an int64 array and as
  a list), 100 nodes, loads left by a burst of 3,000 Zipf(1.1) requests.
- ``bounded_many``: ``lookup_many`` against ``lookup_many_bounded`` of 1,000,000 keys.
- ``scale_build``: cvstore rings of 10 to 100,000 nodes x 160 points (the
  target: 100,000 nodes under 1 s); ``extra_info`` holds the memory per point.
- ``scale_add`` / ``scale_remove``: add or remove one node of a 100, 10,000 or
  100,000-node ring (targets: under 5 ms at 10,000 and 50 ms at 100,000); the
  untimed setup undoes the previous round, so every round changes the same ring.
- ``scale_lookup_many``: ``lookup_many`` of 1,000,000 keys on rings of 100,
  10,000 and 100,000 nodes (target: at 10,000 and 100,000 nodes at least 70 %
  of the 100-node rate); ``extra_info["nodes"]`` tells the rows apart, and
  bench/report.py's ratios within the group give the comparison.

Peers (ids):

- ``cvstore``: ``cvstore.HashRing`` (C search over numpy arrays).
- ``uhashring``: ``uhashring.HashRing(nodes)`` in its default mode (MD5, 160 points a node).
- ``reference``: ``cvstore._reference.ReferenceRing``, the pure-Python twin of the placement.
- ``bisect-xxh64``: ``BisectRing`` below, a hand-written sorted-list + ``bisect``
  ring over ``xxhash.xxh64_intdigest``, with cvstore's placement.
- ``jump-xxh64``: ``nodes[jump.hash(xxh64_intdigest(k.encode()), n)]``, jump
  consistent hash: no ring, so no weights and only the last node can leave.
- ``dict``: a plain dict from key to owner, built beforehand: the floor of any
  lookup made from Python.
- ``loop``: the bare ``for k in keys`` loop that every scalar row also pays.

Each benchmark also checks, outside the timed part, that what it timed gives
the right answer on a sample (peers with cvstore's placement must agree with
the twin; the others must at least name nodes of the ring).
"""

from __future__ import annotations

import bisect
import functools
import gc
import tracemalloc
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import pytest

from cvstore import HashRing
from cvstore._reference import ReferenceRing

from .conftest import node_names

VNODES = 160  # points per node in every ring here (as in conftest.py)

PYTHON_LOOP_KEYS = 100_000  # keys timed for peers that are a Python loop (lookup_many, hash)
PREFERENCE = 3  # n for get_nodes
SAMPLE = 200  # keys checked against the twin after timing


def _xxh64() -> Callable[..., int]:
    return pytest.importorskip("xxhash").xxh64_intdigest


class BisectRing:
    """The textbook ring: sorted XXH64 points, a parallel list of owners, ``bisect``.

    Same placement as cvstore (points at XXH64(f"{name}-{i}"), seed 0, ties by
    name), so its answers must equal cvstore's.
    """

    def __init__(self, nodes: Iterable[str], vnodes: int = VNODES) -> None:
        self._xxh64 = _xxh64()
        self.vnodes = vnodes
        pairs = sorted((p, name) for name in nodes for p in self._points_of(name))
        self.points = [p for p, _ in pairs]
        self.owners = [name for _, name in pairs]

    def _points_of(self, name: str) -> list[int]:
        return [self._xxh64(f"{name}-{i}".encode()) for i in range(self.vnodes)]

    def get_node(self, key: str) -> str:
        i = bisect.bisect_left(self.points, self._xxh64(key.encode()))
        return self.owners[i if i < len(self.points) else 0]

    def add(self, name: str) -> None:
        """Insert the new node's points in place; nothing else is re-hashed."""
        points, owners = self.points, self.owners
        for p in self._points_of(name):
            i = bisect.bisect_left(points, p)
            while i < len(points) and points[i] == p and owners[i] < name:
                i += 1
            points.insert(i, p)
            owners.insert(i, name)


def _uhashring() -> Any:
    return pytest.importorskip("uhashring")


def _jump_hash() -> Callable[[int, int], int]:
    return pytest.importorskip("jump").hash


def _retained_bytes(build: Callable[[], Any]) -> int:
    """Bytes still allocated (as tracemalloc sees them) after ``build()``, while its result lives."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        obj = build()
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    del obj
    return after - before


def _owner_names(owners: np.ndarray, ring: HashRing) -> list[str]:
    return [ring.nodes[i] for i in owners.tolist()]


def _sample(keys: list[str]) -> list[str]:
    return keys[:: max(1, len(keys) // SAMPLE)]


@pytest.fixture(scope="module")
def twin_100(nodes_100: list[str]) -> ReferenceRing:
    pytest.importorskip("xxhash")  # without it the twin hashes in pure Python
    return ReferenceRing(nodes_100, vnodes=VNODES)


# -- get_node --------------------------------------------------------------------------

GET_NODE_PEERS = ["cvstore", "uhashring", "reference", "bisect-xxh64", "jump-xxh64", "dict", "loop"]


def _get_node_peer(
    peer: str, nodes: list[str], ring: HashRing, twin: ReferenceRing, keys: list[str]
) -> tuple[Callable[[], None], Callable[[str], str] | None, bool]:
    """(timed loop over keys, the single-key function, whether it has cvstore's placement)."""
    if peer == "jump-xxh64":
        jhash, xxh64, n = _jump_hash(), _xxh64(), len(nodes)

        def run() -> None:
            for k in keys:
                nodes[jhash(xxh64(k.encode()), n)]

        return run, lambda k: nodes[jhash(xxh64(k.encode()), n)], False
    if peer == "dict":
        table = {k: ring.get_node(k) for k in keys}

        def run() -> None:
            for k in keys:
                table[k]

        return run, table.__getitem__, True
    if peer == "loop":

        def run() -> None:
            for k in keys:
                pass

        return run, None, False

    if peer == "cvstore":
        get, same = ring.get_node, True
    elif peer == "uhashring":
        get, same = _uhashring().HashRing(nodes).get_node, False
    elif peer == "reference":
        get, same = twin.get_node, True
    elif peer == "bisect-xxh64":
        get, same = BisectRing(nodes).get_node, True
    else:
        raise AssertionError(peer)

    def run() -> None:
        for k in keys:
            get(k)

    return run, get, same


@pytest.mark.benchmark(group="get_node")
@pytest.mark.parametrize("peer", GET_NODE_PEERS)
def test_get_node(benchmark, peer, nodes_100, ring_100, twin_100, keys_1k):
    run, get, same_placement = _get_node_peer(peer, nodes_100, ring_100, twin_100, keys_1k)
    benchmark.extra_info.update(keys=len(keys_1k), nodes=len(nodes_100), vnodes=VNODES)
    benchmark(run)

    if get is not None:
        sample = _sample(keys_1k)
        got = [get(k) for k in sample]
        if same_placement:
            assert got == [twin_100.get_node(k) for k in sample]
        else:
            assert set(got) <= set(nodes_100)


# -- get_nodes -------------------------------------------------------------------------

GET_NODES_PEERS = ["cvstore", "uhashring", "reference"]


@pytest.mark.benchmark(group="get_nodes")
@pytest.mark.parametrize("peer", GET_NODES_PEERS)
def test_get_nodes(benchmark, peer, nodes_100, ring_100, twin_100, keys_1k):
    n = PREFERENCE
    if peer == "cvstore":
        get_nodes: Callable[[str, int], list[str]] = ring_100.get_nodes
    elif peer == "uhashring":
        uring = _uhashring().HashRing(nodes_100)

        def get_nodes(key: str, n: int) -> list[str]:
            return [conf["nodename"] for conf in uring.range(key, n)]
    else:
        get_nodes = twin_100.get_nodes

    def run() -> None:
        for k in keys_1k:
            get_nodes(k, n)

    benchmark.extra_info.update(keys=len(keys_1k), nodes=len(nodes_100), vnodes=VNODES, n=n)
    benchmark(run)

    sample = _sample(keys_1k)
    got = [get_nodes(k, n) for k in sample]
    assert all(len(set(names)) == n and set(names) <= set(nodes_100) for names in got)
    if peer != "uhashring":
        assert got == [twin_100.get_nodes(k, n) for k in sample]


# -- lookup_many -----------------------------------------------------------------------

LOOKUP_MANY_PEERS = [
    "cvstore",
    "cvstore-bytes",
    "cvstore-ndarray",
    "uhashring",
    "reference",
    "bisect-xxh64",
    "jump-xxh64",
    "dict",
]


@pytest.mark.benchmark(group="lookup_many")
@pytest.mark.parametrize("peer", LOOKUP_MANY_PEERS)
def test_lookup_many(benchmark, peer, nodes_100, ring_100, twin_100, keys_1m):
    """Owners of 1M keys: cvstore's batch call against a comprehension of each peer's lookup."""
    keys: Any = keys_1m
    owner_of: Callable[[Any, int], str]  # (result, i) -> owner name of keys[i]
    if peer.startswith("cvstore"):
        if peer == "cvstore-bytes":
            keys = [k.encode() for k in keys_1m]
        elif peer == "cvstore-ndarray":
            keys = np.array(keys_1m)  # dtype <U18
        call: Callable[[], Any] = lambda: ring_100.lookup_many(keys)
        owner_of = lambda result, i: ring_100.nodes[result[i]]
    elif peer == "dict":
        table = dict(zip(keys_1m, ring_100.lookup_many(keys_1m).tolist()))
        call = lambda: [table[k] for k in keys]
        owner_of = lambda result, i: ring_100.nodes[result[i]]
    elif peer == "jump-xxh64":
        keys = keys_1m[:PYTHON_LOOP_KEYS]
        jhash, xxh64, n = _jump_hash(), _xxh64(), len(nodes_100)
        call = lambda: [jhash(xxh64(k.encode()), n) for k in keys]
        owner_of = lambda result, i: nodes_100[result[i]]
    else:
        keys = keys_1m[:PYTHON_LOOP_KEYS]
        if peer == "uhashring":
            get = _uhashring().HashRing(nodes_100).get_node
        elif peer == "reference":
            get = twin_100.get_node
        else:
            get = BisectRing(nodes_100).get_node
        call = lambda: [get(k) for k in keys]
        owner_of = lambda result, i: result[i]

    benchmark.extra_info.update(keys=len(keys), nodes=len(nodes_100), vnodes=VNODES)
    result = benchmark(call)

    assert len(result) == len(keys)
    picks = range(0, len(keys), max(1, len(keys) // SAMPLE))
    got = [owner_of(result, i) for i in picks]
    if peer in ("uhashring", "jump-xxh64"):
        assert set(got) <= set(nodes_100)
    else:
        assert got == [twin_100.get_node(keys_1m[i]) for i in picks]


# -- hash ------------------------------------------------------------------------------

HASH_PEERS = ["cvstore", "cvstore-scalar", "xxhash"]


@pytest.mark.benchmark(group="hash")
@pytest.mark.parametrize("peer", HASH_PEERS)
def test_hash(benchmark, peer, ring_100, keys_1m):
    """XXH64 of the keys: hash_many on 1M keys, or a comprehension on the first 100,000."""
    xxh64 = _xxh64()
    if peer == "cvstore":
        keys = keys_1m
        call: Callable[[], Any] = lambda: ring_100.hash_many(keys)
    else:
        keys = keys_1m[:PYTHON_LOOP_KEYS]
        if peer == "cvstore-scalar":
            hash_key = ring_100.hash_key
            call = lambda: [hash_key(k) for k in keys]
        else:
            call = lambda: [xxh64(k.encode()) for k in keys]

    benchmark.extra_info.update(keys=len(keys))
    result = benchmark(call)

    picks = range(0, len(keys), max(1, len(keys) // SAMPLE))
    assert [int(result[i]) for i in picks] == [xxh64(keys[i].encode()) for i in picks]


# -- build -----------------------------------------------------------------------------

BUILD_PEERS = ["cvstore", "cvstore-ketama", "uhashring", "reference", "bisect-xxh64"]


def _builder(peer: str, nodes: list[str]) -> tuple[Callable[[], Any], Callable[[Any], int]]:
    """(build the ring, count its points)."""
    if peer == "cvstore":
        return lambda: HashRing(nodes, vnodes=VNODES), lambda r: len(r.points)
    if peer == "cvstore-ketama":
        return lambda: HashRing(nodes, vnodes=VNODES, hash="ketama"), lambda r: len(r.points)
    if peer == "uhashring":
        uhashring = _uhashring()
        return lambda: uhashring.HashRing(nodes), lambda r: len(r.get_points())
    if peer == "reference":
        pytest.importorskip("xxhash")
        return lambda: ReferenceRing(nodes, vnodes=VNODES), lambda r: len(r.positions)
    if peer == "bisect-xxh64":
        _xxh64()
        return lambda: BisectRing(nodes), lambda r: len(r.points)
    raise AssertionError(peer)


@pytest.mark.benchmark(group="build")
@pytest.mark.parametrize("peer", BUILD_PEERS)
def test_build(benchmark, peer, nodes_1000, ring_1000):
    build, count_points = _builder(peer, nodes_1000)
    built = benchmark(build)

    points = count_points(built)
    benchmark.extra_info.update(nodes=len(nodes_1000), vnodes=VNODES, points=points)
    # Memory: everything the ring keeps alive (tracemalloc also sees numpy's buffers), per point.
    benchmark.extra_info["retained_bytes_per_point"] = round(_retained_bytes(build) / points, 1)
    if peer.startswith("cvstore"):
        # The arrays a lookup reads (radix tables, if any, are not public).
        arrays = built.points.nbytes + built.owners.nbytes
        benchmark.extra_info["bytes_per_point"] = arrays / points
        built._check()

    if peer == "cvstore":
        assert built == ring_1000
    elif peer in ("reference", "bisect-xxh64"):
        assert points == len(ring_1000.points)
        positions = built.positions if peer == "reference" else built.points
        assert positions == ring_1000.points.tolist()
    else:
        assert points == len(nodes_1000) * VNODES


# -- add_node --------------------------------------------------------------------------

ADD_NODE_PEERS = ["cvstore", "uhashring", "reference", "bisect-xxh64"]
NEW_NODE = "node-new"


@pytest.mark.benchmark(group="add_node")
@pytest.mark.parametrize("peer", ADD_NODE_PEERS)
def test_add_node(benchmark, peer, nodes_1000):
    """Add one node to a freshly built 1000 x 160 ring (the build is not timed)."""
    build, count_points = _builder(peer, nodes_1000)
    add: Callable[[Any, str], None]
    if peer == "uhashring":
        add = lambda ring, name: ring.add_node(name)
    else:
        add = lambda ring, name: ring.add(name)
    last: list[Any] = [None]

    def setup() -> tuple[tuple[Any, str], dict]:
        last[0] = None  # let the previous ring go before building the next
        last[0] = build()
        return (last[0], NEW_NODE), {}

    benchmark.extra_info.update(nodes=len(nodes_1000), vnodes=VNODES)
    rounds = 30 if peer == "cvstore" else 10
    benchmark.pedantic(add, setup=setup, rounds=rounds, iterations=1)

    ring = last[0]
    assert count_points(ring) == (len(nodes_1000) + 1) * VNODES
    if peer != "uhashring":
        expected = HashRing([*nodes_1000, NEW_NODE], vnodes=VNODES)
        if peer == "cvstore":
            ring._check()
            assert ring == expected
        else:
            positions = ring.positions if peer == "reference" else ring.points
            assert positions == expected.points.tolist()


# -- placements ------------------------------------------------------------------------
# The registered placements side by side: the ring (HashRing, 160 points a node) and
# rendezvous (weighted HRW, cvstore.core.rendezvous), built as a cluster builds them.

PLACEMENT_PEERS = ["ring", "rendezvous"]
PLACEMENT_NODES = [10, 100]


def _placer(peer: str, count: int) -> Any:
    from cvstore.core.placements import placer_factory

    make = placer_factory(peer, vnodes=VNODES, hash="xxh64", seed=0)
    return make({f"node-{i}": 1.0 for i in range(count)})


@pytest.mark.benchmark(group="placement-get_nodes")
@pytest.mark.parametrize("nodes", PLACEMENT_NODES, ids=lambda n: f"nodes={n}")
@pytest.mark.parametrize("peer", PLACEMENT_PEERS)
def test_placement_get_nodes(benchmark, peer, nodes, keys_1k):
    """A loop of 1,000 preference lists of 3 (the per-key lookup of a cluster call)."""
    placer = _placer(peer, nodes)
    get_nodes = placer.get_nodes

    def run() -> None:
        for k in keys_1k:
            get_nodes(k, PREFERENCE)

    benchmark.extra_info.update(keys=len(keys_1k), nodes=nodes, n=PREFERENCE)
    benchmark(run)

    rows = placer.get_nodes_many(keys_1k, PREFERENCE)
    for i in range(0, len(keys_1k), 50):
        assert get_nodes(keys_1k[i], PREFERENCE) == [placer.nodes[j] for j in rows[i]]


@pytest.mark.benchmark(group="placement-get_nodes_many")
@pytest.mark.parametrize("nodes", PLACEMENT_NODES, ids=lambda n: f"nodes={n}")
@pytest.mark.parametrize("peer", PLACEMENT_PEERS)
def test_placement_get_nodes_many(benchmark, peer, nodes, keys_100k):
    """Preference lists of 3 for 100,000 keys in one batch call (rebalancing, batches)."""
    placer = _placer(peer, nodes)
    benchmark.extra_info.update(keys=len(keys_100k), nodes=nodes, n=PREFERENCE)
    rows = benchmark(placer.get_nodes_many, keys_100k, PREFERENCE)
    assert rows.shape == (len(keys_100k), PREFERENCE)


# -- bounded loads ---------------------------------------------------------------------

BOUNDED_PEERS = ["get_node", "get_node_bounded", "get_node_bounded-list", "loop"]
BOUNDED_MANY_PEERS = ["lookup_many", "lookup_many_bounded"]
BOUNDED_C = 1.25
BOUNDED_IN_FLIGHT = 3_000  # requests in flight behind the loads the lookups see


@functools.cache
def _bounded_loads(count: int) -> np.ndarray:
    """Loads of `count` equal nodes after a burst of 3,000 Zipf(1.1) requests
    placed with bounds at c = 1.25: the hot keys' owners are full, so lookups
    walk on from them as they would in a busy service."""
    ring = HashRing(node_names(count), vnodes=VNODES)
    ids = np.random.default_rng(20261206).zipf(1.1, BOUNDED_IN_FLIGHT)
    keys = [f"item:{v}" for v in ids.tolist()]
    placed = ring.lookup_many_bounded(keys, np.zeros(count, dtype=np.int64), BOUNDED_C)
    loads = np.bincount(placed, minlength=count).astype(np.int64)
    loads.flags.writeable = False
    return loads


@pytest.mark.benchmark(group="bounded")
@pytest.mark.parametrize("peer", BOUNDED_PEERS)
def test_bounded(benchmark, peer, nodes_100, ring_100, keys_1k):
    """A loop of 1,000 lookups: get_node against get_node_bounded(key, loads, 1.25)
    with loads an int64 array (read in place) or a list (converted each call)."""
    loads = _bounded_loads(len(nodes_100))
    as_list = loads.tolist()
    get, bounded = ring_100.get_node, ring_100.get_node_bounded

    if peer == "get_node":

        def run() -> None:
            for k in keys_1k:
                get(k)

    elif peer == "get_node_bounded":

        def run() -> None:
            for k in keys_1k:
                bounded(k, loads, BOUNDED_C)

    elif peer == "get_node_bounded-list":

        def run() -> None:
            for k in keys_1k:
                bounded(k, as_list, BOUNDED_C)

    else:

        def run() -> None:
            for k in keys_1k:
                pass

    benchmark.extra_info.update(
        keys=len(keys_1k), nodes=len(nodes_100), vnodes=VNODES, c=BOUNDED_C,
        in_flight=int(loads.sum()),
    )  # fmt: skip
    benchmark(run)

    sample = _sample(keys_1k)
    ref = ReferenceRing(nodes_100, vnodes=VNODES)
    got = [bounded(k, loads, BOUNDED_C) for k in sample]
    assert got == [ref.get_node_bounded(k, as_list, BOUNDED_C) for k in sample]
    moved = sum(g != get(k) for g, k in zip(got, sample))
    benchmark.extra_info["sample_not_owner"] = moved / len(sample)


@pytest.mark.benchmark(group="bounded_many")
@pytest.mark.parametrize("peer", BOUNDED_MANY_PEERS)
def test_bounded_many(benchmark, peer, nodes_100, ring_100, keys_1m):
    """1,000,000 keys in one call: owners, or a burst placed with bounds from
    no load (each placement adds 1)."""
    zeros = np.zeros(len(nodes_100), dtype=np.int64)
    if peer == "lookup_many":
        out = benchmark(ring_100.lookup_many, keys_1m)
    else:
        out = benchmark(ring_100.lookup_many_bounded, keys_1m, zeros, BOUNDED_C)
        counts = np.bincount(out, minlength=len(nodes_100))
        assert counts.max() <= int(np.ceil(BOUNDED_C * len(keys_1m) / len(nodes_100)))
    benchmark.extra_info.update(keys=len(keys_1m), nodes=len(nodes_100), vnodes=VNODES, c=BOUNDED_C)
    assert out.shape == (len(keys_1m),)


# -- rings with many nodes -------------------------------------------------------------

SCALE_NODES = [10, 100, 1_000, 10_000, 100_000]
SCALE_CHANGE_NODES = [100, 10_000, 100_000]
SCALE_NEW_NODE = "node-new"


@functools.cache
def _scale_ring(count: int) -> HashRing:
    """One ring of `count` nodes per run, shared by the scale groups (each round
    leaves it as it found it)."""
    return HashRing(node_names(count), vnodes=VNODES)


@pytest.mark.benchmark(group="scale_build")
@pytest.mark.parametrize("count", SCALE_NODES)
def test_scale_build(benchmark, count):
    names = node_names(count)
    benchmark.extra_info.update(nodes=count, vnodes=VNODES, points=count * VNODES)
    rounds = 3 if count >= 100_000 else 10
    built = benchmark.pedantic(lambda: HashRing(names, vnodes=VNODES), rounds=rounds, iterations=1)
    assert built == _scale_ring(count)
    # Memory per point: everything the ring keeps alive (its arrays, radix table, names and
    # weights), and its point and owner arrays alone.
    points = count * VNODES
    retained = _retained_bytes(lambda: HashRing(names, vnodes=VNODES))
    benchmark.extra_info["retained_bytes_per_point"] = round(retained / points, 2)
    benchmark.extra_info["bytes_per_point"] = (built.points.nbytes + built.owners.nbytes) / points


@pytest.mark.benchmark(group="scale_add")
@pytest.mark.parametrize("count", SCALE_CHANGE_NODES)
def test_scale_add(benchmark, count):
    ring = _scale_ring(count)

    def setup() -> tuple[tuple[str], dict]:
        if SCALE_NEW_NODE in ring:
            ring.remove(SCALE_NEW_NODE)
        return (SCALE_NEW_NODE,), {}

    benchmark.extra_info.update(nodes=count, vnodes=VNODES)
    benchmark.pedantic(ring.add, setup=setup, rounds=20, iterations=1)
    ring._check()
    assert ring == HashRing([*node_names(count), SCALE_NEW_NODE], vnodes=VNODES)
    ring.remove(SCALE_NEW_NODE)


@pytest.mark.benchmark(group="scale_remove")
@pytest.mark.parametrize("count", SCALE_CHANGE_NODES)
def test_scale_remove(benchmark, count):
    ring = _scale_ring(count)

    def setup() -> tuple[tuple[str], dict]:
        if SCALE_NEW_NODE not in ring:
            ring.add(SCALE_NEW_NODE)
        return (SCALE_NEW_NODE,), {}

    benchmark.extra_info.update(nodes=count, vnodes=VNODES)
    benchmark.pedantic(ring.remove, setup=setup, rounds=20, iterations=1)
    ring._check()
    assert SCALE_NEW_NODE not in ring
    assert ring == HashRing(node_names(count), vnodes=VNODES)


@pytest.mark.benchmark(group="scale_lookup_many")
@pytest.mark.parametrize("count", SCALE_CHANGE_NODES)
def test_scale_lookup_many(benchmark, count, keys_1m):
    ring = _scale_ring(count)
    benchmark.extra_info.update(keys=len(keys_1m), nodes=count, vnodes=VNODES)
    result = benchmark(ring.lookup_many, keys_1m)
    sample = _sample(keys_1m)
    picks = result[:: max(1, len(keys_1m) // SAMPLE)][: len(sample)]
    assert _owner_names(picks, ring) == [ring.get_node(k) for k in sample]
