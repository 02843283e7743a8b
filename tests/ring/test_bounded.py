"""Bounded-load lookups (get_node_bounded, lookup_many_bounded): the C paths equal
the pure-Python twin, the bound holds under a skewed workload, bad input is refused."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cvstore import EmptyRingError, HashRing
from cvstore._reference import ReferenceRing

names = st.text(min_size=1, max_size=12)
weights = st.floats(min_value=0.05, max_value=4.0, allow_nan=False, allow_infinity=False)
keys = st.one_of(st.text(max_size=40), st.binary(max_size=40))
balance = st.one_of(
    st.floats(min_value=1.0, max_value=4.0, exclude_min=True),
    st.sampled_from([1.1, 1.25, 1.5, 2.0, math.nextafter(1.0, 2.0)]),
)
rings = st.fixed_dictionaries(
    {
        "nodes": st.dictionaries(names, weights, min_size=1, max_size=10),
        "vnodes": st.integers(min_value=1, max_value=40),
        "seed": st.integers(min_value=0, max_value=2**64 - 1),
    }
)


# Ketama weights may be tiny or huge (up to 1.7e308: their sum would overflow unscaled).
ketama_weights = st.one_of(
    weights,
    st.floats(min_value=5e-324, max_value=1e-30),
    st.floats(min_value=1e30, max_value=1.7e308),
    st.integers(1, 1000).map(float),
)


def _loads(count: int) -> st.SearchStrategy[list[int]]:
    return st.lists(st.integers(0, 60), min_size=count, max_size=count)


@given(spec=rings, data=st.data(), keys=st.lists(keys, min_size=1, max_size=30), c=balance)
def test_xxh64_bounded_equals_reference(spec, data, keys, c):
    ring = HashRing(spec["nodes"], vnodes=spec["vnodes"], seed=spec["seed"])
    ref = ReferenceRing(spec["nodes"], vnodes=spec["vnodes"], seed=spec["seed"])
    loads = data.draw(_loads(len(ring)))
    arr = np.array(loads, dtype=np.int64)
    for key in keys:
        expected = ref.get_node_bounded(key, loads, c)
        assert ring.get_node_bounded(key, arr, c) == expected  # the in-place fast path
        assert ring.get_node_bounded(key, loads, c) == expected  # a list, converted
    assert ring.lookup_many_bounded(keys, arr, c).tolist() == ref.lookup_many_bounded(
        keys, loads, c
    )
    assert arr.tolist() == loads  # the batch counts on a copy


@given(
    nodes=st.dictionaries(names, ketama_weights, min_size=1, max_size=8),
    vnodes=st.sampled_from([4, 8, 40, 160]),
    hash=st.sampled_from(["ketama", "ketama-uhashring"]),
    data=st.data(),
    keys=st.lists(keys, min_size=1, max_size=30),
    c=balance,
)
def test_ketama_bounded_equals_reference(nodes, vnodes, hash, data, keys, c):
    try:
        ring = HashRing(nodes, vnodes=vnodes, hash=hash)
    except ValueError:  # no node gets a digest: covered in test_ring_equivalence
        return
    ref = ReferenceRing(nodes, vnodes=vnodes, hash=hash)
    loads = data.draw(_loads(len(ring)))
    for key in keys:
        assert ring.get_node_bounded(key, loads, c) == ref.get_node_bounded(key, loads, c)
    assert ring.lookup_many_bounded(keys, loads, c).tolist() == ref.lookup_many_bounded(
        keys, loads, c
    )


@given(spec=rings, keys=st.lists(keys, min_size=1, max_size=30), c=balance)
def test_no_load_means_the_ring_owner(spec, keys, c):
    """With every load 0 each bound is ceil(c * w / W) >= 1: the owner has room."""
    ring = HashRing(spec["nodes"], vnodes=spec["vnodes"], seed=spec["seed"])
    zeros = np.zeros(len(ring), dtype=np.int64)
    assert [ring.get_node_bounded(k, zeros, c) for k in keys] == [ring.get_node(k) for k in keys]


@given(spec=rings, data=st.data(), keys=st.lists(keys, min_size=1, max_size=60), c=balance)
def test_batch_is_a_burst_within_the_bound(spec, data, keys, c):
    """Each placement of a batch counts: the chosen node was below its bound
    with the loads so far, so after it no node passes ceil(c * total * w / W)."""
    ring = HashRing(spec["nodes"], vnodes=spec["vnodes"], seed=spec["seed"])
    ref = ReferenceRing(spec["nodes"], vnodes=spec["vnodes"], seed=spec["seed"])
    loads = data.draw(_loads(len(ring)))
    chosen = ring.lookup_many_bounded(keys, loads, c)
    running = list(loads)
    for key, i in zip(keys, chosen.tolist()):
        assert ring.nodes[i] == ring.get_node_bounded(key, running, c)
        assert running[i] < ref.bound(ring.nodes[i], sum(running), c)
        running[i] += 1
    assert (np.array(loads) + np.bincount(chosen, minlength=len(ring))).tolist() == running


def test_full_owner_goes_clockwise_to_the_next_node_with_room():
    ring = HashRing({"a": 1.0, "b": 1.0, "c": 2.0})
    key = "user:42"
    owner = ring.get_node(key)
    loads = [0, 0, 0]
    loads[ring.nodes.index(owner)] = 10  # total 10: its bound is ceil(1.25 * 11 * w / 4) <= 7
    chosen = ring.get_node_bounded(key, loads, 1.25)
    assert chosen != owner
    # the next distinct node clockwise: the second of the key's preference list
    assert chosen == ring.get_nodes(key, 2)[1]


def test_a_node_at_exactly_its_bound_is_full():
    """Two equal nodes, c = 1.5, 3 requests in flight, all on the key's owner:
    the bound is ceil(1.5 * (3 + 1) * 1 / 2) = 3 exactly, so the owner is full
    (and at 2 it has room)."""
    ring = HashRing(["a", "b"])
    for key in ["k1", "k2", "k3", "k4"]:
        owner = ring.get_node(key)
        other = "b" if owner == "a" else "a"
        at = [3 if n == owner else 0 for n in ring.nodes]
        below = [2 if n == owner else 0 for n in ring.nodes]
        assert ring.get_node_bounded(key, at, 1.5) == other
        assert ring.get_node_bounded(key, below, 1.5) == owner
        assert ring.lookup_many_bounded([key], at, 1.5).tolist() == [ring.nodes.index(other)]


def test_every_node_full_falls_back_to_the_owner():
    """A ketama node without points carries weight but takes no key, so the nodes
    with points can all be full: the key then goes to its ring owner."""
    ring = HashRing({"a": 1.0, "b": 1.0, "c": 0.9}, vnodes=4, hash="ketama")
    assert np.bincount(ring.owners, minlength=3).tolist()[2] == 0  # c has no point
    loads = [5, 5, 0]  # bounds of a and b: ceil(1.1 * 11 / 2.9) = 5
    ref = ReferenceRing({"a": 1.0, "b": 1.0, "c": 0.9}, vnodes=4, hash="ketama")
    assert ref.bound("a", 10, 1.1) == 5
    for key in ["k1", "k2", "k3", b"k4"]:
        assert ring.get_node_bounded(key, loads, 1.1) == ring.get_node(key)
        assert ref.get_node_bounded(key, loads, 1.1) == ring.get_node(key)


def test_weights_set_the_bounds():
    """Node b (weight 3) takes 3/4 of a burst on two nodes at c just above 1."""
    ring = HashRing({"a": 1.0, "b": 3.0})
    keys = [f"k{i}" for i in range(4000)]
    counts = np.bincount(ring.lookup_many_bounded(keys, [0, 0], 1.01), minlength=2)
    assert counts.tolist()[0] <= math.ceil(1.01 * 4000 * 1 / 4)
    assert counts.tolist()[1] <= math.ceil(1.01 * 4000 * 3 / 4)


def test_loads_of_other_layouts_are_read_the_same():
    ring = HashRing([f"n{i}" for i in range(6)])
    loads = [3, 0, 7, 1, 9, 2]
    keys = [f"k{i}" for i in range(200)]
    expected = [ring.get_node_bounded(k, np.array(loads, dtype=np.int64), 1.2) for k in keys]
    wide = np.zeros(12, dtype=np.int64)
    wide[::2] = loads
    for other in (
        loads,
        tuple(loads),
        np.array(loads, dtype=np.int32),
        np.array(loads, dtype=np.uint8),
        np.array(loads, dtype=">i8"),  # byte-swapped
        wide[::2],  # strided
        np.array(loads, dtype=np.longlong),
    ):
        assert [ring.get_node_bounded(k, other, 1.2) for k in keys] == expected
        assert ring.lookup_many_bounded(keys[:1], other, 1.2).tolist() == [
            ring.nodes.index(expected[0])
        ]


def test_long_lists_of_loads_equal_arrays():
    """Lists and tuples of ints are read item by item (into a buffer on the stack
    up to 128 nodes, on the heap above): the same answers as an int64 array."""
    for count in (3, 128, 129, 300):
        ring = HashRing([f"n{i}" for i in range(count)], vnodes=20)
        loads = np.random.default_rng(count).integers(0, 40, count)
        keys = [f"k{i}" for i in range(300)]
        expected = [ring.get_node_bounded(k, loads.astype(np.int64), 1.1) for k in keys]
        assert [ring.get_node_bounded(k, loads.tolist(), 1.1) for k in keys] == expected
        assert [ring.get_node_bounded(k, tuple(loads.tolist()), 1.1) for k in keys] == expected
        bad = [*loads.tolist()[:-1], 1.5]
        with pytest.raises(TypeError, match=r"got dtype float64"):
            ring.get_node_bounded("k", bad, 1.1)
        with pytest.raises(ValueError, match=r"loads must be >= 0, got -1 at index 0"):
            ring.get_node_bounded("k", [-1, *loads.tolist()[1:]], 1.1)
        with pytest.raises(ValueError, match=r"loads must sum to at most 2\*\*52"):
            ring.get_node_bounded("k", [2**62, *loads.tolist()[1:]], 1.1)


class TestErrors:
    ring = HashRing(["a", "b", "c"])

    @pytest.mark.parametrize(
        ("loads", "error", "match"),
        [
            ([1, 2], ValueError, r"loads must have one entry per node \(3\), got 2"),
            (np.zeros(4, dtype=np.int64), ValueError, r"one entry per node \(3\), got 4"),
            ([0, -1, 0], ValueError, r"loads must be >= 0, got -1 at index 1"),
            (np.array([0, 0, -5]), ValueError, r"loads must be >= 0, got -5 at index 2"),
            ([0.0, 1.0, 2.0], TypeError, r"loads must hold ints .* got dtype float64"),
            (np.array([True, False, True]), TypeError, r"got dtype bool"),
            (np.zeros((3, 1), dtype=np.int64), ValueError, r"1-dimensional .* shape \(3, 1\)"),
            ("abc", TypeError, r"loads must be a sequence or numpy array of ints.* got str"),
            (None, TypeError, r"got NoneType"),
            ([[1], [2, 3], []], TypeError, r"got list"),
            ([2**51, 2**51, 1], ValueError, r"loads must sum to at most 2\*\*52"),
            ([0, 2**63 - 1, 0], ValueError, r"loads must sum to at most 2\*\*52"),
            ([0, 2**70, 0], TypeError, r"got dtype object"),
        ],
    )
    def test_bad_loads(self, loads, error, match):
        before = loads.copy() if isinstance(loads, np.ndarray) else loads
        with pytest.raises(error, match=match):
            self.ring.get_node_bounded("k", loads, 1.25)
        with pytest.raises(error, match=match):
            self.ring.lookup_many_bounded(["k"], loads, 1.25)
        if isinstance(loads, np.ndarray):
            assert np.array_equal(loads, before)

    @pytest.mark.parametrize(
        ("c", "error", "match"),
        [
            (1.0, ValueError, r"c must be a finite number > 1, got 1.0"),
            (1, ValueError, r"c must be a finite number > 1, got 1$"),
            (0.5, ValueError, r"got 0.5"),
            (-2.0, ValueError, r"got -2.0"),
            (math.inf, ValueError, r"got inf"),
            (math.nan, ValueError, r"got nan"),
            (10**400, ValueError, r"got 1.000e\+400"),
            (True, TypeError, r"c must be a number > 1, got bool: True"),
            ("1.5", TypeError, r"got str: '1.5'"),
            (None, TypeError, r"got NoneType"),
        ],
    )
    def test_bad_balance_factor(self, c, error, match):
        with pytest.raises(error, match=match):
            self.ring.get_node_bounded("k", [0, 0, 0], c)
        with pytest.raises(error, match=match):
            self.ring.lookup_many_bounded(["k"], [0, 0, 0], c)

    def test_other_numbers_are_balance_factors(self):
        from fractions import Fraction

        for c in (2, Fraction(5, 4), np.float32(1.5), np.int64(3)):
            assert self.ring.get_node_bounded("k", [0, 0, 0], c) == self.ring.get_node("k")

    def test_bad_key(self):
        with pytest.raises(TypeError, match=r"key must be str or bytes, got int"):
            self.ring.get_node_bounded(5, [0, 0, 0], 1.25)
        with pytest.raises(TypeError, match=r"keys\[1\] must be str or bytes, got float"):
            self.ring.lookup_many_bounded(["a", 1.5], [0, 0, 0], 1.25)

    def test_bad_out(self):
        with pytest.raises(ValueError, match=r"out must be a writable C-contiguous int32 array"):
            self.ring.lookup_many_bounded(["a"], [0, 0, 0], 1.25, out=np.empty(1, np.int64))

    def test_empty_ring(self):
        ring = HashRing()
        with pytest.raises(EmptyRingError, match="the ring has no nodes"):
            ring.get_node_bounded("k", [], 1.25)
        with pytest.raises(EmptyRingError, match="the ring has no nodes"):
            ring.lookup_many_bounded(["k"], np.zeros(0, dtype=np.int64), 1.25)


def test_out_is_filled_and_returned():
    ring = HashRing(["a", "b", "c"])
    keys = [f"k{i}" for i in range(50)]
    out = np.full(50, -1, dtype=np.int32)
    assert ring.lookup_many_bounded(keys, [0, 0, 0], 1.25, out=out) is out
    assert out.tolist() == ring.lookup_many_bounded(np.array(keys), [0, 0, 0], 1.25).tolist()
    assert ring.lookup_many_bounded([], [0, 0, 0], 1.25).shape == (0,)


# -- the bound under a skewed workload ----------------------------------------------------

STEPS = 1_000_000
WINDOW = 3_040  # requests in flight once warm: 16 per unit of weight


def _weighted_nodes() -> dict[str, float]:
    """100 nodes of weights 1, 2 and 4 (total 190)."""
    return {
        f"node-{i:03d}": (1.0, 2.0, 4.0)[0 if i < 50 else 1 if i < 80 else 2] for i in range(100)
    }


@pytest.mark.slow
def test_bounded_loads_under_zipf_never_pass_the_bound():
    """10**6 requests with Zipf(1.1) keys on 100 weighted nodes; each arrives,
    is placed with get_node_bounded, and completes WINDOW requests later.  No
    node ever holds more than ceil(c * in-flight * w / W), and at c = 1.25 the
    most loaded node holds at most 1.25 x its weighted share once warm."""
    nodes = _weighted_nodes()
    ring = HashRing(nodes)
    weight = np.array([nodes[n] for n in ring.nodes])
    wsum = math.fsum(weight.tolist())
    ids = np.random.default_rng(20261206).zipf(1.1, STEPS)
    names, inverse = np.unique(ids, return_inverse=True)
    key_of = [f"item:{v}" for v in names.tolist()]
    index = {name: i for i, name in enumerate(ring.nodes)}
    c = 1.25
    loads = np.zeros(len(ring), dtype=np.int64)
    placed = np.empty(STEPS, dtype=np.int64)
    worst = 0.0  # max over warm steps of max_i loads_i / (in-flight * w_i / W)
    total = 0
    get = ring.get_node_bounded
    for step, k in enumerate(inverse.tolist()):
        if step >= WINDOW:  # the oldest request completes
            loads[placed[step - WINDOW]] -= 1
            total -= 1
        i = index[get(key_of[k], loads, c)]
        loads[i] += 1
        total += 1
        placed[step] = i
        # the node that grew is within its bound (the others did not grow, and
        # with the total never shrinking below WINDOW once warm, their bounds hold)
        assert loads[i] <= math.ceil(c * total * weight[i] / wsum), (step, i)
        if step % 1000 == 999:
            assert np.all(loads <= np.ceil(c * total * weight / wsum)), step
            if step >= WINDOW:
                worst = max(worst, float(np.max(loads / (total * weight / wsum))))
    assert 1.0 < worst <= 1.25
    # against the plain ring on the same requests (the last window): far above
    owners = ring.lookup_many(key_of)[inverse[-WINDOW:]]
    share = np.bincount(owners, minlength=len(ring)) / (WINDOW * weight / wsum)
    assert share.max() > 2.0
