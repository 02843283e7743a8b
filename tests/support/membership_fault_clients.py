"""Client processes for the membership-under-faults schedule (tests/redis/test_membership_faults.py).

Each client process joins one cluster whose layout lives on the nodes, through its own
proxy links: ``connect`` maps a node's name to this client's link to that server, so
every request of every client crosses a link the parent can delay, cut or stall, and
every request carries the client's layout epoch (fenced).  It writes unique values and
reads a few hot keys at the levels given, recording each operation in a ``History``,
until the parent heals the network (or `seconds`, or `max_ops`); then it hands over its
hints and saves its history (``fault_clients.load_ops`` reads it back).
"""

from __future__ import annotations

import random
import time
from typing import Any

from tests.support.fault_clients import TASKS, _clock, _save, aoperate, operate
from tests.support.history import AsyncHistory, History


def connector(ports: dict[str, int], timeout: float, asyncio: bool = False):
    """``connect(spec) -> store``: the node named ``spec.name`` through this client's link."""
    from cvstore import AsyncRedisStore, RedisStore

    kind = AsyncRedisStore if asyncio else RedisStore

    def connect(spec: Any) -> Any:
        return kind(f"redis://127.0.0.1:{ports[spec.name]}/0", prefix=spec.prefix, timeout=timeout)

    return connect


def join(ports: dict[str, int], seed: str, prefix: str, *, process: int, offset_ms: int,
         timeout: float, asyncio: bool = False, **options: Any) -> Any:  # fmt: skip
    """A client of the shared cluster (sync ``Cluster``, or an unopened ``AsyncCluster``)."""
    from cvstore import AsyncCluster, Cluster

    kind = AsyncCluster if asyncio else Cluster
    return kind.join(
        [f"redis://127.0.0.1:{ports[seed]}/0"],
        prefix=prefix,
        timeout=timeout,
        connect=connector(ports, timeout, asyncio),
        clock=_clock(process, offset_ms),
        max_probe_interval=0.5,
        **options,
    )


def run_client(
    process: int,
    ports: dict[str, int],
    seed_node: str,
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
    driver: str = "sync",
) -> None:
    if driver == "async":
        import asyncio

        asyncio.run(
            _run_async(process, ports, seed_node, prefix, keys, levels, offset_ms, seconds,
                       max_ops, seed, ready, healed, out)
        )  # fmt: skip
        return
    rng = random.Random(seed * 1000 + process)
    cluster = join(ports, seed_node, prefix, process=process, offset_ms=offset_ms, timeout=0.25)
    history = History(process)
    ready.wait(60)
    deadline = time.monotonic() + seconds
    try:
        while not healed.is_set() and time.monotonic() < deadline and len(history.ops) < max_ops:
            operate(history, cluster, rng, keys, levels)
        healed.wait(60)
        for _ in range(5):
            try:
                cluster.deliver_hints()
                break
            except Exception:  # noqa: BLE001 - the parent's repair() is the path after this
                time.sleep(0.3)
    finally:
        cluster.close()
        _save(history, out)


async def _run_async(
    process: int,
    ports: dict[str, int],
    seed_node: str,
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
) -> None:
    """``run_client`` with an ``AsyncCluster`` and TASKS concurrent callers."""
    import asyncio

    cluster = await join(
        ports, seed_node, prefix, process=process, offset_ms=offset_ms, timeout=0.25, asyncio=True
    )
    history = AsyncHistory(process)

    async def caller(task: int) -> None:
        rng = random.Random((seed * 1000 + process) * 100 + task)
        while not healed.is_set() and time.monotonic() < deadline and len(history.ops) < max_ops:
            await aoperate(history, cluster, rng, keys, levels)

    try:
        await asyncio.to_thread(ready.wait, 60)
        deadline = time.monotonic() + seconds
        await asyncio.gather(*(caller(t) for t in range(TASKS)))
        await asyncio.to_thread(healed.wait, 60)
        for _ in range(5):
            try:
                await cluster.deliver_hints()
                break
            except Exception:  # noqa: BLE001 - the parent's repair() is the path after this
                await asyncio.sleep(0.3)
    finally:
        await cluster.close()
        _save(history, out)
