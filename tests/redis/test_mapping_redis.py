"""The mapping contract (tests/support/mapping_contract.py) on clusters of three real redis-servers."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.support.mapping_contract import TestBasicMappingProtocol, TestBatchPaths  # noqa: F401 - collected here


@pytest.fixture(scope="module")
def servers(redis_binary, tmp_path_factory):
    from tests.support import redis_servers

    started = redis_servers.start_servers(
        3, tmp_path_factory.mktemp("mapping"), binary=redis_binary
    )
    yield started
    redis_servers.stop_servers(started)


@pytest.fixture
def new_cluster(servers, prefix):
    from cvstore import Cluster, Node, RedisStore

    made = []

    def make():
        n = len(made)
        nodes = [
            Node(f"r{i + 1}", store=RedisStore(s.url(), prefix=f"{prefix}{n}:"))
            for i, s in enumerate(servers)
        ]
        cluster = Cluster(nodes)
        made.append(cluster)
        return cluster

    yield make
    for cluster in made:
        stores = [node.store for node in cluster.nodes]
        for store in stores:
            store.clear()
        cluster.close()
        for store in stores:
            store.close()


@pytest.fixture
def counted():
    def count(cluster) -> Counter:
        calls: Counter = Counter()
        for node in cluster.nodes:
            store = node.store
            for name in ("get", "get_many", "write_many", "scan_versions"):
                for method_name in (
                    (name, f"send_{name}") if name in ("get_many", "write_many") else (name,)
                ):
                    method = getattr(store, method_name)

                    def counting(*args, _name=name, _method=method, **kwargs):
                        calls[_name] += 1
                        return _method(*args, **kwargs)

                    setattr(store, method_name, counting)
        return calls

    return count


def test_values_over_redis_are_fresh_copies(servers, prefix):
    """Over Redis a value is encoded when put and decoded on each get (README: values in memory)."""
    from cvstore import Cluster, Node, RedisStore
    from cvstore.stores.redis import JSONCodec

    nodes = [
        Node(f"r{i + 1}", store=RedisStore(s.url(), prefix=f"{prefix}copies:", codec=JSONCodec()))
        for i, s in enumerate(servers)
    ]
    try:
        with Cluster(nodes) as c:
            value = [1, 2]
            c.put("l", value)
            value.append(3)  # after the put: not what was stored
            first = c.get("l", consistency="all")
            assert first == [1, 2]
            first.append(9)  # a caller's copy: changes nothing stored
            second = c.get("l", consistency="all")
            assert second == [1, 2]
            assert second is not first
    finally:
        for node in nodes:
            node.store.clear()
            node.store.close()
