"""Throughput with many callers at once: 1, 10, 100 and 1,000 on one cluster, both drivers.

Run ``pytest bench/bench_concurrency.py --benchmark-only`` (three redis-servers
are started on 127.0.0.1 and stopped afterwards); ``--benchmark-disable`` runs
each case once, untimed, with fewer operations (as CI does).

Each round does ``OPS`` quorum calls (RF 3) split evenly among the callers:
threads sharing one sync ``Cluster``, or tasks sharing one ``AsyncCluster`` on
one event loop.  ``put`` writes a key per call (3 replicas written); ``get``
reads one of ``OPS`` keys written before timing (2 replicas asked).  The
stores keep their default pool (``max_connections`` 100 a store), so 1,000
callers wait for connections; ``pool_timeout`` is raised so that a busy machine
measures a slow round rather than a failed one.  Threads are started before a
round and released together, so thread start-up is not timed.

``extra_info``: ``callers`` and ``ops``; throughput = ops / the round's time
(``python bench/report.py FILE`` shows medians).

The curve against raw redis-py and ``redis.asyncio``, with processes too and
the client's and the servers' CPU per call, is ``bench/concurrency_curve.py``
(a script: interleaved rounds of both sides); the last test below runs it with
a few calls.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

CALLERS = (1, 10, 100, 1000)
OPS = 2_000  # calls a timed round
OPS_UNTIMED = 200  # calls a round under --benchmark-disable (at least one a caller)
ROUNDS = 3
TIMEOUT = 5.0  # store timeout, seconds: generous, a busy machine must not fail a round
POOL_TIMEOUT = 60.0  # seconds a call may wait for a connection
PREFIX = "bench-concurrency:"


@pytest.fixture(scope="module")
def servers(start_redis_servers: Any) -> Any:
    return start_redis_servers(3)


@pytest.fixture(scope="module")
def loop() -> Any:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def _keys() -> list[str]:
    return [f"key:{i:06d}" for i in range(OPS)]


@pytest.fixture(scope="module")
def sync_cluster(servers: Any) -> Any:
    from cvstore import Cluster, Node, RedisStore

    nodes = [
        Node(
            f"r{i + 1}",
            store=RedisStore(s.url(), prefix=PREFIX, timeout=TIMEOUT, pool_timeout=POOL_TIMEOUT),
        )
        for i, s in enumerate(servers)
    ]
    cluster = Cluster(nodes, replication_factor=3)
    cluster.put_many({key: "v" * 100 for key in _keys()})
    yield cluster
    cluster.close()
    for node in nodes:
        node.store.close()


@pytest.fixture(scope="module")
def async_cluster(servers: Any, loop: Any, sync_cluster: Any) -> Any:
    from cvstore import AsyncCluster, AsyncRedisStore, Node

    stores = [
        AsyncRedisStore(s.url(), prefix=PREFIX, timeout=TIMEOUT, pool_timeout=POOL_TIMEOUT)
        for s in servers
    ]
    nodes = [Node(f"r{i + 1}", store=st) for i, st in enumerate(stores)]
    cluster = loop.run_until_complete(AsyncCluster(nodes, replication_factor=3).open())
    yield cluster
    loop.run_until_complete(cluster.close())
    for store in stores:
        loop.run_until_complete(store.close())


def _plans(callers: int, ops: int) -> list[list[str]]:
    """Each caller's keys: `ops` keys dealt out in turn."""
    keys = _keys()[:ops]
    return [keys[c::callers] for c in range(callers)]


def _sync_round(cluster: Any, op: str, plans: list[list[str]]) -> tuple[Any, tuple[Any, ...]]:
    """pedantic's setup: threads started and waiting; the target releases and joins them."""
    go = threading.Event()
    errors: list[BaseException] = []
    call = cluster.put if op == "put" else cluster.get

    def worker(keys: list[str]) -> None:
        go.wait()
        try:
            if op == "put":
                for key in keys:
                    call(key, "w" * 100)
            else:
                for key in keys:
                    call(key)
        except BaseException as exc:  # noqa: BLE001 - reported by the target
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(keys,)) for keys in plans]
    for thread in threads:
        thread.start()

    def run() -> None:
        go.set()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]

    return run, ()


def _async_target(cluster: Any, loop: Any, op: str, plans: list[list[str]]) -> Any:
    async def worker(keys: list[str]) -> None:
        if op == "put":
            for key in keys:
                await cluster.put(key, "w" * 100)
        else:
            for key in keys:
                await cluster.get(key)

    async def everyone() -> None:
        await asyncio.gather(*(worker(keys) for keys in plans))

    def run() -> None:
        loop.run_until_complete(everyone())

    return run


@pytest.mark.parametrize("callers", CALLERS, ids=lambda n: f"callers={n}")
@pytest.mark.parametrize("driver", ["sync", "async"])
@pytest.mark.parametrize("op", ["put", "get"])
def test_concurrent_callers(benchmark, op, driver, callers, sync_cluster, async_cluster, loop):
    benchmark.group = f"concurrency-{op}"
    ops = OPS_UNTIMED if benchmark.disabled else OPS
    ops = max(ops, callers)
    plans = _plans(callers, ops)
    if driver == "sync":
        holder: dict[str, Any] = {}

        def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
            holder["run"], _ = _sync_round(sync_cluster, op, plans)
            return (), {}

        benchmark.pedantic(lambda: holder["run"](), setup=setup, rounds=ROUNDS, warmup_rounds=0)
        suspected = sync_cluster.suspected
    else:
        benchmark.pedantic(
            _async_target(async_cluster, loop, op, plans), rounds=ROUNDS, warmup_rounds=1
        )
        suspected = async_cluster.suspected
    assert suspected == ()  # many callers never make a node look down
    benchmark.extra_info.update({"callers": callers, "ops": ops, "driver": driver, "op": op})


# ---------------------------------------------------------------------------
# bench/concurrency_curve.py: the curve against raw redis-py, with CPU per call.
# Its points are timed by the script, not by pytest-benchmark; here each mode
# runs once with a few calls (under --benchmark-disable, as CI runs bench/),
# so the script's two sides are checked to do the same work.

CURVE_OPS = 24


@pytest.fixture(scope="module")
def curve(servers: Any) -> Any:
    from bench import concurrency_curve

    bench = concurrency_curve.Bench([s.url() for s in servers], CURVE_OPS, processes=(2,))
    yield bench
    bench.close()


@pytest.mark.parametrize(("mode", "callers"), [("threads", 4), ("tasks", 4), ("processes", 2)])
def test_curve_sides_do_the_same_work(curve, servers, mode, callers):
    from bench.concurrency_curve import RAW, SIDES, key_name, value_for

    tag = f"check-{mode}"
    for op in ("put", "get"):
        for side in SIDES:
            point = curve.point(mode, side, op, callers, tag, seconds=60.0)
            assert point["calls"] == point["planned"] == CURVE_OPS, (op, side, point)
            assert point["wrong_reads"] == 0, (op, side, point)  # gets read what was written
            assert point["client_cpu_us_per_call"] > 0, (op, side, point)
            assert point["server_cpu_us_per_call"] > 0, (op, side, point)
            if mode != "processes":  # a point's pools open a connection a caller beforehand
                assert point["warm_connections"] >= callers * len(servers), (op, side, point)
                # recorded, not required to be 0: an AsyncCluster put returns after 2 of 3
                # acknowledgements, so a task may hold a second connection to a server
                assert 0 <= point["opened_while_timed"] <= callers * len(servers), (op, side)
    # both sides' puts stored the same values: cvstore on its replicas, raw on every server
    import redis

    raws = [redis.Redis.from_url(s.url()) for s in servers]
    try:
        for i in range(CURVE_OPS):
            expected = value_for(tag, i)
            assert curve.sync["cvstore"].get(key_name(i, "put")) == expected
            rkey = RAW + key_name(i, "put").encode()
            assert [r.get(rkey) for r in raws] == [expected] * len(raws)
    finally:
        for r in raws:
            r.close()
    assert curve.suspected == set()  # no cvstore client, thread, task or process, suspected a node
