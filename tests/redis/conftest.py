"""Fixtures for the tests against real Redis servers (started here, stopped by PID).

Without a redis-server binary (or without redis-py) these tests are skipped,
except in CI (``CI=true``) or with ``CVSTORE_REQUIRE_REDIS=1``, where they fail.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from tests.support import redis_servers


@pytest.fixture(scope="session")
def redis_binary() -> Path:
    """The redis-server binary (skips or fails the test if there is none)."""
    try:
        import redis  # noqa: F401
    except ImportError:
        redis_servers.missing("redis-py is not installed (pip install 'cvstore[redis]')")
    return redis_servers.binary_or_missing()


@pytest.fixture(scope="session")
def redis_server(redis_binary, tmp_path_factory):
    """One server shared by the tests that do not harm it (each uses its own prefix)."""
    (server,) = redis_servers.start_servers(
        1, tmp_path_factory.mktemp("redis-shared"), binary=redis_binary
    )
    yield server
    server.stop()


@pytest.fixture
def start_redis(redis_binary, tmp_path):
    """``start_redis(n=1, appendonly=False, extra_config=())`` -> servers of this test only.

    Each test that kills, pauses or reconfigures servers starts its own; all are
    stopped (resumed first if paused) at teardown.
    """
    started = []
    counter = itertools.count()

    def start(n: int = 1, *, appendonly: bool = False, extra_config=()):
        servers = redis_servers.start_servers(
            n,
            tmp_path / f"batch{next(counter)}",
            binary=redis_binary,
            appendonly=appendonly,
            extra_config=extra_config,
        )
        started.extend(servers)
        return servers

    yield start
    redis_servers.stop_servers(started)


_prefixes = itertools.count()


@pytest.fixture
def prefix(request) -> str:
    """A key prefix no other test uses, so tests can share one server."""
    return f"test{next(_prefixes)}:{request.node.name[:40]}:"


@pytest.fixture
def redis_store(redis_server, prefix):
    """A RedisStore on the shared server under a prefix of its own."""
    from cvstore.stores.redis import RedisStore

    store = RedisStore(redis_server.url(), prefix=prefix, name="r1")
    yield store
    store.clear()
    store.close()


@pytest.fixture
def make_cluster(prefix):
    """``make_cluster(servers, **cluster_kwargs)`` -> a Cluster of nodes r1..rN, one per server.

    Every call makes new RedisStore clients (a new client process, as far as
    the servers can tell) with the same node names and prefix, so two calls
    give two clusters with the same membership.  Closed at teardown.
    """
    from cvstore import Node, RedisStore
    from tests.support.drivers import (  # the sync or the async driver (tests/support/drivers.py)
        Cluster,
        raw,
    )

    made = []

    def make(servers, *, timeout: float = 0.5, **kwargs):
        nodes = [
            Node(f"r{i + 1}", store=RedisStore(server.url(), prefix=prefix, timeout=timeout))
            for i, server in enumerate(servers)
        ]
        kwargs.setdefault("replication_factor", 3)
        cluster = Cluster(nodes, **kwargs)
        made.append((cluster, nodes))
        return cluster

    yield make
    for cluster, nodes in made:
        views = [raw(node) for node in cluster.nodes]
        cluster.close()
        for store in {id(s): s for s in [*views, *(n.store for n in nodes)]}.values():
            store.close()
