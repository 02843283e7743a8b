"""Readers in several threads while a writer adds and removes nodes: no crash, and
every answer is the owner in the ring before or after some change."""

import threading
import time

import pytest

from cvstore import HashRing
from cvstore._ring import _pool_min

BASE = [f"node-{i}" for i in range(20)]
EXTRA = [f"extra-{i}" for i in range(5)]


@pytest.mark.slow
@pytest.mark.parametrize("nodes", [20, 1000])  # 1,000: its arrays pooled (see below)
def test_readers_see_whole_rings_while_membership_changes(nodes):
    # Arrays of 256 KiB and more on pooled memory (tests/ring/test_ring_blocks.py), so
    # that a change writes into memory an earlier change's arrays gave back.
    before = _pool_min(256 << 10 if nodes >= 1000 else 16 << 20)
    try:
        _readers_while_changes(nodes)
    finally:
        _pool_min(before)


def _readers_while_changes(nodes: int) -> None:
    base = [f"node-{i}" for i in range(nodes)]
    ring = HashRing(base)
    keys = [f"k{i}" for i in range(2000)]
    # Every ring the writer can produce is `base` plus a prefix of EXTRA, so the
    # set of acceptable owners of a key is its owner in any of those rings.
    valid = {k: set() for k in keys}
    for size in range(len(EXTRA) + 1):
        snapshot = HashRing(base + EXTRA[:size])
        for k, owner in zip(keys, snapshot.lookup_many(keys).tolist()):
            valid[k].add(snapshot.nodes[owner])

    stop = time.monotonic() + 2.0
    errors = []
    counts = {"scalar": 0, "batch": 0, "changes": 0}

    def writer():
        while time.monotonic() < stop:
            for name in EXTRA:
                ring.add(name)
                counts["changes"] += 1
            for name in reversed(EXTRA):
                ring.remove(name)
                counts["changes"] += 1

    def scalar_reader():
        i = 0
        while time.monotonic() < stop:
            k = keys[i % len(keys)]
            if ring.get_node(k) not in valid[k]:
                errors.append(("get_node", k))
            i += 1
        counts["scalar"] += i

    def batch_reader():
        while time.monotonic() < stop:
            # A copy pins one ring, so its indices and its node names agree.
            snap = ring.copy()
            names = snap.nodes
            for k, i in zip(keys, snap.lookup_many(keys).tolist()):
                if names[i] not in valid[k]:
                    errors.append(("lookup_many", k))
            counts["batch"] += 1

    threads = [threading.Thread(target=writer)]
    threads += [threading.Thread(target=scalar_reader) for _ in range(2)]
    threads += [threading.Thread(target=batch_reader) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    assert counts["changes"] > 10 and counts["scalar"] > 1000 and counts["batch"] > 10
    ring._check()


def test_copy_is_independent_and_equal():
    ring = HashRing(BASE)
    snap = ring.copy()
    assert snap == ring and snap is not ring
    ring.add("extra-0")
    assert snap != ring
    assert snap.nodes == tuple(sorted(BASE))
    snap._check()
    ring._check()


def test_bounded_lookups_while_membership_changes():
    """Bounded lookups, scalar and batch (GIL released), on a ring that another
    thread grows and shrinks: each answer is for one whole ring (with no load, its
    owner there), or a ValueError when the loads' length no longer matches."""
    import numpy as np

    ring = HashRing(BASE)
    keys = [f"k{i}" for i in range(500)]
    valid = {k: set() for k in keys}
    for size in range(len(EXTRA) + 1):
        snapshot = HashRing(BASE + EXTRA[:size])
        for k, owner in zip(keys, snapshot.lookup_many(keys).tolist()):
            valid[k].add(snapshot.nodes[owner])
    done = threading.Event()
    errors = []
    counts = {"scalar": 0, "batch": 0, "mismatch": 0}

    def writer():
        for _ in range(100):
            for name in EXTRA:
                ring.add(name)
            for name in reversed(EXTRA):
                ring.remove(name)
        done.set()

    def scalar_reader():
        while not done.is_set() or counts["scalar"] < 2000:
            k = keys[counts["scalar"] % len(keys)]
            try:
                node = ring.get_node_bounded(k, np.zeros(len(ring), dtype=np.int64), 1.25)
            except ValueError as exc:
                assert "one entry per node" in str(exc)
                counts["mismatch"] += 1
            else:
                if node not in valid[k]:
                    errors.append(("get_node_bounded", k, node))
            counts["scalar"] += 1

    def batch_reader():
        while not done.is_set() or counts["batch"] < 20:
            snap = ring.copy()
            got = snap.lookup_many_bounded(keys, np.zeros(len(snap), dtype=np.int64), 1.25)
            loads = np.bincount(got, minlength=len(snap))
            if loads.max() > np.ceil(1.25 * len(keys) / len(snap)):
                errors.append(("lookup_many_bounded", loads.max()))
            counts["batch"] += 1

    threads = [threading.Thread(target=writer), threading.Thread(target=scalar_reader)]
    threads += [threading.Thread(target=batch_reader)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    ring._check()
