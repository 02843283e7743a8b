"""Hypothesis: the C ring equals the pure-Python twin on random rings and keys,
and every batch call equals a loop of the scalar calls."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cvstore import HashRing
from cvstore._reference import ReferenceRing

names = st.text(min_size=1, max_size=12)
weights = st.floats(min_value=0.05, max_value=4.0, allow_nan=False, allow_infinity=False)
keys = st.one_of(st.text(max_size=40), st.binary(max_size=40))
rings = st.fixed_dictionaries(
    {
        "nodes": st.dictionaries(names, weights, min_size=1, max_size=12),
        "vnodes": st.integers(min_value=1, max_value=64),
        "seed": st.integers(min_value=0, max_value=2**64 - 1),
    }
)


@given(spec=rings, keys=st.lists(keys, min_size=1, max_size=50), n=st.integers(1, 6))
def test_xxh64_ring_equals_reference(spec, keys, n):
    ring = HashRing(spec["nodes"], vnodes=spec["vnodes"], seed=spec["seed"])
    ref = ReferenceRing(spec["nodes"], vnodes=spec["vnodes"], seed=spec["seed"])
    ring._check()
    assert ring.nodes == ref.nodes
    assert np.asarray(ring.points).tolist() == ref.positions
    for key in keys:
        assert ring.get_node(key) == ref.get_node(key)
        assert ring.get_nodes(key, n) == ref.get_nodes(key, n)
        assert ring.hash_key(key) == ref.hash_key(key)


# Ketama weights span tiny ones (nodes with 0 digests) and huge ones (float32 overflow).
ketama_weights = st.one_of(
    weights,
    st.floats(min_value=5e-324, max_value=1e-30),
    st.floats(min_value=1e30, max_value=1.7e308),
    st.integers(1, 1000).map(float),
)


@given(
    nodes=st.dictionaries(names, ketama_weights, min_size=1, max_size=10),
    vnodes=st.sampled_from([4, 8, 40, 160]),
    hash=st.sampled_from(["ketama", "ketama-uhashring"]),
    keys=st.lists(keys, min_size=1, max_size=50),
    n=st.integers(1, 12),
)
def test_ketama_ring_equals_reference(nodes, vnodes, hash, keys, n):
    try:
        ring = HashRing(nodes, vnodes=vnodes, hash=hash)
    except ValueError as exc:  # only when no node gets a digest (libketama's float32)
        assert "gives none of the" in str(exc)
        assert not any(ReferenceRing(nodes, vnodes=vnodes, hash=hash).point_counts().values())
        return
    ref = ReferenceRing(nodes, vnodes=vnodes, hash=hash)
    ring._check()
    assert np.asarray(ring.points).tolist() == ref.positions
    assert [ring.nodes[o] for o in np.asarray(ring.owners).tolist()] == [p[1] for p in ref.pairs]
    index = {name: i for i, name in enumerate(ring.nodes)}
    for key in keys:
        assert ring.get_node(key) == ref.get_node(key)
        assert ring.get_nodes(key, n) == ref.get_nodes(key, n)
    assert ring.get_nodes_many(keys, n).tolist() == [
        [index[x] for x in ref.get_nodes(k, n)] for k in keys
    ]


@given(spec=rings, keys=st.lists(keys, max_size=80), n=st.integers(1, 14))
def test_batch_calls_equal_scalar_loops(spec, keys, n):
    ring = HashRing(spec["nodes"], vnodes=spec["vnodes"], seed=spec["seed"])
    index = {name: i for i, name in enumerate(ring.nodes)}
    lookups = ring.lookup_many(keys)
    assert lookups.dtype == np.int32 and lookups.shape == (len(keys),)
    assert lookups.tolist() == [index[ring.get_node(k)] for k in keys]
    assert ring.hash_many(keys).tolist() == [ring.hash_key(k) for k in keys]
    assert ring.lookup_many(tuple(keys)).tolist() == lookups.tolist()
    prefs = ring.get_nodes_many(keys, n)
    assert prefs.shape == (len(keys), min(n, len(ring)))
    assert [[ring.nodes[i] for i in row] for row in prefs.tolist()] == [
        ring.get_nodes(k, n) for k in keys
    ]


@given(spec=rings, keys=st.lists(st.text(max_size=30), max_size=60))
def test_numpy_str_arrays_equal_lists(spec, keys):
    ring = HashRing(spec["nodes"], vnodes=spec["vnodes"], seed=spec["seed"])
    expected = ring.lookup_many(keys).tolist()
    as_object = np.array(keys, dtype=object)
    assert ring.lookup_many(as_object).tolist() == expected
    # numpy 'U' arrays drop trailing NULs from each item; compare with the items
    # as numpy returns them, which is what a scalar loop over the array sees.
    as_unicode = np.array(keys, dtype=str) if keys else np.array([], dtype="U1")
    assert ring.lookup_many(as_unicode).tolist() == [
        ring.nodes.index(ring.get_node(str(k))) for k in as_unicode
    ]


@given(spec=rings, keys=st.lists(st.binary(max_size=30), max_size=60))
def test_numpy_bytes_arrays_equal_scalar_loop(spec, keys):
    ring = HashRing(spec["nodes"], vnodes=spec["vnodes"], seed=spec["seed"])
    arr = np.array(keys, dtype=bytes) if keys else np.array([], dtype="S1")
    assert ring.lookup_many(arr).tolist() == [
        ring.nodes.index(ring.get_node(bytes(k))) for k in arr
    ]
    assert ring.hash_many(arr).tolist() == [ring.hash_key(bytes(k)) for k in arr]


# -- membership changes: merged/filtered in place vs built from scratch ---------------------

# A step adds a new node (name, weight) or removes the node at position i % len(ring).
steps = st.lists(
    st.one_of(
        st.tuples(st.just("add"), names, weights),
        st.tuples(st.just("remove"), st.integers(0, 100), st.just(1.0)),
    ),
    min_size=1,
    max_size=12,
)


def _exact_keys(ring: HashRing) -> list[str]:
    """Keys that hash exactly onto points: xxh64 puts point i of a node at
    XXH64(f"{name}-{i}"), so with seed 0 that key is the point; ketama's digest
    k of a node starts with the point MD5(f"{name}-{k}") gives as a key."""
    return [f"{name}-{i}" for name in ring.nodes for i in range(3)]


def _apply(ring: HashRing, ref: ReferenceRing, op: str, arg, weight: float) -> None:
    if op == "add":
        if arg in ring:
            return
        ring.add(arg, weight)
        ref.add(arg, weight)
    elif len(ring) > 1:
        name = ring.nodes[arg % len(ring)]
        ring.remove(name)
        ref.remove(name)


def _same_ring(a: HashRing, b: HashRing) -> None:
    assert a.nodes == b.nodes
    assert np.array_equal(a.points, b.points)
    assert np.array_equal(a.owners, b.owners)
    assert a == b


@given(spec=rings, steps=steps, keys=st.lists(keys, max_size=40), zero_seed=st.booleans())
def test_add_remove_sequences_equal_fresh_builds(spec, steps, keys, zero_seed):
    seed = 0 if zero_seed else spec["seed"]
    ring = HashRing(spec["nodes"], vnodes=spec["vnodes"], seed=seed)
    ref = ReferenceRing(spec["nodes"], vnodes=spec["vnodes"], seed=seed)
    for op, arg, weight in steps:
        _apply(ring, ref, op, arg, weight)
        ring._check()  # sorted, tie order, owners in range, radix table == one built afresh
        fresh = HashRing(ring.weights, vnodes=spec["vnodes"], seed=seed)
        _same_ring(ring, fresh)
        assert ring.nodes == ref.nodes
        assert np.asarray(ring.points).tolist() == ref.positions
        probe = keys + _exact_keys(ring)
        index = {name: i for i, name in enumerate(ring.nodes)}
        expected = [ref.get_node(k) for k in probe]
        assert [ring.get_node(k) for k in probe] == expected
        assert ring.lookup_many(probe).tolist() == [index[x] for x in expected]


@given(
    nodes=st.dictionaries(names, weights, min_size=1, max_size=8),
    vnodes=st.sampled_from([4, 8, 40]),
    hash=st.sampled_from(["ketama", "ketama-uhashring"]),
    steps=steps,
    keys=st.lists(keys, max_size=30),
)
def test_ketama_add_remove_sequences_equal_reference(nodes, vnodes, hash, steps, keys):
    ring = HashRing(nodes, vnodes=vnodes, hash=hash)
    ref = ReferenceRing(nodes, vnodes=vnodes, hash=hash)
    for op, arg, weight in steps:
        _apply(ring, ref, op, arg, weight)
        ring._check()
        assert np.asarray(ring.points).tolist() == ref.positions
        assert [ring.nodes[o] for o in np.asarray(ring.owners).tolist()] == [
            p[1] for p in ref.pairs
        ]
        probe = keys + _exact_keys(ring)
        index = {name: i for i, name in enumerate(ring.nodes)}
        expected = [ref.get_node(k) for k in probe]
        assert [ring.get_node(k) for k in probe] == expected
        assert ring.lookup_many(probe).tolist() == [index[x] for x in expected]


def test_large_ring_lookups_and_membership_equal_reference():
    """A ring big enough for the radix table and the batch's prefetch window to
    matter (300 nodes x 160 points, 4,000 keys plus keys exactly on points)."""
    nodes = {f"n{i:04d}": 1.0 + (i % 3) for i in range(300)}
    ring = HashRing(nodes)
    ref = ReferenceRing(nodes)
    probe = [f"key-{i}" for i in range(4000)] + _exact_keys(ring)
    for op, name in [
        ("add", "m-new"),
        ("remove", "n0007"),
        ("add", "a-first"),
        ("remove", "n0299"),
    ]:
        if op == "add":
            ring.add(name, 2.5)
            ref.add(name, 2.5)
        else:
            ring.remove(name)
            ref.remove(name)
        ring._check()
        _same_ring(ring, HashRing(ring.weights))
        index = {name: i for i, name in enumerate(ring.nodes)}
        expected = [index[ref.get_node(k)] for k in probe]
        assert ring.lookup_many(probe).tolist() == expected


@pytest.mark.parametrize("hash", ["xxh64", "ketama", "ketama-uhashring"])
def test_prefetching_batch_lookup_equals_scalar_lookups(hash):
    """Rings of 160,000 points take lookup_many's prefetching path (>= 131,072
    points); its answers must equal get_node's and the twin's, on random keys,
    keys exactly on points, keys past the last point (they wrap to the first)
    and after a membership change."""
    nodes = [f"node-{i}" for i in range(1000)]
    ring = HashRing(nodes, hash=hash)
    assert len(ring.points) >= 131_072
    candidates = [f"w{i}" for i in range(1_000_000)]
    beyond = ring.hash_many(candidates) > ring.points[len(ring.points) - 1]
    wrapping = [k for k, past in zip(candidates, beyond.tolist()) if past][:20]
    assert wrapping
    probe = [f"key-{i}" for i in range(20_000)] + _exact_keys(ring) + wrapping
    for _ in range(2):
        index = {name: i for i, name in enumerate(ring.nodes)}
        expected = [index[ring.get_node(k)] for k in probe]
        assert ring.lookup_many(probe).tolist() == expected
        assert ring.lookup_many(np.array(probe)).tolist() == expected
        ref = ReferenceRing(ring.weights, hash=hash)
        sample = probe[::97] + _exact_keys(ring)[-30:]
        assert [ring.nodes[i] for i in ring.lookup_many(sample).tolist()] == [
            ref.get_node(k) for k in sample
        ]
        ring.remove(ring.nodes[-1])
