"""The mapping contract (tests/mapping_contract.py) on in-process clusters."""

from __future__ import annotations

from collections import Counter

import pytest
from mapping_contract import TestBasicMappingProtocol, TestBatchPaths  # noqa: F401 - collected here

from cvstore import Cluster, Node


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
