"""Every bad argument gets a clear error naming it, and leaves the ring unchanged."""

import math
import pickle

import numpy as np
import pytest

from cvstore import HashRing, NodeExistsError, NodeNotFoundError


def state(ring):
    return (
        ring.nodes,
        ring.weights,
        np.asarray(ring.points).tobytes(),
        np.asarray(ring.owners).tobytes(),
    )


@pytest.fixture
def ring():
    return HashRing({"a": 1.0, "b": 2.0}, vnodes=16)


def test_duplicate_node_is_node_exists_error(ring):
    before = state(ring)
    with pytest.raises(NodeExistsError, match="node 'a' is already in the ring"):
        ring.add("a")
    assert state(ring) == before
    with pytest.raises(NodeExistsError, match="node 'x' is given twice"):
        HashRing(["x", "y", "x"])
    assert isinstance(NodeExistsError("x"), ValueError)


def test_unknown_node_is_node_not_found_error(ring):
    before = state(ring)
    with pytest.raises(NodeNotFoundError, match="node 'zz' is not in the ring"):
        ring.remove("zz")
    with pytest.raises(NodeNotFoundError, match="node 3 is not in the ring"):
        ring.remove(3)
    assert state(ring) == before
    # A KeyError subclass, but its message is not quoted like KeyError's.
    assert str(NodeNotFoundError("node 'q' is not in the ring")) == "node 'q' is not in the ring"
    assert isinstance(NodeNotFoundError("x"), KeyError)


@pytest.mark.parametrize("vnodes", [0, -5])
def test_vnodes_below_one_is_value_error(vnodes):
    with pytest.raises(ValueError, match=f"vnodes must be >= 1, got {vnodes}"):
        HashRing(["a"], vnodes=vnodes)


@pytest.mark.parametrize("vnodes", [1.5, "160", None, True])
def test_vnodes_of_wrong_type_is_type_error(vnodes):
    with pytest.raises(TypeError, match="vnodes must be an int >= 1"):
        HashRing(["a"], vnodes=vnodes)


@pytest.mark.parametrize("weight", [0, -1.0, math.nan, math.inf, -math.inf])
def test_bad_weight_is_value_error_and_changes_nothing(ring, weight):
    before = state(ring)
    with pytest.raises(ValueError, match=f"weight must be a finite number > 0, got {weight!r}"):
        ring.add("c", weight)
    with pytest.raises(ValueError, match="weight must be a finite number > 0"):
        HashRing({"c": weight})
    assert state(ring) == before


@pytest.mark.parametrize("weight", ["1", None, True, [1]])
def test_weight_of_wrong_type_is_type_error(ring, weight):
    before = state(ring)
    with pytest.raises(TypeError, match="weight must be a number > 0"):
        ring.add("c", weight)
    assert state(ring) == before


def test_absurd_weight_is_refused_before_allocating(ring):
    before = state(ring)
    with pytest.raises(ValueError, match="points to one node with vnodes=16; the limit is"):
        ring.add("c", 1e12)
    assert state(ring) == before


def test_unknown_hash_name_is_value_error():
    with pytest.raises(
        ValueError,
        match=r"hash must be one of \('xxh64', 'ketama', 'ketama-uhashring'\), got 'md5'",
    ):
        HashRing(["a"], hash="md5")


@pytest.mark.parametrize(
    "seed, exc, message",
    [
        (-1, ValueError, r"seed must be in \[0, 2\*\*64\), got -1"),
        (2**64, ValueError, "seed must be in"),
        ("0", TypeError, "seed must be an int, got str"),
    ],
)
def test_bad_seed(seed, exc, message):
    with pytest.raises(exc, match=message):
        HashRing(["a"], seed=seed)


def test_ketama_has_no_seed():
    with pytest.raises(ValueError, match="seed must be 0 with hash='ketama'"):
        HashRing(["a"], hash="ketama", seed=3)


@pytest.mark.parametrize(
    "name, exc, message",
    [
        ("", ValueError, "node name must be a non-empty str, got ''"),
        (5, TypeError, "node name must be a str, got int: 5"),
        (b"a", TypeError, "node name must be a str, got bytes"),
        (None, TypeError, "node name must be a str, got NoneType"),
    ],
)
def test_bad_node_names(ring, name, exc, message):
    before = state(ring)
    with pytest.raises(exc, match=message):
        ring.add(name)
    with pytest.raises(exc, match=message):
        HashRing([name])
    assert state(ring) == before


def test_nodes_as_a_string_is_refused():
    with pytest.raises(TypeError, match="nodes must be an iterable of names or a mapping"):
        HashRing("abc")


@pytest.mark.parametrize(
    "n, exc, message",
    [
        (0, ValueError, "n must be >= 1, got 0"),
        (-2, ValueError, "n must be >= 1, got -2"),
        (1.0, TypeError, "n must be an int >= 1, got float"),
        ("3", TypeError, "n must be an int >= 1, got str"),
    ],
)
def test_bad_preference_list_length(ring, n, exc, message):
    with pytest.raises(exc, match=message):
        ring.get_nodes("k", n)
    with pytest.raises(exc, match=message):
        ring.get_nodes_many(["k"], n)


def test_bad_keys_in_batches_name_the_position(ring):
    with pytest.raises(TypeError, match=r"keys\[2\] must be str or bytes, got int"):
        ring.lookup_many(["a", b"b", 3])
    with pytest.raises(TypeError, match=r"keys\[1\] must be str or bytes, got NoneType"):
        ring.hash_many(("a", None))
    with pytest.raises(TypeError, match=r"keys\[0\] must be str or bytes, got float"):
        ring.get_nodes_many(np.array([1.5, "x"], dtype=object), 2)
    with pytest.raises(
        TypeError, match="keys must be a list, tuple or numpy array of keys, got str"
    ):
        ring.lookup_many("abc")
    with pytest.raises(
        TypeError, match=r"keys array must have dtype str \(U\), bytes \(S\) or object, got int64"
    ):
        ring.lookup_many(np.arange(3, dtype=np.int64))
    with pytest.raises(ValueError, match=r"keys array must be 1-dimensional, got shape \(2, 2\)"):
        ring.lookup_many(np.array([["a", "b"], ["c", "d"]]))


def test_bad_out_array(ring):
    with pytest.raises(
        ValueError, match=r"out must be a writable C-contiguous int32 array of shape \(2,\)"
    ):
        ring.lookup_many(["a", "b"], out=np.empty(3, dtype=np.int32))
    with pytest.raises(ValueError, match="out must be"):
        ring.lookup_many(["a", "b"], out=np.empty(2, dtype=np.int64))


def test_unencodable_str_key_fails_like_python(ring):
    # A lone surrogate has no UTF-8 form: scalar, list and numpy paths agree.
    with pytest.raises(UnicodeEncodeError):
        ring.get_node("\ud800")
    with pytest.raises(UnicodeEncodeError):
        ring.lookup_many(["ok", "\ud800"])
    with pytest.raises(UnicodeEncodeError):
        ring.lookup_many(np.array(["ok", "\ud800"]))


def test_failed_calls_leave_the_ring_usable(ring):
    before = state(ring)
    for bad in (lambda: ring.add(""), lambda: ring.remove("q"), lambda: ring.add("a")):
        with pytest.raises((ValueError, TypeError, KeyError)):
            bad()
    assert state(ring) == before
    ring._check()
    assert ring.get_node("k") in ("a", "b")
    assert pickle.loads(pickle.dumps(ring)) == ring


# ------------------------------------------------ numbers at their extremes


@pytest.mark.parametrize(
    "vnodes, message",
    [
        (2**63, "vnodes must be <= 10,000,000, got 9223372036854775808"),
        (2**200, r"vnodes must be <= 10,000,000, got 1\.606e\+60"),
        (-(10**400), r"vnodes must be >= 1, got -1\.000e\+400"),
        (10_000_001, "vnodes must be <= 10,000,000, got 10000001"),
        (40_000_000, "vnodes must be <= 10,000,000, got 40000000"),
    ],
)
@pytest.mark.parametrize("hash", ["xxh64", "ketama", "ketama-uhashring"])
def test_vnodes_beyond_the_limit_is_value_error(vnodes, message, hash):
    with pytest.raises(ValueError, match=message):
        HashRing(["a"], vnodes=vnodes, hash=hash)


@pytest.mark.parametrize(
    "weight, message",
    [
        (
            1e308,
            r"weight 1e\+308 gives over 1\.8e\+308 points to one node with vnodes=16; the limit is 10,000,000",
        ),
        (1.7976931348623157e308, r"weight 1\.7976931348623157e\+308 gives over"),
        (2**70, r"weight 1\.1805916207174113e\+21 gives 1\.89e\+2[23] points to one node"),
        (10**400, r"weight must be a finite number > 0, got 1\.000e\+400"),
        (-(2**80), r"weight must be a finite number > 0, got -1\.208e\+24"),
        (-5e-324, r"weight must be a finite number > 0, got -5e-324"),
        (np.float64("nan"), "weight must be a finite number > 0, got nan"),
        (np.float32("inf"), "weight must be a finite number > 0, got inf"),
    ],
)
def test_weight_extremes_are_value_errors_and_change_nothing(ring, weight, message):
    before = state(ring)
    with pytest.raises(ValueError, match=message):
        ring.add("c", weight)
    assert state(ring) == before
    with pytest.raises(ValueError, match=message.replace("vnodes=16", "vnodes=160")):
        HashRing({"c": weight})


@pytest.mark.parametrize("hash", ["xxh64", "ketama", "ketama-uhashring"])
def test_subnormal_and_tiny_weights_still_build(hash, recwarn):
    ring = HashRing({"tiny": 5e-324, "small": 1e-300, "one": 1.0}, hash=hash)
    ring._check()
    assert ring.get_node("k") in ring.nodes
    assert len(ring.get_nodes("k", 3)) == 3
    assert len(recwarn) == 0


def test_ketama_caps_points_per_node_like_xxh64():
    nodes = {"heavy": 1e6, **{f"n{i}": 1.0 for i in range(99)}}
    for hash in ("ketama", "ketama-uhashring"):
        with pytest.raises(
            ValueError,
            match="points to node 'heavy' with vnodes=400000 and 100 nodes; the limit is 10,000,000",
        ):
            HashRing(nodes, vnodes=400_000, hash=hash)


def test_ring_size_is_capped_before_allocating():
    names = [f"n{i}" for i in range(100_000)]
    with pytest.raises(
        ValueError,
        match="vnodes=1001 with these 100,000 nodes gives the ring 100,100,000 points; the limit is 100,000,000",
    ):
        HashRing(names, vnodes=1001)
    with pytest.raises(ValueError, match="gives the ring 100,400,000 points"):
        HashRing(names, vnodes=1004, hash="ketama")


@pytest.mark.parametrize("seed", [2**64, 2**200, -(2**70)])
def test_seed_beyond_64_bits_is_value_error(seed):
    with pytest.raises(ValueError, match=r"seed must be in \[0, 2\*\*64\), got -?[0-9.e+]{1,22}$"):
        HashRing(["a"], seed=seed)


@pytest.mark.parametrize("n", [2**63, 2**200, np.int64(7)])
def test_huge_preference_list_length_is_every_node(ring, n):
    assert ring.get_nodes("k", n) == ring.get_nodes("k", 2)
    assert ring.get_nodes_many(["k"], n).shape == (1, 2)
