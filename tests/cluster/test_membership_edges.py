"""Membership edges in-process: one store under two names is refused (both drivers).

The same promises over real servers: ``tests/redis/test_membership_edges_redis.py``.
"""

from __future__ import annotations

import time

import pytest

from cvstore import MemoryStore, Node, NodeExistsError
from cvstore.core.layout import LayoutError, NodeSpec
from cvstore.core.records import TOMBSTONE
from tests.support.drivers import Cluster  # the sync or the async driver (tests/support/drivers.py)

BOTH_DRIVERS = True
ALL_PLACEMENTS = True  # and under every registered placement (tests/conftest.py)


def test_one_store_object_under_two_names_is_refused():
    shared = MemoryStore()
    for make in (Cluster, Cluster.create):
        with pytest.raises(NodeExistsError, match=r"'a' and 'b' are the same store object"):
            make([Node("a", store=shared), Node("b", store=shared)])
    cluster = Cluster([Node("a", store=shared), Node("c")], replication_factor=2)
    cluster.put_many({f"k{i}": i for i in range(50)})
    with pytest.raises(NodeExistsError, match=r"'a' and 'd' are the same store object"):
        cluster.add_node(Node("d", store=shared))
    assert [n.name for n in cluster.nodes] == ["a", "c"]
    assert cluster.get_many([f"k{i}" for i in range(50)], consistency="all") == {
        f"k{i}": i for i in range(50)
    }
    cluster.add_node(Node("d"))  # a store of its own is fine
    cluster.close()


def test_a_node_removed_while_down_comes_back_only_empty():
    nodes = [Node(f"n{i}") for i in range(4)]
    cluster = Cluster(nodes, replication_factor=3, hint_window=0, tombstone_grace=0.001)
    keys = [f"k{i}" for i in range(500)]
    cluster.put_many({k: "old" for k in keys})
    gone = nodes[3]
    held = len(gone.store.keys())
    assert held > 100
    gone.fail()
    cluster.remove_node("n3")  # while down: its copies stay on it
    gone.recover()
    cluster.put_many({k: TOMBSTONE for k in keys})
    time.sleep(0.01)  # past the grace period
    assert cluster.repair().purged == 500
    with pytest.raises(LayoutError, match=r"'n3' \(MemoryStore\) holds \d+ records .* empty store"):
        cluster.add_node(gone)
    assert [n.name for n in cluster.nodes] == ["n0", "n1", "n2"]
    assert len(gone.store.keys()) == held  # nothing changed
    cluster.add_node(Node("n3"))
    assert cluster.get_many(keys, consistency="all") == {}  # none of the 500 comes back
    cluster.close()


def test_taking_a_join_back_clears_the_joining_node():
    stores = {name: MemoryStore() for name in ("r1", "r2", "r3", "r4")}
    cluster = Cluster.create(
        [Node(n, store=stores[n]) for n in ("r1", "r2", "r3")],
        connect=lambda spec: stores[spec.name],
    )
    # a client installs the changing layout (add r4) and dies before committing
    target = cluster.layout.begin((*cluster.layout.nodes, NodeSpec("r4")), "add", "r4")
    for name in target.install_order():
        stores[name].swap_layout(1, target.epoch, target.to_bytes())
    keys = [f"k{i}" for i in range(300)]
    cluster.put_many({k: "v" for k in keys})  # at the changing layout: r4 gets its copies too
    written = len(stores["r4"].keys())
    assert written > 50
    report = cluster.finish_change(abort=True)
    assert report.action == "abort" and report.dropped == {"r4": written}
    assert stores["r4"].keys() == [] and stores["r4"].read_layout()[0] == 3
    assert cluster.layout.names == ("r1", "r2", "r3")
    assert cluster.get_many(keys, consistency="all") == {k: "v" for k in keys}
    cluster.close()
