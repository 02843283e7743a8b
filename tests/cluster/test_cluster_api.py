"""The cluster as a user meets it: the seed's example, mapping syntax, batches, nodes, stats."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cvstore import MemoryStore, Node, StoreError, UnavailableError
from cvstore.versions import TOMBSTONE
from tests.support.drivers import Cluster  # the sync or the async driver (tests/support/drivers.py)

BOTH_DRIVERS = True  # every test runs under Cluster and AsyncCluster
ALL_PLACEMENTS = True  # and under every registered placement (tests/conftest.py)


def three_nodes(**kwargs) -> Cluster:
    cluster = Cluster(replication_factor=3, **kwargs)
    for name in ("node1", "node2", "node3"):
        cluster.add_node(Node(name))
    return cluster


class TestSeedExample:
    def test_write_and_read_through_the_primary_node(self):
        cluster = three_nodes()
        cluster.get_node_for_key("key1").storage["key1"] = "value1"
        assert cluster.get_node_for_key("key1").storage["key1"] == "value1"
        # The other replicas catch up on a read through the cluster.
        assert cluster.get("key1", consistency="all") == "value1"
        assert all(n.storage["key1"] == "value1" for n in cluster.get_nodes_for_key("key1"))

    def test_a_node_storage_write_is_newer_than_a_cluster_write(self):
        cluster = three_nodes()
        cluster.put("k", "through the cluster")
        cluster.get_nodes_for_key("k")[2].storage["k"] = "direct"
        assert cluster.get("k", consistency="all") == "direct"

    def test_node_storage_is_a_mutable_mapping_of_live_values(self):
        cluster = three_nodes()
        storage = cluster.node("node1").storage
        storage["a"] = 1
        storage[b"b"] = 2
        assert dict(storage) == {"a": 1, "b": 2}
        assert len(storage) == 2 and "a" in storage and "zzz" not in storage
        del storage["a"]
        assert "a" not in storage and len(storage) == 1
        assert cluster.node("node1").store.get(b"a").value is TOMBSTONE
        with pytest.raises(KeyError, match="'a'"):
            storage["a"]
        with pytest.raises(KeyError, match="'never'"):
            del storage["never"]

    def test_node_storage_fails_while_the_node_is_down(self):
        node = Node("n")
        node.storage["k"] = "v"
        node.fail()
        with pytest.raises(StoreError, match="^node 'n' is down$") as info:
            node.storage["k"]
        assert info.value.node == "n"
        with pytest.raises(StoreError, match="^node 'n' is down$"):
            node.storage["k"] = "w"
        with pytest.raises(StoreError, match="^node 'n' is down$"):
            list(node.storage)
        node.recover()
        assert node.storage["k"] == "v"


class TestMappingSyntax:
    def test_setitem_getitem_delitem_contains_len_iter(self):
        cluster = three_nodes()
        cluster["a"] = 1
        cluster[b"b"] = [2]
        assert cluster["a"] == 1 and cluster["b"] == [2]
        assert "a" in cluster and b"a" in cluster and "c" not in cluster
        assert len(cluster) == 2
        assert sorted(cluster) == ["a", "b"]
        del cluster["a"]
        assert "a" not in cluster and len(cluster) == 1
        with pytest.raises(KeyError, match="'a'"):
            cluster["a"]
        with pytest.raises(KeyError, match="'a'"):
            del cluster["a"]

    def test_get_default_and_delete_of_a_missing_key(self):
        cluster = three_nodes()
        assert cluster.get("nope") is None
        assert cluster.get("nope", "dflt") == "dflt"
        cluster.delete("nope")  # a blind tombstone: no error
        assert cluster.get("nope", 0) == 0

    def test_values_are_returned_as_stored(self):
        cluster = three_nodes()
        value = {"list": [1, 2], "none": None}
        cluster.put("obj", value)
        assert cluster.get("obj") is value
        cluster.put("none", None)
        assert "none" in cluster and cluster.get("none", "dflt") is None

    def test_repr(self):
        cluster = three_nodes(read_consistency="one")
        cluster.node("node2").fail()
        assert repr(cluster) == (
            "Cluster(nodes=3, down=1, replication_factor=3, read='one', write='quorum')"
        )


class TestBatches:
    def test_put_many_accepts_a_mapping_or_pairs(self):
        cluster = three_nodes()
        cluster.put_many({"a": 1, "b": 2})
        cluster.put_many([("c", 3), (b"d", 4)])
        cluster.put_many(iter([("e", 5)]))
        assert cluster.get_many(["a", "b", "c", "d", "e", "zz"]) == {
            "a": 1,
            "b": 2,
            "c": 3,
            "d": 4,
            "e": 5,
        }

    def test_get_many_keeps_the_callers_key_objects(self):
        cluster = three_nodes()
        cluster.put("k", 1)
        assert cluster.get_many([b"k", "k"]) == {b"k": 1, "k": 1}

    def test_the_last_of_two_spellings_of_a_key_wins(self):
        cluster = three_nodes()
        cluster.put_many([("k", "first"), (b"k", "second")])
        assert cluster.get("k", consistency="all") == "second"
        cluster.put_many({b"j": "bytes", "j": "str"})
        assert cluster.get("j", consistency="all") == "str"

    def test_deleted_keys_are_absent_from_get_many(self):
        cluster = three_nodes()
        cluster.put_many({f"k{i}": i for i in range(10)})
        cluster.delete("k3")
        assert "k3" not in cluster.get_many([f"k{i}" for i in range(10)])
        assert len(cluster.get_many([f"k{i}" for i in range(10)])) == 9

    def test_empty_batches(self):
        cluster = three_nodes()
        cluster.put_many({})
        assert cluster.get_many([]) == {}
        assert Cluster().get_many([]) == {}

    @given(
        ops=st.lists(
            st.tuples(
                st.sampled_from(["put_many", "put", "delete"]),
                st.lists(st.integers(0, 30), min_size=1, max_size=8),
                st.integers(),
            ),
            max_size=25,
        ),
        level=st.sampled_from(["one", "quorum", "all", "strong"]),
    )
    def test_batches_agree_with_single_key_calls_and_a_dict(self, ops, level):
        cluster = Cluster([Node(f"n{i}") for i in range(5)], replication_factor=3)
        model: dict[str, int] = {}
        for op, ids, value in ops:
            keys = [f"k{i}" for i in ids]
            if op == "put_many":
                cluster.put_many({k: value for k in keys}, consistency=level)
                model.update(dict.fromkeys(keys, value))
            elif op == "put":
                cluster.put(keys[0], value, consistency=level)
                model[keys[0]] = value
            else:
                cluster.delete(keys[0], consistency=level)
                model.pop(keys[0], None)
        everything = [f"k{i}" for i in range(31)]
        read = "all" if level == "one" else level  # "one" writes are seen by "all" reads
        assert cluster.get_many(everything, consistency=read) == model
        assert {k: cluster.get(k, consistency=read) for k in model} == model
        assert sorted(cluster) == sorted(model)


class SlowStore(MemoryStore):
    """A MemoryStore whose reads take a millisecond: a far-away replica."""

    def get(self, key):
        time.sleep(0.001)
        return super().get(key)

    def get_many(self, keys):
        time.sleep(0.001 * len(keys))
        return super().get_many(keys)


class TestReadPolicies:
    def test_primary_reads_the_first_live_replica(self):
        cluster = three_nodes(read_policy="primary")
        cluster.put("k", "v")
        primary = cluster.get_node_for_key("k")
        primary.store.delete(b"k")  # only a read of the primary could miss it
        assert cluster.get("k", consistency="one") is None
        primary.fail()
        assert cluster.get("k", consistency="one") == "v"

    def test_random_reads_spread_over_the_replicas(self):
        cluster = three_nodes(read_policy="random")
        cluster.put("k", "v")
        for node in cluster.get_nodes_for_key("k")[1:]:
            node.store.delete(b"k")  # only the primary keeps a copy
        seen = [cluster.get("k", consistency="one") for _ in range(300)]
        assert 50 < seen.count("v") < 150  # about one read in three asks the primary

    def test_fastest_learns_to_avoid_a_slow_replica(self):
        slow = Node("slow", store=SlowStore())
        cluster = Cluster([slow, Node("fast1"), Node("fast2")], read_policy="fastest")
        cluster.put("k", "v")
        before = slow.latency
        reads_of_slow = 0
        for _ in range(300):
            was = slow.latency
            assert cluster.get("k", consistency="one") == "v"
            reads_of_slow += slow.latency != was
        assert before is None and slow.latency > 0.0005
        assert cluster.node("fast1").latency < slow.latency
        assert reads_of_slow < 60  # the first measurement and an occasional re-check

    def test_fastest_batches_avoid_a_slow_replica(self):
        slow = Node("slow", store=SlowStore())
        cluster = Cluster([slow, Node("fast1"), Node("fast2")], read_policy="fastest")
        cluster.put_many({f"k{i}": i for i in range(50)})
        for _ in range(20):
            cluster.get("k0", consistency="one")  # measure every node
        started = time.perf_counter()
        assert cluster.get_many([f"k{i}" for i in range(50)], consistency="one") == {
            f"k{i}": i for i in range(50)
        }
        assert time.perf_counter() - started < 0.05 * 50  # not every key read from the slow node

    def test_policy_can_be_changed(self):
        cluster = three_nodes()
        cluster.read_policy = "primary"
        assert cluster.read_policy == "primary"
        with pytest.raises(ValueError, match="read_policy must be one of"):
            cluster.read_policy = "closest"


class TestStats:
    def test_counts_shares_and_counters(self):
        cluster = Cluster([Node(f"n{i}") for i in range(4)], replication_factor=2)
        cluster.put_many({f"k{i}": i for i in range(1000)})
        cluster.delete("k0")
        stats = cluster.stats()
        assert sum(stats.keys_per_node.values()) == 999 * 2
        assert sum(stats.share.values()) == pytest.approx(1.0)
        assert stats.weight_share == {f"n{i}": 0.25 for i in range(4)}
        assert stats.imbalance == max(stats.share.values()) / 0.25
        assert (stats.nodes, stats.down, stats.hints_pending) == (4, (), 0)
        down = cluster.node("n1")
        down.fail()
        cluster.put_many({f"k{i}": -i for i in range(1000)}, consistency="one")
        on_down = next(k for k in map(str, range(99)) if down in cluster.get_nodes_for_key(k))
        with pytest.raises(UnavailableError, match="all write needs 2 of 2"):
            cluster.put(on_down, 0, consistency="all")
        stats = cluster.stats()
        assert stats.down == ("n1",) and "n1" not in stats.keys_per_node
        assert stats.hints_pending == stats.hints_written > 0
        assert stats.unavailable_errors == 1

    def test_an_empty_cluster(self):
        stats = Cluster().stats()
        assert (stats.nodes, stats.keys_per_node, stats.imbalance) == (0, {}, 0.0)


class TestNode:
    def test_attributes(self):
        store = MemoryStore()
        node = Node("a", weight=2, zone="rack1", store=store)
        assert (node.name, node.weight, node.zone, node.store, node.is_up) == (
            "a",
            2.0,
            "rack1",
            store,
            True,
        )
        assert node.latency is None
        assert repr(node) == "Node('a', weight=2, zone='rack1')"
        node.fail()
        assert not node.is_up and repr(node) == "Node('a', weight=2, zone='rack1', down)"

    def test_default_store_is_a_new_memory_store(self):
        a, b = Node("a"), Node("b")
        assert isinstance(a.store, MemoryStore) and a.store is not b.store

    def test_storage_of_a_lone_node_works_without_a_cluster(self):
        node = Node("alone")
        node.storage["k"] = 1
        node.storage["k"] = 2
        assert node.storage["k"] == 2


@pytest.mark.parametrize(
    "module", ["cvstore.cluster", "cvstore.node", "cvstore.stores.memory", "cvstore.versions"]
)
def test_docstring_examples_run(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
