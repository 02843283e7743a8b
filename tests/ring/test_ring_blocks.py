"""The memory of a ring's large arrays is kept for the next change (csrc/cvs_blocks.h).

A change writes new arrays; the old ones' memory goes back to a pool once no
array uses it, and the next change takes it from there instead of asking the
kernel for fresh pages.  What must hold: memory is reused only once nothing
can read it (an array a caller or a copy holds keeps its values), the pool
stays bounded, the answers are those of a ring built afresh, and tracemalloc
still sees the memory a ring holds.
"""

from __future__ import annotations

import pickle
import tracemalloc

import numpy as np
import pytest

from cvstore import HashRing
from cvstore._ring import _pool_clear, _pool_min, _pool_state

# 2,000 nodes x 160 points: points 2.6 MB, owners 1.3 MB, radix table 1 MB.  Arrays
# are pooled from 16 MiB (100,000 nodes' are 32-128 MB); these tests pool them from
# 256 KiB, so that small rings show the mechanism.
NAMES = [f"node-{i}" for i in range(2000)]
SMALL = 256 << 10


@pytest.fixture(autouse=True)
def pool_from_256_kib():
    before = _pool_min(SMALL)
    yield
    _pool_min(before)


def address(array: np.ndarray) -> int:
    return array.__array_interface__["data"][0]


@pytest.fixture
def ring():
    _pool_clear()
    ring = HashRing(NAMES)
    assert ring.points.nbytes >= SMALL and ring.owners.nbytes >= SMALL
    yield ring
    del ring
    _pool_clear()


def test_a_change_takes_the_memory_the_change_before_gave_back(ring):
    built = address(ring.points), address(ring.owners)
    ring.add("extra")  # fresh memory: the built arrays are still in use until it is done
    added = address(ring.points), address(ring.owners)
    assert added != built
    assert _pool_state()[0] == 3  # the built ring's points, owners and radix table
    ring.remove("extra")
    assert (address(ring.points), address(ring.owners)) == built
    ring.add("extra")
    assert (address(ring.points), address(ring.owners)) == added
    assert ring == HashRing([*NAMES, "extra"])
    ring._check()


def test_an_array_someone_holds_is_never_written(ring):
    held_points, held_owners = ring.points, ring.owners
    points, owners = held_points.copy(), held_owners.copy()
    snapshot = ring.copy()
    for i in range(4):
        ring.add(f"extra-{i}")
        if i:
            ring.remove(f"extra-{i - 1}")
        assert address(ring.points) != address(held_points)
        assert address(ring.owners) != address(held_owners)
    assert np.array_equal(held_points, points) and np.array_equal(held_owners, owners)
    assert snapshot == HashRing(NAMES)
    snapshot._check()
    ring._check()
    assert ring == HashRing([*NAMES, "extra-3"])


def test_answers_after_many_changes_are_a_fresh_builds(ring):
    keys = [f"key-{i}" for i in range(20_000)]
    for i in range(6):
        ring.add(f"extra-{i}")
        if i % 2:
            ring.remove(f"extra-{i - 1}")
    fresh = HashRing([*NAMES, "extra-1", "extra-3", "extra-5"])
    assert ring == fresh
    assert np.array_equal(ring.lookup_many(keys), fresh.lookup_many(keys))
    assert [ring.get_node(k) for k in keys[:500]] == [fresh.get_node(k) for k in keys[:500]]
    assert pickle.loads(pickle.dumps(ring)) == fresh


def test_the_pool_keeps_at_most_six_blocks(ring):
    rings = [HashRing(NAMES[: 1000 + 100 * i]) for i in range(8)]
    del rings  # 24 large arrays given back at once
    count, kept = _pool_state()
    assert 1 <= count <= 6
    assert kept <= 1 << 30


def test_tracemalloc_sees_a_rings_arrays():
    _pool_clear()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        ring = HashRing(NAMES)
        held = tracemalloc.get_traced_memory()[0] - before
        assert held >= ring.points.nbytes + ring.owners.nbytes
        del ring
        assert tracemalloc.get_traced_memory()[0] - before < SMALL  # kept blocks: not in use
    finally:
        tracemalloc.stop()
        _pool_clear()


def test_below_the_size_arrays_come_from_numpy():
    _pool_clear()
    _pool_min(16 << 20)  # the default
    ring = HashRing(NAMES)  # arrays of 1-2.6 MB
    assert ring.points.flags.owndata and ring.owners.flags.owndata
    ring.add("extra")
    del ring
    assert _pool_state() == (0, 0)
