"""Ketama mode places keys exactly as libketama and uhashring's ketama mode do."""

import numpy as np
import pytest

from cvstore import HashRing
from cvstore._reference import ReferenceRing, ketama_digest_counts

uhashring = pytest.importorskip("uhashring")


def uhashring_ring(names):
    # uhashring keeps the LAST node written at a colliding point; cvstore orders
    # equal points by name and takes the first.  Feeding uhashring the names in
    # descending order makes the smallest name the last written, so both agree
    # on collisions too.
    return uhashring.HashRing(sorted(names, reverse=True), hash_fn="ketama")


@pytest.mark.parametrize("node_count", [1, 2, 3, 7, 10, 25, 50])
def test_same_owner_as_uhashring_for_100k_keys(node_count):
    names = [f"cache-{i:02d}.example:11211" for i in range(node_count)]
    ring = HashRing(names, hash="ketama")
    theirs = uhashring_ring(names)
    keys = [f"user:{i}:profile" for i in range(100_000)]
    mine = ring.lookup_many(keys)
    points = set(np.asarray(ring.points).tolist())
    hashes = ring.hash_many(keys)
    mismatches = [
        k for k, idx, h in zip(keys, mine.tolist(), hashes.tolist())
        if ring.nodes[idx] != theirs.get_node(k)
        and h not in points  # uhashring takes the NEXT point when the hash equals one
    ]
    assert mismatches == []


def test_uhashring_node_order_does_not_change_our_ring():
    names = [f"s{i}" for i in range(12)]
    assert HashRing(names, hash="ketama") == HashRing(names[::-1], hash="ketama")


def test_seven_equal_nodes_get_forty_digests_each():
    # In doubles, 1/7 * 40 * 7 = 39.99999... and floors to 39; libketama's
    # float32 arithmetic gives 40.  uhashring's integer arithmetic gives 40 too.
    ring = HashRing([f"n{i}" for i in range(7)], hash="ketama")
    assert np.bincount(np.asarray(ring.owners)).tolist() == [160] * 7
    assert 1 / 7 * 40 * 7 < 40  # the double-precision trap this guards against
    assert ketama_digest_counts([1.0] * 7) == [40] * 7


def test_weighted_digest_counts_follow_libketama_float32_formula():
    weights = {"a": 1.0, "b": 2.0, "c": 3.0, "d": 0.5}
    ring = HashRing(weights, hash="ketama")
    names = sorted(weights)
    expected = ketama_digest_counts([weights[n] for n in names])
    assert np.bincount(np.asarray(ring.owners)).tolist() == [4 * d for d in expected]
    # pct = w / 6.5 in float32; floorf(pct * 40 * 4): a -> 24, b -> 49, c -> 73, d -> 12
    assert expected == [24, 49, 73, 12]


def test_ketama_vnodes_scale_the_forty():
    ring = HashRing(["a", "b"], hash="ketama", vnodes=80)
    assert np.bincount(np.asarray(ring.owners)).tolist() == [80, 80]
    with pytest.raises(ValueError, match="vnodes must be a multiple of 4 with hash='ketama', got 10"):
        HashRing(["a"], hash="ketama", vnodes=10)


def test_ketama_ring_equals_reference_with_weights(rand):
    weights = {f"n{i}": rand.choice([0.5, 1.0, 1.5, 3.0]) for i in range(9)}
    ring = HashRing(weights, hash="ketama")
    ref = ReferenceRing(weights, hash="ketama")
    for i in range(3000):
        key = f"k{i}-{rand.random()}"
        assert ring.get_node(key) == ref.get_node(key), rand
