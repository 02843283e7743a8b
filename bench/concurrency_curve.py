"""Throughput by number of callers, cvstore against raw redis-py, with CPU per call on each side.

    python bench/concurrency_curve.py [--rounds 3] [--ops 3000] [--json FILE] [--plot FILE.png]

Three redis-servers are started on 127.0.0.1 (the tests' helper) and stopped
at the end.  Every call is a quorum call at RF 3 over the three:

- ``put`` of a 100-byte value: cvstore sends its versioned script call to the
  3 replicas; raw sends a ``SET`` to each of the 3 servers.
- ``get`` of one of ``--ops`` keys written before timing: cvstore asks 2
  replicas (a quorum of 3, ``core/levels.py``); raw sends a ``GET`` to 2 of
  the 3 servers (a different pair for consecutive keys).

Callers, each doing its share of ``--ops`` calls one after another:

- ``threads``: 1, 10, 100, 1,000 threads on one sync ``Cluster`` / on one
  set of raw ``redis.Redis`` clients (which send a key's requests one after
  another: redis-py has no way to overlap them without threads).
- ``tasks``: 1, 10, 100, 1,000 tasks on one ``AsyncCluster`` / on raw
  ``redis.asyncio`` clients that send a key's requests at once
  (``asyncio.gather``), both on one event loop.
- ``processes``: 1, 2, 4, 8 processes, each one caller with its own
  ``Cluster`` / raw clients (started before timing and kept for every round).

Each thread or task point runs on new clients whose pools first open as many
connections to each server as the point has callers (untimed), then warmed by
as many callers doing three gets each: so the pools hold the connections the
point needs.  A caller holds at most one connection a server at a time, but
for an ``AsyncCluster`` put, which returns after two acknowledgements while
its third write may still hold one; each point records the connections opened
while it was timed.  The gets alone did not open enough: 1,000 threads doing
them opened 40-60 connections, and the timed calls the rest, up to 1,800 in
one point.  A point is bounded in count (``--ops`` calls, at least 3 a
caller) and in time (callers stop after ``--seconds``; the calls done are
what counts).
Pools are larger than the most callers (``max_connections`` 1,100 a store or
client), timeouts generous (10 s), so neither is the bound.

Beside each point: the client's CPU per call (``time.process_time`` of this
process for threads and tasks; the sum of each worker process's
``getrusage`` for processes) and the servers' (each redis-server's ``INFO
cpu`` ``used_cpu_user + used_cpu_sys`` before and after, summed, per call).
Every round runs every point of both sides, back to back (the order of the
two sides alternates between rounds), so a ratio cvstore / raw compares two
runs a few seconds apart on this shared machine; the JSON keeps each round's
points and their medians.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import resource
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: tests.support and bench are importable
    sys.path.insert(0, str(ROOT))

CALLERS = (1, 10, 100, 1000)
PROCESSES = (1, 2, 4, 8)
OPS = 3_000  # calls a point, split evenly among its callers
MIN_PER_CALLER = 3
POINT_SECONDS = 30.0  # callers stop after this; a point is then cut short (and says so)
TIMEOUT = 10.0  # store / socket timeout, seconds: generous, the machine is shared
MAX_CONNECTIONS = 1_100  # a store's (or raw client's) pool: more than the most callers
POOL_TIMEOUT = 60.0
PREFIX = "bench-curve:"  # cvstore's keys on the servers
RAW = b"bench-raw:"  # raw redis-py's keys on the same servers
VALUE_BYTES = 100
SIDES = ("cvstore", "raw")
OPS_NAMES = ("put", "get")


def key_name(i: int, op: str = "get") -> str:
    """Key `i` of `op`'s points: puts write other keys than the ones gets read."""
    return f"{'k' if op == 'get' else 'w'}:{i:06d}"


def value_for(tag: str, i: int) -> bytes:
    """The value a point with `tag` writes to key `i`: distinct per point, 100 bytes."""
    head = f"{tag}:{i}:".encode()
    return head + b"x" * (VALUE_BYTES - len(head))


def plans(callers: int, ops: int) -> list[list[int]]:
    """Each caller's key indexes: `ops` indexes dealt out in turn."""
    return [list(range(c, ops, callers)) for c in range(callers)]


def point_ops(callers: int, ops: int) -> int:
    return max(ops, MIN_PER_CALLER * callers)


# ------------------------------------------------------------------ clients


def sync_cluster(urls: list[str]) -> Any:
    from cvstore import Cluster, Node, RedisStore

    nodes = [
        Node(
            f"r{i + 1}",
            store=RedisStore(
                url,
                prefix=PREFIX,
                timeout=TIMEOUT,
                max_connections=MAX_CONNECTIONS,
                pool_timeout=POOL_TIMEOUT,
            ),
        )
        for i, url in enumerate(urls)
    ]
    return Cluster(nodes, replication_factor=3)


def pools_of(side: str, client: Any) -> list[Any]:
    """The redis-py connection pools a point's client sends through, one a server."""
    if side == "cvstore":
        return [node.store.client.connection_pool for node in client.nodes]
    return [c.connection_pool for c in client]


def pool_connections(pools: list[Any]) -> int:
    """Connections `pools` have made and hold, free or lent out (redis-py's own lists)."""
    return sum(len(pool._available_connections) + len(pool._in_use_connections) for pool in pools)


def open_connections(pools: list[Any], n: int) -> None:
    """Open `n` connections in each sync pool and give them back: the pool keeps them."""
    for pool in pools:
        held = [pool.get_connection() for _ in range(n)]
        for conn in held:
            pool.release(conn)


async def aopen_connections(pools: list[Any], n: int) -> None:
    """``open_connections`` for asyncio pools."""
    for pool in pools:
        held = [await pool.get_connection() for _ in range(n)]
        for conn in held:
            await pool.release(conn)


def close_sync_cluster(cluster: Any) -> None:
    stores = [node.store for node in cluster.nodes] if hasattr(cluster, "nodes") else []
    cluster.close()
    for store in stores:
        store.close()


def raw_clients(urls: list[str]) -> list[Any]:
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return [
        redis.Redis.from_url(
            url,
            socket_timeout=TIMEOUT,
            socket_connect_timeout=TIMEOUT,
            max_connections=MAX_CONNECTIONS,
            retry=Retry(NoBackoff(), 0),
        )
        for url in urls
    ]


async def async_cluster(urls: list[str]) -> Any:
    from cvstore import AsyncCluster, AsyncRedisStore, Node

    nodes = [
        Node(
            f"r{i + 1}",
            store=AsyncRedisStore(
                url,
                prefix=PREFIX,
                timeout=TIMEOUT,
                max_connections=MAX_CONNECTIONS,
                pool_timeout=POOL_TIMEOUT,
            ),
        )
        for i, url in enumerate(urls)
    ]
    return await AsyncCluster(nodes, replication_factor=3).open()


def raw_async_clients(urls: list[str]) -> list[Any]:
    from redis import asyncio as aioredis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    return [
        aioredis.Redis.from_url(
            url,
            socket_timeout=TIMEOUT,
            socket_connect_timeout=TIMEOUT,
            max_connections=MAX_CONNECTIONS,
            retry=Retry(NoBackoff(), 0),
        )
        for url in urls
    ]


# ------------------------------------------------------- one caller's calls
# Each returns (calls done, values read that were not the expected ones).


def sync_calls(side: str, op: str, client: Any, keys: list[int], tag: str, deadline: float) -> Any:
    done = wrong = 0
    now = time.monotonic
    if side == "cvstore":
        if op == "put":
            for i in keys:
                client.put(key_name(i, "put"), value_for(tag, i))
                done += 1
                if now() > deadline:
                    break
        else:
            for i in keys:
                if client.get(key_name(i)) != value_for(tag, i):
                    wrong += 1
                done += 1
                if now() > deadline:
                    break
    else:
        n = len(client)
        if op == "put":
            for i in keys:
                rkey = RAW + key_name(i, "put").encode()
                value = value_for(tag, i)
                for c in client:
                    c.set(rkey, value)
                done += 1
                if now() > deadline:
                    break
        else:
            for i in keys:
                rkey = RAW + key_name(i).encode()
                expected = value_for(tag, i)
                for c in (client[i % n], client[(i + 1) % n]):
                    if c.get(rkey) != expected:
                        wrong += 1
                done += 1
                if now() > deadline:
                    break
    return done, wrong


async def async_calls(
    side: str, op: str, client: Any, keys: list[int], tag: str, deadline: float
) -> Any:
    done = wrong = 0
    now = time.monotonic
    if side == "cvstore":
        if op == "put":
            for i in keys:
                await client.put(key_name(i, "put"), value_for(tag, i))
                done += 1
                if now() > deadline:
                    break
        else:
            for i in keys:
                if await client.get(key_name(i)) != value_for(tag, i):
                    wrong += 1
                done += 1
                if now() > deadline:
                    break
    else:
        n = len(client)
        if op == "put":
            for i in keys:
                rkey = RAW + key_name(i, "put").encode()
                value = value_for(tag, i)
                await asyncio.gather(*(c.set(rkey, value) for c in client))
                done += 1
                if now() > deadline:
                    break
        else:
            for i in keys:
                rkey = RAW + key_name(i).encode()
                expected = value_for(tag, i)
                got = await asyncio.gather(client[i % n].get(rkey), client[(i + 1) % n].get(rkey))
                wrong += sum(v != expected for v in got)
                done += 1
                if now() > deadline:
                    break
    return done, wrong


# ------------------------------------------------------------ server CPU


class ServerCPU:
    """Each redis-server's CPU seconds so far (``INFO cpu``: user + sys), summed."""

    def __init__(self, urls: list[str]) -> None:
        self.clients = raw_clients(urls)

    def seconds(self) -> float:
        total = 0.0
        for c in self.clients:
            info = c.info("cpu")
            total += float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
        return total

    def close(self) -> None:
        for c in self.clients:
            c.close()


def _result(
    calls: int, planned: int, wrong: int, wall: float, client_cpu: float, server_cpu: float
):
    return {
        "calls": calls,
        "planned": planned,
        "cut_short": calls < planned,
        "wrong_reads": wrong,
        "seconds": wall,
        "ops_per_s": calls / wall if wall > 0 else 0.0,
        "client_cpu_us_per_call": client_cpu / calls * 1e6 if calls else None,
        "server_cpu_us_per_call": server_cpu / calls * 1e6 if calls else None,
        "cores_busy": (client_cpu + server_cpu) / wall if wall > 0 else None,
    }


# ------------------------------------------------------------ the points


def thread_point(side, op, client, callers, ops, tag, servers_cpu, seconds=POINT_SECONDS):
    """`callers` threads on one client (started and waiting before the clock starts)."""
    ops = point_ops(callers, ops)
    go = threading.Event()
    results: list[Any] = []
    errors: list[BaseException] = []
    deadline = [0.0]

    def worker(keys: list[int]) -> None:
        go.wait()
        try:
            results.append(sync_calls(side, op, client, keys, tag, deadline[0]))
        except BaseException as exc:  # noqa: BLE001 - raised by the point below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(keys,)) for keys in plans(callers, ops)]
    for thread in threads:
        thread.start()
    server0 = servers_cpu.seconds()
    cpu0 = time.process_time()
    t0 = time.monotonic()
    deadline[0] = t0 + seconds
    go.set()
    for thread in threads:
        thread.join()
    wall = time.monotonic() - t0
    cpu = time.process_time() - cpu0
    server = servers_cpu.seconds() - server0
    if errors:
        raise errors[0]
    return _result(sum(r[0] for r in results), ops, sum(r[1] for r in results), wall, cpu, server)


def task_point(side, op, client, callers, ops, tag, servers_cpu, loop, seconds=POINT_SECONDS):
    """`callers` tasks on one client, on one event loop."""
    ops = point_ops(callers, ops)

    async def everyone(deadline: float) -> list[Any]:
        return await asyncio.gather(
            *(async_calls(side, op, client, keys, tag, deadline) for keys in plans(callers, ops))
        )

    server0 = servers_cpu.seconds()
    cpu0 = time.process_time()
    t0 = time.monotonic()
    results = loop.run_until_complete(everyone(t0 + seconds))
    wall = time.monotonic() - t0
    cpu = time.process_time() - cpu0
    server = servers_cpu.seconds() - server0
    return _result(sum(r[0] for r in results), ops, sum(r[1] for r in results), wall, cpu, server)


def _worker_main(index: int, urls: list[str], conn: Any, barriers: dict[int, Any]) -> None:
    """A worker process: both sides' clients, made once; runs the points it is sent."""
    sys.path.insert(0, str(ROOT))
    clients = {"cvstore": sync_cluster(urls), "raw": raw_clients(urls)}
    # a connection to every server on both sides before the first timed call
    sync_calls("cvstore", "get", clients["cvstore"], [0], "warm", time.monotonic() + 60)
    sync_calls("raw", "get", clients["raw"], [0], "warm", time.monotonic() + 60)
    conn.send("ready")
    try:
        while True:
            msg = conn.recv()
            if msg is None:
                break
            side, op, keys, tag, processes, seconds = msg
            barriers[processes].wait()
            usage0 = resource.getrusage(resource.RUSAGE_SELF)
            t0 = time.monotonic()
            try:
                done, wrong = sync_calls(side, op, clients[side], keys, tag, t0 + seconds)
                error = None
            except Exception as exc:  # noqa: BLE001 - sent to the parent, which raises it
                done, wrong, error = 0, 0, repr(exc)
            t1 = time.monotonic()
            usage1 = resource.getrusage(resource.RUSAGE_SELF)
            cpu = (usage1.ru_utime - usage0.ru_utime) + (usage1.ru_stime - usage0.ru_stime)
            suspected = tuple(clients["cvstore"].suspected)
            conn.send((done, wrong, t0, t1, cpu, error, suspected))
    finally:
        close_sync_cluster(clients["cvstore"])
        for c in clients["raw"]:
            c.close()


class Workers:
    """`count` worker processes (spawned: no client state is inherited)."""

    def __init__(self, urls: list[str], count: int, sizes: tuple[int, ...]) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.barriers = {n: ctx.Barrier(n + 1) for n in sizes}
        self.conns = []
        self.procs = []
        for i in range(count):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker_main, args=(i, urls, child, self.barriers))
            proc.start()
            self.conns.append(parent)
            self.procs.append(proc)
        for conn in self.conns:
            if conn.recv() != "ready":
                raise RuntimeError("a worker process did not start")

    def point(self, side, op, processes, ops, tag, servers_cpu, seconds=POINT_SECONDS):
        ops = point_ops(processes, ops)
        for conn, keys in zip(self.conns, plans(processes, ops)):
            conn.send((side, op, keys, tag, processes, seconds))
        server0 = servers_cpu.seconds()
        self.barriers[processes].wait()  # every worker ready: all start together
        replies = [conn.recv() for conn in self.conns[:processes]]
        server = servers_cpu.seconds() - server0
        for reply in replies:
            if reply[5] is not None:
                raise RuntimeError(f"worker failed: {reply[5]}")
        wall = max(r[3] for r in replies) - min(r[2] for r in replies)
        result = _result(
            sum(r[0] for r in replies),
            ops,
            sum(r[1] for r in replies),
            wall,
            sum(r[4] for r in replies),
            server,
        )
        result["suspected"] = sorted({name for r in replies for name in r[6]})
        return result

    def close(self) -> None:
        for conn in self.conns:
            conn.send(None)
        for proc in self.procs:
            proc.join(30)
            if proc.is_alive():
                proc.kill()
                proc.join()


# ------------------------------------------------------------ a whole run


class Bench:
    """Three servers' worth of clients: the worker processes, and fresh clients for each point.

    A thread or task point gets new clients of its side whose pools open as many
    connections as it has callers, then warmed untimed by as many callers doing
    three ``get``s each, as in a service sized for them (pools
    left at 1,000 connections by an earlier point slowed 100 asyncio tasks by
    a third, on both sides).  The worker processes keep their clients (one
    connection a server each) for the whole run.
    """

    def __init__(self, urls: list[str], ops: int, processes: tuple[int, ...] = PROCESSES) -> None:
        self.urls = urls
        self.ops = ops
        self.loop = asyncio.new_event_loop()
        self.sync = {"cvstore": sync_cluster(urls), "raw": raw_clients(urls)}  # preload, checks
        self.servers_cpu = ServerCPU(urls)
        self.suspected: set[str] = set()  # nodes any cvstore client suspected, over the run
        self.preload("preload")
        self.workers = Workers(urls, max(processes), processes) if processes else None

    def preload(self, tag: str) -> None:
        """Every key a get point reads, on both sides, with `tag`'s values."""
        n = point_ops(max(CALLERS), self.ops)
        self.sync["cvstore"].put_many({key_name(i): value_for(tag, i) for i in range(n)})
        mapping = {RAW + key_name(i).encode(): value_for(tag, i) for i in range(n)}
        for c in self.sync["raw"]:
            c.mset(mapping)
        self.read_tag = tag

    def _clients(self, mode: str, side: str) -> Any:
        if mode == "threads":
            return sync_cluster(self.urls) if side == "cvstore" else raw_clients(self.urls)
        if side == "cvstore":
            return self.loop.run_until_complete(async_cluster(self.urls))
        return raw_async_clients(self.urls)

    def _close(self, mode: str, side: str, client: Any) -> None:
        if mode == "threads":
            if side == "cvstore":
                close_sync_cluster(client)
            else:
                for c in client:
                    c.close()
        elif side == "cvstore":
            stores = [node.store for node in client.nodes]
            self.loop.run_until_complete(client.close())
            for store in stores:
                self.loop.run_until_complete(store.close())
        else:
            for c in client:
                self.loop.run_until_complete(c.aclose())

    def point(
        self, mode: str, side: str, op: str, callers: int, tag: str, seconds: float
    ) -> dict[str, Any]:
        """One measured point; `tag` names the values a put writes."""
        tag = tag if op == "put" else self.read_tag
        cpu = self.servers_cpu
        if mode == "processes":
            assert self.workers is not None
            result = self.workers.point(side, op, callers, self.ops, tag, cpu, seconds)
            self.suspected.update(result.pop("suspected"))
            return result
        client = self._clients(mode, side)
        pools = pools_of(side, client)
        try:
            if mode == "threads":
                open_connections(pools, callers)
                thread_point(side, "get", client, callers, callers, self.read_tag, cpu, seconds)
                warm = pool_connections(pools)
                result = thread_point(side, op, client, callers, self.ops, tag, cpu, seconds)
            else:
                args = (cpu, self.loop, seconds)
                self.loop.run_until_complete(aopen_connections(pools, callers))
                task_point(side, "get", client, callers, callers, self.read_tag, *args)
                warm = pool_connections(pools)
                result = task_point(side, op, client, callers, self.ops, tag, *args)
            result["warm_connections"] = warm
            result["opened_while_timed"] = pool_connections(pools) - warm
            if side == "cvstore":
                self.suspected.update(client.suspected)
        finally:
            self._close(mode, side, client)
        return result

    def close(self) -> None:
        if self.workers is not None:
            self.workers.close()
        close_sync_cluster(self.sync["cvstore"])
        for c in self.sync["raw"]:
            c.close()
        self.servers_cpu.close()
        self.loop.close()


def counts(mode: str) -> tuple[int, ...]:
    return PROCESSES if mode == "processes" else CALLERS


MODES = ("threads", "tasks", "processes")


def run(bench: Bench, rounds: int, seconds: float, log: Any = None) -> list[dict[str, Any]]:
    """`rounds` rounds; in each, every (mode, op, callers) point of both sides back to back."""
    points = []
    for r in range(rounds):
        load = os.getloadavg()
        for mode in MODES:
            for op in OPS_NAMES:
                for n in counts(mode):
                    sides = SIDES if r % 2 == 0 else SIDES[::-1]
                    for side in sides:
                        tag = f"r{r}-{mode}-{n}-{side}"
                        result = bench.point(mode, side, op, n, tag, seconds)
                        result.update(
                            round=r, mode=mode, op=op, callers=n, side=side, loadavg=list(load)
                        )
                        points.append(result)
                        if log:
                            log(
                                f"round {r} {mode:9} {op} {n:5} {side:7} "
                                f"{result['ops_per_s']:8.0f}/s client "
                                f"{result['client_cpu_us_per_call']:6.0f} µs server "
                                f"{result['server_cpu_us_per_call']:6.0f} µs"
                            )
    return points


def medians(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (mode, op, callers, side): medians over rounds; ratio to raw of the same round."""
    by: dict[tuple, dict[int, dict[str, Any]]] = {}
    for p in points:
        by.setdefault((p["mode"], p["op"], p["callers"], p["side"]), {})[p["round"]] = p
    out = []
    for (mode, op, n, side), per_round in by.items():
        raw = by[(mode, op, n, "raw")]
        ratios = [p["ops_per_s"] / raw[r]["ops_per_s"] for r, p in per_round.items() if r in raw]
        fields = ("ops_per_s", "client_cpu_us_per_call", "server_cpu_us_per_call", "cores_busy")
        row = {"mode": mode, "op": op, "callers": n, "side": side, "rounds": len(per_round)}
        for f in fields:
            row[f] = statistics.median(p[f] for p in per_round.values())
        row["ratio_to_raw"] = statistics.median(ratios)
        row["ratio_to_raw_range"] = [min(ratios), max(ratios)]
        row["cut_short"] = any(p["cut_short"] for p in per_round.values())
        out.append(row)
    return out


def machine() -> dict[str, Any]:
    from importlib import metadata

    import redis

    from tests.support.redis_servers import find_redis_server

    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    binary = find_redis_server()
    import subprocess

    server = subprocess.run(
        [str(binary), "--version"], check=True, capture_output=True, text=True
    ).stdout
    hiredis = None
    try:
        hiredis = metadata.version("hiredis")
    except metadata.PackageNotFoundError:
        pass
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "system": f"{platform.system()} {platform.machine()}",
        "python": platform.python_version(),
        "redis-py": redis.__version__,
        "hiredis": hiredis,
        "cvstore": metadata.version("cvstore"),
        "redis-server": server.split()[2].removeprefix("v=") if server else None,
    }


def plot(path: str, rows: list[dict[str, Any]], title: str) -> None:
    """Throughput against callers: one panel per (op, mode), cvstore and raw."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 6.5), layout="constrained")
    axes = fig.subplots(2, 3, squeeze=False)
    colors = {"cvstore": "#3b6ea8", "raw": "#e0893a"}
    labels = {
        ("threads", "cvstore"): "Cluster (threads)",
        ("threads", "raw"): "redis-py, requests in turn",
        ("tasks", "cvstore"): "AsyncCluster (tasks)",
        ("tasks", "raw"): "redis.asyncio, gathered",
        ("processes", "cvstore"): "Cluster, one a process",
        ("processes", "raw"): "redis-py, one a process",
    }
    for row_i, op in enumerate(OPS_NAMES):
        for col, mode in enumerate(MODES):
            ax = axes[row_i][col]
            for side in SIDES:
                pts = sorted(
                    (r["callers"], r["ops_per_s"])
                    for r in rows
                    if r["op"] == op and r["mode"] == mode and r["side"] == side
                )
                if pts:
                    xs, ys = zip(*pts)
                    ax.plot(xs, ys, marker="o", color=colors[side], label=labels[(mode, side)])
            ax.set_xscale("log")
            ax.set_xticks(list(counts(mode)), [str(n) for n in counts(mode)])
            ax.minorticks_off()
            ax.set_ylim(bottom=0)
            ax.set_xlabel("processes" if mode == "processes" else mode)
            ax.set_ylabel(f"{op} calls/s")
            ax.set_title(f"{op}, {mode}", fontsize=10)
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.savefig(path, dpi=100)


def _title(rounds: int, info: dict[str, Any]) -> str:
    return (
        f"quorum calls at RF 3 over three local redis-servers, median of {rounds} rounds; "
        f"{info['cores']}-core {info['cpu']} VM shared with the servers and other work"
    )


def markdown(rows: list[dict[str, Any]]) -> str:
    """The README's tables, one an operation: calls/s of both sides, their ratio, CPU per call."""
    by = {(r["mode"], r["op"], r["callers"], r["side"]): r for r in rows}
    unit = {"threads": ("thread", "threads"), "tasks": ("task", "tasks")}
    unit["processes"] = ("process", "processes")
    out = []
    for op in OPS_NAMES:
        out += [
            (
                f"| `{op}` callers | cvstore calls/s | raw calls/s | cvstore / raw "
                "| client CPU µs/call, cvstore / raw | servers' CPU µs/call, cvstore / raw |"
            ),
            "| --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        for mode in MODES:
            for n in counts(mode):
                if (mode, op, n, "cvstore") not in by:
                    continue
                c, r = by[(mode, op, n, "cvstore")], by[(mode, op, n, "raw")]
                lo, hi = c["ratio_to_raw_range"]
                out.append(
                    f"| {n:,} {unit[mode][n != 1]} | {c['ops_per_s']:,.0f} | {r['ops_per_s']:,.0f} "
                    f"| {c['ratio_to_raw']:.2f} ({lo:.2f}–{hi:.2f}) "
                    f"| {c['client_cpu_us_per_call']:.0f} / {r['client_cpu_us_per_call']:.0f} "
                    f"| {c['server_cpu_us_per_call']:.0f} / {r['server_cpu_us_per_call']:.0f} |"
                )
        out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ops", type=int, default=OPS, help="calls a point")
    parser.add_argument("--seconds", type=float, default=POINT_SECONDS, help="a point's limit")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--plot", help="write the figure here (PNG)")
    parser.add_argument(
        "--from-json", help="measure nothing: print the table and draw --plot from this file"
    )
    args = parser.parse_args(argv)
    if args.from_json:
        saved = json.loads(Path(args.from_json).read_text())
        print(markdown(saved["medians"]))
        if args.plot:
            plot(args.plot, saved["medians"], _title(saved["rounds"], saved["machine"]))
        return 0
    if args.rounds < 1 or args.ops < 1 or args.seconds <= 0:
        parser.error("--rounds, --ops and --seconds must be positive")

    import tempfile

    from tests.support import redis_servers

    with tempfile.TemporaryDirectory(prefix="bench-curve-") as tmp:
        servers = redis_servers.start_servers(3, Path(tmp))
        try:
            urls = [s.url() for s in servers]
            bench = Bench(urls, args.ops)
            try:
                started = time.time()
                load0 = os.getloadavg()
                points = run(bench, args.rounds, args.seconds, log=print)
                suspected = sorted(bench.suspected)
            finally:
                bench.close()
        finally:
            redis_servers.stop_servers(servers)
    rows = medians(points)
    print(markdown(rows))
    info = machine()
    result = {
        "command": "python bench/concurrency_curve.py " + " ".join(argv or sys.argv[1:]),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "machine": info,
        "loadavg_at_start": list(load0),
        "ops": args.ops,
        "rounds": args.rounds,
        "seconds_limit": args.seconds,
        "suspected": suspected,  # nodes any cvstore client suspected during the run
        "medians": rows,
        "points": points,
    }
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    if args.plot:
        plot(args.plot, rows, _title(args.rounds, info))
    wrong = sum(p["wrong_reads"] for p in points)
    if wrong:
        print(f"{wrong} reads returned a value other than the one written", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
