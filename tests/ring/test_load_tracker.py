"""LoadTracker: requests in flight per node, the bounded-load choice, threads and
membership changes of its ring."""

from __future__ import annotations

import math
import sys
import threading

import numpy as np
import pytest

import cvstore
from cvstore import EmptyRingError, HashRing, LoadTracker
from cvstore._reference import ReferenceRing

NODES = {"a": 1.0, "b": 2.0, "c": 1.0, "d": 4.0}


def _keys(n: int, seed: int = 7) -> list[str]:
    ids = np.random.default_rng(seed).zipf(1.1, n)
    return [f"item:{v}" for v in ids.tolist()]


def test_public_and_three_lines():
    assert "LoadTracker" in cvstore.__all__
    ring = HashRing(NODES)
    tracker = LoadTracker(ring, c=1.25)
    with tracker.request("user:1") as node:
        assert node == ring.get_node("user:1")  # nothing in flight: the ring owner
        assert tracker.loads() == {n: int(n == node) for n in ring.nodes}
    assert tracker.loads() == dict.fromkeys(ring.nodes, 0)


def test_request_releases_when_the_block_raises():
    tracker = LoadTracker(HashRing(NODES))
    with pytest.raises(RuntimeError, match="boom"), tracker.request("k") as node:
        assert tracker.loads()[node] == 1
        raise RuntimeError("boom")
    assert sum(tracker.loads().values()) == 0


def test_held_requests_are_a_burst_within_the_bound():
    """Acquiring without releasing places keys exactly as one batch does, and
    no node ever holds more than ceil(c * in-flight * w / W)."""
    ring = HashRing(NODES)
    ref = ReferenceRing(NODES)
    keys = _keys(3000)
    tracker = LoadTracker(ring, c=1.1)
    chosen = [tracker.acquire(k) for k in keys]
    batch = ring.lookup_many_bounded(keys, np.zeros(len(ring), dtype=np.int64), 1.1)
    assert chosen == [ring.nodes[i] for i in batch.tolist()]
    loads = tracker.loads()
    assert sum(loads.values()) == len(keys)
    for name, held in loads.items():
        assert held <= ref.bound(name, len(keys) - 1, 1.1)
    # a plain ring puts far more on the hot keys' owners
    plain = np.bincount(ring.lookup_many(keys), minlength=len(ring))
    assert plain.max() > max(loads.values())
    for node in chosen:
        tracker.release(node)
    assert tracker.loads() == dict.fromkeys(ring.nodes, 0)


def test_releases_make_room_again():
    ring = HashRing(["a", "b"])
    tracker = LoadTracker(ring, c=1.5)
    key = "k1"
    owner, other = ring.get_node(key), ring.get_nodes(key, 2)[1]
    # bound of a node with 2 in flight and one more coming: ceil(1.5 * 3 / 2) = 3
    held = [tracker.acquire(key) for _ in range(3)]
    assert held == [owner, owner, owner]
    assert tracker.acquire(key) == other  # 3 on the owner: ceil(1.5 * 4 / 2) = 3, full
    tracker.release(owner)
    assert tracker.acquire(key) == owner


def test_threads_keep_exact_counts():
    """Four threads acquire and release at once, with a tiny switch interval so
    that an unguarded read-modify-write would lose counts."""
    ring = HashRing(NODES)
    tracker = LoadTracker(ring, c=1.25)
    keys = _keys(2000, seed=3)
    peak: list[int] = []
    barrier = threading.Barrier(4)

    def work(offset: int) -> None:
        barrier.wait()
        held = []
        for i, key in enumerate(keys):
            held.append(tracker.acquire(key))
            if i % 3 == offset % 3 and held:
                tracker.release(held.pop(0))
        peak.append(len(held))
        for node in held:
            tracker.release(node)

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(old)
    assert len(peak) == 4
    assert tracker.loads() == dict.fromkeys(ring.nodes, 0)


def test_threads_never_pass_the_bound():
    """Threads that only acquire: at every moment the counts are those of some
    order of the same acquires, so the bound holds at the end."""
    ring = HashRing(NODES)
    ref = ReferenceRing(NODES)
    tracker = LoadTracker(ring, c=1.25)
    keys = _keys(1000, seed=5)

    def work() -> None:
        for key in keys:
            tracker.acquire(key)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    loads = tracker.loads()
    total = sum(loads.values())
    assert total == 3000
    for name, held in loads.items():
        assert held <= ref.bound(name, total - 1, 1.25)


def test_ring_changes_are_followed():
    ring = HashRing(["a", "b", "c"])
    tracker = LoadTracker(ring)
    keys = [f"k{i}" for i in range(300)]
    first = [tracker.acquire(k) for k in keys[:30]]
    ring.add("d", 1.0)
    # the new node starts empty and takes its keys (nothing in flight on it)
    new_key = next(k for k in keys if ring.get_node(k) == "d")
    assert tracker.acquire(new_key) == "d"
    assert tracker.loads()["d"] == 1
    # a removed node keeps its requests until they are released, outside the total
    gone = first[0]
    held_on_gone = first.count(gone)
    ring.remove(gone)
    loads = tracker.loads()
    assert loads[gone] == held_on_gone
    assert gone not in [tracker.acquire(k) for k in keys[30:60]]
    for _ in range(held_on_gone):
        tracker.release(gone)
    assert gone not in tracker.loads()
    with pytest.raises(ValueError, match=r"got '.', which has none"):
        tracker.release(gone)
    # removed and added again with requests in flight: they count again
    other = next(n for n in first if n != gone)
    held_on_other = tracker.loads()[other]
    ring.remove(other)
    ring.add(other, 1.0)
    assert tracker.loads()[other] == held_on_other


def test_the_tracker_works_on_a_whole_ring_while_another_thread_changes_it():
    ring = HashRing([f"n{i}" for i in range(8)])
    tracker = LoadTracker(ring)
    stop = threading.Event()
    errors: list[BaseException] = []

    def churn() -> None:
        i = 0
        while not stop.is_set() and i < 2000:
            name = f"x{i % 4}"
            if name in ring:
                ring.remove(name)
            else:
                ring.add(name, 1.0)
            i += 1

    def route() -> None:
        try:
            for i in range(3000):
                with tracker.request(f"k{i}") as node:
                    assert isinstance(node, str)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=churn), threading.Thread(target=route)]
    for t in threads:
        t.start()
    threads[1].join()
    stop.set()
    threads[0].join()
    assert errors == []
    assert sum(tracker.loads().values()) == 0


class TestErrors:
    def test_bad_ring_and_c(self):
        with pytest.raises(TypeError, match=r"ring must be a HashRing, got dict"):
            LoadTracker({"a": 1.0})  # type: ignore[arg-type]
        ring = HashRing(["a"])
        for c, error, match in [
            (1.0, ValueError, r"c must be a finite number > 1, got 1.0"),
            (math.nan, ValueError, r"got nan"),
            (math.inf, ValueError, r"got inf"),
            (10**400, ValueError, r"got 1.000e\+400"),
            (True, TypeError, r"c must be a number > 1, got bool: True"),
            ("2", TypeError, r"got str: '2'"),
        ]:
            with pytest.raises(error, match=match):
                LoadTracker(ring, c=c)  # type: ignore[arg-type]
        assert LoadTracker(ring, c=2).c == 2.0

    def test_bad_release_changes_nothing(self):
        tracker = LoadTracker(HashRing(["a", "b"]))
        node = tracker.acquire("k")
        before = tracker.loads()
        with pytest.raises(ValueError, match=r"node must have a request in flight .* got 'zz'"):
            tracker.release("zz")
        with pytest.raises(TypeError, match=r"node must be a str, got int: 3"):
            tracker.release(3)  # type: ignore[arg-type]
        tracker.release(node)
        with pytest.raises(ValueError, match=r"which has none"):
            tracker.release(node)
        assert tracker.loads() == {**before, node: 0}

    def test_bad_key_and_empty_ring(self):
        tracker = LoadTracker(HashRing(["a"]))
        with pytest.raises(TypeError, match=r"key must be str or bytes, got int"):
            tracker.acquire(5)  # type: ignore[arg-type]
        assert tracker.loads() == {"a": 0}
        with pytest.raises(EmptyRingError, match="the ring has no nodes"):
            LoadTracker(HashRing()).acquire("k")

    def test_repr(self):
        tracker = LoadTracker(HashRing(["a", "b"]), c=1.5)
        tracker.acquire("k")
        assert repr(tracker) == "LoadTracker(nodes=2, in_flight=1, c=1.5)"
