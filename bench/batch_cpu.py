"""CPU per record of 1,000-key batches over three local Redis servers: cvstore against raw.

    python bench/batch_cpu.py --rounds 7 --json bench/results/FILE.json

Where a batch's time goes, on each side, with a figure the shared machine's
load moves far less than a wall-clock time: the client's CPU (this process,
``time.process_time``) and the three servers' (``INFO cpu``, user + system),
per record, for the four batch operations of ``bench_redis_cluster.py`` and
``bench_redis_async.py``: ``put_many`` of 1,000 keys at RF 3 quorum against
``MSET`` on the 3 servers, ``get_many`` at quorum against ``MGET`` from 2, with
the sync ``Cluster`` (raw: redis-py) and ``AsyncCluster`` (raw: redis.asyncio,
gathered).  Each round runs every case once (``--batches`` calls each), in
turn, so a change of load hits all of them; printed are the medians over the
rounds and cvstore's CPU over raw's, client and servers apart.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.redis_data import N_KEYS, Slices, make_data

BATCH = 1_000


def server_cpu(clients: list[Any]) -> float:
    total = 0.0
    for c in clients:
        info = c.info("cpu")
        total += float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batches", type=int, default=40, help="calls per case per round")
    parser.add_argument("--only", default="", help="comma-separated case names to run")
    parser.add_argument("--keys", type=int, default=N_KEYS, help="keys stored and walked through")
    parser.add_argument("--json", help="write the per-round figures here")
    args = parser.parse_args()

    import redis
    import redis.asyncio

    from cvstore import AsyncCluster, AsyncRedisStore, Cluster, Node, RedisStore
    from tests.support.redis_servers import start_servers, stop_servers

    servers = start_servers(3, Path(tempfile.mkdtemp(prefix="batch-cpu-")))
    loop = asyncio.new_event_loop()
    try:
        keys, values = make_data()
        keys, values = data = keys[: args.keys], values[: args.keys]
        raws = [redis.Redis.from_url(s.url(), socket_timeout=10) for s in servers]
        araws = [redis.asyncio.Redis.from_url(s.url(), socket_timeout=10) for s in servers]
        cluster = Cluster(
            [
                Node(f"r{i}", store=RedisStore(s.url(), prefix="b:", timeout=10))
                for i, s in enumerate(servers)
            ],
            replication_factor=3,
        )

        async def amake() -> Any:
            nodes = [
                Node(f"r{i}", store=AsyncRedisStore(s.url(), prefix="a:", timeout=10))
                for i, s in enumerate(servers)
            ]
            return await AsyncCluster(nodes, replication_factor=3).open()

        acluster = loop.run_until_complete(amake())
        for i in range(0, len(keys), BATCH):
            mapping = dict(zip(keys[i : i + BATCH], values[i : i + BATCH]))
            for c in raws:
                c.mset(mapping)
            cluster.put_many(mapping)
            loop.run_until_complete(acluster.put_many(mapping))

        def sync_raw_write(kv: Any) -> None:
            mapping = dict(zip(*kv))
            for c in raws:
                c.mset(mapping)

        def sync_cv_write(kv: Any) -> None:
            cluster.put_many(dict(zip(*kv)), consistency="quorum")

        def sync_raw_read(kv: Any) -> None:
            for c in raws[:2]:
                assert None not in c.mget(kv[0])

        def sync_cv_read(kv: Any) -> None:
            assert len(cluster.get_many(kv[0], consistency="quorum")) == len(kv[0])

        async def _araw_write(kv: Any) -> None:
            mapping = dict(zip(*kv))
            await asyncio.gather(*(c.mset(mapping) for c in araws))

        async def _araw_read(kv: Any) -> None:
            for part in await asyncio.gather(*(c.mget(kv[0]) for c in araws[:2])):
                assert None not in part

        def async_raw_write(kv: Any) -> None:
            loop.run_until_complete(_araw_write(kv))

        def async_cv_write(kv: Any) -> None:
            loop.run_until_complete(acluster.put_many(dict(zip(*kv)), consistency="quorum"))

        def async_raw_read(kv: Any) -> None:
            loop.run_until_complete(_araw_read(kv))

        def async_cv_read(kv: Any) -> None:
            got = loop.run_until_complete(acluster.get_many(kv[0], consistency="quorum"))
            assert len(got) == len(kv[0])

        cases = {
            "sync-write-raw": (sync_raw_write, 3),
            "sync-write-cvstore": (sync_cv_write, 3),
            "sync-read-raw": (sync_raw_read, 2),
            "sync-read-cvstore": (sync_cv_read, 2),
            "async-write-raw": (async_raw_write, 3),
            "async-write-cvstore": (async_cv_write, 3),
            "async-read-raw": (async_raw_read, 2),
            "async-read-cvstore": (async_cv_read, 2),
        }
        if args.only:
            wanted = args.only.split(",")
            cases = {k: v for k, v in cases.items() if any(k.startswith(w) for w in wanted)}
        figures: dict[str, list[dict[str, float]]] = {name: [] for name in cases}
        slices = Slices(data, BATCH)
        for name, (fn, _) in cases.items():  # warm up
            fn(slices.next())
        for _ in range(args.rounds):
            for name, (fn, copies) in cases.items():
                batches = [slices.next() for _ in range(args.batches)]
                records = copies * BATCH * args.batches
                s0, c0, w0 = server_cpu(raws), time.process_time(), time.perf_counter()
                for kv in batches:
                    fn(kv)
                w1, c1, s1 = time.perf_counter(), time.process_time(), server_cpu(raws)
                figures[name].append(
                    {
                        "client_ns": (c1 - c0) / records * 1e9,
                        "server_ns": (s1 - s0) / records * 1e9,
                        "wall_ns": (w1 - w0) / records * 1e9,
                    }
                )
        print(f"ns per record, medians of {args.rounds} rounds of {args.batches} batches")
        print(f"{'case':22} {'client':>8} {'servers':>8} {'wall':>8}")
        med: dict[str, dict[str, float]] = {}
        for name, rows in figures.items():
            med[name] = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
            m = med[name]
            print(f"{name:22} {m['client_ns']:8.0f} {m['server_ns']:8.0f} {m['wall_ns']:8.0f}")
        for name, rows in figures.items():
            if name.endswith("-cvstore") and name.replace("cvstore", "raw") in figures:
                raw = figures[name.replace("cvstore", "raw")]
                ratios = {
                    k: statistics.median(r[k] / q[k] for r, q in zip(rows, raw))
                    for k in ("client_ns", "server_ns", "wall_ns")
                }
                print(
                    f"{name:22} cvstore/raw per round (median): client {ratios['client_ns']:.2f}, "
                    f"servers {ratios['server_ns']:.2f}, wall {ratios['wall_ns']:.2f} "
                    f"(speed {1 / ratios['wall_ns']:.0%} of raw)"
                )
        if args.json:
            version = raws[0].info("server")["redis_version"]
            Path(args.json).write_text(
                json.dumps(
                    {
                        "command": " ".join(sys.argv),
                        "redis_server": version,
                        "redis_py": redis.__version__,
                        "rounds": figures,
                        "medians": med,
                    },
                    indent=1,
                )
                + "\n"
            )
        loop.run_until_complete(acluster.close())
        cluster.close()
    finally:
        loop.close()
        stop_servers(servers)


if __name__ == "__main__":
    main()
