"""Client processes for the network-fault schedules (tests/redis/test_network_faults.py).

``run_client`` is the body of one client process: its own ``Cluster`` over its own proxy
links (one per server), a hybrid clock offset from the machine's by `offset_ms`, and a
seeded mix of writes (unique values) and reads over a few hot keys at the levels given
(each operation picks one), each recorded in a ``History``.  `offset_ms` is an int, or a
shared ``multiprocessing.Value`` the parent changes during the run: the client's clock then
steps forward or back mid-run, through cvstore's clock hook (``HybridClock(wall_ms=...)``),
never the machine's clock.  It stops when the parent sets `stop` (if given), after `seconds`
or after `max_ops`, waits for the parent to heal the network, hands over its hints and
writes its history as JSON lines.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tests.support.history import AsyncHistory, History, Op

TASKS = 4  # concurrent callers in an asyncio client


def _clock(process: int, offset_ms: Any):
    from cvstore.versions import HybridClock

    if isinstance(offset_ms, int):
        return HybridClock(writer_id=process, wall_ms=lambda: int(time.time() * 1000) + offset_ms)
    shared = offset_ms  # a multiprocessing.Value("i"), stepped by the parent
    return HybridClock(writer_id=process, wall_ms=lambda: int(time.time() * 1000) + shared.value)


def make_cluster(ports: list[int], prefix: str, *, process: int, offset_ms: Any, timeout: float):
    from cvstore import Cluster, Node, RedisStore

    clock = _clock(process, offset_ms)
    nodes = [
        Node(
            f"r{i + 1}",
            store=RedisStore(f"redis://127.0.0.1:{port}/0", prefix=prefix, timeout=timeout),
        )
        for i, port in enumerate(ports)
    ]
    # The layout is each client's own (not shared on the nodes): this schedule is about
    # data operations; membership under faults is another schedule (issue 21).
    # A healed link is found again within half a second (the default backoff goes to 5 s).
    return Cluster(nodes, replication_factor=3, clock=clock, shared=False, max_probe_interval=0.5)


def run_client(
    process: int,
    ports: list[int],
    prefix: str,
    keys: list[str],
    levels: list[str],
    offset_ms: Any,  # an int, or a multiprocessing.Value("i") the parent steps
    seconds: float,
    max_ops: int,
    seed: int,
    ready: Any,  # a multiprocessing Barrier: every client and the parent, before the faults
    healed: Any,  # a multiprocessing Event set by the parent once every link is healed
    out: str,
    driver: str = "sync",
    stop: Any = None,  # a multiprocessing Event set by the parent after its last fault cycle
    progress: Any = None,  # a multiprocessing RawValue("i"): operations done so far
) -> None:
    if driver == "async":
        import asyncio

        args = (process, ports, prefix, keys, levels, offset_ms, seconds, max_ops, seed)
        asyncio.run(_run_async(*args, ready, healed, out, stop, progress))
        return
    rng = random.Random(seed * 1000 + process)
    cluster = make_cluster(ports, prefix, process=process, offset_ms=offset_ms, timeout=0.25)
    history = History(process)
    ready.wait(60)
    deadline = time.monotonic() + seconds
    try:
        while (
            time.monotonic() < deadline
            and len(history.ops) < max_ops
            and not (stop is not None and stop.is_set())
        ):
            operate(history, cluster, rng, keys, levels)
            if progress is not None:
                progress.value = len(history.ops)
        healed.wait(60)
        for _ in range(3):
            try:
                cluster.deliver_hints()
                break
            except Exception:  # noqa: BLE001 - the parent's repair() is the path after this
                time.sleep(0.2)
    finally:
        stores = [node.store for node in cluster.nodes]
        cluster.close()
        for store in stores:
            store.close()
        _save(history, out)


async def _run_async(
    process: int,
    ports: list[int],
    prefix: str,
    keys: list[str],
    levels: list[str],
    offset_ms: int,
    seconds: float,
    max_ops: int,
    seed: int,
    ready: Any,
    healed: Any,
    out: str,
    stop: Any = None,
    progress: Any = None,
) -> None:
    """``run_client`` with an ``AsyncCluster`` and TASKS concurrent callers."""
    import asyncio

    from cvstore import AsyncCluster, AsyncRedisStore, Node

    nodes = [
        Node(
            f"r{i + 1}",
            store=AsyncRedisStore(f"redis://127.0.0.1:{port}/0", prefix=prefix, timeout=0.25),
        )
        for i, port in enumerate(ports)
    ]
    cluster = AsyncCluster(
        nodes,
        replication_factor=3,
        clock=_clock(process, offset_ms),
        shared=False,
        max_probe_interval=0.5,
    )
    history = AsyncHistory(process)
    await cluster.open()

    async def caller(task: int) -> None:
        rng = random.Random((seed * 1000 + process) * 100 + task)
        while (
            time.monotonic() < deadline
            and len(history.ops) < max_ops
            and not (stop is not None and stop.is_set())
        ):
            await aoperate(history, cluster, rng, keys, levels)
            if progress is not None:
                progress.value = len(history.ops)
            # Give the loop a turn, as a caller doing any other work would: AsyncCluster
            # refuses a call on suspected nodes without awaiting anything, so a caller that
            # only retries never lets the prober run and the nodes stay down (issue 21 report).
            await asyncio.sleep(0)

    try:
        await asyncio.to_thread(ready.wait, 60)
        deadline = time.monotonic() + seconds
        await asyncio.gather(*(caller(t) for t in range(TASKS)))
        await asyncio.to_thread(healed.wait, 60)
        for _ in range(3):
            try:
                await cluster.deliver_hints()
                break
            except Exception:  # noqa: BLE001 - the parent's repair() is the path after this
                await asyncio.sleep(0.2)
    finally:
        await cluster.close()
        for node in nodes:
            await node.store.close()
        _save(history, out)


def operate(history: History, cluster: Any, rng: random.Random, keys, levels) -> None:
    """One recorded operation of the workload: a write of a unique value, or a read, half
    each, on a random key at a random level."""
    key, level = rng.choice(keys), rng.choice(levels)
    if rng.random() < 0.5:
        put = lambda k, v: cluster.put(k, v, consistency=level)
        history.write(put, key, history.value(), level)
    else:
        history.read(lambda k: cluster.get(k, consistency=level), key, level)


async def aoperate(history: AsyncHistory, cluster: Any, rng: random.Random, keys, levels) -> None:
    """``operate`` with an ``AsyncCluster``."""
    key, level = rng.choice(keys), rng.choice(levels)
    if rng.random() < 0.5:
        put = lambda k, v: cluster.put(k, v, consistency=level)
        await history.awrite(put, key, history.value(), level)
    else:
        await history.aread(lambda k: cluster.get(k, consistency=level), key, level)


def final_state(fresh: Any, keys) -> tuple[dict[str, Any], dict[str, list[Any]]]:
    """After the faults: hints handed over, ``repair()``, then every key read at ``all``
    and each replica's own copy of it (for the checker)."""
    fresh.deliver_hints()
    fresh.repair()
    final = {key: fresh.get(key, consistency="all") for key in keys}
    replicas = {}
    for key in keys:
        held = []
        for node in fresh.get_nodes_for_key(key):
            record = node.store.get(key.encode())
            held.append(None if record is None else record.value)
        replicas[key] = held
    return final, replicas


def _save(history: History, out: str) -> None:
    with open(out, "w") as f:
        for op in history.ops:
            row = asdict(op)
            row["complete"] = None if math.isinf(op.complete) else op.complete
            f.write(json.dumps(row) + "\n")


def load_ops(path: Path) -> list[Op]:
    ops = []
    for line in path.read_text().splitlines():
        row = json.loads(line)
        if row["complete"] is None:
            row["complete"] = math.inf
        ops.append(Op(**row))
    return ops
