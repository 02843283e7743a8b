"""A cluster's lifecycle: ``with``, ``close()``, what it closes and what stays yours."""

from __future__ import annotations

import asyncio
import gc
import os
import threading

import pytest

from cvstore import AsyncCluster, Cluster, ClusterClosedError, Node, RedisStore
from tests.support.waiting import wait_until


def fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_with_closes_what_the_cluster_made_and_leaves_what_you_gave(start_redis, prefix):
    servers = start_redis(3)
    mine = [RedisStore(s.url(), prefix=prefix) for s in servers]
    with Cluster([Node(f"r{i + 1}", store=st) for i, st in enumerate(mine)]) as creator:
        creator.put_many({f"k{i}": "v" for i in range(100)})
    gc.collect()
    before_fds, before_threads = fds(), threading.active_count()
    for _ in range(5):
        with Cluster.join([servers[0].url()], prefix=prefix, probe_interval=0.01) as joined:
            assert len(joined.get_many([f"k{i}" for i in range(100)])) == 100
            servers[2].pause()
            try:
                joined.put(
                    "x", "y", consistency="quorum"
                )  # r3 times out: suspected, a prober starts
                assert joined.suspected == ("r3",)
            finally:
                servers[2].resume()
        with pytest.raises(ClusterClosedError, match="the cluster is closed"):
            joined.get("k1")
        with pytest.raises(ClusterClosedError):
            joined.put_many({"a": "b"})
        with pytest.raises(ClusterClosedError):
            len(joined)
        joined.close()  # twice is fine
    gc.collect()
    assert wait_until(lambda: threading.active_count() <= before_threads, seconds=5)
    assert fds() <= before_fds + 3  # the joined clients' connections are closed
    # the stores the first cluster was given are still open and usable: they are yours
    assert mine[0].get(b"k1") is not None
    for store in mine:
        store.close()


def test_the_async_driver_closes_the_same_way(start_redis, prefix):
    servers = start_redis(3)
    with Cluster(
        [Node(f"r{i + 1}", store=RedisStore(s.url(), prefix=prefix)) for i, s in enumerate(servers)]
    ) as c:
        c.put("k", "v")
        given = [node.store for node in c.nodes]

    async def main() -> AsyncCluster:
        async with await AsyncCluster.join([servers[1].url()], prefix=prefix) as a:
            assert await a.get("k") == "v"
        with pytest.raises(ClusterClosedError):
            await a.get("k")
        await a.close()
        return a

    before = fds()
    a = asyncio.run(main())
    assert a._state.made == set() and fds() <= before + 3
    for store in given:
        store.close()


def _clients(server) -> int:
    """Connections the server has open, other than the one asking."""
    import redis

    with redis.Redis.from_url(server.url()) as ask:
        return len(ask.client_list()) - 1


def test_the_async_driver_closes_the_store_of_a_node_that_leaves(start_redis, prefix, recwarn):
    servers = start_redis(4)
    with Cluster.create(
        [
            Node(f"r{i + 1}", store=RedisStore(s.url(), prefix=prefix))
            for i, s in enumerate(servers)
        ],
        replication_factor=3,
    ) as c:
        c.put_many({f"k{i}": "v" for i in range(200)})
        given = [node.store for node in c.nodes]
    for store in given:
        store.close()
    assert [_clients(s) for s in servers] == [0, 0, 0, 0]

    async def main() -> tuple[list[int], list[int]]:
        # timeout 5 s: 200 gets at once on a busy 2-core machine; the point is the closing
        a = await AsyncCluster.join([servers[0].url()], prefix=prefix, timeout=5.0)
        try:
            await asyncio.gather(*(a.get(f"k{i}") for i in range(200)))
            assert _clients(servers[3]) > 0  # the joined client talks to r4
            await a.remove_node("r4")  # made by the client from the layout: it closes it
            for _ in range(1000):  # closed by a task of the cluster's: up to 10 s
                if _clients(servers[3]) == 0:
                    break
                await asyncio.sleep(0.01)
            left = [_clients(s) for s in servers]
        finally:
            await a.close()
        return left, [_clients(s) for s in servers]

    left, closed = asyncio.run(main())
    gc.collect()
    assert left[3] == 0  # r4's connections went with r4
    assert closed == [0, 0, 0, 0]  # and close() closed the rest
    assert not [w for w in recwarn if "never awaited" in str(w.message)]
