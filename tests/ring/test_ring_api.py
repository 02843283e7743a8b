"""The rest of the HashRing surface: introspection, batch options, pickling, equality."""

import copy
import pickle

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cvstore import EmptyRingError, HashRing


def test_introspection():
    ring = HashRing({"b": 2.0, "a": 1.0, "c": 0.5}, vnodes=10, seed=3)
    assert ring.nodes == ("a", "b", "c")  # name order: the index order of batch results
    assert ring.weights == {"a": 1.0, "b": 2.0, "c": 0.5}
    assert (ring.vnodes, ring.hash, ring.seed) == (10, "xxh64", 3)
    assert len(ring) == 3 and list(ring) == ["a", "b", "c"]
    assert "a" in ring and "z" not in ring and 5 not in ring
    assert repr(ring) == "HashRing(nodes=3, points=35, vnodes=10, hash='xxh64', seed=3)"
    assert ring.points.dtype == np.uint64 and ring.owners.dtype == np.int32
    assert ring.points.nbytes + ring.owners.nbytes == 12 * len(ring.points)


def test_points_and_owners_are_read_only_views():
    ring = HashRing(["a", "b"])
    with pytest.raises(ValueError, match="read-only"):
        ring.points[0] = 0
    with pytest.raises(ValueError, match="read-only"):
        ring.owners[0] = 1
    ring.weights["a"] = 100.0  # a copy: the ring does not change
    assert ring.weights["a"] == 1.0


def test_ownership_sums_to_one_and_matches_sampled_keys():
    ring = HashRing({"a": 1.0, "b": 1.0, "c": 2.0}, vnodes=64)
    own = ring.ownership()
    assert set(own) == {"a", "b", "c"}
    assert sum(own.values()) == pytest.approx(1.0)
    keys = [f"k{i}" for i in range(100_000)]
    counts = np.bincount(ring.lookup_many(keys), minlength=3) / len(keys)
    assert counts.tolist() == pytest.approx([own["a"], own["b"], own["c"]], abs=0.01)


def test_ownership_edge_cases():
    assert HashRing().ownership() == {}
    assert HashRing(["solo"], vnodes=1).ownership() == {"solo": 1.0}
    ketama = HashRing(["a", "b"], hash="ketama").ownership()
    assert sum(ketama.values()) == pytest.approx(1.0)


def test_lookup_many_fills_a_given_out_array_and_leaves_input_alone():
    ring = HashRing([f"n{i}" for i in range(7)])
    keys = np.array([f"key{i}" for i in range(1000)])
    keys_before = keys.copy()
    out = np.full(1000, -1, dtype=np.int32)
    result = ring.lookup_many(keys, out=out)
    assert result is out
    assert out.tolist() == [ring.nodes.index(ring.get_node(str(k))) for k in keys]
    assert np.array_equal(keys, keys_before)


def test_batch_calls_accept_every_key_container():
    ring = HashRing([f"n{i}" for i in range(5)])
    words = [f"w{i}" for i in range(100)]
    expected = ring.lookup_many(words).tolist()
    containers = [
        tuple(words),
        np.array(words),
        np.array(words, dtype=object),
        np.array([w.encode() for w in words]),
        np.array(words).astype(">U8"),  # big-endian unicode is converted
        np.array(words)[::-1][::-1],
        np.repeat(np.array(words), 2)[::2],  # a non-contiguous view
        iter(words),  # any other iterable is materialized
    ]
    for keys in containers:
        assert ring.lookup_many(keys).tolist() == expected, type(keys)


def test_empty_batches():
    ring = HashRing(["a", "b", "c"])
    assert ring.lookup_many([]).shape == (0,)
    assert ring.get_nodes_many([], 2).shape == (0, 2)
    assert ring.get_nodes_many(np.array([], dtype="U3"), 5).shape == (0, 3)
    assert ring.hash_many(np.array([""], dtype="S0")).tolist() == [ring.hash_key(b"")]


@pytest.mark.parametrize("hash_name", ["xxh64", "ketama"])
def test_pickle_and_copy_round_trip(hash_name):
    ring = HashRing({"a": 1.0, "b": 2.5}, vnodes=40, hash=hash_name)
    for clone in (pickle.loads(pickle.dumps(ring)), copy.copy(ring), ring.copy()):
        assert clone == ring
        assert clone.weights == ring.weights and clone.vnodes == 40 and clone.hash == hash_name
        assert clone.get_nodes("k", 2) == ring.get_nodes("k", 2)


def test_equality_means_same_placement():
    a = HashRing(["x", "y"])
    assert a == HashRing(["y", "x"])
    assert a != HashRing(["x", "y"], seed=1)
    assert a != HashRing(["x", "y"], hash="ketama")
    assert a != HashRing(["x", "y", "z"])
    assert a != HashRing({"x": 1.0, "y": 2.0})
    assert (a == "not a ring") is False
    with pytest.raises(TypeError, match="unhashable"):
        hash(a)


@given(
    names=st.lists(st.text(min_size=1, max_size=6), min_size=1, max_size=12, unique=True),
    keys=st.lists(st.binary(max_size=12), min_size=1, max_size=20),
    n=st.integers(min_value=1, max_value=14),
    hash_name=st.sampled_from(["xxh64", "ketama"]),
)
def test_get_items_is_get_nodes_mapped_through_the_items(names, keys, n, hash_name):
    ring = HashRing(names, vnodes=8, hash=hash_name)
    items = tuple(object() for _ in ring.nodes)  # identity: the very objects come back
    index = {name: i for i, name in enumerate(ring.nodes)}
    for key in keys:
        expected = [items[index[name]] for name in ring.get_nodes(key, n)]
        got = ring.get_items(key, n, items)
        assert len(got) == len(expected) and all(a is b for a, b in zip(got, expected))


def test_get_items_refuses_items_that_do_not_match_the_nodes():
    ring = HashRing(["a", "b", "c"])
    with pytest.raises(ValueError, match=r"items must have one entry per node \(3\), got 2"):
        ring.get_items("k", 2, ("x", "y"))
    with pytest.raises(TypeError):
        ring.get_items("k", 2, ["x", "y", "z"])  # a list, not a tuple
    with pytest.raises(ValueError, match="n must be"):
        ring.get_items("k", -1, ("x", "y", "z"))
    with pytest.raises(EmptyRingError):
        HashRing().get_items("k", 1, ())
