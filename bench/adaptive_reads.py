"""Read latency by read policy with one slow replica: random, fastest and adaptive, same run.

    python -m bench.adaptive_reads [--reads 2000] [--rounds 4] [--out bench/results/DATE-adaptive-reads.json]

Three local redis-servers (started here with the Redis tests' helpers, stopped
afterwards), each reached through a link of the tests' TCP fault proxy
(tests/support/faultproxy.py), replication factor 3, 50 keys of 100 bytes.
Scenarios:

- ``healthy``: every link passes bytes at once (the baseline);
- ``delayed``: the first server's link holds every reply 20 ms;
- ``stalled``: the first server is stopped (SIGSTOP) 15 ms of every 50 ms
  (SIGCONT for the other 35), by its PID, from a thread of this script.

For each scenario, driver (``Cluster``, ``AsyncCluster``), policy and level
(``one``, ``quorum``): a new client, 300 reads of warm-up, then `--reads`
single-key reads one after another, each timed by the caller; p50, p99 and
mean in ms, and the share of the reads' MGETs the first server served
(INFO commandstats).  Hedges sent and won are from ``stats()``.

The reads of a cell are spread over `--rounds` interleaved rounds (each
round runs every scenario and cell in turn, on new clients), so a spell of
load from elsewhere on the machine falls on every cell alike; a cell's
figures pool its rounds' reads.  ``vs healthy`` is a cell's p99 over the
healthy scenario's p99 for the same driver, level and policy, pooled and
(``by round``) the median over the rounds of that ratio within a round.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import redis

import cvstore
from cvstore import AsyncCluster, AsyncRedisStore, Cluster, Node, RedisStore
from tests.support.proxy_process import ProxyProcess
from tests.support.redis_servers import start_servers, stop_servers

KEYS = [f"k{i}" for i in range(50)]
POLICIES = ("random", "fastest", "adaptive")
LEVELS = ("one", "quorum")
WARMUP = 300
DELAY = 0.020
STALL, RUN = 0.015, 0.035


def mgets(port: int) -> int:
    client = redis.Redis(host="127.0.0.1", port=port)
    try:
        return int(client.info("commandstats").get("cmdstat_mget", {}).get("calls", 0))
    finally:
        client.close()


class Staller(threading.Thread):
    """SIGSTOP / SIGCONT a server by PID on a duty cycle until stopped."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            os.kill(self.pid, signal.SIGSTOP)
            time.sleep(STALL)
            os.kill(self.pid, signal.SIGCONT)
            self.done.wait(RUN)
        os.kill(self.pid, signal.SIGCONT)

    def stop(self) -> None:
        self.done.set()
        self.join()


def summary(times: list[float]) -> dict[str, float]:
    ms = np.array(times) * 1000.0
    return {
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "mean_ms": float(ms.mean()),
    }


def sync_cell(ports: list[int], prefix: str, policy: str, level: str, reads: int) -> dict:
    nodes = [
        Node(f"r{i + 1}", store=RedisStore(f"redis://127.0.0.1:{p}/0", prefix=prefix, timeout=2))
        for i, p in enumerate(ports)
    ]
    cluster = Cluster(nodes, replication_factor=3, read_policy=policy)
    try:
        for i in range(WARMUP):
            cluster.get(KEYS[i % len(KEYS)], consistency=level)
        times = []
        for i in range(reads):
            started = time.perf_counter()
            cluster.get(KEYS[i % len(KEYS)], consistency=level)
            times.append(time.perf_counter() - started)
        stats = cluster.stats()
        return {"times": times, "hedges_sent": stats.hedges_sent, "hedges_won": stats.hedges_won}
    finally:
        cluster.close()
        for node in nodes:
            node.store.close()


async def async_cell(ports: list[int], prefix: str, policy: str, level: str, reads: int) -> dict:
    nodes = [
        Node(
            f"r{i + 1}",
            store=AsyncRedisStore(f"redis://127.0.0.1:{p}/0", prefix=prefix, timeout=2),
        )
        for i, p in enumerate(ports)
    ]
    cluster = AsyncCluster(nodes, replication_factor=3, read_policy=policy)
    try:
        for i in range(WARMUP):
            await cluster.get(KEYS[i % len(KEYS)], consistency=level)
        times = []
        for i in range(reads):
            started = time.perf_counter()
            await cluster.get(KEYS[i % len(KEYS)], consistency=level)
            times.append(time.perf_counter() - started)
        stats = await cluster.stats()
        return {"times": times, "hedges_sent": stats.hedges_sent, "hedges_won": stats.hedges_won}
    finally:
        await cluster.close()
        for node in nodes:
            await node.store.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reads", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--drivers", default="sync,async")
    args = parser.parse_args(argv)
    per_round = max(1, args.reads // args.rounds)
    cells: dict[tuple[str, str, str, str], dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        servers = start_servers(3, Path(tmp))
        try:
            with ProxyProcess() as proxy:
                links = [proxy.link("127.0.0.1", s.port) for s in servers]
                ports = [link.port for link in links]
                prefix = "bench-adaptive:"
                writer = Cluster(
                    [
                        Node(f"r{i + 1}", store=RedisStore(s.url(), prefix=prefix))
                        for i, s in enumerate(servers)
                    ],
                    replication_factor=3,
                )
                writer.put_many({key: "x" * 100 for key in KEYS}, consistency="all")
                writer.close()
                for round_ in range(args.rounds):
                    for scenario in ("healthy", "delayed", "stalled"):
                        run_scenario(
                            scenario, round_, args, per_round, servers, links, ports, prefix, cells
                        )
        finally:
            stop_servers(servers)
    rows = []
    for (scenario, driver, level, policy), cell in cells.items():
        served = cell.pop("served")
        row = {**summary(cell.pop("times")), **cell}
        row.update(
            scenario=scenario,
            driver=driver,
            level=level,
            policy=policy,
            slow_share=served[0] / max(1, sum(served)),
        )
        rows.append(row)
    healthy = {
        (r["driver"], r["level"], r["policy"]): r for r in rows if r["scenario"] == "healthy"
    }
    for row in rows:
        base = healthy[(row["driver"], row["level"], row["policy"])]
        row["p99_vs_healthy"] = row["p99_ms"] / base["p99_ms"]
        # the same within each round (a spell of load elsewhere falls on both), and their median
        row["round_p99_vs_healthy"] = [
            a / b for a, b in zip(row["round_p99_ms"], base["round_p99_ms"])
        ]
        row["median_round_p99_vs_healthy"] = float(np.median(row["round_p99_vs_healthy"]))
    result = {
        "command": f"python -m bench.adaptive_reads --reads {args.reads} --rounds {args.rounds}",
        "reads": per_round * args.rounds,
        "rounds": args.rounds,
        "warmup": WARMUP,
        "delay_s": DELAY,
        "stall_s": [STALL, RUN],
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_average_at_start": os.getloadavg()[0],
            "cvstore": cvstore.__version__,
        },
        "rows": rows,
    }
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(table(result))


def run_scenario(scenario, round_, args, reads, servers, links, ports, prefix, cells) -> None:
    """One round of one scenario: every driver, level and policy in turn, `reads` reads each."""
    staller = None
    if scenario == "delayed":
        links[0].delay(down=DELAY)
    elif scenario == "stalled":
        staller = Staller(servers[0].pid)
        staller.start()
    try:
        for driver in args.drivers.split(","):
            for level in LEVELS:
                for policy in POLICIES:
                    before = [mgets(s.port) for s in servers]
                    if driver == "sync":
                        got = sync_cell(ports, prefix, policy, level, reads)
                    else:
                        got = asyncio.run(async_cell(ports, prefix, policy, level, reads))
                    served = [mgets(s.port) - b for s, b in zip(servers, before)]
                    cell = cells.setdefault(
                        (scenario, driver, level, policy),
                        {
                            "times": [],
                            "served": [0, 0, 0],
                            "hedges_sent": 0,
                            "hedges_won": 0,
                            "round_p99_ms": [],
                        },
                    )
                    cell["times"] += got["times"]
                    cell["served"] = [a + b for a, b in zip(cell["served"], served)]
                    cell["hedges_sent"] += got["hedges_sent"]
                    cell["hedges_won"] += got["hedges_won"]
                    p99 = float(np.percentile(np.array(got["times"]) * 1000.0, 99))
                    cell["round_p99_ms"].append(p99)
                    print(
                        f"round {round_ + 1} {scenario:8} {driver:5} {level:6} {policy:8} "
                        f"p99 {p99:7.3f} ms  slow share {served[0] / max(1, sum(served)):.3f}",
                        flush=True,
                    )
    finally:
        links[0].heal()
        if staller is not None:
            staller.stop()


def table(result: dict) -> str:
    """The Markdown table of a run: p50 / p99 ms per scenario, by driver, level, policy."""
    cells = {(r["driver"], r["level"], r["policy"], r["scenario"]): r for r in result["rows"]}
    head = (
        "| driver | level | policy | healthy p50 / p99 | +20 ms link p50 / p99 (p99 vs healthy, "
        "median of the rounds' ratios; slow share) | stalled p50 / p99 (the same) |"
    )
    lines = [head, "|---|---|---|---|---|---|"]
    for driver in ("sync", "async"):
        for level in LEVELS:
            for policy in POLICIES:
                row = [driver, level, policy]
                for scenario in ("healthy", "delayed", "stalled"):
                    r = cells.get((driver, level, policy, scenario))
                    if r is None:
                        row.append("")
                        continue
                    text = f"{r['p50_ms']:.2f} / {r['p99_ms']:.2f}"
                    if scenario != "healthy":
                        text += (
                            f" ({r['p99_vs_healthy']:.2f}×, by round "
                            f"{r['median_round_p99_vs_healthy']:.2f}×; "
                            f"{r['slow_share'] * 100:.1f} %)"
                        )
                    row.append(text)
                if any(row[3:]):
                    lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
