"""Suspected nodes are probed in the background: a stopped server never holds up a caller.

The sync driver probes from a thread; the asyncio driver from a task, and
its event loop keeps its pace while a server is stopped (SIGSTOP).
"""

from __future__ import annotations

import threading
import time

import pytest

from tests.support.waiting import wait_until


@pytest.mark.slow
def test_no_call_waits_for_a_probe_of_a_stopped_server(start_redis, make_cluster):
    """A stopped (SIGSTOP) server is probed by the background thread, never in a caller's call."""
    timeout = 3.0
    servers = start_redis(3)
    cluster = make_cluster(servers, timeout=timeout, probe_interval=0.05, max_probe_interval=0.2)
    keys = [f"p{i}" for i in range(100)]
    cluster.put_many({k: "v" for k in keys})
    pinged_from: list[str] = []
    for node in cluster.nodes:
        ping = node.store.ping

        def recorded(ping=ping):
            pinged_from.append(threading.current_thread().name)
            return ping()

        node.store.ping = recorded
    servers[2].pause()
    slowest = 0.0
    try:
        cluster.put(keys[0], "first")  # meets the stopped server: waits out one timeout
        assert cluster.suspected == ("r3",)
        for i in range(1000):
            key = keys[i % len(keys)]
            started = time.perf_counter()
            if i % 2:
                cluster.put(key, f"v{i}")
            else:
                cluster.get(key)
            slowest = max(slowest, time.perf_counter() - started)
        assert cluster.suspected == ("r3",)  # still stopped, still probed
    finally:
        servers[2].resume()
    print(
        f"\nstopped server: slowest of 1,000 calls {slowest * 1000:.1f} ms, {len(pinged_from)} probes"
    )
    assert pinged_from and set(pinged_from) == {"cvstore-prober"}  # no probe ran in a call
    assert slowest < timeout / 2  # none waited out a probe's timeout (each probe takes 3 s)
    assert wait_until(lambda: cluster.suspected == ())  # the prober finds it back by itself


@pytest.mark.slow
def test_a_stopped_server_never_blocks_the_event_loop(start_redis, prefix):
    """AsyncCluster over three servers, one stopped: a ticker task keeps its interval."""
    import asyncio

    from cvstore import AsyncCluster, AsyncRedisStore, Node

    timeout = 2.0
    servers = start_redis(3)
    keys = [f"t{i}" for i in range(50)]

    async def main() -> tuple[list[float], int, tuple[str, ...]]:
        nodes = [
            Node(f"r{i + 1}", store=AsyncRedisStore(s.url(), prefix=prefix, timeout=timeout))
            for i, s in enumerate(servers)
        ]
        async with AsyncCluster(nodes, probe_interval=0.05, max_probe_interval=0.2) as cluster:
            await cluster.put_many({k: "v" for k in keys})
            loop = asyncio.get_running_loop()
            lags: list[float] = []
            done = asyncio.Event()

            async def ticker() -> None:
                interval = 0.01
                due = loop.time() + interval
                while not done.is_set():
                    await asyncio.sleep(interval)
                    now = loop.time()
                    lags.append(now - due)
                    due = now + interval

            ticking = asyncio.ensure_future(ticker())
            servers[2].pause()
            calls = 0
            try:
                started = loop.time()
                while loop.time() - started < 3 * timeout:  # bounded: a few store timeouts
                    key = keys[calls % len(keys)]
                    if calls % 2:
                        await cluster.put(key, f"v{calls}")
                    else:
                        await cluster.get(key)
                    calls += 1
                suspected = cluster.suspected
            finally:
                servers[2].resume()
                done.set()
                await ticking
            for node in nodes:
                await node.store.close()
            return lags, calls, suspected

    lags, calls, suspected = asyncio.run(main())
    print(
        f"\nstopped server, asyncio: {calls} calls, {len(lags)} ticks, worst lag {max(lags) * 1000:.1f} ms"
    )
    assert suspected == ("r3",) and calls > 100
    assert max(lags) < timeout / 4  # the loop kept running while requests to r3 waited
