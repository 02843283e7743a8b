"""AsyncCluster over three Redis servers against raw redis.asyncio on the same servers, same run.

Run ``pytest bench/bench_redis_async.py --benchmark-only`` (three redis-servers
are started on 127.0.0.1 and stopped afterwards), then ``python
bench/report.py FILE`` on its ``--benchmark-json`` output.

Data: 100,000 keys of 16 bytes with 100-byte values, on every server (raw,
unprefixed) and in the cluster (RF 3) before timing.  Each side does the same
replica work, counted in records (``extra_info["records"]``), and both send a
key's requests to its servers concurrently:

- ``redis-async-put`` / ``redis-async-get``: 100 single keys a call, one after
  another: raw ``SET`` on the 3 servers at once (``asyncio.gather``) / ``GET``
  from 2 at once, and the same requests awaited one after another ("one by
  one": what a caller writes without gather), vs ``AsyncCluster.put`` at
  quorum (3 replicas written, returns after 2) / ``get`` at quorum (2
  replicas asked).
- ``redis-async-write`` / ``redis-async-read``: 1,000-key batches: ``MSET`` on 3
  servers / ``MGET`` from 2, gathered, vs ``put_many`` / ``get_many`` at quorum.
- ``redis-concurrent-get``: 100 concurrent workers doing 100 quorum gets each
  (10,000 gets a call): 100 asyncio tasks on one AsyncCluster vs 100 threads
  on one sync ``Cluster`` (the same servers and keys).
"""

from __future__ import annotations

import asyncio
import random
import threading
from typing import Any

import pytest

from bench.redis_data import N_KEYS, SEED, VALUE_BYTES, Slices, make_data

BATCH = 1_000
SINGLE = 100
WORKERS = 100
PER_WORKER = 100
ROUNDS_BATCH = 100
ROUNDS_SINGLE = 30
ROUNDS_CONCURRENT = 5
TIMEOUT = 5.0  # seconds; generous, so that a busy machine does not fail a benchmark
PREFIX = "bench-async:"


@pytest.fixture(scope="module")
def loop() -> Any:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture(scope="module")
def servers(start_redis_servers: Any) -> Any:
    return start_redis_servers(3)


@pytest.fixture(scope="module")
def data() -> tuple[list[bytes], list[bytes]]:
    return make_data()


@pytest.fixture(scope="module")
def raws(redis_mod: Any, loop: Any, servers: Any, data: Any) -> Any:
    import redis.asyncio

    clients = [
        redis.asyncio.Redis.from_url(
            s.url(), socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT
        )
        for s in servers
    ]
    keys, values = data

    async def fill() -> None:
        for i in range(0, N_KEYS, BATCH):
            mapping = dict(zip(keys[i : i + BATCH], values[i : i + BATCH]))
            await asyncio.gather(*(c.mset(mapping) for c in clients))

    loop.run_until_complete(fill())
    yield clients
    for client in clients:
        loop.run_until_complete(client.aclose())


@pytest.fixture(scope="module")
def cluster(loop: Any, servers: Any, data: Any) -> Any:
    from cvstore import AsyncCluster, AsyncRedisStore, Node

    nodes = [
        Node(f"r{i + 1}", store=AsyncRedisStore(s.url(), prefix=PREFIX, timeout=TIMEOUT))
        for i, s in enumerate(servers)
    ]
    keys, values = data

    async def make() -> Any:
        c = await AsyncCluster(nodes, replication_factor=3).open()
        for i in range(0, N_KEYS, BATCH):
            await c.put_many(dict(zip(keys[i : i + BATCH], values[i : i + BATCH])))
        return c

    c = loop.run_until_complete(make())
    yield c
    loop.run_until_complete(c.close())
    for node in nodes:
        loop.run_until_complete(node.store.close())


@pytest.fixture(scope="module")
def sync_cluster(servers: Any) -> Any:
    from cvstore import Cluster

    c = Cluster.join([servers[0].url()], prefix=PREFIX, timeout=TIMEOUT)
    yield c
    c.close()


def _run(benchmark: Any, loop: Any, target: Any, slices: Slices, rounds: int) -> None:
    benchmark.pedantic(
        lambda kv: loop.run_until_complete(target(kv)),
        setup=lambda: ((slices.next(),), {}),
        rounds=rounds,
        warmup_rounds=1,
    )


def _info(benchmark: Any, loop: Any, raws: Any, keys: int, records: int) -> None:
    from redis.utils import HIREDIS_AVAILABLE

    info = loop.run_until_complete(raws[0].info("server"))
    benchmark.extra_info.update(
        keys=keys,
        records=records,
        servers=len(raws),
        value_bytes=VALUE_BYTES,
        hiredis=HIREDIS_AVAILABLE,
        redis_server=info["redis_version"],
    )


@pytest.mark.benchmark(group="redis-async-put")
@pytest.mark.parametrize("side", ["raw SET x3", "raw SET x3 one by one", "cvstore"])
def test_put(benchmark, side, loop, raws, cluster, data):
    if side == "cvstore":

        async def target(kv):
            for key, value in zip(*kv):
                await cluster.put(key, value, consistency="quorum")

    elif side.endswith("one by one"):

        async def target(kv):
            for key, value in zip(*kv):
                for c in raws:
                    await c.set(key, value)

    else:

        async def target(kv):
            for key, value in zip(*kv):
                await asyncio.gather(*(c.set(key, value) for c in raws))

    _run(benchmark, loop, target, Slices(data, SINGLE), ROUNDS_SINGLE)
    _info(benchmark, loop, raws, SINGLE, 3 * SINGLE)


@pytest.mark.benchmark(group="redis-async-get")
@pytest.mark.parametrize("side", ["raw GET x2", "raw GET x2 one by one", "cvstore"])
def test_get(benchmark, side, loop, raws, cluster, data):
    found = []
    if side == "cvstore":

        async def target(kv):
            for key in kv[0]:
                found.append(await cluster.get(key, consistency="quorum") is not None)

    elif side.endswith("one by one"):

        async def target(kv):
            for key in kv[0]:
                got = [await c.get(key) for c in raws[:2]]
                found.append(all(v is not None for v in got))

    else:

        async def target(kv):
            for key in kv[0]:
                got = await asyncio.gather(*(c.get(key) for c in raws[:2]))
                found.append(all(v is not None for v in got))

    _run(benchmark, loop, target, Slices(data, SINGLE), ROUNDS_SINGLE)
    _info(benchmark, loop, raws, SINGLE, 2 * SINGLE)
    assert all(found)


@pytest.mark.benchmark(group="redis-async-write")
@pytest.mark.parametrize("side", ["raw MSET x3", "cvstore"])
def test_write(benchmark, side, loop, raws, cluster, data):
    if side == "cvstore":

        async def target(kv):
            await cluster.put_many(dict(zip(*kv)), consistency="quorum")

    else:

        async def target(kv):
            mapping = dict(zip(*kv))
            await asyncio.gather(*(c.mset(mapping) for c in raws))

    _run(benchmark, loop, target, Slices(data, BATCH), ROUNDS_BATCH)
    _info(benchmark, loop, raws, BATCH, 3 * BATCH)


@pytest.mark.benchmark(group="redis-async-read")
@pytest.mark.parametrize("side", ["raw MGET x2", "cvstore"])
def test_read(benchmark, side, loop, raws, cluster, data):
    got = []
    if side == "cvstore":

        async def target(kv):
            got.append(len(await cluster.get_many(kv[0], consistency="quorum")))

    else:

        async def target(kv):
            parts = await asyncio.gather(*(c.mget(kv[0]) for c in raws[:2]))
            got.append(min(sum(v is not None for v in part) for part in parts))

    _run(benchmark, loop, target, Slices(data, BATCH), ROUNDS_BATCH)
    _info(benchmark, loop, raws, BATCH, 2 * BATCH)
    assert set(got) == {BATCH}


@pytest.mark.benchmark(group="redis-concurrent-get")
@pytest.mark.parametrize("side", ["cvstore", "cvstore-sync-threads"])
def test_concurrent_gets(benchmark, side, loop, raws, cluster, sync_cluster, data):
    keys = data[0]
    rng = random.Random(SEED)
    plans = [[keys[rng.randrange(N_KEYS)] for _ in range(PER_WORKER)] for _ in range(WORKERS)]
    misses = []
    if side == "cvstore":

        async def worker(plan):
            for key in plan:
                if await cluster.get(key, consistency="quorum") is None:
                    misses.append(key)

        async def all_workers():
            await asyncio.gather(*(worker(plan) for plan in plans))

        def target():
            loop.run_until_complete(all_workers())

    else:

        def worker(plan):
            for key in plan:
                if sync_cluster.get(key, consistency="quorum") is None:
                    misses.append(key)

        def target():
            threads = [threading.Thread(target=worker, args=(plan,)) for plan in plans]
            for t in threads:
                t.start()
            for t in threads:
                t.join()

    benchmark.pedantic(target, rounds=ROUNDS_CONCURRENT, warmup_rounds=1)
    _info(benchmark, loop, raws, WORKERS * PER_WORKER, 2 * WORKERS * PER_WORKER)
    benchmark.extra_info["workers"] = WORKERS
    assert misses == []
