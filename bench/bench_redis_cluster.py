"""The cluster over three Redis servers against raw redis-py on the same servers, same run.

Run ``pytest bench/bench_redis_cluster.py --benchmark-only`` (the fixture below
starts three redis-servers on 127.0.0.1 with the Redis tests' helpers and stops
them afterwards), then ``python bench/report.py FILE`` on its
``--benchmark-json`` output: the last column is cvstore's rate over raw's.

Data: 100,000 keys of 16 bytes with 100-byte values, on every server (raw,
unprefixed) and in the cluster (RF=3, so on every server too) before timing.
Each batch call handles the next 1,000 keys (wrapping); the sides do the same
work, counted in records (``extra_info["records"]``):

- ``redis-cluster-write``: ``MSET`` of the 1,000 keys to each of the 3
  servers in turn (3,000 records) vs ``cluster.put_many`` of the 1,000 keys
  at quorum (3,000 records: every replica is written, quorum is what it
  waits for; each write is a versioned script call on the server).
- ``redis-cluster-write-100k``: the same for all 100,000 keys in one call
  (raw: the 100 ``MSET`` batches to each server; cvstore: one ``put_many``,
  which goes to the servers in slices).
- ``redis-cluster-read``: ``MGET`` of the 1,000 keys from 2 servers
  (2,000 records) vs ``cluster.get_many`` at quorum (2 replicas asked).
- ``redis-cluster-put`` / ``redis-cluster-get``: 100 single keys a call:
  ``SET`` on 3 servers / ``GET`` from 2, one round trip after another, vs
  ``cluster.put`` (3 replicas) / ``cluster.get`` at quorum (2 replicas).

Both sides use redis-py with the same parser (hiredis when installed) and no
retries.  ``cvstore`` keeps its membership on the nodes (every request
fenced by the layout epoch); ``cvstore-unfenced`` is the same cluster with
``shared=False`` (membership in the client, no epoch checks), under another
prefix on the same servers: the difference between the two is the cost of
fencing.
"""

from __future__ import annotations

from typing import Any

import pytest

from bench.redis_data import N_KEYS, VALUE_BYTES, Slices, make_data

KEY_BYTES = 16
BATCH = 1_000
SINGLE = 100  # single-key calls per timed round
ROUNDS_BATCH = 200  # two passes over the keys
ROUNDS_SINGLE = 30
ROUNDS_WHOLE = 5  # calls of all 100,000 keys
TIMEOUT = 5.0  # seconds; generous, so that a busy machine does not fail a benchmark


@pytest.fixture(scope="module")
def servers(start_redis_servers: Any) -> Any:
    return start_redis_servers(3)


@pytest.fixture(scope="module")
def data() -> tuple[list[bytes], list[bytes]]:
    return make_data()


@pytest.fixture(scope="module")
def raws(redis_mod: Any, servers: Any, data: tuple[list[bytes], list[bytes]]) -> Any:
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    clients = [
        redis_mod.Redis.from_url(
            s.url(),
            socket_timeout=TIMEOUT,
            socket_connect_timeout=TIMEOUT,
            retry=Retry(NoBackoff(), 0),
        )
        for s in servers
    ]
    keys, values = data
    for i in range(0, N_KEYS, BATCH):
        mapping = dict(zip(keys[i : i + BATCH], values[i : i + BATCH]))
        for client in clients:
            client.mset(mapping)
    yield clients
    for client in clients:
        client.close()


def _make_cluster(servers: Any, data: tuple[list[bytes], list[bytes]], shared: bool) -> Any:
    from cvstore import Cluster, Node, RedisStore

    prefix = "bench:" if shared else "bench-unfenced:"
    nodes = [
        Node(f"r{i + 1}", store=RedisStore(s.url(), prefix=prefix, timeout=TIMEOUT))
        for i, s in enumerate(servers)
    ]
    c = Cluster(nodes, replication_factor=3, shared=shared)
    assert (c.layout is not None) == shared
    keys, values = data
    for i in range(0, N_KEYS, BATCH):
        c.put_many(dict(zip(keys[i : i + BATCH], values[i : i + BATCH])))
    assert all(node.store.count() == N_KEYS for node in nodes)
    return c


@pytest.fixture(scope="module")
def clusters(servers: Any, data: tuple[list[bytes], list[bytes]]) -> Any:
    made = {
        "cvstore": _make_cluster(servers, data, shared=True),
        "cvstore-unfenced": _make_cluster(servers, data, shared=False),
    }
    yield made
    for c in made.values():
        c.close()
        for node in c.nodes:
            node.store.close()


def _run(benchmark: Any, target: Any, slices: Slices, rounds: int) -> None:
    benchmark.pedantic(target, setup=lambda: ((slices.next(),), {}), rounds=rounds, warmup_rounds=1)


def _info(benchmark: Any, raws: Any, keys: int, records: int) -> None:
    from redis.utils import HIREDIS_AVAILABLE

    benchmark.extra_info.update(
        keys=keys,
        records=records,
        servers=len(raws),
        key_bytes=KEY_BYTES,
        value_bytes=VALUE_BYTES,
        hiredis=HIREDIS_AVAILABLE,
        redis_server=raws[0].info("server")["redis_version"],
    )


@pytest.mark.benchmark(group="redis-cluster-write")
@pytest.mark.parametrize("side", ["raw MSET x3", "cvstore", "cvstore-unfenced"])
def test_write(benchmark, side, raws, clusters, data):
    slices = Slices(data, BATCH)
    if side.startswith("cvstore"):
        cluster = clusters[side]

        def target(kv):
            cluster.put_many(dict(zip(*kv)), consistency="quorum")

    else:

        def target(kv):
            mapping = dict(zip(*kv))
            for client in raws:
                client.mset(mapping)

    _run(benchmark, target, slices, ROUNDS_BATCH)
    _info(benchmark, raws, BATCH, 3 * BATCH)


@pytest.mark.benchmark(group="redis-cluster-read")
@pytest.mark.parametrize("side", ["raw MGET x2", "cvstore", "cvstore-unfenced"])
def test_read(benchmark, side, raws, clusters, data):
    slices = Slices(data, BATCH)
    got = []
    if side.startswith("cvstore"):
        cluster = clusters[side]

        def target(kv):
            got.append(cluster.get_many(kv[0], consistency="quorum"))

    else:

        def target(kv):
            for client in raws[:2]:
                got.append(client.mget(kv[0]))

    _run(benchmark, target, slices, ROUNDS_BATCH)
    _info(benchmark, raws, BATCH, 2 * BATCH)
    assert all(len(batch) == BATCH for batch in got)  # every key was found


@pytest.mark.benchmark(group="redis-cluster-put")
@pytest.mark.parametrize("side", ["raw SET x3", "cvstore", "cvstore-unfenced"])
def test_put(benchmark, side, raws, clusters, data):
    slices = Slices(data, SINGLE)
    if side.startswith("cvstore"):
        cluster = clusters[side]

        def target(kv):
            for key, value in zip(*kv):
                cluster.put(key, value, consistency="quorum")

    else:

        def target(kv):
            for key, value in zip(*kv):
                for client in raws:
                    client.set(key, value)

    _run(benchmark, target, slices, ROUNDS_SINGLE)
    _info(benchmark, raws, SINGLE, 3 * SINGLE)


@pytest.mark.benchmark(group="redis-cluster-get")
@pytest.mark.parametrize("side", ["raw GET x2", "cvstore", "cvstore-unfenced"])
def test_get(benchmark, side, raws, clusters, data):
    slices = Slices(data, SINGLE)
    found = []
    if side.startswith("cvstore"):
        cluster = clusters[side]

        def target(kv):
            for key in kv[0]:
                found.append(cluster.get(key, consistency="quorum") is not None)

    else:

        def target(kv):
            for key in kv[0]:
                for client in raws[:2]:
                    found.append(client.get(key) is not None)

    _run(benchmark, target, slices, ROUNDS_SINGLE)
    _info(benchmark, raws, SINGLE, 2 * SINGLE)
    assert all(found)


# Last: a 100,000-key call leaves the client's heap and the servers in another state.
@pytest.mark.benchmark(group="redis-cluster-write-100k")
@pytest.mark.parametrize("side", ["raw MSET x3", "cvstore", "cvstore-unfenced"])
def test_write_whole(benchmark, side, raws, clusters, data):
    # all 100,000 keys in one call (raw: 1,000-key MSETs, the way raw redis-py is fast)
    keys, values = data
    if side.startswith("cvstore"):
        cluster = clusters[side]
        batch = dict(zip(keys, values))

        def target():
            cluster.put_many(batch, consistency="quorum")

    else:
        mappings = [
            dict(zip(keys[i : i + BATCH], values[i : i + BATCH])) for i in range(0, N_KEYS, BATCH)
        ]

        def target():
            for mapping in mappings:
                for client in raws:
                    client.mset(mapping)

    benchmark.pedantic(target, rounds=ROUNDS_WHOLE, warmup_rounds=1)
    _info(benchmark, raws, N_KEYS, 3 * N_KEYS)
