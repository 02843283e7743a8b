"""AsyncCluster over real redis-servers, side by side with sync clients of the same cluster."""

from __future__ import annotations

import asyncio

from cvstore import AsyncCluster, AsyncRedisStore, Cluster, Node, RedisStore
from cvstore.stores.redis import JSONCodec


def test_sync_and_async_clients_read_each_others_writes(start_redis, prefix):
    servers = start_redis(3)
    sync = Cluster(
        [
            Node(f"r{i + 1}", store=RedisStore(s.url(), prefix=prefix, codec=JSONCodec()))
            for i, s in enumerate(servers)
        ]
    )
    keys = [f"k{i}" for i in range(500)]

    async def main() -> None:
        async with await AsyncCluster.join(
            [servers[1].url()], prefix=prefix, codec=JSONCodec()
        ) as a:
            assert a.layout == sync.layout
            await a.put_many({k: {"n": i} for i, k in enumerate(keys)})
            assert sync.get_many(keys) == {k: {"n": i} for i, k in enumerate(keys)}
            sync.put_many({k: [i] for i, k in enumerate(keys)})
            assert await a.get_many(keys, consistency="all") == {k: [i] for i, k in enumerate(keys)}
            await a.delete("k0")
            assert sync.get("k0") is None and "k0" not in sync
            # a change made by the sync client: the async one is refused, reloads, asks again
            extra = start_redis(1)[0]
            sync.add_node(
                Node("r4", store=RedisStore(extra.url(), prefix=prefix, codec=JSONCodec()))
            )
            assert await a.get("k1", consistency="all") == [1]
            assert a.layout.epoch == sync.layout.epoch == 3 and "r4" in [n.name for n in a.nodes]
            assert sorted(await a.keys()) == sorted(keys[1:])

    asyncio.run(main())
    sync.close()
    for node in sync.nodes:
        node.store.close()


def test_a_cancelled_call_leaves_no_reply_unread_on_a_connection(start_redis, prefix):
    servers = start_redis(3)

    async def main() -> None:
        stores = [AsyncRedisStore(s.url(), prefix=prefix, timeout=5.0) for s in servers]
        async with AsyncCluster([Node(f"r{i + 1}", store=st) for i, st in enumerate(stores)]) as c:
            await c.put_many({f"k{i}": f"v{i}" for i in range(2000)})
            servers[2].pause()  # requests to r3 wait: cancel calls while they do
            try:
                for _ in range(5):
                    call = asyncio.ensure_future(
                        c.get_many([f"k{i}" for i in range(2000)], consistency="all")
                    )
                    await asyncio.sleep(0.05)
                    call.cancel()
                    try:
                        await call
                    except asyncio.CancelledError:
                        pass
            finally:
                servers[2].resume()
            # every pooled connection answers its own requests again
            for _ in range(20):
                got = await c.get_many([f"k{i}" for i in range(2000)], consistency="all")
                assert got == {f"k{i}": f"v{i}" for i in range(2000)}
            for store in stores:
                await store.close()

    asyncio.run(main())


def test_open_url_opens_a_node_with_the_backend_and_its_async_twin(redis_server, prefix):
    from cvstore.stores import open_url

    url = redis_server.url()
    with open_url(url, prefix=prefix) as sync:
        assert type(sync) is RedisStore and sync.url == url and sync.prefix == prefix
    assert RedisStore.async_twin is AsyncRedisStore

    async def main() -> None:
        store = open_url(url, asyncio=True, prefix=prefix)
        assert type(store) is AsyncRedisStore and store.url == url
        # what the asyncio store declares it can do, it does
        assert store.remote and store.keeps_layout and store.addressable and not store.direct
        assert await store.swap_layout(0, 1, b"{}") == (1, b"{}")
        sibling = store.sibling(store.address, prefix + "sibling:")
        assert type(sibling) is AsyncRedisStore and sibling.prefix == prefix + "sibling:"
        assert await sibling.read_layout() == (0, None)  # its own place
        await sibling.close()
        await store.clear()
        await store.close()

    asyncio.run(main())


def test_the_async_store_speaks_the_sync_stores_protocol(start_redis, prefix):
    (server,) = start_redis(1)
    from cvstore.versions import Record

    async def main() -> None:
        async with AsyncRedisStore(server.url(), prefix=prefix, name="a") as store:
            assert await store.write_many([b"a", b"b"], [Record(2, "x"), Record(2, b"y")]) == [
                None,
                None,
            ]
            assert await store.write_many([b"a"], [Record(1, "older")]) == [2]
            with RedisStore(server.url(), prefix=prefix) as sync:
                assert sync.get_many([b"a", b"b", b"c"]) == [Record(2, "x"), Record(2, b"y"), None]
                sync.put_hints("n2", [(b"k", Record(3, "h"))])
            assert await store.read_hints() == [("n2", b"k", Record(3, "h"))]
            assert await store.count() == 2 and await store.count_hints() == 1
            keys, versions, tombs, _expires = await store.scan_versions()
            assert sorted(zip(keys, versions, tombs)) == [(b"a", 2, False), (b"b", 2, False)]
            assert await store.swap_layout(0, 1, b"{}") == (1, b"{}")
            assert await store.read_layout() == (1, b"{}")
            assert await store.clear() >= 4
            assert await store.ping() is True

    asyncio.run(main())


def test_a_url_store_times_its_calls_itself_and_reconnects_after_a_restart(start_redis, prefix):
    # redis-py 8 sets 5 s socket timeouts unless told: a store made from a URL
    # turns them off (its own deadline is the one timeout, as the loop sees it)
    from cvstore.core.records import Record

    (server,) = start_redis(1)

    async def main() -> None:
        store = AsyncRedisStore(server.url(), prefix=prefix, timeout=5.0)
        kwargs = store.client.connection_pool.connection_kwargs
        assert kwargs["socket_timeout"] is None and kwargs["socket_connect_timeout"] is None
        try:
            for i in range(20):
                assert await store.put(b"k%d" % i, Record(i + 1, "v"))
            # the connection it used is closed by the server's restart: once the
            # loop has seen that, the next calls connect again and none fails
            server.restart()
            await asyncio.sleep(0.05)
            for i in range(20):
                await store.get(b"k%d" % i)
                assert await store.put(b"k%d" % i, Record(i + 30, "w"))
                assert (await store.get(b"k%d" % i)).value == "w"
            assert store.stats()["errors"] == 0
        finally:
            await store.close()

    asyncio.run(main())


def test_closing_a_url_store_closes_the_connections_it_keeps(start_redis, prefix):
    # the store keeps connections between calls; its pool holds those only
    # weakly, so close() must close them before letting them go
    import gc
    import warnings

    import redis

    from cvstore.core.records import Record

    (server,) = start_redis(1)
    watcher = redis.Redis.from_url(server.url())

    def clients() -> int:
        return int(watcher.info("clients")["connected_clients"])

    async def main() -> None:
        store = AsyncRedisStore(server.url(), prefix=prefix, timeout=5.0)
        await asyncio.gather(*(store.put(b"k%d" % i, Record(1, "v")) for i in range(4)))
        assert clients() > 1  # the watcher and the store's
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            await store.close()
            del store
            gc.collect()
        assert not [w for w in caught if issubclass(w.category, ResourceWarning)]
        for _ in range(100):  # the server sees the sockets close
            if clients() == 1:
                break
            await asyncio.sleep(0.01)
        assert clients() == 1

    try:
        asyncio.run(main())
    finally:
        watcher.close()
