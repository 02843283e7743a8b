"""Rebalancing: adding and removing nodes moves exactly the copies the ring says, and loses none."""

from __future__ import annotations

import pytest

from cvstore import Node, NodeExistsError, NodeNotFoundError
from cvstore.core.placement import Placer
from cvstore.versions import TOMBSTONE
from tests.support.drivers import Cluster  # the sync or the async driver (tests/support/drivers.py)

BOTH_DRIVERS = True  # every test runs under Cluster and AsyncCluster
ALL_PLACEMENTS = True  # and under every registered placement (tests/conftest.py)

KEYS = [f"key:{i}" for i in range(6000)]


def placement(placer: Placer, key: str, n: int) -> set[str]:
    return set(placer.get_nodes(key, n))


def holdings(cluster: Cluster) -> dict[str, set[bytes]]:
    return {node.name: set(node.store.keys()) for node in cluster.nodes}


def assert_every_key_on_exactly_its_replicas(cluster: Cluster, keys: list[str]) -> None:
    held = holdings(cluster)
    where: dict[bytes, set[str]] = {}
    for name, kbs in held.items():
        for kb in kbs:
            where.setdefault(kb, set()).add(name)
    for key in keys:
        assert where.pop(key.encode(), set()) == {n.name for n in cluster.get_nodes_for_key(key)}
    assert not where, "copies of keys that were never written"


def loaded(count: int = 10, rf: int = 3) -> tuple[Cluster, dict[str, str]]:
    cluster = Cluster([Node(f"node{i}") for i in range(count)], replication_factor=rf)
    data = {key: f"value-{key}" for key in KEYS}
    cluster.put_many(data)
    return cluster, data


class TestAddNode:
    def test_the_new_node_gets_exactly_the_copies_the_ring_predicts(self):
        cluster, data = loaded(10)
        before = cluster.placer
        report = cluster.add_node(Node("node10"))
        after = cluster.placer
        gained = {k for k in KEYS if "node10" in placement(after, k, 3)}
        predicted = sum(len(placement(after, k, 3) - placement(before, k, 3)) for k in KEYS)
        assert report.moved == predicted == len(gained)
        assert report.received == {"node10": report.moved}
        assert sum(report.sent.values()) == report.moved
        assert sum(report.dropped.values()) == report.moved  # every gained copy replaced a lost one
        assert set(cluster.node("node10").store.keys()) == {k.encode() for k in gained}
        # About RF/11 of the keys get a copy on the new node: 1/11 of all copies move.
        assert report.moved / (3 * len(KEYS)) == pytest.approx(1 / 11, abs=0.02)
        assert (report.action, report.node, report.keys, report.missed) == (
            "add",
            "node10",
            6000,
            0,
        )
        assert report.seconds > 0
        assert_every_key_on_exactly_its_replicas(cluster, KEYS)
        assert cluster.get_many(KEYS, consistency="all") == data

    def test_growing_from_fewer_nodes_than_copies_adds_a_replica_to_every_key(self):
        cluster = Cluster([Node("a"), Node("b")], replication_factor=3)
        cluster.put_many({k: 1 for k in KEYS[:500]})
        report = cluster.add_node(Node("c"))
        assert report.moved == 500 and sum(report.dropped.values()) == 0
        assert_every_key_on_exactly_its_replicas(cluster, KEYS[:500])

    def test_the_first_node_of_an_empty_cluster(self):
        cluster = Cluster()
        report = cluster.add_node(Node("only"))
        assert (report.moved, report.keys) == (0, 0)
        cluster.put("k", "v")
        assert cluster.get("k") == "v"

    def test_tombstones_move_with_the_keys(self):
        cluster, _ = loaded(5)
        for key in KEYS[:300]:
            cluster.delete(key)
        cluster.add_node(Node("new"))
        new_node = cluster.node("new")
        moved_tombstones = [r for _, r in new_node.store.scan() if r.value is TOMBSTONE]
        assert moved_tombstones
        assert all(cluster.get(k) is None for k in KEYS[:300])
        assert len(cluster) == len(KEYS) - 300

    def test_adding_with_a_node_down_skips_it_and_repair_finishes(self):
        cluster, data = loaded(6)
        down = cluster.node("node3")
        down.fail()
        report = cluster.add_node(Node("node6"))
        assert report.skipped == ("node3",)
        down.recover()
        cluster.repair()
        assert_every_key_on_exactly_its_replicas(cluster, KEYS)
        assert cluster.get_many(KEYS, consistency="all") == data

    def test_zoned_cluster_rebalances_onto_the_zone_aware_replicas(self):
        nodes = [Node(f"n{i}", zone=f"z{i % 3}") for i in range(6)]
        cluster = Cluster(nodes, replication_factor=3)
        cluster.put_many({k: k for k in KEYS[:2000]})
        cluster.add_node(Node("n6", zone="z0"))
        assert_every_key_on_exactly_its_replicas(cluster, KEYS[:2000])
        for key in KEYS[:200]:
            assert len({n.zone for n in cluster.get_nodes_for_key(key)}) == 3


class TestRemoveNode:
    def test_only_the_leaving_nodes_copies_move(self):
        cluster, data = loaded(10)
        leaving = cluster.node("node4")
        held = set(leaving.store.keys())
        before = cluster.placer
        report = cluster.remove_node("node4")
        after = cluster.placer
        assert report.moved == len(held)
        assert report.dropped == {"node4": len(held)}
        assert leaving.store.count() == 0
        assert "node4" not in report.received
        predicted = sum(len(placement(after, k, 3) - placement(before, k, 3)) for k in KEYS)
        assert report.moved == predicted
        assert_every_key_on_exactly_its_replicas(cluster, KEYS)
        assert cluster.get_many(KEYS, consistency="all") == data
        assert leaving not in cluster.nodes

    def test_removing_a_down_node_streams_its_keys_from_the_other_replicas(self):
        cluster, data = loaded(6)
        dead = cluster.node("node1")
        dead.fail()
        report = cluster.remove_node(dead)
        assert report.skipped == ("node1",)
        assert report.missed == 0
        assert_every_key_on_exactly_its_replicas(cluster, KEYS)
        assert cluster.get_many(KEYS, consistency="all") == data

    def test_shrinking_below_the_replication_factor_keeps_every_key(self):
        cluster, data = loaded(3)
        report = cluster.remove_node("node0")
        assert report.moved == 0
        assert_every_key_on_exactly_its_replicas(cluster, KEYS)
        assert cluster.get_many(KEYS, consistency="all") == data

    def test_add_then_remove_the_same_node_restores_the_layout(self):
        cluster, data = loaded(5)
        layout = holdings(cluster)
        added = cluster.add_node(Node("temp"))
        removed = cluster.remove_node("temp")
        assert added.moved == removed.moved
        assert holdings(cluster) == layout
        assert cluster.get_many(KEYS) == data

    def test_a_removed_node_can_join_another_cluster(self):
        cluster, _ = loaded(4)
        node = cluster.node("node0")
        cluster.remove_node(node)
        other = Cluster([node])
        other.put("k", "v")
        assert node.storage["k"] == "v"


class TestMembershipErrors:
    def test_duplicate_name(self):
        cluster, _ = loaded(3)
        layout = holdings(cluster)
        with pytest.raises(NodeExistsError, match="node 'node1' is already in the cluster"):
            cluster.add_node(Node("node1"))
        assert holdings(cluster) == layout and len(cluster.nodes) == 3

    def test_unknown_node(self):
        cluster, _ = loaded(3)
        with pytest.raises(NodeNotFoundError, match="^node 'ghost' is not in the cluster$"):
            cluster.remove_node("ghost")
        with pytest.raises(NodeNotFoundError, match="node 'node1' is not in the cluster"):
            cluster.remove_node(Node("node1"))  # same name, another node
        assert len(cluster.nodes) == 3

    def test_a_node_of_another_cluster(self):
        node = Node("shared")
        Cluster([node])
        with pytest.raises(
            ValueError, match="node 'shared' already belongs to a cluster; remove it there first"
        ):
            Cluster().add_node(node)

    def test_a_down_node_cannot_join(self):
        node = Node("sleepy")
        node.fail()
        cluster = Cluster([Node("a")])
        with pytest.raises(
            ValueError, match=r"node 'sleepy' is down; recover\(\) it before adding it"
        ):
            cluster.add_node(node)
        assert [n.name for n in cluster.nodes] == ["a"]

    def test_the_last_node_cannot_leave_with_data(self):
        cluster = Cluster([Node("only")])
        cluster.put("k", "v")
        with pytest.raises(ValueError, match="cannot remove 'only': it is the cluster's last node"):
            cluster.remove_node("only")
        assert cluster.get("k") == "v"

    def test_the_last_node_can_leave_when_empty(self):
        cluster = Cluster([Node("only")])
        cluster.remove_node("only")
        assert cluster.nodes == ()

    def test_not_a_node(self):
        cluster = Cluster()
        with pytest.raises(
            TypeError, match=r"node must be a Node, got str; make one with Node\(name\)"
        ):
            cluster.add_node("a")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="node must be a Node or a node name, got int"):
            cluster.remove_node(3)  # type: ignore[arg-type]


class StreamWatcher:
    """A MemoryStore (the joining node's) that runs `then` once, right after the first
    streamed batch reaches it: the moment between a key's copy being streamed and the old
    copies being dropped, where a concurrent client's write can land."""

    def __init__(self, then) -> None:
        from cvstore import MemoryStore

        class Watched(MemoryStore):
            def write_many(inner, keys, records, epoch=0):
                result = super().write_many(keys, records, epoch)
                if len(keys) > 1 and not self.fired:
                    self.fired = True
                    then()
                return result

        self.fired = False
        self.store = Watched()


class TestDropKeepsNewerCopies:
    """Issue 21, item 4: the drop after a change removes an old copy only while it is the
    version that was streamed; a copy written since (newer) stays, for repair() to judge.
    Before, the drop deleted by key, newer or not."""

    def test_a_copy_written_after_the_stream_is_not_dropped(self):
        cluster = Cluster([Node(f"node{i}") for i in range(3)], replication_factor=3)
        keys = [f"k{i}" for i in range(400)]
        cluster.put_many({key: "v0" for key in keys})
        old_nodes = list(cluster.nodes)

        def concurrent_write() -> None:
            # A newer copy lands on every old replica, as a write acknowledged during the
            # change does (written here straight to the stores, above every version).
            for key in keys:
                for node in old_nodes:
                    held = node.store.get(key.encode())
                    record = (held[0] + 1, "v1")
                    node.store.write_many([key.encode()], [record])

        watcher = StreamWatcher(concurrent_write)
        cluster.add_node(Node("node3", store=watcher.store))
        assert watcher.fired
        moved_away = [
            key for key in keys if "node3" in {n.name for n in cluster.get_nodes_for_key(key)}
        ]
        assert moved_away
        for key in moved_away:
            leaving = {f"node{i}" for i in range(3)} - {
                n.name for n in cluster.get_nodes_for_key(key)
            }
            (name,) = leaving
            node = next(n for n in cluster.nodes if n.name == name)
            record = node.store.get(key.encode())
            assert record is not None and record[1] == "v1"  # kept: newer than the streamed one
        report = cluster.repair()
        assert cluster.get_many(keys, consistency="all") == {key: "v1" for key in keys}
        assert report.strays_removed >= len(moved_away)
