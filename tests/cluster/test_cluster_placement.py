"""Where a cluster keeps each key: preference lists, replication factor, zones, weights."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cvstore import Cluster, HashRing, Node
from cvstore._reference import ReferenceRing


def make_cluster(count: int = 5, **kwargs) -> Cluster:
    return Cluster([Node(f"node{i}") for i in range(count)], **kwargs)


def holders(cluster: Cluster, kb: bytes) -> set[str]:
    """Names of the nodes whose store has a record of `kb`."""
    return {node.name for node in cluster.nodes if node.store.get(kb) is not None}


def zone_rule(walk: list[str], zone_of: dict[str, str | None], n: int) -> list[str]:
    """The zone-aware replica rule, written plainly: distinct zones first, then the walk."""
    chosen: list[str] = []
    zones: set[object] = set()
    for name in walk:
        zone = zone_of[name] if zone_of[name] is not None else ("own", name)
        if zone not in zones and len(chosen) < n:
            zones.add(zone)
            chosen.append(name)
    for name in walk:
        if len(chosen) < n and name not in chosen:
            chosen.append(name)
    return chosen


class TestPreferenceList:
    def test_every_key_is_stored_on_exactly_its_three_replicas(self):
        cluster = make_cluster(5, replication_factor=3)
        keys = [f"user:{i}" for i in range(1500)]
        for key in keys[:500]:
            cluster.put(key, key.upper())
        cluster.put_many({key: key.upper() for key in keys[500:]})
        for key in keys:
            replicas = cluster.get_nodes_for_key(key)
            assert len({n.name for n in replicas}) == 3
            assert holders(cluster, key.encode()) == {n.name for n in replicas}

    def test_the_preference_list_is_the_documented_ring_walk(self):
        cluster = make_cluster(5, replication_factor=3, vnodes=40, seed=7)
        reference = ReferenceRing([f"node{i}" for i in range(5)], vnodes=40, seed=7)
        for i in range(300):
            key = f"k{i}"
            names = [n.name for n in cluster.get_nodes_for_key(key)]
            assert names == reference.get_nodes(key, 3)
            assert cluster.get_node_for_key(key).name == names[0]

    def test_replicas_are_never_more_than_the_nodes(self):
        cluster = make_cluster(2, replication_factor=3)
        cluster.put("k", "v", consistency="all")
        assert len(cluster.get_nodes_for_key("k")) == 2
        assert holders(cluster, b"k") == {"node0", "node1"}

    def test_replication_factor_one_keeps_a_single_copy(self):
        cluster = make_cluster(4, replication_factor=1)
        cluster.put_many({f"k{i}": i for i in range(200)})
        assert sum(node.store.count() for node in cluster.nodes) == 200

    def test_str_and_bytes_name_the_same_key(self):
        cluster = make_cluster()
        cluster.put("caf\u00e9", 1)
        assert cluster.get("caf\u00e9".encode()) == 1
        assert cluster.get_nodes_for_key("caf\u00e9") == cluster.get_nodes_for_key(b"caf\xc3\xa9")
        cluster.put(b"caf\xc3\xa9", 2)
        assert cluster.get("caf\u00e9") == 2
        assert len(cluster) == 1

    def test_ring_property_is_a_copy_of_the_placing_ring(self):
        cluster = make_cluster(3, vnodes=50)
        ring = cluster.ring
        assert ring == HashRing(["node0", "node1", "node2"], vnodes=50)
        ring.add("other")
        assert "other" not in cluster.ring

    def test_batch_replicas_equal_single_key_replicas(self):
        cluster = make_cluster(7, replication_factor=3)
        keys = [f"k{i}".encode() for i in range(500)]
        place = cluster._place
        batch = place.replicas_many(keys)
        assert [[place.nodes[j].name for j in row] for row in batch.tolist()] == [
            place.replica_names(k) for k in keys
        ]

    def test_weights_shape_the_share_of_keys(self):
        nodes = [Node("big", weight=3.0), Node("a"), Node("b"), Node("c")]
        cluster = Cluster(nodes, replication_factor=1)
        cluster.put_many({f"k{i}": i for i in range(20_000)})
        stats = cluster.stats()
        assert stats.weight_share["big"] == pytest.approx(0.5)
        assert stats.share["big"] == pytest.approx(0.5, abs=0.06)
        assert 1.0 <= stats.imbalance < 1.3


class TestZones:
    def test_replicas_span_three_zones_when_there_are_three(self):
        nodes = [Node(f"n{i}", zone=f"z{i % 3}") for i in range(9)]
        cluster = Cluster(nodes, replication_factor=3)
        for i in range(500):
            replicas = cluster.get_nodes_for_key(f"k{i}")
            assert len({n.zone for n in replicas}) == 3

    def test_fewer_zones_than_copies_fills_from_the_walk(self):
        nodes = [Node(f"n{i}", zone=f"z{i % 2}") for i in range(6)]
        cluster = Cluster(nodes, replication_factor=3)
        ring = cluster.ring
        zone_of = {n.name: n.zone for n in nodes}
        for i in range(300):
            key = f"k{i}"
            replicas = cluster.get_nodes_for_key(key)
            assert {n.zone for n in replicas} == {"z0", "z1"}
            assert [n.name for n in replicas] == zone_rule(ring.get_nodes(key, 6), zone_of, 3)

    def test_zoned_data_lands_on_the_zoned_replicas(self):
        nodes = [Node(f"n{i}", zone=f"z{i % 3}") for i in range(6)]
        cluster = Cluster(nodes, replication_factor=3)
        cluster.put_many({f"k{i}": i for i in range(600)})
        for i in range(600):
            kb = f"k{i}".encode()
            assert holders(cluster, kb) == {n.name for n in cluster.get_nodes_for_key(kb)}

    @given(
        zones=st.lists(st.sampled_from(["a", "b", "c", None]), min_size=1, max_size=12),
        rf=st.integers(1, 5),
        seed=st.integers(0, 2**32 - 1),
    )
    def test_batch_and_single_key_zone_placement_follow_the_rule(self, zones, rf, seed):
        nodes = [Node(f"n{i}", zone=z) for i, z in enumerate(zones)]
        cluster = Cluster(nodes, replication_factor=rf, vnodes=20, seed=seed)
        place = cluster._place
        keys = [f"key{i}".encode() for i in range(60)]
        zone_of = {n.name: n.zone for n in nodes}
        expected = [
            zone_rule(place.ring.get_nodes(k, len(nodes)), zone_of, min(rf, len(nodes)))
            for k in keys
        ]
        assert [place.replica_names(k) for k in keys] == expected
        batch = place.replicas_many(keys)
        assert batch.dtype == np.int32
        assert [[place.nodes[j].name for j in row] for row in batch.tolist()] == expected

    def test_many_nodes_with_zones_take_the_long_walk_when_needed(self):
        # 40 nodes, one of them alone in its zone: rows whose short walk misses
        # it are redone over the whole ring.
        nodes = [Node(f"n{i:02d}", zone="big") for i in range(39)] + [Node("loner", zone="small")]
        cluster = Cluster(nodes, replication_factor=2, vnodes=10)
        place = cluster._place
        keys = [f"k{i}".encode() for i in range(400)]
        batch = place.replicas_many(keys)
        for k, row in zip(keys, batch.tolist()):
            names = [place.nodes[j].name for j in row]
            assert "loner" in names
            assert names == place.replica_names(k)


class TestKeysOut:
    def test_iteration_gives_str_for_utf8_and_bytes_otherwise(self):
        cluster = make_cluster()
        cluster.put("text", 1)
        cluster.put(b"\xff\xfe", 2)
        assert sorted(cluster, key=repr) == sorted(["text", b"\xff\xfe"], key=repr)
