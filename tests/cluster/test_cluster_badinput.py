"""Bad input: clear errors that name the argument and the value, and a cluster left unchanged."""

from __future__ import annotations

import re

import pytest

from cvstore import EmptyRingError, MemoryStore, Node, NodeExistsError
from cvstore.versions import HybridClock
from tests.support.drivers import Cluster  # the sync or the async driver (tests/support/drivers.py)

BOTH_DRIVERS = True  # every test runs under Cluster and AsyncCluster

LEVELS = "('one', 'quorum', 'all', 'eventual', 'strong')"


def snapshot(cluster: Cluster) -> dict[str, list]:
    return {n.name: sorted(n.store.scan()) + sorted(n.store.scan_hints()) for n in cluster.nodes}


@pytest.fixture
def cluster() -> Cluster:
    cluster = Cluster([Node(f"node{i}") for i in range(4)])
    cluster.put_many({f"k{i}": i for i in range(50)})
    return cluster


class TestConsistencyNames:
    @pytest.mark.parametrize("bad", ["two", "ONE", "", 2, None.__class__])
    def test_unknown_level_in_each_call(self, cluster, bad):
        before = snapshot(cluster)
        message = re.escape(f"consistency must be one of {LEVELS}, got {bad!r}")
        with pytest.raises(ValueError, match=f"^{message}$"):
            cluster.put("k1", "new", consistency=bad)
        with pytest.raises(ValueError, match=f"^{message}$"):
            cluster.get("k1", consistency=bad)
        with pytest.raises(ValueError, match=f"^{message}$"):
            cluster.delete("k1", consistency=bad)
        with pytest.raises(ValueError, match=f"^{message}$"):
            cluster.put_many({"k1": "new"}, consistency=bad)
        with pytest.raises(ValueError, match=f"^{message}$"):
            cluster.get_many(["k1"], consistency=bad)
        assert snapshot(cluster) == before

    def test_unhashable_level(self, cluster):
        with pytest.raises(ValueError, match=r"consistency must be one of .*, got \['one'\]"):
            cluster.put("k", 1, consistency=["one"])  # type: ignore[arg-type]

    def test_unknown_default_levels(self):
        with pytest.raises(
            ValueError, match=re.escape(f"read_consistency must be one of {LEVELS}, got 'two'")
        ):
            Cluster(read_consistency="two")
        with pytest.raises(ValueError, match="^write_consistency must be one of"):
            Cluster(write_consistency="most")
        cluster = Cluster()
        with pytest.raises(ValueError, match="^read_consistency must be one of .*, got 'x'$"):
            cluster.read_consistency = "x"
        assert cluster.read_consistency == "quorum"


class TestConstructor:
    @pytest.mark.parametrize("bad", [0, -3])
    def test_replication_factor_below_one(self, bad):
        with pytest.raises(ValueError, match=f"^replication_factor must be >= 1, got {bad}$"):
            Cluster(replication_factor=bad)

    @pytest.mark.parametrize(("bad", "kind"), [(2.0, "float"), (True, "bool"), ("3", "str")])
    def test_replication_factor_not_an_int(self, bad, kind):
        with pytest.raises(TypeError, match=f"^replication_factor must be an int, got {kind}$"):
            Cluster(replication_factor=bad)

    def test_read_policy(self):
        with pytest.raises(
            ValueError,
            match=re.escape(
                "read_policy must be one of ('random', 'primary', 'fastest', 'adaptive'), "
                "got 'nearest'"
            ),
        ):
            Cluster(read_policy="nearest")

    def test_windows(self):
        with pytest.raises(
            ValueError, match=r"^hint_window must be a finite number of seconds >= 0, got -1$"
        ):
            Cluster(hint_window=-1)
        with pytest.raises(
            TypeError, match="^tombstone_grace must be a number of seconds, got str$"
        ):
            Cluster(tombstone_grace="1d")  # type: ignore[arg-type]
        with pytest.raises(
            ValueError, match=r"^tombstone_grace must be >= hint_window \(3600\), got 60; "
        ):
            Cluster(hint_window=3600, tombstone_grace=60)

    def test_clock(self):
        with pytest.raises(TypeError, match="^clock must be a HybridClock, got int$"):
            Cluster(clock=5)  # type: ignore[arg-type]
        clock = HybridClock()
        assert Cluster(clock=clock).clock is clock

    def test_ring_arguments_are_checked_by_the_ring(self):
        with pytest.raises(ValueError, match="vnodes"):
            Cluster([Node("a")], vnodes=0)
        with pytest.raises(ValueError, match="hash"):
            Cluster([Node("a")], hash="md4")

    def test_duplicate_nodes(self):
        with pytest.raises(NodeExistsError, match="^node 'a' is given twice$"):
            Cluster([Node("a"), Node("a")])

    def test_a_failed_constructor_leaves_its_nodes_free(self):
        node = Node("a")
        with pytest.raises(ValueError, match="vnodes"):
            Cluster([node], vnodes=0)
        Cluster([node])  # not claimed by the failed one

    def test_nodes_must_be_nodes(self):
        with pytest.raises(
            TypeError, match=r"^nodes must be Node objects, got str; make one with Node\(name\)$"
        ):
            Cluster(["a"])  # type: ignore[list-item]
        with pytest.raises(
            TypeError,
            match="^nodes must be an iterable of Node, got Node; wrap a single node in a list$",
        ):
            Cluster(Node("a"))  # type: ignore[arg-type]


class TestKeys:
    @pytest.mark.parametrize(
        ("bad", "kind"),
        [
            (1, "int"),
            (1.5, "float"),
            (None, "NoneType"),
            (bytearray(b"k"), "bytearray"),
            (("a",), "tuple"),
        ],
    )
    def test_non_str_or_bytes_keys(self, cluster, bad, kind):
        before = snapshot(cluster)
        message = f"^key must be str or bytes, got {kind}; convert it first$"
        for call in (
            lambda: cluster.put(bad, 1),
            lambda: cluster.get(bad),
            lambda: cluster.delete(bad),
            lambda: cluster[bad],
            lambda: bad in cluster,
            lambda: cluster.get_nodes_for_key(bad),
            lambda: cluster.get_node_for_key(bad),
        ):
            with pytest.raises(TypeError, match=message):
                call()
        with pytest.raises(
            TypeError, match=f"^keys\\[1\\] must be str or bytes, got {kind}; convert it first$"
        ):
            cluster.put_many([("ok", 1), (bad, 2)])
        with pytest.raises(
            TypeError, match=f"^keys\\[1\\] must be str or bytes, got {kind}; convert it first$"
        ):
            cluster.get_many(["ok", bad])
        assert snapshot(cluster) == before

    def test_a_single_key_where_a_batch_is_expected(self, cluster):
        with pytest.raises(
            TypeError,
            match="^keys must be an iterable of keys, got str; wrap a single key in a list$",
        ):
            cluster.get_many("k1")
        with pytest.raises(
            TypeError,
            match="^mapping must be a mapping or an iterable of \\(key, value\\) pairs, got str$",
        ):
            cluster.put_many("k1")  # type: ignore[arg-type]
        with pytest.raises(
            TypeError,
            match="^mapping must be a mapping or an iterable of \\(key, value\\) pairs, got int$",
        ):
            cluster.put_many(5)  # type: ignore[arg-type]

    def test_a_bad_pair_writes_nothing(self, cluster):
        before = snapshot(cluster)
        # as dict.update: the wrong length is a ValueError, not iterable a TypeError
        with pytest.raises(
            ValueError, match=r"^mapping element #1 has length 1; 2 is required, got \('b',\)$"
        ):
            cluster.put_many([("a", 1), ("b",)])
        with pytest.raises(
            TypeError, match=r"^mapping element #1 must be a \(key, value\) pair, got int$"
        ):
            cluster.update([("a", 1), 7])
        assert snapshot(cluster) == before

    def test_node_storage_keys(self):
        node = Node("n")
        with pytest.raises(
            TypeError, match="^key must be str or bytes, got int; convert it first$"
        ):
            node.storage[1] = "v"


class TestEmptyCluster:
    def test_every_key_operation_says_to_add_a_node(self):
        cluster = Cluster()
        message = r"^the cluster has no nodes; add one with cluster.add_node\(Node\(name\)\)$"
        for call in (
            lambda: cluster.put("k", 1),
            lambda: cluster.get("k"),
            lambda: cluster.delete("k"),
            lambda: cluster.put_many({"k": 1}),
            lambda: cluster.get_many(["k"]),
            lambda: cluster.get_node_for_key("k"),
            lambda: cluster["k"],
        ):
            with pytest.raises(EmptyRingError, match=message):
                call()
        assert (len(cluster), list(cluster), cluster.nodes) == (0, [], ())
        assert cluster.repair().keys == 0 and cluster.deliver_hints() == 0

    def test_after_the_last_node_leaves(self):
        cluster = Cluster([Node("a")])
        cluster.remove_node("a")
        with pytest.raises(EmptyRingError, match="the cluster has no nodes"):
            cluster.put("k", 1)


class TestNodeArguments:
    def test_name(self):
        with pytest.raises(TypeError, match="^name must be a str, got int$"):
            Node(1)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="^name must be a non-empty str, got ''$"):
            Node("")

    @pytest.mark.parametrize("bad", [0, -1.0, float("inf"), float("nan")])
    def test_weight_value(self, bad):
        with pytest.raises(
            ValueError, match=f"^weight must be a finite number > 0, got {re.escape(repr(bad))}$"
        ):
            Node("a", weight=bad)

    def test_weight_type_zone_and_store(self):
        with pytest.raises(TypeError, match="^weight must be a number, got str$"):
            Node("a", weight="2")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="^zone must be a str or None, got int$"):
            Node("a", zone=3)  # type: ignore[arg-type]
        with pytest.raises(
            TypeError, match="^store must be a cvstore.stores.Store, got dict; subclass Store"
        ):
            Node("a", store={})  # type: ignore[arg-type]
        assert isinstance(Node("a", store=MemoryStore()).store, MemoryStore)

    def test_unknown_node_lookup(self, cluster):
        with pytest.raises(KeyError, match="node 'nope' is not in the cluster"):
            cluster.node("nope")
        with pytest.raises(KeyError, match="node 3 is not in the cluster"):
            cluster.node(3)  # type: ignore[arg-type]
