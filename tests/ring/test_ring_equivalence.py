"""Hypothesis: the C ring equals the pure-Python twin on random rings and keys,
and every batch call equals a loop of the scalar calls."""

import numpy as np
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
