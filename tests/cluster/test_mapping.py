"""The mapping contract (tests/support/mapping_contract.py) on in-process clusters."""

from __future__ import annotations

from collections import Counter

import pytest

from cvstore import Cluster, Node
from tests.support.mapping_contract import TestBasicMappingProtocol, TestBatchPaths  # noqa: F401 - collected here


@pytest.fixture
def new_cluster():
    made = []

    def make() -> Cluster:
        cluster = Cluster([Node(f"n{i}") for i in range(3)])
        made.append(cluster)
        return cluster

    yield make
    for cluster in made:
        cluster.close()


@pytest.fixture
def counted():
    """``counted(cluster)`` -> a Counter of the store calls the cluster makes from now on."""

    def count(cluster: Cluster) -> Counter:
        calls: Counter = Counter()
        for node in cluster.nodes:
            store = node.store
            for name in ("get", "get_many", "write_many", "scan_versions"):
                method = getattr(store, name)

                def counting(*args, _name=name, _method=method, **kwargs):
                    calls[_name] += 1
                    return _method(*args, **kwargs)

                setattr(store, name, counting)
            node._get = store.get  # the per-key fast path's bound reads are counted too
        return calls

    return count


class TestValuesInMemory:
    """The README's rule: an in-process node keeps the object put, as a dict does."""

    @staticmethod
    def versions(cluster: Cluster, key: str) -> list[int]:
        return [node.store.get(key.encode())[0] for node in cluster.get_nodes_for_key(key)]

    def test_get_returns_the_object_that_was_put(self, new_cluster):
        c = new_cluster()
        value = [1, 2]
        c.put("l", value)
        assert c.get("l", consistency="all") is value
        assert all(node.store.get(b"l")[1] is value for node in c.get_nodes_for_key("l"))

    def test_mutating_a_stored_value_changes_every_replica_without_a_new_version(self, new_cluster):
        c = new_cluster()
        value = [1, 2]
        c.put("l", value)
        before = self.versions(c, "l")
        value.append(3)  # what the README tells callers not to do, and why
        assert c.get("l", consistency="all") == [1, 2, 3]
        assert self.versions(c, "l") == before

    def test_putting_a_new_object_is_a_new_version_on_every_replica(self, new_cluster):
        c = new_cluster()
        value = [1, 2]
        c.put("l", value, consistency="all")
        before = self.versions(c, "l")
        c.put("l", [*value, 3], consistency="all")
        after = self.versions(c, "l")
        assert all(new > old for new, old in zip(after, before))
        assert value == [1, 2]
        assert c.get("l", consistency="all") == [1, 2, 3]
