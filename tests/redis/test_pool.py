"""A store's pool: its size, the wait for a connection, and what a call sees past the wait.

``RedisStore``/``AsyncRedisStore`` use at most ``max_connections`` connections
at once (default 100; a client you pass keeps its own pool); a call that finds
them all busy waits up to ``pool_timeout`` and then fails alone with a
StoreError that is not ``unreachable``.  The cluster-level promises under many
threads are in ``test_busy_client.py``; 2,000 asyncio tasks are here.
"""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest

import cvstore
from cvstore import AsyncCluster, AsyncRedisStore, Node, RedisStore, StoreError


def _suspicions(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "suspected down" in r.getMessage()]


@pytest.mark.slow
def test_2000_tasks_on_one_async_cluster_all_succeed_and_suspect_nobody(
    start_redis, prefix, caplog
):
    caplog.set_level(logging.WARNING, logger="cvstore")
    servers = start_redis(3)

    async def main() -> None:
        # pool_timeout 30 s: all 6,000 store calls queue at once, and the last waits about as
        # long as the whole burst takes on a busy 2-core machine; timeout 10 s: the point is
        # the pool, not the timer (CI's machine may be running other suites beside this one)
        stores = [
            AsyncRedisStore(s.url(), prefix=prefix, timeout=10.0, pool_timeout=30.0)
            for s in servers
        ]
        nodes = [Node(f"r{i + 1}", store=st) for i, st in enumerate(stores)]
        try:
            async with AsyncCluster(nodes, replication_factor=3) as cluster:
                puts = await asyncio.gather(
                    *(cluster.put(f"k{i}", f"v{i}") for i in range(2000)), return_exceptions=True
                )
                assert [r for r in puts if r is not None] == []
                gets = await asyncio.gather(
                    *(cluster.get(f"k{i}") for i in range(2000)), return_exceptions=True
                )
                assert gets == [f"v{i}" for i in range(2000)]
                assert cluster.suspected == ()
                assert sum(st.stats()["pool_waits"] for st in stores) > 0
        finally:  # the stores are the test's: closed even when an assertion fails
            for store in stores:
                await store.close()

    asyncio.run(main())
    assert _suspicions(caplog) == []


# ------------------------------------------------------------ past the wait


def test_a_sync_call_past_pool_timeout_fails_alone_not_unreachable(redis_server, prefix):
    store = RedisStore(redis_server.url(), prefix=prefix, max_connections=1, pool_timeout=0.05)
    try:
        held = threading.Event()
        release = threading.Event()

        def hold() -> None:  # sends, keeps the only connection until told to read
            pending = store.send_get_many([b"a"])
            held.set()
            release.wait(10)
            pending.result()

        holder = threading.Thread(target=hold)
        holder.start()
        assert held.wait(10)
        with pytest.raises(StoreError, match="get failed: no free connection: all 1 busy") as info:
            store.get(b"b")
        assert info.value.unreachable is False
        assert "max_connections" in info.value.reason
        release.set()
        holder.join(10)
        assert store.get(b"b") is None  # the connection is free again
        stats = store.stats()
        assert stats["no_connection"] == 1 and stats["connection_errors"] == 0
    finally:
        store.close()


def test_an_async_call_past_pool_timeout_fails_alone_not_unreachable(redis_server, prefix):
    async def main() -> list[object]:
        store = AsyncRedisStore(
            redis_server.url(), prefix=prefix, max_connections=1, pool_timeout=0
        )
        try:
            return await asyncio.gather(
                *(store.get(b"k") for _ in range(20)), return_exceptions=True
            )
        finally:
            await store.close()

    results = asyncio.run(main())
    failed = [r for r in results if isinstance(r, BaseException)]
    assert None in results and failed
    assert all(isinstance(e, StoreError) and not e.unreachable for e in failed), failed
    assert all("no free connection" in str(e) for e in failed)


def test_a_client_you_pass_keeps_its_pool_and_its_exhaustion_is_not_unreachable(
    redis_server, prefix
):
    import redis

    pool = redis.ConnectionPool.from_url(redis_server.url(), max_connections=1)
    client = redis.Redis(connection_pool=pool)
    store = RedisStore(client, prefix=prefix)
    assert store.max_connections == 1
    taken = pool.get_connection()  # someone else holds the pool's only connection
    try:
        with pytest.raises(StoreError, match="no free connection in the client's pool") as info:
            store.get(b"k")
        assert info.value.unreachable is False
    finally:
        pool.release(taken)
    assert store.get(b"k") is None
    client.close()


# ------------------------------------------------------------ bad values


@pytest.mark.parametrize("make", [RedisStore, AsyncRedisStore], ids=["sync", "async"])
@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"max_connections": 0}, ValueError, r"max_connections must be >= 1, got 0"),
        ({"max_connections": -3}, ValueError, r"max_connections must be >= 1, got -3"),
        ({"max_connections": True}, TypeError, r"max_connections must be an int, got True"),
        ({"max_connections": 2.0}, TypeError, r"max_connections must be an int, got 2.0"),
        ({"max_connections": "8"}, TypeError, r"max_connections must be an int, got '8'"),
        (
            {"pool_timeout": -1},
            ValueError,
            r"pool_timeout must be a finite number of seconds >= 0, got -1",
        ),
        ({"pool_timeout": float("inf")}, ValueError, r"pool_timeout must be a finite .* got inf"),
        ({"pool_timeout": float("nan")}, ValueError, r"pool_timeout must be a finite .* got nan"),
        ({"pool_timeout": None}, TypeError, r"pool_timeout must be a number of seconds, got None"),
        (
            {"pool_timeout": False},
            TypeError,
            r"pool_timeout must be a number of seconds, got False",
        ),
    ],
)
def test_bad_pool_options_are_refused_naming_them(make, options, error, match):
    with pytest.raises(error, match=match):
        make("redis://127.0.0.1:1/0", **options)


@pytest.mark.parametrize("make", [RedisStore, AsyncRedisStore], ids=["sync", "async"])
def test_pool_size_belongs_to_the_store_not_the_url_nor_a_given_client(make):
    with pytest.raises(
        ValueError, match=r"must not set max_connections \(got '5'\); pass max_connections="
    ):
        make("redis://127.0.0.1:1/0?max_connections=5")
    import redis
    import redis.asyncio

    client = (redis.Redis if make is RedisStore else redis.asyncio.Redis).from_url(
        "redis://127.0.0.1:1/0"
    )
    with pytest.raises(
        ValueError, match="max_connections applies to a url only, got max_connections=4"
    ):
        make(client, max_connections=4)


def test_defaults_and_what_a_store_reports():
    store = RedisStore("redis://127.0.0.1:1/0")
    assert store.max_connections == cvstore.stores.redis.store.DEFAULT_MAX_CONNECTIONS == 100
    assert store.pool_timeout == cvstore.stores.redis.store.DEFAULT_POOL_TIMEOUT
    assert store.client.connection_pool.max_connections == 100
    small = RedisStore("redis://127.0.0.1:1/0", max_connections=3, pool_timeout=0)
    assert (small.max_connections, small.pool_timeout) == (3, 0.0)
    sibling = small.sibling("redis://127.0.0.1:2/0", "p:")
    assert (sibling.max_connections, sibling.pool_timeout) == (3, 0.0)
    for s in (store, small, sibling):
        s.close()


# Keeps the server busy for about 100 ms (so that a reply is on its way while the loop is
# blocked).  Valkey 9 gives a script one TIME for its whole run, so the loop also ends after
# 100,000 calls of TIME (tens of milliseconds) where the time stands still.
_BUSY = """
local t = redis.call('TIME')
local start = t[1] * 1000000 + t[2]
local calls = 0
repeat
    t = redis.call('TIME')
    calls = calls + 1
until t[1] * 1000000 + t[2] - start > 100000 or calls > 100000
return 1
"""


def test_a_loop_busy_past_the_timeout_does_not_fail_a_call_whose_reply_came(redis_server, prefix):
    """The reply is in before the loop looks again: the timer must not win over it."""
    import time

    import redis.asyncio

    async def main() -> tuple[object, int]:
        store = AsyncRedisStore(redis_server.url(), prefix=prefix, timeout=0.2)
        raw = redis.asyncio.Redis.from_url(redis_server.url())
        try:
            assert await store.get(b"k") is None  # a connection, made and back in the pool
            busy = asyncio.ensure_future(raw.eval(_BUSY, 0))
            await asyncio.sleep(0.02)  # the server is in the script now

            async def hog() -> None:
                for _ in range(10):  # the get sends its request
                    await asyncio.sleep(0)
                time.sleep(0.6)  # noqa: ASYNC251 - the point: a loop busy for 3 timeouts

            got, _ = await asyncio.gather(store.get(b"k"), hog(), return_exceptions=True)
            await busy
            return got, store.stats()["timeouts"]
        finally:
            await store.close()
            await raw.aclose()

    got, timeouts = asyncio.run(main())
    assert got is None and timeouts == 0, got
