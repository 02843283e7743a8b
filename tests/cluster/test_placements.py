"""Placements: the registry, the rendezvous placer against its written function, layouts.

The cluster contract suites run over every registered placement
(``ALL_PLACEMENTS`` in tests/conftest.py); this file checks what is particular
to choosing one: the option, its errors, the layout field, and the second
placement itself.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import xxhash

import cvstore
from cvstore import EmptyRingError, HashRing, MemoryStore, Node
from cvstore.core import placements
from cvstore.core.layout import Layout, LayoutError, NodeSpec
from cvstore.core.placements import PLACEMENTS, check_placement, placer_factory
from cvstore.core.rendezvous import Rendezvous
from cvstore.errors import NodeExistsError
from tests.support.drivers import Cluster  # the sync or the async driver (tests/support/drivers.py)

MASK = (1 << 64) - 1
KEYS = [f"key-{i}" for i in range(20_000)]
both_drivers = pytest.mark.parametrize("driver", ["sync", "async"], indirect=True)


def written_ranks(key: bytes, weights: dict[str, float], seed: int = 0) -> list[str]:
    """The rendezvous function as its module docstring writes it (a slow twin)."""
    h = xxhash.xxh64_intdigest(key, seed)
    ranked = []
    for name in sorted(weights):
        x = h ^ xxhash.xxh64_intdigest(name.encode(), seed)
        x ^= x >> 30
        x = (x * 0xBF58476D1CE4E5B9) & MASK
        x ^= x >> 27
        x = (x * 0x94D049BB133111EB) & MASK
        x ^= x >> 31
        u = ((x >> 12) + 0.5) / 2**52
        assert 0.0 < u < 1.0
        ranked.append((-math.log(u) * (1.0 / weights[name]), name))
    ranked.sort()  # smallest rank first, ties by name
    return [name for _, name in ranked]


# ------------------------------------------------------------- the registry


def test_the_ring_and_rendezvous_are_registered_and_the_ring_is_the_default():
    assert {"ring", "rendezvous"} <= set(PLACEMENTS)
    assert placements.DEFAULT == "ring"
    assert cvstore.Cluster().placement == "ring"


@pytest.mark.parametrize("name", sorted(PLACEMENTS))
def test_every_placement_builds_a_placer_with_the_whole_protocol(name):
    placer = placer_factory(name, vnodes=160, hash="xxh64", seed=7)({"a": 1.0, "b": 2.0, "c": 1.0})
    assert list(placer.nodes) == ["a", "b", "c"]
    walk = placer.get_nodes(b"k", 3)
    assert sorted(walk) == ["a", "b", "c"]
    assert placer.get_items(b"k", 2, ("A", "B", "C")) == [w.upper() for w in walk[:2]]
    rows = placer.get_nodes_many([b"k", "k"], 3)
    assert rows.dtype == np.int32 and [placer.nodes[i] for i in rows[0]] == walk
    assert rows[1].tolist() == rows[0].tolist()  # "k" and b"k" are one key
    assert placer.hash_many([b"k"]).dtype == np.uint64


@pytest.mark.parametrize("bad", ["jump", "Ring", ""])
def test_an_unknown_placement_is_a_value_error_naming_the_registered_ones(bad):
    with pytest.raises(ValueError, match=r"placement must be one of \['rendezvous', 'ring'\]"):
        check_placement(bad)
    with pytest.raises(ValueError, match=rf"placement must be one of .*, got {bad!r}"):
        cvstore.Cluster(placement=bad)
    with pytest.raises(ValueError, match=r"placement must be one of"):
        cvstore.AsyncCluster(placement=bad)


def test_a_placement_that_is_not_a_str_is_a_type_error():
    with pytest.raises(TypeError, match=r"placement must be a str, one of .*, got HashRing"):
        cvstore.Cluster(placement=HashRing(["a"]))


def test_rendezvous_refuses_the_rings_ketama_hash_and_a_bad_seed_at_once():
    with pytest.raises(ValueError, match=r"hash must be 'xxh64' with placement='rendezvous'"):
        cvstore.Cluster(placement="rendezvous", hash="ketama", vnodes=160)
    with pytest.raises(ValueError, match=r"seed must be in \[0, 2\*\*64\)"):
        cvstore.Cluster(placement="rendezvous", seed=-1)


# -------------------------------------------------------------- rendezvous


@pytest.mark.parametrize(
    "weights",
    [
        {"a": 1.0, "b": 1.0, "c": 1.0},
        {"a": 1.0, "b": 2.5, "c": 0.25, "d": 1.0},
        {f"n{i}": 1.0 + i % 4 for i in range(40)},  # over 16 nodes: the numpy lookup
    ],
    ids=["equal", "weighted", "40-weighted"],
)
@pytest.mark.parametrize("seed", [0, 12345])
def test_rendezvous_places_as_its_written_function(weights, seed):
    placer = Rendezvous(weights, seed=seed)
    rows = placer.get_nodes_many(KEYS[:2000], len(weights))
    for i, key in enumerate(KEYS[:2000]):
        want = written_ranks(key.encode(), weights, seed)
        assert placer.get_nodes(key, len(weights)) == want
        assert [placer.nodes[j] for j in rows[i]] == want
    assert placer.hash_many(KEYS[:5]).tolist() == [
        xxhash.xxh64_intdigest(k.encode(), seed) for k in KEYS[:5]
    ]


def test_rendezvous_one_key_and_batch_lookups_agree():
    for count in (1, 5, 16, 17, 60):
        placer = Rendezvous({f"n{i}": 1.0 + (i % 3) / 2 for i in range(count)})
        n = min(3, count)
        rows = placer.get_nodes_many(KEYS, n)
        owners = placer.lookup_many(KEYS)
        assert rows.shape == (len(KEYS), n) and owners.tolist() == rows[:, 0].tolist()
        for i in range(0, len(KEYS), 97):
            names = [placer.nodes[j] for j in rows[i]]
            assert placer.get_nodes(KEYS[i], n) == names
            assert placer.get_node(KEYS[i]) == names[0]
            assert placer.get_items(KEYS[i], n, tuple(placer.nodes)) == names


def test_equal_ranks_go_to_the_first_node_by_name_in_every_batch_path():
    from cvstore.core.rendezvous import _first

    ranks = np.array([[5, 1, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], [0] * 16], dtype=np.int64)
    ranks[1, 3] = -1
    for wanted in (1, 2, 3, 8, 16):  # argmin, argpartition, full sort
        stable = np.argsort(ranks, axis=1, kind="stable")[:, :wanted]
        assert _first(ranks, wanted).tolist() == stable.tolist()


def test_rendezvous_keys_are_str_or_bytes_and_an_empty_placer_has_no_owner():
    placer = Rendezvous(["a", "b"])
    assert placer.get_nodes("é", 2) == placer.get_nodes("é".encode(), 2)
    with pytest.raises(TypeError, match=r"key must be str or bytes, got int"):
        placer.get_nodes(5, 1)
    with pytest.raises(TypeError, match=r"keys\[1\] must be str or bytes, got float"):
        placer.get_nodes_many(["a", 1.5], 1)
    with pytest.raises(ValueError, match=r"n must be >= 1, got 0"):
        placer.get_nodes("k", 0)
    with pytest.raises(EmptyRingError, match=r"the placement has no nodes"):
        Rendezvous([]).get_nodes("k", 1)
    with pytest.raises(EmptyRingError):
        Rendezvous().get_nodes_many(["k"], 1)


def test_rendezvous_refuses_bad_members():
    with pytest.raises(ValueError, match=r"weight must be a finite number > 0, got 0"):
        Rendezvous({"a": 0})
    with pytest.raises(TypeError, match=r"weight must be a number > 0, got str"):
        Rendezvous({"a": "1"})
    with pytest.raises(TypeError, match=r"node name must be a str, got int"):
        Rendezvous([1])
    with pytest.raises(NodeExistsError, match=r"node 'a' is given twice"):
        Rendezvous(["a", "a"])
    with pytest.raises(TypeError, match=r"nodes must be an iterable of names"):
        Rendezvous("abc")


def test_rendezvous_weights_give_proportional_shares():
    weights = {"small": 1.0, "mid": 2.0, "big": 4.0}
    placer = Rendezvous(weights)
    keys = [f"k{i}" for i in range(140_000)]
    counts = np.bincount(placer.lookup_many(keys), minlength=3) / len(keys)
    shares = dict(zip(placer.nodes, counts))
    for name, weight in weights.items():
        assert shares[name] == pytest.approx(weight / 7.0, abs=0.01)


def test_rendezvous_adding_a_node_moves_about_one_in_n_plus_one_keys_all_to_it():
    names = [f"node{i}" for i in range(10)]
    before = Rendezvous(names)
    after = Rendezvous([*names, "node10"])
    b = np.array(before.nodes)[before.lookup_many(KEYS)]
    a = np.array(after.nodes)[after.lookup_many(KEYS)]
    moved = b != a
    assert set(a[moved].tolist()) == {"node10"}  # every moved key went to the new node
    assert moved.mean() == pytest.approx(1 / 11, abs=0.01)
    # preference lists: a key's other replicas keep their order
    pb, pa = before.get_nodes_many(KEYS[:3000], 3), after.get_nodes_many(KEYS[:3000], 4)
    for i in range(3000):
        kept = [after.nodes[j] for j in pa[i] if after.nodes[j] != "node10"][:3]
        assert kept == [before.nodes[j] for j in pb[i]]


def test_rendezvous_removing_a_node_moves_only_its_keys():
    names = [f"node{i}" for i in range(10)]
    before = Rendezvous(names)
    after = Rendezvous(names[:4] + names[5:])
    b = np.array(before.nodes)[before.lookup_many(KEYS)]
    a = np.array(after.nodes)[after.lookup_many(KEYS)]
    assert set(b[b != a].tolist()) == {"node4"}


# ------------------------------------------------------------------ layouts


def layout(placement="ring"):
    return Layout("c1", 3, (NodeSpec("a"), NodeSpec("b", 2.0)), 2, placement=placement)


def test_a_layout_records_its_placement_and_reads_it_back():
    for name in PLACEMENTS:
        assert Layout.from_bytes(layout(name).to_bytes()) == layout(name)


def test_a_ring_layout_is_written_as_before_placements_and_one_without_the_field_is_a_ring():
    data = json.loads(layout("ring").to_bytes())
    assert data["format"] == 1 and "placement" not in data
    assert Layout.from_bytes(json.dumps(data).encode()).placement == "ring"


def test_a_layout_of_another_placement_is_format_2_so_older_clients_refuse_it():
    data = json.loads(layout("rendezvous").to_bytes())
    assert (data["format"], data["placement"]) == (2, "rendezvous")


def test_a_layout_naming_an_unknown_placement_is_refused():
    data = json.loads(layout("rendezvous").to_bytes())
    data["placement"] = "jump"
    with pytest.raises(LayoutError, match=r"a layout's placement must be one of .*, got 'jump'"):
        Layout.from_bytes(json.dumps(data).encode())
    data["format"] = 3
    with pytest.raises(LayoutError, match=r"layout format 3 is not one this client reads"):
        Layout.from_bytes(json.dumps(data).encode())


# --------------------------------------------------------------- clusters


@both_drivers
def test_a_cluster_places_keys_with_the_placement_it_was_given(driver):
    nodes = [Node(f"n{i}", weight=1.0 + i % 2) for i in range(6)]
    cluster = Cluster(nodes, replication_factor=3, placement="rendezvous")
    try:
        placer = cluster.placer
        assert cluster.placement == "rendezvous" and isinstance(placer, Rendezvous)
        assert placer == Rendezvous({f"n{i}": 1.0 + i % 2 for i in range(6)})
        cluster.put_many({k: k for k in KEYS[:500]})
        for key in KEYS[:500]:
            replicas = placer.get_nodes(key, 3)
            assert [n.name for n in cluster.get_nodes_for_key(key)] == replicas
            held = {n.name for n in cluster.nodes if key.encode() in n.store.keys()}  # noqa: SIM118 - a store, not a dict
            assert held == set(replicas)
        with pytest.raises(TypeError, match=r"placement='rendezvous', not a ring; use cluster"):
            cluster.ring  # noqa: B018
    finally:
        cluster.close()


@both_drivers
def test_zones_hold_under_rendezvous(driver):
    nodes = [Node(f"n{i}", zone=f"z{i % 3}") for i in range(9)]
    cluster = Cluster(nodes, replication_factor=3, placement="rendezvous")
    try:
        for key in KEYS[:300]:
            zones = {n.zone for n in cluster.get_nodes_for_key(key)}
            assert zones == {"z0", "z1", "z2"}
        cluster.put_many({k: 1 for k in KEYS[:300]})
        assert cluster.get_many(KEYS[:300]) == {k: 1 for k in KEYS[:300]}
    finally:
        cluster.close()


@both_drivers
def test_a_shared_cluster_records_its_placement_and_a_joiner_follows_it(driver):
    stores = {name: MemoryStore() for name in "abc"}
    nodes = [Node(name, store=store) for name, store in stores.items()]
    first = Cluster.create(nodes, connect=lambda spec: stores[spec.name], placement="rendezvous")
    # The joiner asks for the ring; the cluster's layout says rendezvous, and wins.
    other = Cluster.join([stores["b"]], connect=lambda spec: stores[spec.name], placement="ring")
    try:
        assert first.layout.placement == other.layout.placement == "rendezvous"
        assert other.placement == "rendezvous" and other.placer == first.placer
        assert other.placer == Rendezvous(["a", "b", "c"])  # the layout's placer, not a ring
        first.put_many({k: k for k in KEYS[:300]})
        assert other.get_many(KEYS[:300], consistency="all") == {k: k for k in KEYS[:300]}
    finally:
        other.close()
        first.close()
