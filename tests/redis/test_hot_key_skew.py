"""A hot key, a writer whose clock is ahead and a slow writer whose clock is behind (issue 21).

Three redis-servers and three client processes, each a ``Cluster`` (or an
``AsyncCluster`` with four callers) over its own proxy links (tests/support/faultproxy.py):
one with its clock 1.5 s ahead of the machine's and direct links, one in step, and one with
its clock 1.5 s behind whose every link is delayed +50 ms each way (jitter 10 ms), which
only writes.  All write unique values to two hot keys at ``quorum``, ``all`` and ``strong``
(the other two read as well).  The slow client's first attempt at a write is refused by the
versions of the client ahead; its rewrite, stamped above them, is refused again when that
client wrote the key during the round trip.  Before issue 21 it then rewrote up to 8 times
and raised ``ConflictError``; now that second refusal comes from replicas that answered the
first attempt, so the write is acknowledged, ordered just before the concurrent one
(README, "Several clients").  The history checker (tests/support/history.py) must still
find 0 lost, 0 stale, 0 phantom.  Bounded: 8 s of operations, at most 3,000 per client.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict
from typing import Any

import pytest

from tests.support import fault_clients
from tests.support.faultproxy import FaultProxy
from tests.support.history import AsyncHistory, History, check

pytestmark = pytest.mark.slow

KEYS = ["hot0", "hot1"]
LEVELS = ["quorum", "all", "strong"]
SECONDS = 8.0
MAX_OPS = 3000  # per client
OFFSETS_MS = [1500, 0, -1500]  # each client's clock against the machine's
SLOW = 2  # the client behind the delayed links (its clock is the one behind)
TASKS = 4  # callers of an asyncio client
TIMEOUT = 1.0  # s, each request: well above the slow links' round trip


def cluster_of(ports: list[int], prefix: str, process: int, offset_ms: int, driver: str) -> Any:
    from cvstore import AsyncCluster, AsyncRedisStore, Cluster, Node, RedisStore
    from cvstore.versions import HybridClock

    store = AsyncRedisStore if driver == "async" else RedisStore
    nodes = [
        Node(
            f"r{i + 1}", store=store(f"redis://127.0.0.1:{port}/0", prefix=prefix, timeout=TIMEOUT)
        )
        for i, port in enumerate(ports)
    ]
    clock = HybridClock(writer_id=process, wall_ms=lambda: int(time.time() * 1000) + offset_ms)
    make = AsyncCluster if driver == "async" else Cluster
    return make(nodes, replication_factor=3, clock=clock, shared=False)


def client(
    process: int,
    ports: list[int],
    prefix: str,
    offset_ms: int,
    reads: bool,
    ready: Any,
    out: str,
    driver: str,
) -> None:
    """One client process: writes (and reads, if `reads`) the hot keys; its history to `out`."""
    rng = random.Random(process)
    cluster = cluster_of(ports, prefix, process, offset_ms, driver)
    if driver == "async":
        import asyncio

        history: History = AsyncHistory(process)

        async def caller(rng: random.Random, deadline: float) -> None:
            while time.monotonic() < deadline and len(history.ops) < MAX_OPS:
                key, level = rng.choice(KEYS), rng.choice(LEVELS)
                if not reads or rng.random() < 0.5:
                    put = lambda k, v, level=level: cluster.put(k, v, consistency=level)
                    await history.awrite(put, key, history.value(), level)
                else:
                    get = lambda k, level=level: cluster.get(k, consistency=level)
                    await history.aread(get, key, level)

        async def run() -> None:
            await cluster.open()
            try:
                await asyncio.to_thread(ready.wait, 60)
                deadline = time.monotonic() + SECONDS
                tasks = [caller(random.Random(rng.random()), deadline) for _ in range(TASKS)]
                await asyncio.gather(*tasks)
            finally:
                await cluster.close()
                for node in cluster.nodes:
                    await node.store.close()

        asyncio.run(run())
    else:
        history = History(process)
        ready.wait(60)
        deadline = time.monotonic() + SECONDS
        try:
            while time.monotonic() < deadline and len(history.ops) < MAX_OPS:
                key, level = rng.choice(KEYS), rng.choice(LEVELS)
                if not reads or rng.random() < 0.5:
                    put = lambda k, v, level=level: cluster.put(k, v, consistency=level)
                    history.write(put, key, history.value(), level)
                else:
                    history.read(
                        lambda k, level=level: cluster.get(k, consistency=level), key, level
                    )
        finally:
            stores = [node.store for node in cluster.nodes]
            cluster.close()
            for store in stores:
                store.close()
    with open(out, "w") as f:  # as tests/support/fault_clients.py writes them
        for op in history.ops:
            row = asdict(op)
            row["complete"] = None if math.isinf(op.complete) else op.complete
            f.write(json.dumps(row) + "\n")


@pytest.mark.parametrize("driver", ["sync", "async"])
def test_a_slow_client_behind_in_time_is_not_shut_out_of_a_hot_key(
    driver, start_redis, prefix, tmp_path, spawn
):
    servers = start_redis(3)
    ready = spawn.Barrier(len(OFFSETS_MS) + 1)
    with FaultProxy() as proxy:
        links = [[proxy.link("127.0.0.1", s.port) for s in servers] for _ in OFFSETS_MS]
        for link in links[SLOW]:
            link.delay(up=0.05, down=0.05, jitter=0.01)
        procs = [
            spawn.Process(
                target=client,
                args=(
                    c + 1,
                    [link.port for link in links[c]],
                    prefix,
                    offset,
                    c != SLOW,
                    ready,
                    str(tmp_path / f"client{c + 1}.jsonl"),
                    driver,
                ),
            )
            for c, offset in enumerate(OFFSETS_MS)
        ]
        for p in procs:
            p.start()
        try:
            ready.wait(60)
        finally:
            for p in procs:
                p.join(90)
            for p in procs:
                if p.is_alive():
                    p.kill()
                    p.join(5)
    assert [p.exitcode for p in procs] == [0] * len(procs)

    ops = []
    for c in range(len(OFFSETS_MS)):
        ops += fault_clients.load_ops(tmp_path / f"client{c + 1}.jsonl")
    fresh = cluster_of([s.port for s in servers], prefix, 99, 0, "sync")
    try:
        fresh.repair()
        final = {key: fresh.get(key, consistency="all") for key in KEYS}
    finally:
        stores = [node.store for node in fresh.nodes]
        fresh.close()
        for store in stores:
            store.close()

    report = check(ops, final)
    slow = [op for op in ops if op.process == SLOW + 1]
    failed: dict[str, int] = {}
    for op in ops:
        if op.outcome == "unknown":
            kind = op.error.split("(", 1)[0]
            failed[kind] = failed.get(kind, 0) + 1
    print(
        f"{driver} driver: {report.summary()}; slow client: {len(slow)} writes, "
        f"{sum(op.outcome == 'ok' for op in slow)} acknowledged; "
        f"writes not acknowledged, by error: {failed}"
    )
    assert sum(op.outcome == "ok" for op in slow) >= 10  # the slow client did write
    assert report.counts["writes_ok"] > 100 and report.counts["reads_ok"] > 100
    assert failed.get("ConflictError", 0) == 0
    assert report.lost == [] and report.stale == [] and report.phantom == []
