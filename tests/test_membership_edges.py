"""Membership edges in-process: one store under two names is refused (both drivers).

The same promises over real servers: ``tests/redis/test_membership_edges_redis.py``.
"""

from __future__ import annotations

import pytest
from drivers import Cluster  # the sync or the async driver (tests/drivers.py)

from cvstore import MemoryStore, Node, NodeExistsError

BOTH_DRIVERS = True


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
