"""AsyncCluster single calls against raw redis.asyncio, in interleaved rounds, with CPU per call.

    python bench/async_single_calls.py [--rounds 15] [--calls 300] [--json FILE]

Three redis-servers are started on 127.0.0.1 (the tests' helper) and stopped
at the end.  Sides, each doing `calls` calls one after another on one event
loop, quorum at RF 3 over the three servers, 16-byte keys and 100-byte values
(one of 1,000 keys written before timing):

- ``put``: ``AsyncCluster.put`` (its script call to the 3 replicas, returns
  after 2) against raw ``SET`` on the 3 servers, gathered
  (``asyncio.gather``) and awaited one after another ("one by one");
- ``get``: ``AsyncCluster.get`` (2 replicas asked) against raw ``GET`` from 2
  of the servers, gathered and one by one.

Every round runs every side once, in an order that rotates between rounds,
so a ratio compares runs a fraction of a second apart on a shared machine
(``bench_redis_async.py`` runs each side's rounds back to back instead).
Per side and round: wall µs per call (``time.perf_counter``), this
process's CPU µs per call (``time.process_time``: the client's own work) and
the three servers' (``INFO cpu``, user + sys, summed).  The JSON keeps every round, the medians, and the median
(range) of each round's cvstore / raw ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: tests.support is importable
    sys.path.insert(0, str(ROOT))

KEYS = 1000
VALUE = b"v" * 100
TIMEOUT = 5.0
PREFIX = "bench-single:"
SIDES = {
    "put": ("cvstore", "raw SET x3 gathered", "raw SET x3 one by one"),
    "get": ("cvstore", "raw GET x2 gathered", "raw GET x2 one by one"),
}


async def servers_cpu(raws: list[Any]) -> float:
    """Seconds of CPU the servers have used (user + sys, summed; INFO cpu)."""
    total = 0.0
    for r in raws:
        info = await r.info("cpu")
        total += float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
    return total


async def measure(servers: list[Any], rounds: int, calls: int) -> dict[str, Any]:
    import redis.asyncio

    from cvstore import AsyncCluster, AsyncRedisStore, Node

    raws = [
        redis.asyncio.Redis.from_url(
            s.url(), socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT
        )
        for s in servers
    ]
    nodes = [
        Node(f"r{i + 1}", store=AsyncRedisStore(s.url(), prefix=PREFIX, timeout=TIMEOUT))
        for i, s in enumerate(servers)
    ]
    keys = [b"key:%012d" % i for i in range(KEYS)]
    cluster: Any = await AsyncCluster(nodes, replication_factor=3).open()
    for key in keys:
        await cluster.put(key, VALUE)
        await asyncio.gather(*(r.set(key, VALUE) for r in raws))

    async def cv_put(ks: list[bytes]) -> None:
        for k in ks:
            await cluster.put(k, VALUE, consistency="quorum")

    async def raw_put(ks: list[bytes]) -> None:
        for k in ks:
            await asyncio.gather(*(r.set(k, VALUE) for r in raws))

    async def raw_put_seq(ks: list[bytes]) -> None:
        for k in ks:
            for r in raws:
                await r.set(k, VALUE)

    async def cv_get(ks: list[bytes]) -> None:
        for k in ks:
            assert await cluster.get(k, consistency="quorum") == VALUE

    async def raw_get(ks: list[bytes]) -> None:
        for k in ks:
            assert all(await asyncio.gather(*(r.get(k) for r in raws[:2])))

    async def raw_get_seq(ks: list[bytes]) -> None:
        for k in ks:
            for r in raws[:2]:
                assert await r.get(k)

    runs = {
        "put": dict(zip(SIDES["put"], (cv_put, raw_put, raw_put_seq))),
        "get": dict(zip(SIDES["get"], (cv_get, raw_get, raw_get_seq))),
    }
    out: dict[str, Any] = {"redis_server": (await raws[0].info("server"))["redis_version"]}
    for op, sides in runs.items():
        names = list(sides)
        for target in sides.values():  # warm: connections open, scripts loaded
            await target(keys[:50])
        per_round = []
        for rnd in range(rounds):
            ks = [keys[(rnd * calls + i) % KEYS] for i in range(calls)]
            shift = rnd % len(names)
            row = {}
            for name in names[shift:] + names[:shift]:
                before = await servers_cpu(raws)
                wall, cpu = time.perf_counter(), time.process_time()
                await sides[name](ks)
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                row[name] = {
                    "wall_us": wall / calls * 1e6,
                    "cpu_us": cpu / calls * 1e6,
                    "servers_cpu_us": (await servers_cpu(raws) - before) / calls * 1e6,
                }
            per_round.append(row)
        medians = {
            name: {
                what: statistics.median(r[name][what] for r in per_round)
                for what in ("wall_us", "cpu_us", "servers_cpu_us")
            }
            for name in names
        }
        ratios = {}
        for name in names[1:]:
            for what in ("wall_us", "cpu_us"):
                each = [r["cvstore"][what] / r[name][what] for r in per_round]
                ratios[f"cvstore / {name}, {what}"] = {
                    "median": statistics.median(each),
                    "min": min(each),
                    "max": max(each),
                }
        out[op] = {"rounds": per_round, "medians": medians, "ratios": ratios}
    await cluster.close()
    for node in nodes:
        await node.store.close()
    for r in raws:
        await r.aclose()
    return out


def machine() -> dict[str, Any]:
    import os

    import hiredis
    import redis

    return {
        "python": platform.python_version(),
        "platform": f"{platform.system()} {platform.machine()}",
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "redis_py": redis.__version__,
        "hiredis": hiredis.__version__,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    from tests.support import redis_servers

    with tempfile.TemporaryDirectory() as tmp:
        servers = redis_servers.start_servers(3, Path(tmp))
        try:
            info = machine()
            result = asyncio.run(measure(servers, args.rounds, args.calls))
        finally:
            redis_servers.stop_servers(servers)
    info["redis_server"] = result.pop("redis_server")
    result["machine"] = info
    result["settings"] = {"rounds": args.rounds, "calls": args.calls, "keys": KEYS}
    for op in SIDES:
        print(op)
        for name, m in result[op]["medians"].items():
            print(
                f"  {name:24} wall {m['wall_us']:7.0f} µs  cpu {m['cpu_us']:7.0f} µs  "
                f"servers' cpu {m['servers_cpu_us']:7.0f} µs"
            )
        for name, r in result[op]["ratios"].items():
            print(f"  {name:45} {r['median']:.2f} ({r['min']:.2f}-{r['max']:.2f})")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
